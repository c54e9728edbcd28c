"""Hardening: malformed input never reaches the network and always says what is wrong.

Every case targets a hostile 'silent' listener (it accepts and never answers), so a case that
slipped through validation would show up as a connection there. Each one must fail with an
error that names the field and, for peers, the entry (index and name), before any traffic
and without a traceback. The whole table runs through validation plus the engine, in this
process (the module's own path after Ansible's argument spec); a subset runs through
ansible-playbook, where Ansible's argument spec checks types and choices first.
"""
from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.dicom.network.plugins.module_utils.echo_engine import run_echoes
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError, validate_request
from tests.system.helpers import idle_engine_threads, run_playbook

pytestmark = pytest.mark.peers

HOST, PORT = object(), object()  # placeholders for the listener's address
NOT_PEM = __file__  # a readable file that is no PEM
BAD = "peers[1] (bad)"


def case(case_id, fragments, bad=None, params=None, raw=None, marks=()):
    """``bad``: fields of peers[1] (None removes a key); ``params``: module options; ``raw``:
    the whole parameter set instead of the good+bad peers list."""
    return pytest.param({"bad": bad, "params": params or {}, "raw": raw}, fragments, id=case_id, marks=marks)


CASES = [
    # ---- AE titles (PS3.5 VR AE: 1-16 ASCII chars, no backslash, no control chars, not all spaces)
    case("ae-too-long", [BAD + ".ae_title", "at most 16"], bad={"ae_title": "WAY_TOO_LONG_AE_TITLE"}),
    case("ae-empty", [BAD + ".ae_title", "must not be empty"], bad={"ae_title": ""}),
    case("ae-only-spaces", ["peers[1]", ".ae_title", "only of spaces"], bad={"ae_title": "    "}),
    case("ae-backslash", [BAD + ".ae_title", "backslash"], bad={"ae_title": "PACS\\1"}),
    case("ae-control-char", [BAD + ".ae_title", "control characters"], bad={"ae_title": "PACS\n1"}),
    case("ae-non-ascii", [BAD + ".ae_title", "ASCII"], bad={"ae_title": "RÖNTGEN"}),
    case("ae-not-a-string", [BAD + ".ae_title", "must be a string"], bad={"ae_title": 104}),
    case("ae-missing", [BAD + ".ae_title is required"], bad={"ae_title": None}),
    case("calling-ae-per-peer-too-long", [BAD + ".calling_ae_title", "at most 16"],
         bad={"calling_ae_title": "A_CALLING_AE_THAT_IS_LONG"}),
    case("calling-ae-module-backslash", ["calling_ae_title", "backslash"], params={"calling_ae_title": "CT\\1"}),
    # ---- host and port
    case("host-missing", [BAD + ".host is required"], bad={"host": None}),
    case("host-empty", [BAD + ".host", "non-empty"], bad={"host": "  "}),
    case("host-with-space", [BAD + ".host", "spaces"], bad={"host": "pacs archive.example.org"}),
    case("host-with-newline", [BAD + ".host", "control"], bad={"host": "pacs\n.example.org"}),
    case("host-not-a-string", [BAD + ".host", "non-empty host"], bad={"host": 127001}),
    # glibc reads a zero-padded part as octal and fills short forms: another machine would be echoed.
    case("host-zero-padded-ipv4", [BAD + ".host", "ambiguous", "read this one as 127.0.0.8"],
         bad={"host": "127.000.000.010"}),
    case("host-short-ipv4", [BAD + ".host", "ambiguous", "127.0.0.1"], bad={"host": "127.1"}),
    case("host-integer-ipv4", [BAD + ".host", "ambiguous", "127.0.0.1"], bad={"host": "2130706433"}),
    case("host-digits-not-ipv4", [BAD + ".host", "not a valid IPv4 address"], bad={"host": "127.0.0.256"}),
    case("bind-address-zero-padded", ["bind_address", "ambiguous"], params={"bind_address": "127.0.0.01"}),
    case("port-zero", [BAD + ".port", "between 1 and 65535"], bad={"port": 0}),
    case("port-too-big", [BAD + ".port", "between 1 and 65535"], bad={"port": 65536}),
    case("port-negative", [BAD + ".port", "between 1 and 65535"], bad={"port": -104}),
    case("port-letters", [BAD + ".port", "integer port number"], bad={"port": "1O4"}),
    case("port-bool", [BAD + ".port", "integer port number"], bad={"port": True}),
    case("port-float", [BAD + ".port", "integer port number"], bad={"port": 104.5}),
    # ---- entry structure
    case("unknown-key", [BAD, "unknown key(s) colour"], bad={"colour": "red"}),
    case("expect-invalid", [BAD + ".expect", "accept, reject, blocked"], bad={"expect": "maybe"}),
    case("duplicate-name", ["peers[1] (good).name", "also used by peers[0]"], bad={"name": "good"}),
    case("duplicate-default-name", ["peers[1] (SAME_AE).name", "also used by peers[0]"],
         raw={"peers": [{"ae_title": "SAME_AE", "host": HOST, "port": PORT},
                        {"ae_title": "SAME_AE", "host": HOST, "port": PORT}]}),
    case("entry-not-a-dict", ["peers[1] must be a dictionary"],
         raw={"peers": [{"name": "good", "ae_title": "GOOD", "host": HOST, "port": PORT}, "PACS@pacs:104"]}),
    case("peers-not-a-list", ["peers must be a list"], raw={"peers": "PACS@pacs:104"}),
    case("peers-empty", ["peers must not be empty"], raw={"peers": []}),
    case("peers-and-shorthand", ["peers is mutually exclusive with", "host"], params={"host": HOST}),
    # A port next to peers would otherwise be ignored: each peer has its own.
    case("peers-and-port", ["peers is mutually exclusive with port"], params={"port": PORT}),
    case("shorthand-without-called-ae", ["host and called_ae_title"], raw={"host": HOST, "port": PORT}),
    case("shorthand-called-ae-too-long", ["called_ae_title", "at most 16"],
         raw={"host": HOST, "port": PORT, "called_ae_title": "WAY_TOO_LONG_AE_TITLE"}),
    case("shorthand-port-zero", ["port", "between 1 and 65535"],
         raw={"host": HOST, "port": 0, "called_ae_title": "PACS"}),
    # ---- module options
    case("connect-timeout-zero", ["connect_timeout", "positive"], params={"connect_timeout": 0}),
    case("acse-timeout-negative", ["acse_timeout", "positive"], params={"acse_timeout": -1}),
    case("dimse-timeout-text", ["dimse_timeout", "number of seconds"], params={"dimse_timeout": "ten"}),
    case("connect-timeout-nan", ["connect_timeout", "positive"], params={"connect_timeout": float("nan")}),
    case("dimse-timeout-inf", ["dimse_timeout", "positive"], params={"dimse_timeout": float("inf")}),
    case("acse-timeout-bool", ["acse_timeout", "number of seconds"], params={"acse_timeout": True}),
    case("connect-timeout-huge", ["connect_timeout"], params={"connect_timeout": 1e10}),
    case("dimse-timeout-huge", ["dimse_timeout"], params={"dimse_timeout": 1e10}),
    case("count-zero", ["count", "between 1 and 1000"], params={"count": 0}),
    case("count-too-big", ["count", "between 1 and 1000"], params={"count": 1001}),
    case("count-bool", ["count", "must be an integer"], params={"count": True}),
    case("parallel-zero", ["parallel", "between 1 and 256"], params={"parallel": 0}),
    case("parallel-too-big", ["parallel", "between 1 and 256"], params={"parallel": 257}),
    case("max-pdu-negative", ["max_pdu", "between 0 and"], params={"max_pdu": -1}),
    case("max-pdu-too-big", ["max_pdu", "between 0 and"], params={"max_pdu": 2 ** 32}),
    case("max-pdu-tiny", ["max_pdu", "at least 4096"], params={"max_pdu": 1}),
    case("max-pdu-just-below-minimum", ["max_pdu", "at least 4096, got 4095"], params={"max_pdu": 4095}),
    case("fail-on-invalid", ["fail_on", "'unexpected' or 'never'"], params={"fail_on": "sometimes"}),
    case("debug-not-bool", ["debug", "boolean"], params={"debug": "maybe"}),
    case("bind-address-with-space", ["bind_address", "spaces"], params={"bind_address": "127.0.0.1 local"}),
    # A typo in the source address is this host's mistake: one error, no peer tried or blamed.
    # (192.0.2.1 is only bound to, which fails; nothing is sent anywhere.)
    case("bind-address-not-local", ["bind_address '192.0.2.1' is not an address of this host (",
                                    "leave it unset (in an audit: dicom_bind_address)"],
         params={"bind_address": "192.0.2.1"}),
    case("bind-address-unresolvable", ["bind_address 'nosuch.invalid'", "does not resolve"],
         params={"bind_address": "nosuch.invalid"}),
    # ---- TLS settings (an unusable file on the host is a per-peer tls_error: test_echo_real_peers.py)
    case("tls-not-a-dict", ["tls must be a dictionary"], params={"tls": "yes"}),
    case("tls-unknown-key", ["tls has unknown key(s) ca_path"], params={"tls": {"enabled": True, "ca_path": "/x"}}),
    case("tls-enabled-not-bool", [BAD + ".tls.enabled", "boolean"], bad={"tls": {"enabled": "maybe"}}),
    case("tls-options-without-enabled", [BAD + ".tls sets ca_file but TLS is off", "add enabled: true"],
         bad={"tls": {"ca_file": NOT_PEM}}),
    case("tls-key-without-cert", [BAD + ".tls.key_file is set but", "cert_file is not"],
         bad={"tls": {"enabled": True, "key_file": NOT_PEM}}),
    case("tls-server-hostname-space", [BAD + ".tls.server_hostname", "spaces"],
         bad={"tls": {"enabled": True, "server_hostname": "pacs archive"}}),
]


