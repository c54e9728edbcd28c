"""Two consecutive audits (playbooks/audit.yml) over real peers on loopback that change in between, the way
a nightly AWX audit sees a network change: a TLS certificate swapped, an archive replaced by another
implementation behind the same AE and port, a route that got slower. Each peer is reached through a
delay proxy whose listening port stays, so the second run's backend can differ while the inventory does
not. TLS certificates minted for 400, 20 and 3 days, an expired and a self-signed one show the expiry
warnings and failure. The prom report is parsed with prometheus_client's own parsers."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict
from xml.etree import ElementTree

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import markdown_escape
from tests.peers import dcmtk
from tests.peers.base import ManagedProcess, free_port, stop_all
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.peers.tls import mint_server_certificate
from tests.system.test_audit_partial_runs import audit_command, run, write_inventory

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
TLS_PEERS = ("tls400", "tls20", "tls3", "expired", "self", "swap")


def _proxy(workdir: Path, name: str, routes: Dict[int, int], delay_ms: float) -> ManagedProcess:
    argv = [sys.executable, "-m", "benchmarks.delay_proxy", "--delay-ms", str(delay_ms), "--watch-stdin"]
    for listen, upstream in routes.items():
        argv += ["--route", "127.0.0.1:%d=127.0.0.1:%d" % (listen, upstream)]
    proc = ManagedProcess(name, argv, workdir / ("%s.log" % name), cwd=REPO_ROOT, stdin_pipe=True, stdout_pipe=True)
    proc.wait_for_line("READY", 15.0)
    return proc


@pytest.fixture(scope="module")
def network(tmp_path_factory, tls_material):
    """The backends of both runs, and the fixed ports the inventory names."""
    workdir = tmp_path_factory.mktemp("audit-changes")
    certificates = {name: mint_server_certificate(tls_material, "changes-%s" % name, days)
                    for name, days in (("tls400", 400), ("tls20", 20), ("tls3", 3), ("swap-a", 400), ("swap-b", 400))}
    certificates["self"] = mint_server_certificate(tls_material, "changes-self", 400, self_signed=True)
    certificates["expired"] = {"cert": tls_material["expired_cert"], "key": tls_material["expired_key"]}
    specs = {name: ({"behaviour": "tls", "ae_title": name.upper().replace("-", "_"), "tls": certificates[name]}, "")
             for name in ("tls400", "tls20", "tls3", "expired", "self")}
    specs["swap-a"] = ({"behaviour": "tls", "ae_title": "SWAP", "tls": certificates["swap-a"]}, "")
    specs["swap-b"] = ({"behaviour": "tls", "ae_title": "SWAP", "tls": certificates["swap-b"]}, "")
    specs["impl"] = ({"behaviour": "accept", "ae_title": "IMPL"}, "")
    specs["rtt"] = ({"behaviour": "accept", "ae_title": "RTT"}, "")
    procs = []
    try:
        proc, scps = start_pynetdicom_peers(workdir / "scps", specs, prefix="changes")
        procs.append(proc)
        proc, storescp = dcmtk.start_storescp(workdir, ae_title="IMPL")
        procs.append(proc)
        ports = {name: free_port() for name in TLS_PEERS + ("impl", "rtt")}
        yield {"workdir": workdir, "scps": scps, "storescp": storescp, "ports": ports, "procs": procs,
               "ca": tls_material["ca_cert"], "certificates": certificates}
    finally:
        stop_all(procs)


def _inventory(directory: Path, network) -> Path:
    tls = {"enabled": True, "ca_file": network["ca"]}
    aes = {name: {"ae_title": ("SWAP" if name == "swap" else name.upper()), "host": "127.0.0.1",
                  "port": network["ports"][name], "tls": tls} for name in TLS_PEERS}
    aes.update({name: {"ae_title": name.upper(), "host": "127.0.0.1", "port": network["ports"][name]}
                for name in ("impl", "rtt")})
    aes["src"] = {"ae_title": "SRC"}
    return write_inventory(directory, aes, {"src-1": {"dicom_local_aes": ["src"], "dicom_peers": sorted(aes.keys() - {"src"})}})


def _run_through(network, tmp_path: Path, label: str, swap: str, impl, rtt_delay_ms: float, *extra: str):
    """One audit with the proxies pointing at this run's backends."""
    scps, ports = network["scps"], network["ports"]
    upstream = {ports[name]: scps[name].port for name in ("tls400", "tls20", "tls3", "expired", "self")}
    upstream[ports["swap"]] = scps[swap].port
    upstream[ports["impl"]] = impl.port
    proxies = [_proxy(network["workdir"], "proxy-%s" % label, upstream, 0),
               _proxy(network["workdir"], "proxy-rtt-%s" % label, {ports["rtt"]: scps["rtt"].port}, rtt_delay_ms)]
    try:
        return run(audit_command(_inventory(tmp_path / label, network), tmp_path / "reports", *extra), tmp_path)
    finally:
        stop_all(proxies)


