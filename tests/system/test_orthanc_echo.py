"""dicom.network.orthanc_echo against a real Orthanc (Debian 1.10.1) with authentication, over HTTP and over
HTTPS (a TLS proxy: Orthanc's own SslEnabled crashes, asserted below), echoing real peers: DCMTK storescp, a
pynetdicom SCP that requires Orthanc's calling AE, one that rejects it, a closed port, a silent socket and a
peer without Verification. Each outcome is compared with dicom.network.echo run from the same source address
(127.0.0.1) as Orthanc's AE title.
"""
from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.peers import dcmtk as dcmtk_mod
from tests.peers.base import LOOPBACK, closed_port, stop_all
from tests.peers.hostile import HostileServer
from tests.peers.orthanc import orthanc_binary, start_orthanc
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.peers.tls_proxy import TlsProxy
from tests.system.helpers import echo, run_module, run_playbook

pytestmark = pytest.mark.peers

USER = "dicom-audit"
PASSWORD = "Orth4nc-s3cret-pw"
ORTHANC_AE = "ARCHIVE_AE"
TIMEOUT = 1  # Orthanc's echo Timeout: the silent peer costs this much
MARGIN_S = 2.5

# modality id -> (peer key, AE title override); the peers are started by the fixture.
EXPECTED = {
    # modality: (outcome, phase, HTTP status, OrthancStatus, a piece of Orthanc's Details)
    "storescp": ("success", "release", 200, None, None),
    "requires-archive": ("success", "release", 200, None, None),
    "rejects-archive": ("rejected", "associate", 500, 9, "DUL Association Rejected"),
    "closed": ("refused", "connect", 500, 9, "TCP Initialization Error: Connection refused"),
    "silent": ("timeout", "associate", 500, 9, "DUL network read timeout"),
    "no-verification": ("context_rejected", "associate", 500, 2015,
                        "Unable to negotiate a presentation context with AET"),
    "status-failure": ("status_failure", "echo", 500, None, None),
}


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    """A web server that is not an Orthanc: a login page, and 404 elsewhere."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        status = 200 if self.path == "/system" else 404
        body = b"<html><body>Please log in</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def archive(peers_workdir, tls_material):
    if orthanc_binary() is None:
        pytest.skip("Orthanc binary not found")
    workdir = peers_workdir / "orthanc-echo"
    procs = []
    silent = HostileServer("silent", LOOPBACK, hold_max=30).start()
    web = http.server.ThreadingHTTPServer((LOOPBACK, 0), _HtmlHandler)
    threading.Thread(target=web.serve_forever, name="html-server", daemon=True).start()
    proxies = []
    try:
        pyproc, scps = start_pynetdicom_peers(workdir / "scps", {
            "requires-archive": ({"behaviour": "reject-calling", "ae_title": "NEEDS_ARCHIVE",
                                  "allowed_calling": [ORTHANC_AE]}, "accepts only the archive's AE"),
            "rejects-archive": ({"behaviour": "reject-calling", "ae_title": "NOT_ARCHIVE",
                                 "allowed_calling": ["SOMEONE_ELSE"]}, "rejects the archive's AE (RJ 1/1/3)"),
            "no-verification": ({"behaviour": "no-verification", "ae_title": "CT_ONLY_SCP"}, "no Verification"),
            "status-failure": ({"behaviour": "status", "status": 0xC000, "ae_title": "FAIL_SCP"}, "0xC000"),
        }, prefix="orthanc-echo-scps")
        procs.append(pyproc)
        store_proc, store = dcmtk_mod.start_storescp(workdir / "dcmtk")
        procs.append(store_proc)
        closed = closed_port()
        peers = {
            "storescp": {"ae_title": store.ae_title, "host": LOOPBACK, "port": store.port},
            "closed": {"ae_title": "NOBODY_HOME", "host": LOOPBACK, "port": closed},
            "silent": {"ae_title": "SILENT_SCP", "host": LOOPBACK, "port": silent.port},
        }
        for key, peer in scps.items():
            peers[key] = {"ae_title": peer.ae_title, "host": LOOPBACK, "port": peer.port}
        modalities = {mid: {"AET": p["ae_title"], "Host": p["host"], "Port": p["port"]} for mid, p in peers.items()}
        # The same SCP, called with a LocalAet it does not accept; and a workstation entered with a wrong port.
        modalities["requires-archive-la"] = dict(modalities["requires-archive"], AET="NEEDS_ARCHIVE_LA",
                                                 LocalAet="LOCAL_AET")
        modalities["ws-wrong-port"] = {"AET": "WS_WRONG_PORT", "Host": LOOPBACK, "Port": closed}
        orthanc_proc, orthanc = start_orthanc(
            workdir, "archive", ae_title=ORTHANC_AE, known_calling={}, extra_modalities=modalities,
            extra_config={"AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}})
        procs.append(orthanc_proc)
        http_port = orthanc.extra["http_port"]
        proxy = TlsProxy(http_port, tls_material["server_cert"], tls_material["server_key"]).start()
        proxies.append(proxy)
        yield {
            "url": "http://127.0.0.1:%d" % http_port,
            "https_url": "https://127.0.0.1:%d" % proxy.port,
            "peers": peers,
            "scp_ports": {key: p["port"] for key, p in peers.items()},
            "html_url": "http://127.0.0.1:%d" % web.server_address[1],
            "closed_url": "http://127.0.0.1:%d" % closed_port(),
            "silent_url": "http://127.0.0.1:%d" % silent.port,
            "tls": tls_material,
            "workdir": workdir,
            "orthanc_log": orthanc.extra["log"],
        }
    finally:
        for proxy in proxies:
            proxy.stop()
        web.shutdown()
        silent.stop()
        stop_all(procs)


def module_args(archive, **extra) -> Dict[str, Any]:
    args = {"url": archive["url"], "username": USER, "password": PASSWORD, "timeout": TIMEOUT}
    args.update(extra)
    return args


def run(args, **kwargs) -> Dict[str, Any]:
    completed = run_module(args, module="orthanc_echo", **kwargs)
    assert "Traceback" not in completed.stdout + completed.stderr, completed.stderr[-3000:]
    assert PASSWORD not in completed.stdout + completed.stderr
    document = json.loads(completed.stdout)
    document.setdefault("failed", False)  # a module's own output says failed only when it failed
    return document


def peer_list(archive, names, **extra):
    return [dict(archive["peers"][name], name=name, **extra) for name in names]


def test_each_peer_behaviour_through_its_orthanc_modality(archive):
    started = time.monotonic()
    document = run(module_args(archive, peers=peer_list(archive, EXPECTED), fail_on="never"))
    wall = time.monotonic() - started
    assert document["orthanc"]["ae_title"] == ORTHANC_AE and document["orthanc"]["version"] == "1.10.1"
    table = []
    for result in document["results"]:
        outcome, phase, http_status, orthanc_status, details = EXPECTED[result["name"]]
        side = result["orthanc"]
        table.append("%-17s %-4s %-5s %-17s %-9s %s" % (result["name"], side["http_status"], side["orthanc_status"],
                                                        result["outcome"], result["phase"], side["details"]))
        assert (result["outcome"], result["phase"]) == (outcome, phase), result["message"]
        assert (side["http_status"], side["orthanc_status"]) == (http_status, orthanc_status)
        if details:
            assert details in side["details"] and side["details"] in result["message"]
        assert side["registered"] is True and side["modality"] == result["name"]
        assert side["endpoint"] == "/modalities/%s/echo" % result["name"]
        assert result["echoed_by"] == "Orthanc at %s as AE %s" % (archive["url"], ORTHANC_AE)
        assert ("echoed by Orthanc at %s as AE %s through modality '%s'" % (archive["url"], ORTHANC_AE,
                                                                            result["name"])) in result["message"]
        assert result["calling_ae_title"] == ORTHANC_AE and result["ok"] == (outcome == "success")
    print("\n".join(["", "modality          HTTP Orth. outcome           phase     Details"] + table))
    assert document["summary"]["total"] == len(EXPECTED) and document["changed"] is False
    assert document["failed"] is False  # fail_on: never
    # The silent peer costs one Orthanc timeout; the echoes run 4 at a time.
    assert wall < TIMEOUT + MARGIN_S + 1


def test_outcomes_equal_dicom_network_echo_run_as_orthancs_ae_from_the_same_address(archive):
    names = list(EXPECTED)
    document = run(module_args(archive, peers=peer_list(archive, names), fail_on="never"))
    direct = echo([dict(archive["peers"][name], name=name) for name in names], calling_ae_title=ORTHANC_AE,
                  bind_address="127.0.0.1", connect_timeout=TIMEOUT, acse_timeout=TIMEOUT, dimse_timeout=TIMEOUT)
    through_orthanc = [(r["name"], r["outcome"], r["phase"], r["ok"]) for r in document["results"]]
    from_module = [(r["name"], r["outcome"], r["phase"], r["ok"]) for r in direct]
    assert through_orthanc == from_module
    # What Orthanc cannot tell: the RJ reason, and the C-ECHO status.
    rejected = {r["name"]: r for r in direct}["rejects-archive"]
    assert rejected["reject"]["reason"] == "calling-ae-title-not-recognized"
    assert {r["name"]: r for r in document["results"]}["rejects-archive"]["reject"] is None
    assert {r["name"]: r for r in direct}["status-failure"]["status"] == 0xC000
    assert {r["name"]: r for r in document["results"]}["status-failure"]["status"] is None


def test_unregistered_peers_go_through_tools_dicom_echo_with_the_calling_ae_given(archive):
    store, needs = archive["peers"]["storescp"], archive["peers"]["requires-archive"]
    peers = [
        dict(store, name="any-title", ae_title="NOT_IN_ORTHANC"),  # storescp takes any called AE
        dict(needs, name="as-stranger", ae_title="NEEDS_ARCH_2", calling_ae_title="STRANGER", expect="reject"),
        dict(needs, name="as-archive", ae_title="NEEDS_ARCH_3", calling_ae_title=ORTHANC_AE),
        dict(archive["peers"]["closed"], name="nowhere", ae_title="NOWHERE", expect="blocked"),
    ]
    document = run(module_args(archive, peers=peers))
    assert document["failed"] is False, document["msg"]
    assert [(r["name"], r["outcome"], r["calling_ae_title"], r["ok"]) for r in document["results"]] == [
        ("any-title", "success", ORTHANC_AE, True), ("as-stranger", "rejected", "STRANGER", True),
        ("as-archive", "success", ORTHANC_AE, True), ("nowhere", "refused", ORTHANC_AE, True)]
    for result in document["results"]:
        assert result["orthanc"]["registered"] is False and result["orthanc"]["modality"] is None
        assert result["orthanc"]["endpoint"] == "/tools/dicom-echo"
        assert "through /tools/dicom-echo (not a modality of Orthanc)" in result["message"]
    assert document["msg"] == "all 4 peer(s) answered as expected"


def test_a_modalitys_local_aet_is_the_calling_ae_and_a_different_one_is_refused_before_any_echo(archive):
    needs = archive["peers"]["requires-archive"]
    document = run(module_args(archive, peers=[dict(needs, name="la", ae_title="NEEDS_ARCHIVE_LA")], fail_on="never"))
    (result,) = document["results"]
    assert (result["outcome"], result["calling_ae_title"]) == ("rejected", "LOCAL_AET")
    assert result["orthanc"]["modality"] == "requires-archive-la"
    assert document["modalities"]["requires-archive-la"]["local_ae_title"] == "LOCAL_AET"
    bad = run(module_args(archive, peers=[dict(needs, name="la", ae_title="NEEDS_ARCHIVE_LA",
                                               calling_ae_title=ORTHANC_AE)]))
    assert bad["failed"] is True and "results" not in bad
    assert bad["msg"] == ("invalid input: peers[0] (la).calling_ae_title is %s, but Orthanc calls modality "
                          "'requires-archive-la' as LOCAL_AET (its LocalAet): a registered modality is echoed with "
                          "Orthanc's own configuration; drop calling_ae_title, or set it to LOCAL_AET" % ORTHANC_AE)


def test_a_wrong_port_in_orthanc_shows_in_the_echo_and_in_the_drift(archive):
    needs = archive["peers"]["requires-archive"]
    workstation = {"ae_title": "WS_WRONG_PORT", "host": LOOPBACK, "port": needs["port"]}
    registry = {name: {"ae_title": p["ae_title"], "host": p["host"], "port": p["port"], "site": "A"}
                for name, p in archive["peers"].items()}
    registry.update({"ws": workstation, "archive": {"ae_title": ORTHANC_AE, "host": LOOPBACK, "port": 4242},
                     "mr_new": {"ae_title": "MR_NEW", "host": "127.0.0.9", "port": 104}})
    document = run(module_args(archive, peers=[dict(workstation, name="ws")], registry=registry))
    assert document["failed"] is True  # the echo failed; the drift alone does not fail without fail_on_drift
    (result,) = document["results"]
    assert (result["outcome"], result["orthanc"]["modality"]) == ("refused", "ws-wrong-port")
    assert result["message"].endswith("Orthanc's entry differs from the inventory: port %d (inventory %d)"
                                      % (archive["scp_ports"]["closed"], needs["port"]))
    drift = document["drift"]
    assert drift["skipped"] == ["archive"]
    assert drift["missing"] == [{"name": "mr_new", "ae_title": "MR_NEW", "host": "127.0.0.9", "port": 104}]
    assert drift["unknown"] == [{"modality": "requires-archive-la", "ae_title": "NEEDS_ARCHIVE_LA", "host": LOOPBACK,
                                 "port": needs["port"]}]
    assert drift["mismatches"] == [{"name": "ws", "modality": "ws-wrong-port", "field": "port",
                                    "registry": needs["port"], "orthanc": archive["scp_ports"]["closed"]}]
    assert drift["summary"]["matched"] == len(archive["peers"])
    only_drift = run(module_args(archive, registry=registry, fail_on_drift=True))
    assert only_drift["failed"] is True and "results" not in only_drift
    assert only_drift["msg"] == (
        "configuration drift: missing in Orthanc: mr_new (MR_NEW); unknown to the registry: requires-archive-la "
        "(NEEDS_ARCHIVE_LA); mismatched: ws port %d in Orthanc's 'ws-wrong-port', %d in the registry"
        % (archive["scp_ports"]["closed"], needs["port"]))


def test_https_verifies_the_api_certificate(archive):
    tls = archive["tls"]
    peers = peer_list(archive, ["storescp"])
    good = run(module_args(archive, url=archive["https_url"], ca_path=tls["ca_cert"], peers=peers))
    assert good["results"][0]["outcome"] == "success" and good["failed"] is False
    assert good["results"][0]["echoed_by"] == "Orthanc at %s as AE %s" % (archive["https_url"], ORTHANC_AE)
    for ca_path in (tls["unknown_ca_cert"], None):
        wrong = run(module_args(archive, url=archive["https_url"], ca_path=ca_path, peers=peers))
        assert wrong["failed"] is True and "results" not in wrong
        assert wrong["msg"].startswith("cannot verify the TLS certificate of the Orthanc REST API at %s ("
                                       % archive["https_url"]), wrong["msg"]
        assert wrong["msg"].endswith("set ca_path to the CA certificate that signed it (validate_certs: false turns "
                                     "the check off)")
    unverified = run(module_args(archive, url=archive["https_url"], validate_certs=False, peers=peers))
    assert unverified["results"][0]["outcome"] == "success"
    plain_to_tls = run(module_args(archive, url=archive["https_url"].replace("https:", "http:"), peers=peers))
    assert plain_to_tls["failed"] is True and archive["https_url"].replace("https:", "http:") in plain_to_tls["msg"]


@pytest.mark.parametrize("change, expected", [
    ({"password": "wrong-password"},
     "the Orthanc REST API at {url} refused the credentials (HTTP 401 on GET /system): check username and password"),
    ({"username": None, "password": None},
     "the Orthanc REST API at {url} refused the credentials (HTTP 401 on GET /system): check username and password"),
    ({"url": "{closed_url}"},
     "cannot reach the Orthanc REST API at {closed_url}: connection refused (no HTTP server on that port)"),
    ({"url": "{html_url}"},
     "{html_url} is not an Orthanc REST API: GET /system answered HTTP 200 (text/html): <html><body>Please log "
     "in</body></html>"),
    ({"url": "{html_url}/orthanc"},
     "{html_url}/orthanc is not an Orthanc REST API: GET /system answered HTTP 404 (text/html): <html><body>Please "
     "log in</body></html>"),
    ({"url": "{url}/nosuch"},
     "the Orthanc REST API at {url}/nosuch answered GET /system with HTTP 404: Unknown resource (OrthancStatus 17) "
     "(is url the API's base URL, without a path Orthanc does not serve?)"),
    ({"url": "{silent_url}", "http_timeout": 1},
     "the Orthanc REST API at {silent_url} did not answer GET /system within 1 s"),
])
def test_an_api_that_cannot_be_used_fails_with_one_line_naming_the_url(archive, change, expected):
    values = {key: archive[key] for key in ("url", "closed_url", "html_url", "silent_url")}
    args = module_args(archive, peers=peer_list(archive, ["storescp"]))
    args.update({k: (v.format(**values) if isinstance(v, str) and k == "url" else v) for k, v in change.items()})
    args = {k: v for k, v in args.items() if v is not None}
    started = time.monotonic()
    document = run(args)
    assert time.monotonic() - started < 1 + MARGIN_S + 1
    assert document["failed"] is True and "results" not in document
    assert document["msg"] == expected.format(**values)


@pytest.mark.parametrize("change, expected", [
    ({"url": "http://%s:%s@127.0.0.1:8042" % (USER, PASSWORD)},
     "invalid input: url must not carry credentials (user:password@host): give them as username and password, which "
     "are never logged (got http://127.0.0.1:8042)"),
    ({"timeout": 0}, "invalid input: timeout must be between 1 and 3600 seconds, got 0"),
    ({"peers": [{"ae_title": "X", "host": "127.0.0.1", "tls": {"enabled": True}}]},
     "Unsupported parameters"),
    ({"peers": [{"ae_title": "X", "host": "127.0.0.1", "modality": "nosuch"}]},
     "invalid input: peers[0] (X).modality 'nosuch' is not a modality of the Orthanc at hand (its modalities: closed, "
     "no-verification, rejects-archive, requires-archive, requires-archive-la, silent, status-failure, storescp, "
     "ws-wrong-port)"),
    ({"peers": [{"ae_title": "X" * 17, "host": "127.0.0.1"}]},
     "invalid input: peers[0] (XXXXXXXXXXXXXXXXX).ae_title must be at most 16 characters, got 17 "
     "(got 'XXXXXXXXXXXXXXXXX')"),
    ({"peers": None}, "invalid input: give peers to echo, a registry to compare, or both"),
    ({"registry": {"ws": {"ae_title": "WS", "host": "127.0.0.1", "port": 0}}},
     "invalid input: registry.ws.port must be an integer between 1 and 65535, got 0"),
])
def test_bad_input_fails_cleanly(archive, change, expected):
    args = module_args(archive, peers=peer_list(archive, ["storescp"]))
    args.update(change)
    args = {k: v for k, v in args.items() if v is not None}
    document = run(args)
    assert document["failed"] is True and "results" not in document
    if expected == "Unsupported parameters":
        # ansible-playbook names the module; run directly, AnsibleModule names basic.py.
        assert document["msg"].startswith("Unsupported parameters for (")
        assert "module: peers.tls. Supported parameters include: ae_title, calling_ae_title, expect, host, " \
            "modality, name, port" in document["msg"]
    else:
        assert document["msg"] == expected


def test_orthanc_ssl_enabled_crashes_on_the_first_https_request(peers_workdir, tls_material):
    """Why the HTTPS tests use a proxy: Orthanc 1.10.1 (Debian 12, civetweb with OpenSSL 3) dies on the first
    HTTPS request; the module says what happened. When this fails, Orthanc serves HTTPS: test it directly."""
    if orthanc_binary() is None:
        pytest.skip("Orthanc binary not found")
    pem = Path(peers_workdir) / "orthanc-ssl.pem"
    pem.write_text(Path(tls_material["server_key"]).read_text() + Path(tls_material["server_cert"]).read_text())
    proc, orthanc = start_orthanc(peers_workdir, "orthanc-ssl", known_calling={},
                                  extra_config={"SslEnabled": True, "SslCertificate": str(pem)})
    try:
        url = "https://127.0.0.1:%d" % orthanc.extra["http_port"]
        document = run({"url": url, "ca_path": tls_material["ca_cert"], "registry": {}})
        assert document["msg"] == (
            "the Orthanc REST API at %s closed the connection without an HTTP answer (Orthanc 1.10 of Debian 12 "
            "crashes on every HTTPS request when SslEnabled is set, measured; put a TLS proxy in front of it)" % url)
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is not None, "Orthanc survived an HTTPS request: SslEnabled works now"
    finally:
        proc.stop()


@pytest.mark.ansible
def test_password_is_nowhere_in_playbook_output_even_with_vvv(archive, tmp_path):
    task = {"name": "echo from the archive", "dicom.network.orthanc_echo": module_args(
        archive, peers=peer_list(archive, ["storescp", "closed"]), fail_on="never",
        registry={"storescp": dict(archive["peers"]["storescp"])}),
        "delegate_to": "localhost", "register": "echo_result"}
    failing = {"name": "wrong password", "dicom.network.orthanc_echo": module_args(
        archive, password=PASSWORD + "-old", peers=peer_list(archive, ["storescp"])),
        "register": "wrong_result", "ignore_errors": True}
    document = run_playbook(tmp_path, [task, failing], ["-vvv", "--check"], capture=("echo_result", "wrong_result"))
    output = document["stdout_text"] + document["stderr"]
    assert document["rc"] == 0, output[-3000:]
    result = document["echo_result"]
    assert result["changed"] is False and [r["outcome"] for r in result["results"]] == ["success", "refused"]
    assert document["wrong_result"]["msg"].endswith("refused the credentials (HTTP 401 on GET /system): check username "
                                                    "and password")
    assert "orthanc_echo" in output and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
    assert PASSWORD not in output
    assert PASSWORD not in json.dumps(document["echo_result"]) + json.dumps(document["wrong_result"])
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "play.yml":
            assert PASSWORD not in path.read_text(errors="replace"), path