def _resolve(value, target):
    if value is HOST:
        return target.host
    if value is PORT:
        return target.port
    if isinstance(value, dict):
        return {k: _resolve(v, target) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, target) for v in value]
    return value


def build(spec, target):
    """Module parameters for one case: short timeouts, so a case that slipped through cannot
    stall the suite (it would still be caught by the connection count)."""
    params = {"connect_timeout": 1, "acse_timeout": 1, "dimse_timeout": 1}
    if spec["raw"] is not None:
        params.update(spec["raw"])
    else:
        bad = {"name": "bad", "ae_title": "BAD_SCP", "host": HOST, "port": PORT}
        for key, value in (spec["bad"] or {}).items():
            if value is None:
                bad.pop(key, None)
            else:
                bad[key] = value
        params["peers"] = [{"name": "good", "ae_title": "GOOD_SCP", "host": HOST, "port": PORT}, bad]
    params.update(spec["params"])
    return _resolve(params, target)


@pytest.fixture(scope="module")
def listener(hostile_factory):
    return hostile_factory("silent", hold_max=10.0)


def _connections_after(listener) -> int:
    time.sleep(0.05)  # the listener counts on its own thread
    return listener.connection_count()


def test_the_table_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("spec, fragments", CASES)
def test_bad_input_is_refused_before_any_traffic(listener, spec, fragments):
    idle_engine_threads()
    before, threads_before = listener.connection_count(), set(threading.enumerate())
    with pytest.raises(EchoInputError) as raised:
        run_echoes(validate_request(build(spec, listener)))
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in message
    assert _connections_after(listener) == before, "a connection was made for invalid input"
    started = [t.name for t in set(threading.enumerate()) - threads_before if not t.name.startswith("hostile-")]
    assert not started, "the engine started work for invalid input: %s" % started


