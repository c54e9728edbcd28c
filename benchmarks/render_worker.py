"""Scenario 4's in-process part, run in a fresh interpreter: the same N x M audit as the Ansible
path (benchmarks/synthetic.py), through the collection's filter functions for the matrix and
plugin_utils/audit_report.render_reports for the reports (the HTML page alone, then every format)
-- where the rendering time goes without Ansible.

    python -m benchmarks.render_worker IN.json OUT.json      IN: {"rows": N, "columns": M, "dir": ...}

The role is being written while these benchmarks are; when its filters' interfaces change, this
part reports ``unavailable`` with the reason instead of failing the scenario (the Ansible path,
which goes through the role's own task files, is the measurement that counts).
"""
from __future__ import annotations

import importlib
import inspect
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

from benchmarks.synthetic import audit_inventory, registered_echo
from benchmarks.workers import REPO_ROOT, ensure_collection_path

ROLE = REPO_ROOT / "roles" / "echo_audit"


def collection_filters() -> Dict[str, Any]:
    """The filters the matrix is built with (the report filters are on their way out)."""
    filters: Dict[str, Any] = {}
    for name in ("echo_audit_peers", "echo_matrix"):
        module = importlib.import_module("ansible_collections.dicom.network.plugins.filter.%s" % name)
        if hasattr(module, "FilterModule"):
            for filter_name, function in module.FilterModule().filters().items():
                filters["dicom.network.%s" % filter_name] = function
    return filters


def render(report: Any, formats: List[str]) -> Dict[str, str]:
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import render_reports
    return render_reports(report, formats, str(ROLE / "templates"))


def main(argv: List[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    out_dir = Path(spec["dir"])
    ensure_collection_path()
    result: Dict[str, Any] = {"available": False}
    try:
        filters = collection_filters()
        inventory = audit_inventory(int(spec["rows"]), int(spec["columns"]))
        registry = inventory["all"]["vars"]["dicom_aes"]
        group = inventory["all"]["children"]["dicom_sources"]
        peers_filter = filters["dicom.network.echo_audit_peers"]
        plans = {host: peers_filter(registry, host=host, local_aes=hv["dicom_local_aes"],
                                    peer_lists=dict(group["vars"]))
                 for host, hv in group["hosts"].items()}
        results = {host: registered_echo(plan, host) for host, plan in plans.items()}
        matrix = filters["dicom.network.echo_matrix"]
        parameters = inspect.signature(matrix).parameters
        t0 = time.monotonic()
        if "results" in parameters:
            # Packed where the filter can, as the report action holds it (not as JSON text).
            report = matrix(plans, results=results, generated_at="2025-01-01T00:00:00Z",
                            **{name: True for name in ("packed",) if name in parameters})
        else:  # the earlier interface: {host: {plan, echo}}
            report = matrix({h: {"plan": plans[h], "echo": results[h]} for h in plans},
                            generated_at="2025-01-01T00:00:00Z")
        result["matrix_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        html = render(report, ["html"])["html"]
        result["html_s"] = time.monotonic() - t0
        result["formats_s"] = {}
        for fmt in ("json", "md", "csv", "junit"):
            t0 = time.monotonic()
            render(report, [fmt])
            result["formats_s"][fmt] = time.monotonic() - t0
        path = out_dir / "inprocess-report.html"
        path.write_text(html)
        result.update(available=True, html_bytes=path.stat().st_size, html_path=str(path),
                      cells=int(spec["rows"]) * int(spec["columns"]))
    except Exception as exc:  # noqa: BLE001 - the role's interface moves; say why and go on
        result["reason"] = "%s: %s" % (type(exc).__name__, str(exc)[:300])
        result["traceback"] = traceback.format_exc()[-2000:]
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