def test_two_nightly_audits_show_expiring_certificates_and_every_change_in_every_format(tmp_path, network):
    report_dir = tmp_path / "reports"
    baseline = report_dir / "baseline.json"
    published = tmp_path / "published"
    publish = ("-e", "echo_audit_publish_host=localhost", "-e", "echo_audit_publish_dir=%s" % published)
    first = _run_through(network, tmp_path, "night-1", "swap-a", network["storescp"], 0,
                         "-e", "echo_audit_baseline=%s" % baseline, "-e", "echo_audit_baseline_save=true", *publish)
    # Expired and self-signed certificates fail their checks; the 3-day one fails the run.
    assert first.returncode == 2, first.stdout[-4000:]
    cells = {cell["peer"]: cell for cell in json.loads(baseline.read_text())["cells"]}
    assert (cells["expired"]["outcome"], cells["self"]["outcome"]) == ("tls_error", "tls_error")
    assert cells["impl"]["peer_implementation_version"].startswith("OFFIS_DCMTK")

    second = _run_through(network, tmp_path, "night-2", "swap-b", network["scps"]["impl"], 100,
                          "-e", "echo_audit_baseline=%s" % baseline, *publish)
    output = second.stdout
    assert second.returncode == 2 and "Traceback" not in output + second.stderr, output[-4000:]
    report = json.loads((report_dir / "latest.json").read_text())
    cells = {cell["peer"]: cell for cell in report["cells"]}

    # The certificates: facts per cell, the section, the summary lines, the verdict.
    for name, days in (("tls400", 400), ("tls20", 20), ("tls3", 3)):
        facts = cells[name]["tls_certificate"]
        assert facts["days_left"] in (days - 1, days) and facts["verified"] is True, facts
    assert cells["expired"]["tls_certificate"]["days_left"] < -365
    assert cells["self"]["tls_certificate"]["verified"] is False
    states = {entry["peer"]: entry["state"] for entry in report["certificates"]["certificates"]}
    assert states == {"expired": "expired", "tls3": "fail", "tls20": "warn", "tls400": "ok", "self": "ok", "swap": "ok"}
    assert "TLS EXPIRED expired (EXPIRED, 127.0.0.1:%d): TLS certificate expired " % network["ports"]["expired"] in output
    assert "TLS EXPIRES tls3 (TLS3, 127.0.0.1:%d): TLS certificate expires in " % network["ports"]["tls3"] in output
    assert "TLS EXPIRES tls20 (TLS20, " in output and "TLS EXPIRES tls400" not in output
    assert "2 TLS certificate(s) expired or expiring within 7 day(s)" in output

    # The changes: the certificate swapped, the implementation replaced, the route 100 ms each way slower
    # (the test SCP answers in 5-40 ms on a busy machine: 3 times that and 20 ms more is far below 200 ms).
    changed = {pair["peer"]: pair["changes"] for pair in report["baseline"]["changed"]}
    assert set(changed) >= {"swap", "impl", "rtt"}, report["baseline"]
    # On a loaded machine a TLS peer's round trip may jump too; nothing else may change on the other peers.
    assert all(change.startswith("RTT ") for peer in set(changed) - {"swap", "impl", "rtt"}
               for change in changed[peer]), changed
    swap_a, swap_b = (_fingerprint(network["certificates"][name]["cert"]) for name in ("swap-a", "swap-b"))
    assert changed["swap"] == ["TLS certificate %s... -> %s... (valid until %s)" % (
        swap_a[:11], swap_b[:11], cells["swap"]["tls_certificate"]["not_after"])]
    assert changed["impl"][0].startswith("implementation class UID 1.2.276.0.7230010.3.0.3.6")
    assert changed["impl"][1].startswith("implementation version OFFIS_DCMTK_")
    assert changed["rtt"][0].startswith("RTT ") and changed["rtt"][0].endswith("x)")
    assert report["baseline"]["counts"]["peer_changes"] == len(changed)
    assert "CHANGED src-1 as SRC -> SWAP (swap): success => success [TLS certificate " in output
    assert "; %d peer change(s)" % len(changed) in output
    markdown = (report_dir / "latest.md").read_text()
    html = (report_dir / "latest.html").read_text()
    for text in (changed["swap"][0], changed["rtt"][0]):
        assert markdown_escape(text) in markdown, text
        assert text.replace("->", "-&gt;") in html, text
    assert "## TLS certificates expiring (3)" in markdown and "TLS certificates expiring (3)" in html
    assert "| fail | tls3 | TLS3 | 127.0.0.1:%d |" % network["ports"]["tls3"] in markdown
    with open(report_dir / "latest.csv", newline="", encoding="utf-8") as handle:
        rows = {row["peer"]: row for row in csv.DictReader(handle)}
    assert rows["rtt"]["changes"] == changed["rtt"][0]
    assert all(row["changes"] == "" for peer, row in rows.items() if peer not in changed)
    assert rows["tls20"]["tls_days_left"] in ("19", "20") and rows["impl"]["tls_days_left"] == ""
    assert {row["attempts"] for row in rows.values()} == {"1"}
    suites = {suite.get("name"): suite for suite in ElementTree.parse(report_dir / "latest.junit.xml").getroot()}
    outputs = {case.get("name"): case.findtext("system-out") for case in suites["changes since the baseline"]}
    assert outputs["src-1 as SRC -> RTT (rtt)"] == changed["rtt"][0] and len(outputs) == len(changed)

    # The metrics: both of Prometheus's parsers read them; the documented series are there.
    prom = (report_dir / "latest.prom").read_text()
    families = {family.name: family for family in openmetrics_families(prom)}
    assert {family.name for family in text_families(prom)} >= set(families)
    checks = {sample.labels["state"]: sample.value for sample in families["dicom_echo_audit_checks"].samples}
    assert checks == {"ok": report["summary"]["ok"], "failed": report["summary"]["failed"], "not_run": 0}
    days = {sample.labels["peer"]: sample.value for sample in families["dicom_echo_audit_check_tls_days_left"].samples}
    assert days["tls20"] in (19, 20) and days["expired"] < 0 and "impl" not in days
    assert families["dicom_echo_audit_peer_changes"].samples[0].value == len(changed)
    rtt = {sample.labels["peer"]: sample.value for sample in families["dicom_echo_audit_check_rtt_seconds"].samples}
    assert rtt["rtt"] >= 0.2 > rtt["impl"]
    assert (report_dir / "latest.prom").stat().st_mode & 0o777 == 0o640

    # The published trend: both runs, the second with its 3 peer changes, and a sparkline per pair.
    history = json.loads((published / "history.json").read_text())
    assert [run["changes"] for run in history["runs"]] == [len(changed), None]
    slower = "src-1 as SRC -> RTT (rtt)"
    assert history["runs"][0]["rtt"][slower] >= 3 * history["runs"][1]["rtt"][slower]
    index = (published / "index.html").read_text()
    assert "<h2>Round trips per pair</h2>" in index and "<script" not in index
    assert index.count('<svg class="spark"') == len(history["runs"][0]["rtt"]) and "src-1 as SRC -&gt; RTT (rtt)" in index


def _fingerprint(pem_path: str) -> str:
    done = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", pem_path],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip().split("=", 1)[1]
