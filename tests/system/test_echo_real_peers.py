"""dicom.network.echo's engine against real DICOM peers started on loopback.

Each case states the outcome, the phase and the detail a PACS engineer would expect, and the
wall time is checked against the configured timeout (a bound on hanging, not a speed claim).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from tests.peers.tls import CLIENT_KEY_PASSWORD
from tests.system.helpers import client_sockets, echo, echo_one, peer_entry, run_module, settle_threads, timed

pytestmark = pytest.mark.peers

# Generous: a loaded 2-core CI machine must not turn a bound into a flake.
MARGIN_S = 2.5


# --------------------------------------------------------------------------- pynetdicom
@pytest.fixture(params=["pynetdicom3", "pynetdicom2"])
def scp(request):
    """Both pynetdicom generations as peers: sites run both."""
    name = "pynetdicom_peers" if request.param == "pynetdicom3" else "pynetdicom2_peers"
    return request.getfixturevalue(name)


def test_accepting_scp_gives_success_with_peer_details(scp):
    result = echo_one(scp["accept"], count=3)
    assert (result["outcome"], result["phase"], result["ok"]) == ("success", "release", True)
    assert result["status"] == 0 and result["reject"] is None
    assert result["address"] == "127.0.0.1"
    assert result["peer"]["implementation_version_name"].startswith("PYNETDICOM")
    assert result["peer"]["max_pdu"] > 0
    assert result["transfer_syntax"] in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
    rtt = result["rtt_ms"]
    assert 0 < rtt["min"] <= rtt["avg"] <= rtt["max"]
    for phase in ("connect", "associate", "echo", "release", "total"):
        assert result["timings_ms"][phase] is not None
    assert result["started_at"].endswith("+00:00")


def test_wrong_called_ae_is_rejected_with_reason_7(scp):
    result = echo_one(scp["reject-called"], ae_title="NOT_THERE")
    assert (result["outcome"], result["phase"]) == ("rejected", "associate")
    assert result["reject"] == {"result": "permanent", "source": "service-user",
                                "reason": "called-ae-title-not-recognized"}
    assert "NOT_THERE" in result["message"]


def test_unknown_calling_ae_is_rejected_with_reason_3_and_known_one_accepted(scp):
    peer = scp["reject-calling"]
    stranger, known = echo([peer_entry(peer, name="stranger", calling_ae_title="STRANGER", expect="reject"),
                            peer_entry(peer, name="known", calling_ae_title="KNOWN_SCU")])
    assert stranger["outcome"] == "rejected" and stranger["ok"] is True
    assert stranger["reject"]["reason"] == "calling-ae-title-not-recognized"
    assert stranger["calling_ae_title"] == "STRANGER"
    assert known["outcome"] == "success" and known["calling_ae_title"] == "KNOWN_SCU"


def test_missing_verification_context_is_context_rejected(scp):
    result = echo_one(scp["no-verification"])
    assert (result["outcome"], result["phase"]) == ("context_rejected", "associate")
    assert "abstract-syntax-not-supported" in result["message"]
    assert result["peer"] is not None  # the A-ASSOCIATE-AC still told us who answered


@pytest.mark.parametrize("behaviour, status", [("status-failure", 0xC000), ("status-0122", 0x0122),
                                               ("status-warning", 0xB000)])
def test_non_success_status_fails_even_where_echoscu_exits_0(scp, behaviour, status):
    result = echo_one(scp[behaviour])
    assert (result["outcome"], result["phase"], result["status"]) == ("status_failure", "echo", status)
    assert "0x%04X" % status in result["message"]


def test_abort_on_echo_is_aborted_in_echo_phase(scp):
    result = echo_one(scp["abort-on-echo"])
    assert (result["outcome"], result["phase"]) == ("aborted", "echo")


def test_slow_echo_times_out_in_echo_phase_within_the_dimse_timeout(scp):
    result, wall = timed(echo_one, scp["slow"], dimse_timeout=1)
    assert (result["outcome"], result["phase"]) == ("timeout", "echo")
    assert "within 1 s" in result["message"]
    assert wall < 1 + MARGIN_S


def test_ipv6_loopback(pynetdicom_peers):
    if "accept-ipv6" not in pynetdicom_peers:
        pytest.skip("no IPv6 peer: no IPv6 loopback on this machine, or pynetdicom < 3 (IPv4-only servers)")
    result = echo_one(pynetdicom_peers["accept-ipv6"])
    assert result["outcome"] == "success" and result["address"] == "::1"


def test_debug_returns_the_negotiation_like_echoscu_d(pynetdicom_peers):
    result = echo_one(pynetdicom_peers["accept"], debug=True)
    text = "\n".join(result["debug"])
    for expected in ("A-ASSOCIATE-RQ", "A-ASSOCIATE-AC", "Verification SOP Class", "Their Implementation Version Name",
                     "Max PDU"):
        assert expected in text
    plain = echo_one(pynetdicom_peers["accept"])
    assert "debug" not in plain


# --------------------------------------------------------------------------- DCMTK and Orthanc
def test_dcmtk_storescp_accepts(dcmtk_peers):
    result = echo_one(dcmtk_peers["storescp"])
    assert result["outcome"] == "success"
    assert result["peer"]["implementation_version_name"].startswith("OFFIS_DCMTK")


def test_dcmtk_storescp_refuse_rejects_without_reason(dcmtk_peers):
    result = echo_one(dcmtk_peers["storescp-refuse"], expect="reject")
    assert result["outcome"] == "rejected" and result["ok"]
    assert result["reject"]["reason"] == "no-reason-given"


def test_dcmtk_dcmqrscp_allowlist(dcmtk_peers):
    peer = dcmtk_peers["dcmqrscp"]
    known, stranger = echo([peer_entry(peer, name="known", calling_ae_title="KNOWN_SCU"),
                            peer_entry(peer, name="stranger", calling_ae_title="STRANGER", expect="reject")])
    assert known["outcome"] == "success"
    # dcmqrscp answers an unknown caller with reason 7, never 3 (measured, see shared/real-peers.md).
    assert stranger["outcome"] == "rejected" and stranger["ok"]
    assert stranger["reject"]["reason"] == "called-ae-title-not-recognized"


def test_dcmtk_worklist_rejects_wrong_called_ae(dcmtk_peers):
    peer = dcmtk_peers["wlmscpfs"]
    right, wrong = echo([peer_entry(peer, name="right"), peer_entry(peer, name="wrong", ae_title="NOT_MWL")])
    assert right["outcome"] == "success"
    assert wrong["outcome"] == "rejected" and wrong["reject"]["reason"] == "called-ae-title-not-recognized"


def test_orthanc_checks_called_ae_calling_ae_and_source_address(orthanc_peer):
    peer = orthanc_peer
    (other_caller, other_ip), = peer.extra["other_host_calling"].items()
    results = echo([
        peer_entry(peer, name="known", calling_ae_title="KNOWN_SCU"),
        peer_entry(peer, name="wrong-called", ae_title="NOT_ORTHANC", calling_ae_title="KNOWN_SCU"),
        peer_entry(peer, name="stranger", calling_ae_title="STRANGER", expect="reject"),
        peer_entry(peer, name="right-ae-wrong-source", calling_ae_title=other_caller, expect="reject"),
    ])
    by_name = {r["name"]: r for r in results}
    assert by_name["known"]["outcome"] == "success"
    assert by_name["known"]["peer"]["implementation_version_name"]
    assert by_name["wrong-called"]["outcome"] == "rejected"
    assert by_name["wrong-called"]["reject"]["reason"] == "called-ae-title-not-recognized"
    assert by_name["stranger"]["ok"], by_name["stranger"]
    assert by_name["right-ae-wrong-source"]["ok"], by_name["right-ae-wrong-source"]
    # The same calling AE from the address Orthanc has on file is accepted: the source matters.
    (from_its_address,) = echo([peer_entry(peer, calling_ae_title=other_caller)], bind_address=other_ip)
    assert from_its_address["outcome"] == "success", from_its_address


# --------------------------------------------------------------------------- network and misbehaving peers
def test_a_name_with_several_addresses_is_tried_in_order(pynetdicom_peers, closed_port, tmp_path):
    """A name that resolves to ::1 first and 127.0.0.1 second, with the peer on IPv4 only (what Debian's
    ``::1 localhost`` or an A+AAAA PACS name with IPv6 unserved looks like). The name is given by a hosts
    file bind-mounted in a private mount namespace; the network and the peers are this machine's."""
    accept = pynetdicom_peers["accept"]
    hosts = tmp_path / "hosts"
    hosts.write_text("::1 dual.dicom-network.test\n127.0.0.1 dual.dicom-network.test\n")
    peers = [{"name": "open", "ae_title": accept.ae_title or "ANY_SCP", "host": "dual.dicom-network.test",
              "port": accept.port},
             # Reachable on its second address: a segmentation check must not pass on the first refusal.
             {"name": "open-but-blocked", "ae_title": accept.ae_title or "ANY_SCP",
              "host": "dual.dicom-network.test", "port": accept.port, "expect": "blocked"},
             {"name": "closed", "ae_title": "X", "host": "dual.dicom-network.test", "port": closed_port.port,
              "expect": "blocked"}]
    script = ("import json, sys; sys.path.insert(0, %r)\n"
              "from tests.system.helpers import echo\n"
              "print(json.dumps(echo(json.loads(sys.argv[1]))))\n" % os.getcwd())
    completed = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /etc/hosts && exec "$1" -c "$2" "$3"', str(hosts), sys.executable, script,
         json.dumps(peers)],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    if completed.returncode != 0 and ("Operation not permitted" in completed.stderr or "unshare" in completed.stderr):
        pytest.skip("no private mount namespace here: %s" % completed.stderr.strip()[-200:])
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = {r["name"]: r for r in json.loads(completed.stdout.strip().splitlines()[-1])}
    opened = results["open"]
    assert (opened["outcome"], opened["address"], opened["ok"]) == ("success", "127.0.0.1", True), opened
    assert opened["message"].endswith("; tried before: ::1 (refused)"), opened["message"]
    assert (results["open-but-blocked"]["outcome"], results["open-but-blocked"]["ok"]) == ("success", False)
    closed = results["closed"]
    assert (closed["outcome"], closed["ok"], closed["address"]) == ("refused", True, "127.0.0.1"), closed
    assert closed["message"].endswith("; tried before: ::1 (refused)"), closed["message"]


