# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers of the echo action plugins (dicom.network.echo, orthanc_echo and the audit's
echo_audit_source), free of Ansible imports.

The journal is what lets a play that is interrupted (Ctrl-C, a cancelled AWX job, a killed
controller) still produce a report with every planned check: each echo call's result is written
on the controller the moment it comes back, by the worker that ran it, without an extra task.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Dict, Optional, Tuple

from ansible_collections.dicom.network.plugins.plugin_utils.controller_files import atomic_write

JOURNAL_SCHEMA = 1
# Reports and journals map a hospital's network: readable by the owner and group only.
JOURNAL_MODE = 0o640

# What a target Python that cannot even parse an ansible-core module prints (3.6/3.7 against
# ansible-core 2.19 modules): the module never started, so there is no JSON to read.
_TOO_OLD_PYTHON = re.compile(r"SyntaxError: (future feature annotations is not defined|invalid syntax)")


# Never written to a file on the controller, wherever they appear in a plan or a result.
SECRET_KEYS = frozenset(("key_password", "password"))


def without_secrets(value: Any) -> Any:
    """``value`` with every secret replaced by asterisks, for the files a run leaves on the controller."""
    if isinstance(value, Mapping):
        return {key: ("********" if key in SECRET_KEYS and item is not None else without_secrets(item))
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_secrets(item) for item in value]
    return value


class JournalError(Exception):
    """The journal path given to the echo action is not usable."""


def unrunnable_module_message(result: Mapping[str, Any], interpreter: Optional[str]) -> Optional[str]:
    """A readable reason when the target Python could not run the module at all, else None."""
    if not result.get("failed") or result.get("results"):
        return None
    stderr = result.get("module_stderr")
    if not isinstance(stderr, str) or not _TOO_OLD_PYTHON.search(stderr):
        return None
    return ("the Python on this host (%s) is too old to run ansible-core modules (Python 3.8 or newer is "
            "needed on targets): point ansible_python_interpreter at a newer Python, or install one with "
            "the dicom.network.echo_venv role" % (interpreter or "the discovered interpreter"))


def journal_record(host: str, echoed_from: str, item: Any, result: Mapping[str, Any]) -> Dict[str, Any]:
    """The journal entry of one echo call: which host and loop item it was, and what came back."""
    kept = {key: value for key, value in result.items() if key != "invocation" and not key.startswith("_ansible")}
    kept = without_secrets(kept)
    return {"schema": JOURNAL_SCHEMA, "host": host, "echoed_from": echoed_from, "item": item, "result": kept}


def write_journal(path: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (a reader sees the whole entry or none)."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise JournalError("journal: %r is not an absolute path on the controller" % (path,))
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise JournalError("journal: the directory %s does not exist on the controller" % directory)
    # No fsync: the journal outlives an interrupted play (the page cache survives the process), and
    # an fsync per echo call would slow every host's echo task.
    atomic_write(path, json.dumps(record, default=str).encode("utf-8"), JOURNAL_MODE, sync=False)


def keep_in_journal(journal: Optional[str], host: str, echoed_from: str, item: Any, result: Dict[str, Any]) -> None:
    """Write the call's journal entry (an echo action's ``journal`` option); when it cannot be written, the
    echo itself still happened: the result says so in a warning instead of failing."""
    if not journal:
        return
    try:
        write_journal(journal, journal_record(host, echoed_from, item, result))
    except (JournalError, OSError, TypeError, ValueError) as exc:
        result.setdefault("warnings", []).append("the echo journal was not written: %s" % exc)


# The role's echo options (echo_audit_<name>) that dicom.network.echo takes under the same name, when set.
_AUDIT_ECHO_OPTIONS = ("connect_timeout", "acse_timeout", "dimse_timeout", "parallel", "count", "max_pdu", "tls",
                       "retries", "retry_delay", "debug")


def audit_echo_call(plan: Mapping[str, Any], options: Mapping[str, Any], journal: str,
                    api_password: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
    """The module that echoes one source host's peers in an audit, and its arguments: an archive
    (``echo_api`` in its plan) echoes through its REST API from the controller, with its modality table
    compared with the registry on the way; any other host runs dicom.network.echo. The report step judges
    the whole matrix, so neither module fails on what it finds. An unset option (None or empty) is left out,
    so that the module's default applies."""
    api = plan.get("echo_api")
    if api is not None:
        module = "dicom.network.orthanc_echo"
        call = {"url": api["url"], "validate_certs": api["validate_certs"], "peers": plan["echo_peers"],
                "registry": plan["drift"]["registry"], "registry_required": plan["drift"]["required"]}
        optional = {"username": api.get("username"), "ca_path": api.get("ca_path"), "timeout": options.get("api_timeout"),
                    "password": api_password if api.get("has_password") else None}
    else:
        module = "dicom.network.echo"
        # Each peer carries the calling AE title it is echoed as; the module wants one for the peers without.
        call = {"calling_ae_title": plan["calls"][0]["calling_ae_title"], "peers": plan["echo_peers"]}
        optional = dict({name: options.get(name) for name in _AUDIT_ECHO_OPTIONS}, bind_address=plan.get("bind_address"))
    call.update((name, value) for name, value in optional.items() if value is not None and value != "")
    call.update(fail_on="never", journal=journal)
    return module, call
