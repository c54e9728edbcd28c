"""Differential test: for every real peer, the module's verdict agrees with DCMTK echoscu's.

echoscu exits 0 when the peer answers C-ECHO with a non-success status or aborts the
association after accepting it; there the module must be stricter, and the test checks that
echoscu's own output shows the failure the module reports.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.system.helpers import echo_one

pytestmark = pytest.mark.peers

ECHOSCU_FAILURE_EVIDENCE = re.compile(r"Unknown Status|Peer Aborted|Aborted|Status: 0x[1-9A-Fa-f]", re.I)

CASES = [
    # (fixture, peer key, called AE override, calling AE)
    ("pynetdicom_peers", "accept", None, "ECHOSCU"),
    ("pynetdicom_peers", "reject-called", "NOT_THERE", "ECHOSCU"),
    ("pynetdicom_peers", "reject-calling", None, "STRANGER"),
    ("pynetdicom_peers", "reject-calling", None, "KNOWN_SCU"),
    ("pynetdicom_peers", "no-verification", None, "ECHOSCU"),
    ("pynetdicom_peers", "status-failure", None, "ECHOSCU"),
    ("pynetdicom_peers", "status-0122", None, "ECHOSCU"),
    ("pynetdicom_peers", "abort-on-echo", None, "ECHOSCU"),
    ("pynetdicom2_peers", "accept", None, "ECHOSCU"),
    ("pynetdicom2_peers", "reject-called", "NOT_THERE", "ECHOSCU"),
    ("pynetdicom2_peers", "status-0122", None, "ECHOSCU"),
    ("dcmtk_peers", "storescp", None, "ECHOSCU"),
    ("dcmtk_peers", "storescp-refuse", None, "ECHOSCU"),
    ("dcmtk_peers", "dcmqrscp", None, "KNOWN_SCU"),
    ("dcmtk_peers", "dcmqrscp", None, "STRANGER"),
    ("dcmtk_peers", "wlmscpfs", None, "ECHOSCU"),
    ("dcmtk_peers", "wlmscpfs", "NOT_MWL", "ECHOSCU"),
    ("orthanc_peer", None, None, "KNOWN_SCU"),
    ("orthanc_peer", None, None, "STRANGER"),
    ("orthanc_peer", None, "NOT_ORTHANC", "KNOWN_SCU"),
    ("hostile_peers", "close", None, "ECHOSCU"),
    ("hostile_peers", "garbage", None, "ECHOSCU"),
    ("hostile_peers", "abort", None, "ECHOSCU"),
    ("closed_port", None, None, "ECHOSCU"),
]


def _echoscu(peer, called, calling):
    argv = [shutil.which("echoscu"), "-d", "-aet", calling, "-aec", called,
            "-to", "3", "-ta", "3", "-td", "3", peer.host, str(peer.port)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                          env=dict(os.environ, TCP_NODELAY="1"))


@pytest.mark.parametrize("fixture, key, called, calling", CASES,
                         ids=["%s-%s-%s-%s" % (f, k, c, a) for f, k, c, a in CASES])
def test_module_agrees_with_echoscu_or_is_stricter(request, fixture, key, called, calling):
    if shutil.which("echoscu") is None:
        pytest.skip("DCMTK echoscu is not installed")
    source = request.getfixturevalue(fixture)
    peer = source[key] if key is not None else source
    called = called or peer.ae_title or "ANY_SCP"
    result = echo_one(peer, ae_title=called, calling_ae_title=calling)
    reference = _echoscu(peer, called, calling)
    module_success = result["outcome"] == "success"
    echoscu_success = reference.returncode == 0
    output = reference.stdout + reference.stderr
    if echoscu_success and not module_success:
        assert ECHOSCU_FAILURE_EVIDENCE.search(output), (
            "module says %s (%s) but echoscu exited 0 without showing a failure:\n%s"
            % (result["outcome"], result["message"], output[-2000:]))
    else:
        assert module_success == echoscu_success, (
            "module: %s (%s); echoscu exit %d:\n%s"
            % (result["outcome"], result["message"], reference.returncode, output[-2000:]))