def test_closed_port_is_refused_and_satisfies_blocked(closed_port):
    result = echo_one(closed_port, expect="blocked")
    assert (result["outcome"], result["phase"], result["ok"]) == ("refused", "connect", True)
    reject_expected = echo_one(closed_port, expect="reject")
    assert reject_expected["ok"] is False  # a network failure proves nothing about AE configuration


def test_an_ipv4_peer_from_an_ipv6_bind_address_says_why_it_was_not_looked_up(closed_port):
    (result,) = echo([peer_entry(closed_port, expect="blocked")], bind_address="::1")
    assert (result["outcome"], result["phase"]) == ("dns_error", "resolve"), result
    assert "only IPv6 addresses were looked up: bind_address ::1 is IPv6" in result["message"]


@pytest.mark.skipif(os.environ.get("DICOM_NETWORK_STOCK_PYNETDICOM") == "1",
                    reason="asserts a speed trick (the prompt abort), which DICOM_NETWORK_STOCK_PYNETDICOM=1 turns off")
def test_a_failed_connection_frees_its_worker_without_pynetdicoms_settle_sleep(closed_port, monkeypatch):
    """pynetdicom aborts every association whose connection fails and then sleeps 0.1 s; the
    engine's abort waits for the DUL to stop instead, so a refused peer does not hold a worker."""
    import pynetdicom.association

    sleeps = []
    real_time = pynetdicom.association.time

    class _RecordingTime:
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def sleep(seconds):
            sleeps.append(seconds)
            real_time.sleep(seconds)

    monkeypatch.setattr(pynetdicom.association, "time", _RecordingTime())
    results = echo([peer_entry(closed_port, name="closed-%d" % n) for n in range(3)], parallel=1)
    assert [r["outcome"] for r in results] == ["refused"] * 3
    assert 0.1 not in sleeps, sleeps


