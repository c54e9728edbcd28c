"""Launch ``tests.peers.pynetdicom_scp`` (one process, many SCPs) and describe its peers.

The peer process runs under ``python`` (default: this interpreter, i.e. pynetdicom 3.0.4;
pass /tmp/py39/bin/python for pynetdicom 2.0.2).  It is started with a stdin pipe and
``--watch-stdin`` so it exits by itself if pytest dies; ``stop()`` SIGTERMs its group.
"""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .base import LOOPBACK, ManagedProcess, Peer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
KNOWN_CALLING = "KNOWN_SCU"
SLOW_DELAY = 10.0

# behaviour key -> (spec without port, notes measured with echoscu)
PLAIN_PEERS: Dict[str, Tuple[dict, str]] = {
    "accept": ({"behaviour": "accept", "ae_title": "ACCEPT_SCP"},
               "Verification SCP, any called/calling AE: Success, echoscu exit 0"),
    "reject-called": ({"behaviour": "reject-called", "ae_title": "STRICT_SCP"},
                      "called AE must be STRICT_SCP, else A-ASSOCIATE-RJ 1/1/7 "
                      "(called AE not recognized); echoscu exit 1"),
    "reject-calling": ({"behaviour": "reject-calling", "ae_title": "CALLING_SCP",
                        "allowed_calling": [KNOWN_CALLING]},
                       "calling AE must be KNOWN_SCU, else A-ASSOCIATE-RJ 1/1/3 "
                       "(calling AE not recognized); echoscu exit 1"),
    "no-verification": ({"behaviour": "no-verification", "ae_title": "CT_ONLY_SCP"},
                        "association accepted, Verification context rejected (result 3 "
                        "abstract syntax not supported); echoscu 'No Acceptable "
                        "Presentation Contexts', exit 1"),
    "status-failure": ({"behaviour": "status", "status": 0xC000, "ae_title": "FAIL_SCP"},
                       "C-ECHO-RSP status 0xC000; echoscu exit 0 (!), prints "
                       "'Unknown Status: 0xc000'"),
    "status-0122": ({"behaviour": "status", "status": 0x0122, "ae_title": "REFUSED_SCP"},
                    "C-ECHO-RSP status 0x0122 (SOP class not supported); echoscu exit 0 (!), "
                    "prints 'Unknown Status: 0x122'"),
    "status-warning": ({"behaviour": "status", "status": 0xB000, "ae_title": "WARN_SCP"},
                       "C-ECHO-RSP status 0xB000 (a warning-class code echo does not define); "
                       "echoscu exit 0, prints 'Unknown Status: 0xb000'"),
    "abort-on-echo": ({"behaviour": "abort-on-echo", "ae_title": "ABORT_SCP"},
                      "accepts, then A-ABORT on the C-ECHO-RQ; echoscu exit 0 (!), "
                      "'Peer aborted Association'"),
    "slow": ({"behaviour": "slow", "delay": SLOW_DELAY, "ae_title": "SLOW_SCP"},
             "answers C-ECHO after %gs; echoscu -td 3: 'DIMSE No data available', "
             "exit 70 after ~3 s" % SLOW_DELAY),
}


def tls_peer_specs(m: Dict[str, str]) -> Dict[str, Tuple[dict, str]]:
    """TLS SCPs from ``tls.make_tls_material`` output."""
    return {
        "tls": ({"behaviour": "tls", "ae_title": "TLS_SCP",
                 "tls": {"cert": m["server_cert"], "key": m["server_key"]}},
                "TLS (test CA, SAN localhost/127.0.0.1), no client cert needed; "
                "echoscu +tla +cf ca.pem: Success"),
        "tls-mutual": ({"behaviour": "tls", "ae_title": "TLS_MUTUAL",
                        "tls": {"cert": m["server_cert"], "key": m["server_key"],
                                "ca": m["ca_cert"], "require_client_cert": True}},
                       "TLS requiring a client cert from the test CA; echoscu +tls "
                       "client.key client.pem +cf ca.pem: Success; +tla: fails, exit 1"),
        "tls-expired": ({"behaviour": "tls", "ae_title": "TLS_EXPIRED",
                         "tls": {"cert": m["expired_cert"], "key": m["expired_key"]}},
                        "TLS with an expired server cert; echoscu +tla +cf ca.pem: "
                        "'TLS error: certificate verify failed', exit 1"),
        "tls-untrusted": ({"behaviour": "tls", "ae_title": "TLS_UNTRUST_SCP",
                           "tls": {"cert": m["untrusted_cert"], "key": m["untrusted_key"]}},
                          "TLS with a server cert from an unknown CA; echoscu +tla +cf "
                          "ca.pem: 'certificate verify failed', exit 1"),
        "tls-wronghost": ({"behaviour": "tls", "ae_title": "TLS_WRONGHOST",
                           "tls": {"cert": m["wronghost_cert"], "key": m["wronghost_key"]}},
                          "TLS, cert from the test CA but for DNS:wrong.invalid only; "
                          "echoscu does not check host names: Success (a strict client "
                          "must fail on hostname mismatch)"),
    }


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_pynetdicom_peers(workdir: Path, specs: Dict[str, Tuple[dict, str]],
                           python: Optional[str] = None, prefix: str = "pynetdicom",
                           ready_timeout: float = 30.0, log_level: str = "WARNING"
                           ) -> Tuple[ManagedProcess, Dict[str, Peer]]:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stats_dir = workdir / "stats"
    stats_dir.mkdir(exist_ok=True)
    peers_cfg: List[dict] = []
    peers: Dict[str, Peer] = {}
    for key, (spec, notes) in specs.items():
        spec = dict(spec)
        host = spec.get("host", LOOPBACK)
        port = free_port(host, also_wildcard=":" not in host)
        spec.update({"name": key, "port": port})
        peers_cfg.append(spec)
        extra = {k: v for k, v in spec.items() if k not in ("name", "port", "ae_title", "host")}
        if spec["behaviour"] == "reject-called":
            extra["reject"] = {"result": 1, "source": 1, "reason": 7}
        elif spec["behaviour"] == "reject-calling":
            extra["reject"] = {"result": 1, "source": 1, "reason": 3}

        def counter(path=stats_dir / ("%s.count" % key)) -> int:
            try:
                return int(path.read_text() or 0)
            except (OSError, ValueError):
                return 0

        peers[key] = Peer("%s:%s" % (prefix, key), host, port, spec.get("ae_title"),
                          "pynetdicom", notes, extra, counter=counter)
    cfg_path = workdir / "peers.json"
    cfg_path.write_text(json.dumps({"host": LOOPBACK, "stats_dir": str(stats_dir),
                                    "peers": peers_cfg}, indent=2))
    python = python or sys.executable
    proc = ManagedProcess(prefix, [python, "-m", "tests.peers.pynetdicom_scp", "--config",
                                   str(cfg_path), "--watch-stdin", "--log-level", log_level],
                          workdir / "scp.log", cwd=REPO_ROOT, stdin_pipe=True,
                          stdout_pipe=True)
    proc.wait_for_line("READY", ready_timeout)
    return proc, peers
