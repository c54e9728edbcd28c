# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archives as sources of the audit: hosts whose echoes go through the archive's REST API.

Pure functions, free of Ansible. An inventory host with ``dicom_echo_api`` (``{type: orthanc, url,
username, password, validate_certs, ca_path}``) is echoed by ``dicom.network.orthanc_echo`` on the
controller instead of ``dicom.network.echo`` on the host. :func:`check_echo_api` checks that variable
and keeps everything of it but the password, which never enters the plan (``plan.json``), the journal
or a report: the role reads it from the host's variables at the moment of the echo, into an argument
the module never logs. :func:`archive_section` is the reports' "Archive configuration" section: each
archive's modality table against the registry (``drift`` of the module's result).

Another archive's REST API plugs in here: a type in :data:`API_TYPES` (with the module that echoes
through it, see roles/echo_audit/README.md, "Other archives").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError, type_name
from ansible_collections.dicom.network.plugins.module_utils.rest_url import check_url

# type -> how its echoes are labelled in the reports (the module is chosen in roles/echo_audit/tasks/echo.yml).
API_TYPES = {"orthanc": "Orthanc REST"}
API_KEYS = ("type", "url", "username", "password", "validate_certs", "ca_path")
# The keys of a peer that an archive's REST echo takes (dicom.network.orthanc_echo's peers).
API_PEER_KEYS = ("name", "ae_title", "host", "port", "expect", "calling_ae_title")
DRIFT_KINDS = ("missing", "unknown", "mismatch")


class EchoApiError(ValueError):
    """A mistake in a host's ``dicom_echo_api``; the message names the key, never the password's value."""


def check_echo_api(value: Any) -> Dict[str, Any]:
    """``dicom_echo_api`` checked, without ``password`` (only whether one is set: ``has_password``)."""
    if not isinstance(value, Mapping):
        raise EchoApiError("must be a dictionary {type: orthanc, url, username, password}, got %s" % type_name(value))
    unknown = sorted(str(key) for key in value if key not in API_KEYS)
    if unknown:
        raise EchoApiError("has unknown key(s) %s; valid keys are %s" % (", ".join(unknown), ", ".join(API_KEYS)))
    kind = value.get("type")
    if kind not in API_TYPES:
        raise EchoApiError("type must be one of %s (the archives whose REST API can echo), got %r"
                           % (", ".join(sorted(API_TYPES)), kind))
    try:
        url = check_url(value.get("url"))
    except EchoInputError as error:
        raise EchoApiError(str(error)) from None
    username = value.get("username")
    if username is not None and (not isinstance(username, str) or not username):
        raise EchoApiError("username must be a non-empty string, got %s" % type_name(username))
    password = value.get("password")
    if password is not None and not isinstance(password, str):
        raise EchoApiError("password must be a string, got %s" % type_name(password))
    if password and not username:
        raise EchoApiError("password is set but username is not")
    validate_certs = value.get("validate_certs", True)
    if not isinstance(validate_certs, bool):
        raise EchoApiError("validate_certs must be a boolean, got %s" % type_name(validate_certs))
    ca_path = value.get("ca_path")
    if ca_path is not None and (not isinstance(ca_path, str) or not ca_path):
        raise EchoApiError("ca_path must be a path, got %s" % type_name(ca_path))
    return {"type": kind, "label": API_TYPES[kind], "url": url, "username": username, "has_password": bool(password),
            "validate_certs": validate_certs, "ca_path": ca_path}