@pytest.mark.parametrize(
    "behaviour, outcome, phase",
    [
        ("silent", "timeout", "associate"),
        ("close", "aborted", "associate"),
        ("reset", "aborted", "associate"),
        ("garbage", "protocol_error", "associate"),
        ("http", "protocol_error", "associate"),
        ("abort", "aborted", "associate"),
        ("drip", "timeout", "associate"),
        ("huge-length", "protocol_error", "associate"),
    ],
)
def test_misbehaving_peer(hostile_peers, behaviour, outcome, phase):
    if behaviour not in hostile_peers:
        pytest.skip("hostile behaviour %s not provided" % behaviour)
    result, wall = timed(echo_one, hostile_peers[behaviour], acse_timeout=2, connect_timeout=2)
    assert (result["outcome"], result["phase"]) == (outcome, phase), result["message"]
    assert wall < 2 + MARGIN_S


def test_raw_reject_codes_pynetdicom_cannot_send(hostile_factory):
    peer = hostile_factory("reject-raw", result=2, source=3, reason=2)
    result = echo_one(peer)
    assert result["outcome"] == "rejected"
    assert result["reject"] == {"result": "transient", "source": "service-provider-presentation",
                                "reason": "local-limit-exceeded"}


def test_a_peer_at_its_association_limit_does_not_meet_reject(tmp_path):
    """A real pynetdicom SCP whose one allowed association is held by DCMTK's echoscu turns every other
    caller away (rejected-transient, service-provider, local-limit-exceeded): that is the peer being busy,
    not a refusal of this caller, so ``expect: reject`` must not count it as proof."""
    with _busy_peer(tmp_path, 20, ["-to", "30", "-td", "30"]) as (peer, holder):
        time.sleep(0.5)  # echoscu's association reaches the slow C-ECHO handler
        rejected, accepted = echo([peer_entry(peer, expect="reject", name="must_refuse"),
                                   peer_entry(peer, name="must_accept")], parallel=1)
        for result in (rejected, accepted):
            assert result["outcome"] == "rejected", result["message"]
            assert result["reject"] == {"result": "transient", "source": "service-provider-presentation",
                                        "reason": "local-limit-exceeded"}
            assert result["ok"] is False
            assert "the peer is busy (its association limit or load), which is no decision about this caller" \
                in result["message"]
        assert holder.poll() is None


