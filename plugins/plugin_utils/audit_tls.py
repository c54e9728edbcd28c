# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TLS certificates an audit saw, and which of them expire soon.

Pure functions, free of Ansible. Each distinct certificate of a peer (by fingerprint) is listed once with
the checks that saw it; :func:`certificate_section` rates it against the role's
``echo_audit_tls_expiry_warn_days`` and ``echo_audit_tls_expiry_fail_days``. The section is plain data
that every report format presents.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    C_COLUMN, C_VARIANT, Matrix, variant_certificate)

STATES = ("expired", "fail", "warn", "ok")


def expiry_state(days_left: Optional[int], warn_days: Optional[int], fail_days: Optional[int]) -> str:
    """``expired``, ``fail`` (within fail_days), ``warn`` (within warn_days) or ``ok``; ``unknown`` without
    a date (an unverified certificate on a host without the cryptography package)."""
    if days_left is None:
        return "unknown"
    if days_left < 0:
        return "expired"
    if fail_days is not None and days_left <= fail_days:
        return "fail"
    if warn_days is not None and days_left <= warn_days:
        return "warn"
    return "ok"


def certificate_section(matrix: Matrix, warn_days: Optional[int], fail_days: Optional[int]) -> Dict[str, Any]:
    """Every certificate seen, soonest expiry first, with its peer, its state and how many checks saw it."""
    seen: Dict[tuple, Dict[str, Any]] = {}
    certificates = [variant_certificate(variant) for variant in matrix.variants]
    for packed in matrix.cells:
        certificate = certificates[packed[C_VARIANT]]
        if certificate is None:
            continue
        column = matrix.columns[packed[C_COLUMN]]
        key = (column["id"], certificate["sha256"])
        if key not in seen:
            seen[key] = dict(certificate, peer=column["name"], called_ae_title=column["ae_title"],
                             peer_host=column["host"], peer_port=column["port"], checks=0,
                             state=expiry_state(certificate["days_left"], warn_days, fail_days))
        seen[key]["checks"] += 1
    listed: List[Dict[str, Any]] = sorted(seen.values(), key=lambda entry: (
        entry["days_left"] is None, entry["days_left"] if entry["days_left"] is not None else 0, entry["peer"]))
    counts = {state: sum(1 for entry in listed if entry["state"] == state) for state in STATES + ("unknown",)}
    return {"warn_days": warn_days, "fail_days": fail_days, "counts": counts, "certificates": listed}


def expiry_problems(section: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The certificates that fail the run: expired, or within fail_days."""
    if not section:
        return []
    return [entry for entry in section["certificates"] if entry["state"] in ("expired", "fail")]


def expiry_line(entry: Dict[str, Any]) -> str:
    """One certificate in a line of the console or a report."""
    when = "expired %d day(s) ago" % -entry["days_left"] if entry["state"] == "expired" else \
        "expires in %d day(s)" % entry["days_left"] if entry["days_left"] is not None else "expiry unknown"
    return "%s (%s, %s:%s): TLS certificate %s (%s), %s" % (
        entry["peer"], entry["called_ae_title"], entry["peer_host"], entry["peer_port"], when,
        entry["not_after"] or "no date", (entry["subject"] or entry["sha256"][:23] + "..."))