def api_peers(peers: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The module peers of a host echoed through an archive's API: Verification only, so services and discover
    are not checked there, and the archive decides TLS from its own modality table."""
    return [{key: peer[key] for key in API_PEER_KEYS if peer.get(key) is not None} for peer in peers]


def drift_registry(registry: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The registry's AEs as the archive's modality table is compared with them; an AE that only calls (no host
    and port) is known by its AE title alone."""
    return {name: {"ae_title": ae["ae_title"], "host": ae["host"], "port": ae["port"]}
            for name, ae in sorted(registry.items())}


def echoed_from(api: Mapping[str, Any]) -> str:
    """What a row echoed through an archive's API says instead of a host name."""
    return "%s at %s" % (api["label"], api["url"])


def api_label(echoed_from: Any) -> Optional[str]:
    """The API's label (``Orthanc REST``) when a row's ``echoed_from`` says it went through an archive's API."""
    if isinstance(echoed_from, str):
        for label in API_TYPES.values():
            if echoed_from.startswith(label + " at "):
                return label
    return None


def _entries(section: Any) -> List[Dict[str, Any]]:
    return [dict(entry) for entry in section if isinstance(entry, Mapping)] if isinstance(section, list) else []


def archive_section(plans: Mapping[str, Any], results: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The "Archive configuration" section: per archive host, its modality table against the registry.

    ``results`` is :func:`audit_matrix.results_from_journal`'s (host: {"results": [call results]}). An archive
    whose call did not bring a drift (API unreachable, credentials refused) says why instead. None when no
    host of the run is echoed through an archive's API.
    """
    archives = []
    for host in sorted(plans):
        api = plans[host].get("echo_api") if isinstance(plans[host], Mapping) else None
        if not isinstance(api, Mapping):
            continue
        calls = (results.get(host) or {}).get("results") or []
        call = next((item for item in calls if isinstance(item, Mapping)), None)
        drift = call.get("drift") if call is not None else None
        orthanc = call.get("orthanc") if call is not None and isinstance(call.get("orthanc"), Mapping) else {}
        entry = {"source_host": host, "type": api.get("type"), "url": api.get("url"),
                 "ae_title": orthanc.get("ae_title"), "version": orthanc.get("version"), "error": None,
                 "in_sync": None, "summary": None, "differences": []}
        if not isinstance(drift, Mapping):
            entry["error"] = (str(call.get("msg") or "no result") if call is not None
                              else "no result: the echo through the archive's API did not run")
        else:
            entry["in_sync"] = bool(drift.get("in_sync"))
            entry["summary"] = dict(drift.get("summary") or {})
            for missing in _entries(drift.get("missing")):
                entry["differences"].append({
                    "kind": "missing", "name": missing.get("name"), "modality": None, "field": None,
                    "registry": "%s@%s:%s" % (missing.get("ae_title"), missing.get("host"), missing.get("port")),
                    "archive": None})
            for unknown in _entries(drift.get("unknown")):
                entry["differences"].append({
                    "kind": "unknown", "name": None, "modality": unknown.get("modality"), "field": None,
                    "registry": None,
                    "archive": "%s@%s:%s" % (unknown.get("ae_title"), unknown.get("host"), unknown.get("port"))})
            for mismatch in _entries(drift.get("mismatches")):
                entry["differences"].append({
                    "kind": "mismatch", "name": mismatch.get("name"), "modality": mismatch.get("modality"),
                    "field": mismatch.get("field"), "registry": str(mismatch.get("registry")),
                    "archive": str(mismatch.get("orthanc"))})
        archives.append(entry)
    if not archives:
        return None
    drifted = [entry for entry in archives if entry["in_sync"] is False]
    return {"archives": archives, "drifted": len(drifted),
            "differences": sum(len(entry["differences"]) for entry in archives)}


def merge_archive_sections(sections: Sequence[Any]) -> Optional[Dict[str, Any]]:
    """The "Archive configuration" sections of the reports of one run's slices or sites, as one (an archive in two
    reports counted once); None when no report has one."""
    archives: Dict[str, Dict[str, Any]] = {}
    for section in sections:
        if not isinstance(section, Mapping):
            continue
        for entry in _entries(section.get("archives")):
            if isinstance(entry.get("source_host"), str):
                archives.setdefault(entry["source_host"], entry)
    if not archives:
        return None
    merged = [archives[host] for host in sorted(archives)]
    return {"archives": merged, "drifted": sum(1 for entry in merged if entry.get("in_sync") is False),
            "differences": sum(len(entry.get("differences") or []) for entry in merged)}


def difference_text(difference: Mapping[str, Any]) -> str:
    """One difference in words, for the console, Markdown and CSV."""
    if difference["kind"] == "missing":
        return "%s (%s) is not a modality of the archive" % (difference["name"], difference["registry"])
    if difference["kind"] == "unknown":
        return "modality %s (%s) is not in the registry" % (difference["modality"], difference["archive"])
    return "%s: %s is %s in the archive's modality %s, %s in the registry" % (
        difference["name"], difference["field"], difference["archive"], difference["modality"], difference["registry"])


def drift_problems(section: Optional[Mapping[str, Any]]) -> List[str]:
    """What fails a run with ``echo_audit_fail_on_config_drift``: archives whose table differs from the registry."""
    if not section:
        return []
    return ["%s (%d difference(s))" % (entry["source_host"], len(entry["differences"]))
            for entry in section["archives"] if entry["in_sync"] is False]