@contextlib.contextmanager
def _busy_peer(tmp_path, delay, echoscu_options=()):
    """A real pynetdicom SCP whose one association DCMTK's echoscu holds for ``delay`` s (its slow C-ECHO)."""
    from tests.peers.pynetdicom_peers import start_pynetdicom_peers
    echoscu = "/usr/bin/echoscu"
    if not os.access(echoscu, os.X_OK):
        pytest.skip("DCMTK echoscu is not installed")
    proc, peers = start_pynetdicom_peers(tmp_path / "busy", {
        "busy": ({"behaviour": "slow", "delay": delay, "ae_title": "BUSY_SCP", "max_associations": 1}, "")},
        prefix="busy")
    peer = peers["busy"]
    holder = subprocess.Popen([echoscu, *echoscu_options, "-aec", "BUSY_SCP", peer.host, str(peer.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while peer.counter() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert peer.counter() == 1
        yield peer, holder
    finally:
        holder.kill()
        holder.wait(10)
        proc.stop()


def test_dns_failure_inside_a_namespace_without_resolver(netns):
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from tests.system.helpers import echo\n"
        "r = echo([{'ae_title': 'PACS', 'host': 'pacs.dicom-network-test.invalid', 'port': 104}])[0]\n"
        "print(r['outcome'], r['phase'])\n" % os.getcwd()
    )
    completed = netns.run([sys.executable, "-c", script], timeout=60,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert completed.stdout.split() == ["dns_error", "resolve"], completed.stderr[-2000:]


# --------------------------------------------------------------------------- TLS
def _tls(material, **extra):
    settings = {"enabled": True, "ca_file": material["ca_cert"]}
    settings.update(extra)
    return settings


def test_a_tls_peer_silent_after_the_handshake_times_out_at_the_acse_timeout(tls_material):
    """A peer that completes the TLS handshake and then never answers the A-ASSOCIATE-RQ: the timeout
    used to shut down the plain socket that wrap_socket() had detached, so the reader was never woken
    and the echo hung until the peer closed (a reviewer's run: 280 s and counting)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_material["server_cert"], tls_material["server_key"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    release = threading.Event()
    held = []

    def serve():
        try:
            connection, _address = listener.accept()
            held.append(context.wrap_socket(connection, server_side=True))
        except OSError:
            return
        release.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        entry = {"ae_title": "SILENT_TLS", "host": "127.0.0.1", "port": listener.getsockname()[1],
                 "tls": _tls(tls_material)}
        (result,), wall = timed(echo, [entry], connect_timeout=2, acse_timeout=2)
        assert held, "the handshake completed"
        assert (result["outcome"], result["phase"]) == ("timeout", "associate"), result["message"]
        assert "within 2 s" in result["message"], result["message"]
        assert wall < 2 + MARGIN_S
    finally:
        release.set()
        thread.join(10)
        for tls_socket in held:
            tls_socket.close()
        listener.close()


def test_a_tls12_peer_that_wants_a_client_certificate_says_so_in_the_handshake(tls_material):
    """TLS 1.2 servers refuse a missing client certificate during the handshake (TLS 1.3 ones after it):
    the message hints at the client certificate instead of only quoting OpenSSL's alert."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls_material["server_cert"], tls_material["server_key"])
    context.load_verify_locations(cafile=tls_material["ca_cert"])
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve():
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        try:
            context.wrap_socket(connection, server_side=True).close()
        except (OSError, ssl.SSLError):
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        entry = {"ae_title": "TLS12_SCP", "host": "127.0.0.1", "port": listener.getsockname()[1],
                 "expect": "reject", "tls": _tls(tls_material)}
        (result,) = echo([entry], connect_timeout=3, acse_timeout=3)
        assert (result["outcome"], result["phase"], result["ok"]) == ("tls_error", "tls", False), result["message"]
        assert "most often the peer wants a client certificate: set tls.cert_file and tls.key_file" \
            in result["message"], result["message"]
    finally:
        thread.join(10)
        listener.close()


def test_tls_verified_against_the_test_ca(tls_peers, tls_material):
    result = echo_one(tls_peers["tls"], tls=_tls(tls_material))
    assert result["outcome"] == "success" and result["tls"] is True


def test_tls_with_ip_literal_checks_the_ip_san(tls_peers, tls_material):
    peer = tls_peers["tls"]
    result = echo_one(peer, tls=_tls(tls_material, server_hostname="localhost"))
    assert result["outcome"] == "success"


@pytest.mark.parametrize("peer_key, fragment", [
    ("tls-untrusted", "certificate verify failed"),
    ("tls-expired", "certificate has expired"),
    ("tls-wronghost", "mismatch"),
])
def test_tls_verification_failures(tls_peers, tls_material, peer_key, fragment):
    result = echo_one(tls_peers[peer_key], tls=_tls(tls_material))
    assert (result["outcome"], result["phase"]) == ("tls_error", "tls"), result["message"]
    assert fragment in result["message"].lower() or fragment in result["message"], result["message"]


def test_an_unusable_tls_file_fails_only_the_peers_that_use_it(tls_peers, tls_material, hostile_factory, tmp_path):
    # The broken peers point at a listener that counts connections: none may be made.
    silent = hostile_factory("silent", hold_max=5.0)
    not_pem = __file__
    broken = [
        ({"ca_file": str(tmp_path / "missing.pem")}, "peers[1] (missing).tls.ca_file: file %s does not exist"
         % (tmp_path / "missing.pem")),
        ({"ca_file": str(tmp_path)}, "peers[2] (directory).tls.ca_file: %s is a directory, not a file" % tmp_path),
        ({"ca_file": not_pem}, "peers[3] (not-pem).tls.ca_file: %s holds no usable PEM CA certificate" % not_pem),
        ({"ca_file": tls_material["ca_cert"], "cert_file": not_pem, "key_file": not_pem},
         "peers[4] (bad-cert).tls.cert_file: %s holds no PEM certificate" % not_pem),
    ]
    names = ["missing", "directory", "not-pem", "bad-cert"]
    before = silent.connection_count()
    results = echo([peer_entry(tls_peers["tls"], name="good", tls=_tls(tls_material))]
                   + [peer_entry(silent, name=name, tls=dict(settings, enabled=True))
                      for name, (settings, _message) in zip(names, broken)],
                   connect_timeout=2, acse_timeout=2, dimse_timeout=2)
    time.sleep(0.05)  # the listener counts on its own thread
    assert silent.connection_count() == before, "a connection was made with unusable TLS settings"
    assert results[0]["outcome"] == "success", results[0]["message"]
    for result, (_settings, fragment) in zip(results[1:], broken):
        assert (result["outcome"], result["phase"], result["ok"], result["tls"]) == ("tls_error", "tls", False, True)
        assert "no connection made to %s:%s: " % (silent.host, silent.port) in result["message"]
        assert fragment in result["message"], result["message"]
        assert result["address"] is None and result["timings_ms"]["connect"] is None


def test_tls_system_trust_store_rejects_a_private_ca(tls_peers):
    result = echo_one(tls_peers["tls"], tls={"enabled": True})
    assert result["outcome"] == "tls_error"


def test_tls_verify_false_is_possible_but_explicit(tls_peers, tls_material):
    result = echo_one(tls_peers["tls-untrusted"], tls={"enabled": True, "verify": False})
    assert result["outcome"] == "success"
    assert result["message"].endswith("; TLS certificate not verified (tls.verify false)"), result["message"]


def test_tls_client_certificate_with_encrypted_key(tls_peers, tls_material):
    peer = tls_peers["tls-mutual"]
    # Under TLS 1.3 the server refuses a missing or untrusted client certificate after the handshake,
    # with an alert on the first read: that is a TLS failure, never a refusal of the calling AE.
    without = echo_one(peer, tls=_tls(tls_material), expect="reject")
    assert (without["outcome"], without["ok"]) == ("tls_error", False), without["message"]
    assert "alert" in without["message"] and "wants a client certificate" in without["message"], without["message"]
    untrusted = echo_one(peer, tls=_tls(tls_material, cert_file=tls_material["untrusted_client_cert"],
                                        key_file=tls_material["untrusted_client_key"]), expect="reject")
    assert (untrusted["outcome"], untrusted["ok"]) == ("tls_error", False), untrusted["message"]
    assert "does not accept our client certificate" in untrusted["message"], untrusted["message"]
    with_cert = echo_one(peer, tls=_tls(tls_material, cert_file=tls_material["client_cert"],
                                        key_file=tls_material["client_key_encrypted"],
                                        key_password=CLIENT_KEY_PASSWORD))
    assert with_cert["outcome"] == "success", with_cert["message"]


@pytest.mark.parametrize("settings, expected", [
    ({"key_file": "client_key_encrypted"},
     ".tls.key_password: not set, but the private key in key_file %(client_key_encrypted)s is encrypted"),
    ({"key_file": "client_key_encrypted", "key_password": "not-the-password"},
     ".tls.key_password: does not decrypt the private key in key_file %(client_key_encrypted)s"),
    ({}, ".tls.key_file: not set, and cert_file %(client_cert)s holds no private key: set key_file"),
    ({"key_file": "ca_cert"}, ".tls.key_file: %(ca_cert)s holds no PEM private key"),
    ({"key_file": "untrusted_client_key"},
     ".tls.key_file: the private key in %(untrusted_client_key)s is not the key of cert_file %(client_cert)s"),
])
def test_an_unusable_client_key_is_named_with_its_setting(tls_peers, tls_material, settings, expected):
    """OpenSSL says only "PEM lib" or "Invalid argument" for these; the message names the setting and file."""
    tls = _tls(tls_material, cert_file=tls_material["client_cert"],
               **{key: tls_material.get(value, value) for key, value in settings.items()})
    result = echo_one(tls_peers["tls-mutual"], tls=tls, expect="reject")
    assert (result["outcome"], result["phase"], result["ok"]) == ("tls_error", "tls", False), result["message"]
    assert expected % tls_material in result["message"], result["message"]


@pytest.mark.parametrize("key", [{"key_file": "client_key"},
                                 {"key_file": "client_key_encrypted", "key_password": CLIENT_KEY_PASSWORD}])
def test_a_der_client_certificate_is_named_as_the_problem(tls_peers, tls_material, tmp_path, key):
    """A DER certificate with its own key (and the right password) used to be blamed on the key or its password."""
    der = tmp_path / "client.der"
    der.write_bytes(ssl.PEM_cert_to_DER_cert(open(tls_material["client_cert"]).read()))
    tls = _tls(tls_material, cert_file=str(der), **{name: tls_material.get(value, value) for name, value in key.items()})
    result = echo_one(tls_peers["tls-mutual"], tls=tls, expect="reject")
    assert (result["outcome"], result["phase"]) == ("tls_error", "tls"), result["message"]
    assert ".tls.cert_file: %s holds no PEM certificate: it looks like DER, convert it with openssl x509 -inform DER" \
        % der in result["message"], result["message"]


def test_tls_to_dcmtk(tls_peers, tls_material):
    if "dcmtk-tls" not in tls_peers:
        pytest.skip("storescp with TLS not available")
    assert echo_one(tls_peers["dcmtk-tls"], tls=_tls(tls_material))["outcome"] == "success"


def test_plain_echo_to_a_tls_port_is_not_success_and_hints_at_tls(tls_peers):
    result = echo_one(tls_peers["tls"], acse_timeout=2)
    assert result["outcome"] in ("protocol_error", "aborted", "timeout")
    if result["outcome"] != "timeout":
        assert "DICOM over TLS" in result["message"], result["message"]


# --------------------------------------------------------------------------- many peers at once
def test_many_peers_in_one_call_keep_order_stay_bounded_and_leak_nothing(
        pynetdicom_peers, hostile_peers, closed_port):
    server_ports = {hostile_peers["silent"].port}
    threads_before, sockets_before = threading.active_count(), client_sockets(server_ports)
    peers = []
    for i in range(40):
        peers.append(peer_entry(pynetdicom_peers["accept"], name="accept-%02d" % i))
        if i % 8 == 0:
            peers.append(peer_entry(hostile_peers["silent"], name="silent-%02d" % i))
            peers.append(peer_entry(closed_port, name="closed-%02d" % i, expect="blocked"))
    results, wall = timed(echo, peers, acse_timeout=4, parallel=32)
    assert [r["name"] for r in results] == [p["name"] for p in peers]
    outcomes = {r["name"].split("-")[0]: set() for r in results}
    for r in results:
        outcomes[r["name"].split("-")[0]].add(r["outcome"])
    assert outcomes == {"accept": {"success"}, "silent": {"timeout"}, "closed": {"refused"}}, \
        [(r["name"], r["outcome"], r["phase"], r["message"]) for r in results if r["outcome"] == "timeout"][:8]
    # Five silent peers cost about one acse_timeout together, not five.
    assert wall < 2 * 4 + MARGIN_S
    assert settle_threads(threads_before) <= threads_before
    assert client_sockets(server_ports) <= sockets_before


def _days_until(pem_path: str) -> int:
    """Whole days until the certificate's notAfter, as openssl reads it (not the module's code)."""
    done = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", pem_path], capture_output=True,
                          text=True, check=True, timeout=30)
    not_after = ssl.cert_time_to_seconds(done.stdout.strip().split("=", 1)[1])
    return int((not_after - time.time()) // 86400)


def _openssl_x509(pem_path: str, *options: str) -> str:
    done = subprocess.run(["openssl", "x509", "-noout", "-nameopt", "RFC2253", *options, "-in", pem_path],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip().split("=", 1)[1]


@pytest.mark.parametrize("peer_key, cert_key, verify, outcome", [
    ("tls", "server_cert", True, "success"),
    ("tls", "server_cert", False, "success"),
    ("tls-expired", "expired_cert", True, "tls_error"),
    ("tls-untrusted", "untrusted_cert", True, "tls_error"),
])
def test_the_peer_certificate_is_described_verified_or_not(tls_peers, tls_material, peer_key, cert_key, verify,
                                                           outcome):
    """Subject, issuer, expiry and fingerprint of the leaf certificate, compared with what openssl reads from
    the file the peer serves; a certificate that failed verification is read by one more, unverified
    handshake (with cryptography, which this venv has, for its dates)."""
    result = echo_one(tls_peers[peer_key], tls=_tls(tls_material, verify=verify))
    assert result["outcome"] == outcome, result["message"]
    facts = result["tls_certificate"]
    assert facts["sha256"] == _openssl_x509(tls_material[cert_key], "-fingerprint", "-sha256")
    assert facts["verified"] is (verify and outcome == "success")
    assert facts["days_left"] in (_days_until(tls_material[cert_key]), _days_until(tls_material[cert_key]) + 1)
    assert facts["subject"] == _openssl_x509(tls_material[cert_key], "-subject")
    assert facts["issuer"] == _openssl_x509(tls_material[cert_key], "-issuer")
    assert "CN=localhost" in facts["subject"]
    assert facts["not_after"].endswith("Z") and "note" not in facts
    if peer_key == "tls-expired":
        assert facts["days_left"] < -365 and facts["not_after"] == "2020-12-31T23:59:59Z"


def test_a_plain_peer_has_no_certificate(pynetdicom_peers):
    assert echo_one(pynetdicom_peers["accept"])["tls_certificate"] is None


def test_a_busy_peer_is_echoed_again_and_the_result_says_ok_after_retry(tmp_path):
    """The module with ``retries: 1``: a real pynetdicom SCP whose one association is held by DCMTK's echoscu
    for 2 s rejects us (local-limit-exceeded); 2.5 s later it is free and the retry succeeds. The peer that
    must be blocked (a closed port) is as expected at once and never retried."""
    from tests.peers.base import closed_port
    with _busy_peer(tmp_path, 2) as (peer, _holder):
        started = time.monotonic()
        done = run_module({"peers": [peer_entry(peer, name="busy"),
                                     {"name": "firewalled", "ae_title": "X", "host": "127.0.0.1", "port": closed_port(),
                                      "expect": "blocked"}],
                           "retries": 1, "retry_delay": 2.5, "dimse_timeout": 5})
        wall = time.monotonic() - started
        assert done.returncode == 0 and done.stderr == "", done.stdout + done.stderr
        busy, firewalled = json.loads(done.stdout)["results"]
        assert (busy["outcome"], busy["ok"], busy["attempts"]) == ("success", True, 2), busy["message"]
        (first,) = busy["earlier_attempts"]
        assert (first["outcome"], first["phase"]) == ("rejected", "associate")
        assert "local-limit-exceeded" in first["message"]
        assert busy["message"].endswith("; ok after retry (attempt 2; first: rejected during associate)")
        assert (firewalled["outcome"], firewalled["attempts"], firewalled["earlier_attempts"]) == ("refused", 1, [])
        assert 2.5 + 2 <= wall < 2.5 + 2 + 5, wall  # one delay, one slow echo: no second round for the firewall
