"""Orthanc (Debian orthanc 1.10.1) as a strict DICOM peer.

Started as ``TCP_NODELAY=1 Orthanc --logfile=LOG config.json`` with storage/index in the
tmp dir, DICOM and HTTP ports free-allocated (both listen on 0.0.0.0 whatever
``RemoteAccessAllowed`` says; tests connect to 127.0.0.1 only), no plugins, and::

    DicomAet ORTHANC, DicomCheckCalledAet true, DicomAlwaysAllowEcho false,
    DicomCheckModalityHost true,
    DicomModalities: KNOWN_SCU@127.0.0.1, ECHOSCU@127.0.0.1,
                     OTHER_HOST_SCU@127.0.0.2,
                     NOECHO_SCU@127.0.0.1 with "AllowEcho": false

What ``echoscu -aet <calling> -aec <called> 127.0.0.1 <port>`` gets (measured; asserted in
tests/system/test_peers_selfcheck.py):

* known caller (KNOWN_SCU/ECHOSCU), called ORTHANC: Success, exit 0.
* unknown caller: "Association Rejected ... Reason: Calling AE Title Not Recognized"
  (reason 3), exit 1.
* wrong called AE: "Reason: Called AE Title Not Recognized" (reason 7), exit 1.
* OTHER_HOST_SCU from 127.0.0.1 (wrong source address): reason 3, exit 1; the log says
  'Forbidding access from AET "OTHER_HOST_SCU" given its hostname (127.0.0.1) does not
  match ... (127.0.0.2 was expected)'.  echoscu has NO option to choose its source
  address (and connecting to 127.0.0.2 still uses source 127.0.0.1 on Linux), so the
  positive case needs pynetdicom ``associate(..., bind_address=("127.0.0.2", 0))``: Success.
  Likewise KNOWN_SCU bound to 127.0.0.2 is rejected with reason 3.
* NOECHO_SCU (known, but "AllowEcho": false): association ACCEPTED, then Orthanc aborts at
  the C-ECHO: "Echo Failed: ... Peer aborted Association", and echoscu exits 0 (!).

TLS variant (``tls=`` dict with cert/key/ca): ``DicomTlsEnabled`` with
``DicomTlsRemoteCertificateRequired: true``.  ``echoscu +tls client.key client.pem +cf ca.pem``
from a known caller: Success; unknown caller: reason 3 (not accepted-then-aborted with this
Orthanc build); no client cert (``+tla``): "Connection reset by peer", exit 1; client cert
from another CA or plain TCP: "Peer aborted Association (or never connected)", exit 1.

SIGTERM takes ~2.6-3.5 s (Orthanc polls); ``stop_all`` stops several in parallel.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

from .base import LOOPBACK, ManagedProcess, Peer, free_port, peer_env, wait_listening

ORTHANC_AE = "ORTHANC"
KNOWN_CALLING = {"KNOWN_SCU": "127.0.0.1", "ECHOSCU": "127.0.0.1"}
OTHER_HOST_CALLING = {"OTHER_HOST_SCU": "127.0.0.2"}
NOECHO_CALLING = {"NOECHO_SCU": "127.0.0.1"}


def orthanc_binary() -> Optional[str]:
    return shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)


def start_orthanc(workdir: Path, name: str = "orthanc", tls: Optional[Dict[str, str]] = None,
                  timeout: float = 15.0, ae_title: str = ORTHANC_AE,
                  known_calling: Optional[Dict[str, str]] = None,
                  extra_modalities: Optional[Dict[str, Dict[str, object]]] = None,
                  extra_config: Optional[Dict[str, object]] = None) -> Tuple[ManagedProcess, Peer]:
    """Start Orthanc; ``known_calling`` (AE title -> source IP) replaces the test callers;
    ``extra_modalities`` (id -> {"AET", "Host", "Port"}) are added to its modality table;
    ``extra_config`` is merged into its configuration last (e.g. ``AcceptedTransferSyntaxes``,
    ``UnknownSopClassAccepted``: Orthanc ignores unknown keys silently, so a test must show
    that a key had an effect)."""
    exe = orthanc_binary()
    if exe is None:
        raise FileNotFoundError("Orthanc binary not found")
    workdir = Path(workdir) / name
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    dicom_port = free_port()
    http_port = free_port()
    modalities = {}
    callers = known_calling if known_calling is not None else {**KNOWN_CALLING, **OTHER_HOST_CALLING}
    for i, (aet, host) in enumerate(sorted(callers.items())):
        modalities["m%d-%s" % (i, aet.lower())] = [aet, host, 104]
    for aet, host in (NOECHO_CALLING.items() if known_calling is None else ()):
        modalities["noecho-%s" % aet.lower()] = {"AET": aet, "Host": host, "Port": 104,
                                                 "AllowEcho": False}
    modalities.update(extra_modalities or {})
    config = {
        "Name": "dicom-network-test-%s" % name,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "Plugins": [],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": ae_title,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": modalities,
        "DicomScpTimeout": 30,
        "SaveJobs": False,
        "ConcurrentJobs": 1,
    }
    if tls:
        config.update({
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": tls["cert"],
            "DicomTlsPrivateKey": tls["key"],
            "DicomTlsTrustedCertificates": tls["ca"],
            "DicomTlsRemoteCertificateRequired": bool(tls.get("require_client_cert", True)),
        })
    config.update(extra_config or {})
    cfg = workdir / "config.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = workdir / "orthanc.log"
    proc = ManagedProcess(name, [exe, "--logfile=%s" % log, str(cfg)],
                          workdir / "orthanc.stdout", env=peer_env(), cwd=workdir)
    try:
        wait_listening(LOOPBACK, dicom_port, timeout, proc=proc)
        wait_listening(LOOPBACK, http_port, timeout, proc=proc)
    except Exception:
        proc.stop()
        raise
    peer = Peer(
        name, LOOPBACK, dicom_port, ae_title, "orthanc",
        "Orthanc%s: called AE must be ORTHANC (else reason 7); calling AE must be a known "
        "modality from its registered IP (else reason 3); NOECHO_SCU accepted then "
        "aborted at C-ECHO" % (" over TLS (client cert required)" if tls else ""),
        {"known_calling": dict(KNOWN_CALLING), "other_host_calling": dict(OTHER_HOST_CALLING),
         "noecho_calling": dict(NOECHO_CALLING), "http_port": http_port,
         "config": str(cfg), "log": str(log), "tls": dict(tls) if tls else None,
         "extra_config": dict(extra_config or {})})
    return proc, peer
