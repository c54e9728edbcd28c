# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one guarded import of pynetdicom, so a target without it gets Ansible's standard message."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import pynetdicom  # noqa: F401, pylint: disable=unused-import
except ImportError:
    HAS_PYNETDICOM = False
    PYNETDICOM_IMPORT_ERROR = traceback.format_exc()
    PYNETDICOM_VERSION = None
else:
    HAS_PYNETDICOM = True
    PYNETDICOM_IMPORT_ERROR = None
    PYNETDICOM_VERSION = getattr(pynetdicom, "__version__", "unknown")


def ensure_pynetdicom(module) -> None:
    """Fail the module with the standard missing-library message when pynetdicom is absent."""
    if not HAS_PYNETDICOM:
        module.fail_json(
            msg=missing_required_lib("pynetdicom (>= 2.0)"),
            exception=PYNETDICOM_IMPORT_ERROR,
        )
