"""dicom.network.listen against real callers: DCMTK echoscu and storescu, Orthanc's REST echo, the echo
module from two source addresses, pynetdicom, and the callers that are no callers (a port check, a silent
client, bytes that are not DICOM). Every test checks that no listener and no bound port is left behind."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from tests.peers import orthanc as orthanc_mod
from tests.peers.base import LOOPBACK, free_port, is_listening, peer_env, wait_listening
from tests.system.helpers import module_process, run_module, run_playbook

pytestmark = [pytest.mark.peers]

LISTEN_AE = "NEWCT"


def listener_processes() -> List[str]:
    """Command lines of every dicom.network.listen process on this machine (run directly, or by Ansible)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "modules/listen.py" in command or "AnsiballZ_listen.py" in command:
                found.append(command)
    return found


def no_listener_left(timeout: float = 8.0) -> List[str]:
    """The listener processes still there after ``timeout``: ansible-core's async_wrapper, whose command line names
    the module, checks on its job every 5 s, so it may outlive the listener by that long."""
    deadline = time.monotonic() + timeout
    while listener_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    return listener_processes()


def _start_listener(args: Dict[str, Any]) -> subprocess.Popen:
    argv, env = module_process("listen")
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)
    process.stdin.write(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    process.stdin.close()
    wait_listening(LOOPBACK, args["port"], timeout=15)
    return process


def _finish(process: subprocess.Popen, port: int, timeout: float = 30) -> Dict[str, Any]:
    try:
        out = process.stdout.read()
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    errors = process.stderr.read()
    assert errors == "", errors
    assert not is_listening(LOOPBACK, port), "the listener left port %d bound" % port
    assert listener_processes() == []
    return json.loads(out)


def _pynetdicom_echo(port: int, calling: str, called: str = LISTEN_AE, source: str = LOOPBACK) -> str:
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 5
    assoc = ae.associate(LOOPBACK, port, ae_title=called, bind_address=(source, 0))
    if assoc.is_established:
        status = assoc.send_c_echo()
        assoc.release()
        return "echo 0x%04X" % status.Status
    return "rejected" if assoc.is_rejected else "aborted"


def _dcmtk(tool: str, args: List[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/%s" % tool] + args, capture_output=True, text=True, timeout=30,
                          env=peer_env(), check=False)


def _ct_file(directory: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    dataset.PatientName, dataset.Modality = "TEST^LISTEN", "CT"
    path = directory / "ct.dcm"
    try:
        dataset.save_as(str(path), enforce_file_format=True)
    except TypeError:  # pydicom 2.4
        dataset.save_as(str(path), write_like_original=False)
    return path


def _require_dcmtk_and_orthanc() -> None:
    missing = [tool for tool in ("echoscu", "storescu") if not Path("/usr/bin/%s" % tool).exists()]
    if missing or orthanc_mod.orthanc_binary() is None:
        pytest.skip("needs DCMTK (%s) and Orthanc" % ", ".join(missing or ["present"]))


def test_the_listener_tells_every_caller_apart(tmp_path, peers_workdir, peer_reaper):
    _require_dcmtk_and_orthanc()
    port = free_port()
    orthanc, orthanc_peer = orthanc_mod.start_orthanc(
        peers_workdir / "orthanc-listen", name="orthanc-listen",
        extra_modalities={"newct": {"AET": LISTEN_AE, "Host": LOOPBACK, "Port": port}})
    try:
        listener = _start_listener({
            "ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK, "duration": 90, "idle_timeout": 2,
            "allowed_calling_ae_titles": ["WS1", "DCMTK_WS", "STORE_WS", "ORTHANC", "LAST"],
            "allowed_source_addresses": ["127.0.0.1", "127.0.0.2/32"],
            "expect_callers": ["LAST"], "expect_rejected": ["INTRUDER"], "fail_on": "never"})
        seen: Dict[str, Any] = {}
        for source, expect in (("127.0.0.2", "accept"), ("127.0.0.3", "reject")):
            echoed = run_module({"calling_ae_title": "WS1", "bind_address": source, "peers": [
                {"name": "newct", "ae_title": LISTEN_AE, "host": LOOPBACK, "port": port, "expect": expect}]})
            seen["echo module from %s" % source] = json.loads(echoed.stdout)["results"][0]["outcome"]
        seen["echoscu DCMTK_WS"] = _dcmtk("echoscu", ["-aet", "DCMTK_WS", "-aec", LISTEN_AE, LOOPBACK, str(port)])
        seen["echoscu INTRUDER"] = _dcmtk("echoscu", ["-aet", "INTRUDER", "-aec", LISTEN_AE, LOOPBACK, str(port)])
        seen["echoscu wrong called"] = _dcmtk("echoscu", ["-aet", "WS1", "-aec", "OLDCT", LOOPBACK, str(port)])
        seen["storescu"] = _dcmtk("storescu", ["-aet", "STORE_WS", "-aec", LISTEN_AE, LOOPBACK, str(port),
                                               str(_ct_file(tmp_path))])
        request = urllib.request.Request("http://127.0.0.1:%d/modalities/newct/echo" % orthanc_peer.extra["http_port"],
                                         data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=20) as answer:
            seen["orthanc"] = answer.status
        with socket.create_connection((LOOPBACK, port), timeout=5):
            pass  # a port check: connect and close
        with socket.create_connection((LOOPBACK, port), timeout=5) as garbage:
            garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
            garbage.settimeout(5)
            while garbage.recv(4096):
                pass
        with socket.create_connection((LOOPBACK, port), timeout=10) as silent:
            silent.settimeout(10)
            started = time.monotonic()
            while silent.recv(4096):
                pass
            seen["silent closed after"] = time.monotonic() - started
        seen["last"] = _pynetdicom_echo(port, "LAST")
        result = _finish(listener, port)
    finally:
        orthanc.stop()

    assert seen["echo module from 127.0.0.2"] == "success"
    assert seen["echo module from 127.0.0.3"] == "rejected"
    assert seen["echoscu DCMTK_WS"].returncode == 0
    assert "Association Rejected" in seen["echoscu INTRUDER"].stderr + seen["echoscu INTRUDER"].stdout
    assert "Called AE Title Not Recognized" in seen["echoscu wrong called"].stderr + seen["echoscu wrong called"].stdout
    # storescu is accepted with every context refused: it says so and exits non-zero, sending nothing.
    store_text = seen["storescu"].stderr + seen["storescu"].stdout
    assert seen["storescu"].returncode == 1 and "F: No Acceptable Presentation Contexts" in store_text, store_text
    assert seen["orthanc"] == 200
    assert 1.5 <= seen["silent closed after"] <= 6
    assert seen["last"] == "echo 0x0000"

    records = result["associations"]
    by = {(r["calling_ae_title"], r["source_address"], r["called_ae_title"]): r for r in records if r["calling_ae_title"]}
    assert by[("WS1", "127.0.0.2", LISTEN_AE)]["outcome"] == "echoed"
    from_3 = by[("WS1", "127.0.0.3", LISTEN_AE)]
    assert from_3["outcome"] == "rejected" and from_3["reject"]["reason"] == "calling-ae-title-not-recognized"
    assert "source address 127.0.0.3 is not in allowed_source_addresses" in from_3["message"]
    assert by[("DCMTK_WS", LOOPBACK, LISTEN_AE)]["outcome"] == "echoed"
    assert by[("DCMTK_WS", LOOPBACK, LISTEN_AE)]["caller_implementation_version_name"].startswith("OFFIS_DCMTK")
    assert by[("INTRUDER", LOOPBACK, LISTEN_AE)]["reject"]["why"] == "calling AE title INTRUDER is not in allowed_calling_ae_titles"
    assert by[("WS1", LOOPBACK, "OLDCT")]["reject"]["reason"] == "called-ae-title-not-recognized"
    store = by[("STORE_WS", LOOPBACK, LISTEN_AE)]
    assert store["outcome"] == "associated" and "CTImageStorage" in store["proposed"]
    assert "only Verification is offered here" in store["message"]
    assert by[("ORTHANC", LOOPBACK, LISTEN_AE)]["outcome"] == "echoed"
    assert by[("LAST", LOOPBACK, LISTEN_AE)]["outcome"] == "echoed"
    no_rq = [r for r in records if r["outcome"] == "no_association"]
    assert len(no_rq) == 3, [r["message"] for r in no_rq]
    assert sum("within 2 s: closed by the listener" in r["message"] for r in no_rq) == 1
    assert len(records) == 11
    assert result["listener"]["stopped_because"] == "every expected caller was seen"
    assert result["missing_callers"] == [] and not result.get("failed")
    intruder = next(caller for caller in result["callers"] if caller["ae_title"] == "INTRUDER")
    assert (intruder["expected"], intruder["rejected"], intruder["echoed"]) == ("rejected", True, False)
    assert result["msg"].startswith("listened ") and "11 connection(s)" in result["msg"]


def test_the_task_fails_naming_expected_callers_that_never_echoed():
    port = free_port()
    listener = _start_listener({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK, "duration": 3,
                                "expect_callers": ["PACS", "ROUTER"]})
    assert _pynetdicom_echo(port, "PACS") == "echo 0x0000"
    started = time.monotonic()
    result = _finish(listener, port)
    assert time.monotonic() - started < 5
    assert result["failed"] is True
    assert result["missing_callers"] == ["ROUTER"]
    assert result["listener"]["stopped_because"] == "duration"
    assert result["msg"].endswith("expected caller(s) never seen as expected: ROUTER")
    assert [c["ae_title"] for c in result["callers"] if c["echoed"]] == ["PACS"]


def test_the_stop_file_stops_the_listener(tmp_path):
    port, stop = free_port(), tmp_path / "stop"
    listener = _start_listener({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK, "duration": 120,
                                "stop_file": str(stop)})
    assert _pynetdicom_echo(port, "WS1") == "echo 0x0000"
    started = time.monotonic()
    stop.touch()
    result = _finish(listener, port, timeout=10)
    assert time.monotonic() - started < 3
    assert result["listener"]["stopped_because"] == "stop file"
    assert not stop.exists(), "the listener removes its stop file once it has stopped"


def test_sigterm_stops_the_listener_at_once_with_what_it_saw():
    port = free_port()
    listener = _start_listener({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK, "duration": 120})
    assert _pynetdicom_echo(port, "WS1") == "echo 0x0000"
    started = time.monotonic()
    listener.send_signal(signal.SIGTERM)
    result = _finish(listener, port, timeout=10)
    assert time.monotonic() - started < 5
    assert result["listener"]["stopped_because"] == "stopped"
    assert [r["outcome"] for r in result["associations"]] == ["echoed"]


@pytest.mark.parametrize("case, args, message", [
    ("bad AE title", {"ae_title": "A\\B"}, "invalid input: ae_title"),
    ("reason of another source", {"reject": {"source": "service-provider-presentation", "reason": "no-reason-given"}},
     "invalid input: reject.reason (for source service-provider-presentation) must be one of temporary-congestion, "
     "local-limit-exceeded, got 'no-reason-given'"),
    ("bad network", {"allowed_source_addresses": ["10.1.2.0/33"]}, "invalid input: allowed_source_addresses[0]"),
    ("address not on this host", {"bind_address": "192.0.2.1"},
     "bind_address 192.0.2.1 is not an address of this host"),
    ("zero duration", {"duration": 0}, "invalid input: duration must be a number of seconds above 0"),
])
def test_bad_input_is_one_clear_line_and_nothing_listens(case, args, message):
    port = free_port()
    completed = run_module(dict({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK}, **args), module="listen",
                           timeout=30)
    result = json.loads(completed.stdout)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert not is_listening(LOOPBACK, port)


def test_a_port_in_use_is_named():
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        completed = run_module({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK}, module="listen")
    assert json.loads(completed.stdout)["msg"] == (
        "127.0.0.1 port %d is already in use on this host (another DICOM listener, or the device itself?): stop it "
        "or choose another port" % port)


def test_a_privileged_port_without_privilege_is_named(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the module as an unprivileged user")
    argv, env = module_process("listen")
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    if subprocess.run(as_nobody + [argv[0], "-c", "pass"], capture_output=True, check=False, cwd=str(tmp_path)).returncode:
        pytest.skip("%s cannot run as nobody here (a pyenv Python under /root with a shared libpython)" % argv[0])
    completed = subprocess.run(as_nobody + argv,
                               input=json.dumps({"ANSIBLE_MODULE_ARGS": {"ae_title": LISTEN_AE, "port": 104,
                                                                         "bind_address": LOOPBACK}}),
                               capture_output=True, text=True, timeout=60, env=dict(env, HOME=str(tmp_path)),
                               check=False, cwd=str(tmp_path))
    assert json.loads(completed.stdout)["msg"] == (
        "127.0.0.1 port 104 needs privileges: ports below 1024 need root or CAP_NET_BIND_SERVICE (become: true), "
        "or use a port of 1024 or above"), completed.stdout + completed.stderr


def _listen_task(args: Dict[str, Any], **extra) -> Dict[str, Any]:
    task = {"name": "stand in for the new CT", "dicom.network.listen": args, "register": "listener"}
    task.update(extra)
    return task


def test_async_listener_then_echo_then_async_status(tmp_path):
    port = free_port()
    args = {"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK, "duration": 60,
            "expect_callers": ["WS1"], "allowed_calling_ae_titles": ["WS1"]}
    tasks = [
        _listen_task(args, **{"async": 90, "poll": 0}),
        {"name": "wait for it", "ansible.builtin.wait_for": {"host": LOOPBACK, "port": port, "timeout": 20}},
        {"name": "echo it", "dicom.network.echo": {"calling_ae_title": "WS1", "host": LOOPBACK, "port": port,
                                                   "called_ae_title": LISTEN_AE}, "register": "echo_result"},
        {"name": "what it saw", "ansible.builtin.async_status": {"jid": "{{ listener.ansible_job_id }}"},
         "register": "seen", "until": "seen.finished", "retries": 40, "delay": 0.5},
    ]
    # An absolute async_dir: with HOME set elsewhere than the user's passwd home (CI runs with an empty HOME),
    # ansible-core's async_wrapper and async_status would each expand ~ their own way.
    document = run_playbook(tmp_path, tasks, capture=("echo_result", "seen"),
                            extra_args=["-e", "ansible_async_dir=%s" % (tmp_path / "async")])
    assert document["rc"] == 0, document["stdout_text"][-3000:]
    assert document["echo_result"]["results"][0]["outcome"] == "success"
    seen = document["seen"]
    assert seen["changed"] is False
    assert seen["listener"]["stopped_because"] == "every expected caller was seen"
    # The wait_for probe is a connection too: a port check.
    assert sorted(r["outcome"] for r in seen["associations"]) == ["echoed", "no_association"]
    assert not is_listening(LOOPBACK, port)
    assert no_listener_left() == []


def test_check_mode_starts_nothing(tmp_path):
    port = free_port()
    document = run_playbook(tmp_path, [_listen_task({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK,
                                                     "duration": 30})], extra_args=["--check"], capture=("listener",))
    assert document["rc"] == 0, document["stdout_text"][-3000:]
    assert document["listener"]["msg"] == "check mode: would listen 30 s on 127.0.0.1 port %d as NEWCT" % port
    assert not is_listening(LOOPBACK, port)
    assert no_listener_left() == []


def test_a_killed_controller_leaves_no_listener_behind(tmp_path):
    """The controller dies while the async listener runs: the listener still stops at its duration."""
    port = free_port()
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        _listen_task({"ae_title": LISTEN_AE, "port": port, "bind_address": LOOPBACK, "duration": 4},
                     **{"async": 60, "poll": 1})]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "inventory.ini").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n"
                                            % sys.executable)
    env = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote"))
    controller = subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.ini",
                                   "play.yml"], cwd=str(tmp_path), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_listening(LOOPBACK, port, timeout=30)
        killed = time.monotonic()
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
        assert _pynetdicom_echo(port, "WS1") == "echo 0x0000", "the listener died with the controller"
        while is_listening(LOOPBACK, port) and time.monotonic() - killed < 20:
            time.sleep(0.2)
        assert not is_listening(LOOPBACK, port)
        assert time.monotonic() - killed < 4 + 5
        assert no_listener_left() == []
    finally:
        if controller.poll() is None:
            os.killpg(controller.pid, signal.SIGKILL)