# --------------------------------------------------------------------------- through ansible-playbook
# (case id from CASES, fragments Ansible's run must show, marks)
PLAYBOOK_CASES = [
    ("ae-too-long", [BAD + ".ae_title", "at most 16"], ()),
    ("duplicate-name", ["peers[1] (good).name", "also used by peers[0]"], ()),
    ("tls-key-without-cert", [BAD + ".tls.key_file is set but", "cert_file is not"], ()),
    ("count-zero", ["count", "between 1 and 1000"], ()),
    ("calling-ae-module-backslash", ["calling_ae_title", "backslash"], ()),
    ("peers-and-shorthand", ["mutually exclusive", "peers", "host"], ()),
    ("peers-and-port", ["mutually exclusive", "peers", "port"], ()),
    ("port-letters", ["port", "peers[1]"], ()),
    ("expect-invalid", ["expect", "peers[1]"], ()),
    ("host-missing", ["host", "peers[1]"], ()),
    # Ansible itself rejects unknown sub-keys before the module runs; its message names the key
    # ("peers.colour") but not the index. Keeping the sub-spec is what keeps key_password no_log.
    ("unknown-key", ["Unsupported parameters", "peers.colour"], ()),
    ("connect-timeout-huge", ["connect_timeout"], ()),
]
_BY_ID = {p.id: p.values[0] for p in CASES}


@pytest.fixture(scope="module")
def playbook_run(listener, tmp_path_factory):
    """All playbook cases in one ansible-playbook run (one task each, errors ignored)."""
    tasks = []
    for index, (case_id, _fragments, _marks) in enumerate(PLAYBOOK_CASES):
        tasks.append({"name": case_id, "dicom.network.echo": build(_BY_ID[case_id], listener),
                      "register": "bad_%d" % index, "ignore_errors": True})
    before = listener.connection_count()
    document = run_playbook(tmp_path_factory.mktemp("bad-input"), tasks,
                            capture=["bad_%d" % i for i in range(len(PLAYBOOK_CASES))])
    document["connections"] = _connections_after(listener) - before
    return document


@pytest.mark.ansible
def test_playbook_run_made_no_connection_and_printed_no_traceback(playbook_run):
    assert playbook_run["connections"] == 0
    everything = playbook_run["stdout_text"] + playbook_run["stderr"]
    assert "Traceback" not in everything, everything[-3000:]


@pytest.mark.ansible
@pytest.mark.parametrize("index, case_id, fragments", [
    pytest.param(i, case_id, fragments, id=case_id, marks=marks)
    for i, (case_id, fragments, marks) in enumerate(PLAYBOOK_CASES)])
def test_bad_input_through_ansible_playbook(playbook_run, index, case_id, fragments):
    result = playbook_run["bad_%d" % index]
    assert result["failed"] is True
    message = result["msg"]
    assert "Traceback" not in message and "module_stderr" not in result, result
    assert "results" not in result, "the module echoed peers despite invalid input"
    for fragment in fragments:
        assert fragment in message, message
