# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base URL of an archive's REST API, checked; free of Ansible, so the controller's plan step uses it too."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError


def check_url(value: Any) -> str:
    """The API's base URL without a trailing slash; credentials in it are refused (they would be logged)."""
    if not isinstance(value, str) or not value.strip():
        raise EchoInputError("url must be the base URL of the Orthanc REST API, e.g. http://pacs.example.org:8042, "
                             "got %r" % (value,))
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise EchoInputError("url %r is not a valid URL: %s" % (without_userinfo(text), exc)) from None
    if parts.scheme not in ("http", "https"):
        raise EchoInputError("url must start with http:// or https://, got %r" % (without_userinfo(text),))
    if parts.username is not None or parts.password is not None:
        raise EchoInputError("url must not carry credentials (user:password@host): give them as username and "
                             "password, which are never logged (got %s)" % without_userinfo(text))
    if not parts.hostname:
        raise EchoInputError("url %r has no host" % (text,))
    if parts.query or parts.fragment:
        raise EchoInputError("url must be the API's base URL, without a query or fragment, got %r" % (text,))
    if port == 0:
        raise EchoInputError("url %r has port 0" % (text,))
    return text.rstrip("/")


def without_userinfo(text: str) -> str:
    return re.sub(r"(?<=://)[^/@]*@", "", text)
