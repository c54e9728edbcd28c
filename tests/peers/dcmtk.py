"""DCMTK peers (Debian dcmtk 3.6.7), each a child process in its own process group with
``TCP_NODELAY=1`` and a log file.  All DCMTK servers listen on 0.0.0.0 (no bind option
in 3.6.7); tests only ever connect to 127.0.0.1.

What ``echoscu -aet <calling> -aec <called> -to 3 -ta 3 -td 3 127.0.0.1 <port>`` gets
(measured on this machine; asserted in tests/system/test_peers_selfcheck.py):

``storescp`` (``storescp --fork -aet STORESCP -od DIR PORT``)
    Accepts ANY called AE title and any calling AE: echo Success, exit 0.
``storescp-refuse`` (``storescp --refuse``)
    Rejects every association: "Association Rejected", "Result: Rejected Permanent,
    Source: Service User", "Reason: No Reason" (reason 1), exit 1.
``dcmqrscp`` (``dcmqrscp -dhl -c CFG PORT``, fork mode -- ``--single-process`` crashes after
    the first release)
    AE ``QRSCP`` only for the calling AEs in ``allowed_calling`` (from 127.0.0.1) and
    ``OTHER_HOST_SCU`` registered at 127.0.0.2; AE ``QR_OPEN`` for ANY caller.
    - allowed caller, called QRSCP: Success, exit 0
    - unknown caller, or OTHER_HOST_SCU from 127.0.0.1: "Reason: Called AE Title Not
      Recognized" (reason 7, never 3!), exit 1
    - wrong called AE: reason 7, exit 1
    - any caller, called QR_OPEN: Success, exit 0
    With ``-dhl`` HostTable entries are compared to the literal source IP; without it
    dcmqrscp compares the reverse-DNS name ("localhost" from /etc/hosts), and an entry
    written as 127.0.0.1 then never matches.
``wlmscpfs`` (``wlmscpfs -dfp DIR PORT`` with ``DIR/WLMSCP/``)
    Called AE must be a directory name under DIR: ``WLMSCP`` -> Success, exit 0; anything
    else -> "Reason: Called AE Title Not Recognized" (reason 7), exit 1.  Any caller.
``dcmtk-tls`` (``storescp --fork +tls KEY CERT -ic``)
    TLS, no client certificate required.  ``echoscu +tla +cf ca.pem``: Success, exit 0;
    plain ``echoscu`` (no TLS): "Association Request Failed: ... Peer aborted Association
    (or never connected)", exit 1; ``+cf unknown-ca.pem``: "TLS error: certificate verify
    failed", exit 1.
``dcmtk-tls-mutual`` (``storescp --fork +tls KEY CERT +cf ca.pem``, peer cert required)
    ``echoscu +tls client.key client.pem +cf ca.pem``: Success, exit 0 (also with the
    encrypted key and ``+pw``); without a client cert (``+tla``) or with a cert from
    another CA: "Peer aborted Association (or never connected)", exit 1.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .base import LOOPBACK, ManagedProcess, Peer, free_port, peer_env, wait_listening

DCMTK_BINARIES = ("storescp", "dcmqrscp", "wlmscpfs", "echoscu")

# dcmqrscp access lists
QR_AE = "QRSCP"
QR_OPEN_AE = "QR_OPEN"
QR_ALLOWED_CALLING = ("KNOWN_SCU", "ECHOSCU")
QR_OTHER_HOST = {"OTHER_HOST_SCU": "127.0.0.2"}
WLM_AE = "WLMSCP"
STORESCP_AE = "STORESCP"


def missing_binaries(names=DCMTK_BINARIES) -> List[str]:
    return [n for n in names if shutil.which(n) is None]


def _start(name: str, argv: List[str], workdir: Path, port: int,
           timeout: float = 10.0) -> ManagedProcess:
    proc = ManagedProcess(name, argv, workdir / ("%s.log" % name), env=peer_env(), cwd=workdir)
    try:
        wait_listening(LOOPBACK, port, timeout, proc=proc)
    except Exception:
        proc.stop()
        raise
    return proc


def start_storescp(workdir: Path, port: Optional[int] = None, ae_title: str = STORESCP_AE,
                   refuse: bool = False, tls: Optional[Dict[str, str]] = None,
                   name: Optional[str] = None, options: Sequence[str] = ()
                   ) -> Tuple[ManagedProcess, Peer]:
    """``storescp --fork``.  ``refuse``: reject everything.  ``tls``: dict with ``key``,
    ``cert`` and optional ``ca`` (if given, client certificates are required and verified
    against it; if absent ``-ic``).  ``options``: more storescp options, e.g. ``["+xa"]``
    (accept all transfer syntaxes) or ``["-xf", CFG, PROFILE]`` (see
    :func:`write_storescp_profile`)."""
    name = name or ("storescp-refuse" if refuse else "storescp")
    workdir = Path(workdir) / name
    out = workdir / "incoming"
    out.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = ["storescp", "--fork", "-aet", ae_title, "-od", str(out)]
    if refuse:
        argv.append("--refuse")
    if tls:
        argv += ["+tls", tls["key"], tls["cert"]]
        if tls.get("ca"):
            argv += ["+cf", tls["ca"], "-rc"]
        else:
            argv += ["-ic"]
    argv += [str(option) for option in options]
    argv.append(str(port))
    proc = _start(name, argv, workdir, port)
    if refuse:
        notes = "storescp --refuse: every association rejected permanent/service-user/reason 1"
        extra = {"reject": {"result": 1, "source": 1, "reason": 1}}
    elif tls and tls.get("ca"):
        notes = "storescp +tls: TLS with client certificate required (test CA)"
        extra = {"tls": dict(tls), "client_cert_required": True}
    elif tls:
        notes = "storescp +tls -ic: TLS, no client certificate needed"
        extra = {"tls": dict(tls), "client_cert_required": False}
    else:
        notes = "storescp: accepts any called AE and any calling AE; echo Success"
        extra = {"accepts_any_called_ae": True}
    if options:
        notes += " (options: %s)" % " ".join(str(option) for option in options)
        extra["options"] = [str(option) for option in options]
    return proc, Peer(name, LOOPBACK, port, ae_title, "dcmtk", notes, extra)


def write_storescp_profile(path: Path, contexts: Sequence[Tuple[str, Sequence[str]]],
                           profile: str = "TestProfile") -> List[str]:
    """Write a storescp association configuration (the format of /etc/dcmtk/storescp.cfg) with
    one profile offering exactly ``contexts``: (abstract syntax, [transfer syntaxes]) pairs, each
    a DCMTK name (``CTImageStorage``, ``LittleEndianExplicit``) or a UID.  Returns the storescp
    options that select it: ``["-xf", path, profile]``."""
    lines = ["# written by tests/peers/dcmtk.py", "[[TransferSyntaxes]]"]
    for number, (_abstract, syntaxes) in enumerate(contexts, start=1):
        lines.append("[Syntaxes%d]" % number)
        lines += ["TransferSyntax%d = %s" % (i, ts) for i, ts in enumerate(syntaxes, start=1)]
    lines += ["", "[[PresentationContexts]]", "[Contexts]"]
    lines += ["PresentationContext%d = %s\\Syntaxes%d" % (number, abstract, number)
              for number, (abstract, _syntaxes) in enumerate(contexts, start=1)]
    lines += ["", "[[Profiles]]", "[%s]" % profile, "PresentationContexts = Contexts", ""]
    Path(path).write_text("\n".join(lines))
    return ["-xf", str(path), profile]


def write_dcmqrscp_config(path: Path, port: int, storage: Path,
                          allowed_calling=QR_ALLOWED_CALLING,
                          other_host: Optional[Dict[str, str]] = None, qr_ae: str = QR_AE) -> None:
    if other_host is None:
        other_host = QR_OTHER_HOST
    storage.mkdir(parents=True, exist_ok=True)
    entries = []
    names = []
    for i, aet in enumerate(allowed_calling):
        entries.append("caller%d = (%s, 127.0.0.1, 104)" % (i, aet))
        names.append("caller%d" % i)
    for i, (aet, host) in enumerate(sorted(other_host.items())):
        entries.append("elsewhere%d = (%s, %s, 104)" % (i, aet, host))
        names.append("elsewhere%d" % i)
    entries.append("callers = %s" % ", ".join(names))
    template = (
        "# written by tests/peers/dcmtk.py; hosts are IPs, so dcmqrscp must run with -dhl\n"
        "NetworkTCPPort  = %d\nMaxPDUSize      = 16384\nMaxAssociations = 64\n\n"
        "HostTable BEGIN\n%s\nHostTable END\n\n"
        "VendorTable BEGIN\nVendorTable END\n\n"
        "AETable BEGIN\n"
        "%s %s RW (10, 64mb) callers\n"
        "%s %s RW (10, 64mb) ANY\n"
        "AETable END\n")
    path.write_text(template % (port, "\n".join(entries), qr_ae, storage / qr_ae,
                                QR_OPEN_AE, storage / QR_OPEN_AE))
    (storage / qr_ae).mkdir(exist_ok=True)
    (storage / QR_OPEN_AE).mkdir(exist_ok=True)


def start_dcmqrscp(workdir: Path, port: Optional[int] = None, qr_ae: str = QR_AE,
                   callers: Optional[Dict[str, str]] = None) -> Tuple[ManagedProcess, Peer]:
    """Start dcmqrscp; ``callers`` (AE title -> source IP) replaces the test allowlist."""
    name = "dcmqrscp"
    workdir = Path(workdir) / name
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cfg = workdir / "dcmqrscp.cfg"
    if callers is None:
        write_dcmqrscp_config(cfg, port, workdir / "db")
    else:
        write_dcmqrscp_config(cfg, port, workdir / "db", allowed_calling=(), other_host=callers, qr_ae=qr_ae)
    # Default fork mode: --single-process crashes after the first release.
    proc = _start(name, ["dcmqrscp", "-dhl", "-c", str(cfg), str(port)], workdir, port)
    return proc, Peer(
        name, LOOPBACK, port, qr_ae, "dcmtk",
        "dcmqrscp -dhl: AE %s only for calling AEs %s from 127.0.0.1 (and %s from "
        "127.0.0.2); unknown caller or wrong called AE -> rejected reason 7 (never 3); "
        "AE %s accepts anyone" % (QR_AE, "/".join(QR_ALLOWED_CALLING),
                                  "/".join(QR_OTHER_HOST), QR_OPEN_AE),
        {"allowed_calling": list(QR_ALLOWED_CALLING), "other_host_calling": dict(QR_OTHER_HOST),
         "open_ae_title": QR_OPEN_AE, "unknown_caller_reject": {"result": 1, "source": 1,
                                                                "reason": 7},
         "config": str(cfg)})


def start_wlmscpfs(workdir: Path, port: Optional[int] = None, ae_title: str = WLM_AE
                   ) -> Tuple[ManagedProcess, Peer]:
    name = "wlmscpfs"
    workdir = Path(workdir) / name
    data = workdir / "worklists"
    (data / ae_title).mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = _start(name, ["wlmscpfs", "-dhl", "-dfp", str(data), str(port)], workdir, port)
    return proc, Peer(name, LOOPBACK, port, ae_title, "dcmtk",
                      "wlmscpfs: called AE must be %s (else rejected reason 7); any caller"
                      % ae_title, {"wrong_called_reject": {"result": 1, "source": 1,
                                                           "reason": 7}})
