"""Test TLS material made with the ``openssl`` CLI (argument lists, never a shell).

``make_tls_material(directory)`` returns a dict of paths (str):

=====================  ==========================================================
``ca_cert``/``ca_key``  test CA "dicom-network test CA"
``server_cert``/``server_key``
                        CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1,
                        serverAuth, signed by the test CA, valid for 1 year
``server_chain``        server cert + CA cert (PEM bundle)
``client_cert``/``client_key``
                        CN=ECHOSCU (clientAuth), signed by the test CA, key unencrypted
``client_key_encrypted``
                        the same client key, PKCS#8 encrypted (AES-256) with
                        ``client_key_password``
``client_key_password`` the password (a string, not a path)
``expired_cert``/``expired_key``
                        CN=localhost with the same SANs, signed by the test CA, valid
                        2020-01-01 .. 2020-12-31 (expired)
``unknown_ca_cert``/``unknown_ca_key``
                        a second CA nobody trusts
``untrusted_cert``/``untrusted_key``
                        CN=localhost with the right SANs, signed by the unknown CA
``untrusted_client_cert``/``untrusted_client_key``
                        client cert signed by the unknown CA
``wronghost_cert``/``wronghost_key``
                        signed by the test CA but only for DNS:wrong.invalid (hostname
                        mismatch when connecting to localhost / 127.0.0.1)
=====================  ==========================================================

RSA-2048 keys throughout: DCMTK's default BCP 195 profile negotiates ECDHE-RSA.
"""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

CLIENT_KEY_PASSWORD = "dicom-test-pass"
_TIMEOUT = 60


def _openssl(args: List[str], cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise FileNotFoundError("openssl CLI not found")
    res = subprocess.run([exe] + args, cwd=str(cwd), stdin=subprocess.DEVNULL, check=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=_TIMEOUT)
    if res.returncode != 0:
        raise RuntimeError("openssl %s failed (%s):\n%s"
                           % (" ".join(args), res.returncode, res.stdout.decode(errors="replace")))


def _genkey(path: Path) -> None:
    _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
              "-out", str(path)], path.parent)


def _make_ca(d: Path, stem: str, cn: str) -> None:
    _openssl(["req", "-x509", "-new", "-key", f"{stem}.key", "-out", f"{stem}.pem",
              "-days", "3650", "-subj", f"/O=dicom-network tests/CN={cn}", "-sha256",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-addext", "subjectKeyIdentifier=hash"], d)


def _ext_file(d: Path, name: str, san: str, eku: str) -> Path:
    p = d / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={eku}",
             "authorityKeyIdentifier=keyid"]
    if san:
        lines.append(f"subjectAltName={san}")
    p.write_text("\n".join(lines) + "\n")
    return p


def _sign(d: Path, stem: str, cn: str, ca: str, san: str, eku: str, days: int = 365) -> None:
    ext = _ext_file(d, stem, san, eku)
    _openssl(["req", "-new", "-key", f"{stem}.key", "-out", f"{stem}.csr",
              "-subj", f"/O=dicom-network tests/CN={cn}"], d)
    _openssl(["x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
              "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", ext.name,
              "-out", f"{stem}.pem"], d)


def _sign_expired(d: Path, stem: str, cn: str, ca: str, san: str) -> None:
    """``openssl x509 -req`` (3.0) cannot set a past notBefore; ``openssl ca`` can."""
    ext = _ext_file(d, stem, san, "serverAuth")
    cadir = d / "ca-db"
    cadir.mkdir(exist_ok=True)
    (cadir / "index.txt").write_text("")
    (cadir / "serial").write_text("1000\n")
    cnf = cadir / "ca.cnf"
    cnf.write_text(
        "[ca]\ndefault_ca = testca\n"
        "[testca]\n"
        f"dir = {cadir}\n"
        "database = $dir/index.txt\nserial = $dir/serial\nnew_certs_dir = $dir\n"
        "default_md = sha256\npolicy = anything\nunique_subject = no\n"
        "copy_extensions = none\n"
        "[anything]\nCN = supplied\nO = optional\n")
    _openssl(["req", "-new", "-key", f"{stem}.key", "-out", f"{stem}.csr",
              "-subj", f"/O=dicom-network tests/CN={cn}"], d)
    _openssl(["ca", "-batch", "-config", str(cnf), "-notext",
              "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key",
              "-startdate", "20200101000000Z", "-enddate", "20201231235959Z",
              "-extfile", ext.name, "-in", f"{stem}.csr", "-out", f"{stem}.pem"], d)


def make_tls_material(directory: Path) -> Dict[str, str]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    keys = ["ca", "unknown-ca", "server", "client", "expired", "untrusted",
            "untrusted-client", "wronghost"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda k: _genkey(d / f"{k}.key"), keys))

    _make_ca(d, "ca", "dicom-network test CA")
    _make_ca(d, "unknown-ca", "unknown test CA")
    host_san = "DNS:localhost,IP:127.0.0.1,IP:::1"
    _sign(d, "server", "localhost", "ca", host_san, "serverAuth")
    _sign(d, "client", "ECHOSCU", "ca", "DNS:client.test.invalid", "clientAuth")
    _sign(d, "untrusted", "localhost", "unknown-ca", host_san, "serverAuth")
    _sign(d, "untrusted-client", "ECHOSCU", "unknown-ca", "", "clientAuth")
    _sign(d, "wronghost", "wrong.invalid", "ca", "DNS:wrong.invalid", "serverAuth")
    _sign_expired(d, "expired", "localhost", "ca", host_san)
    _openssl(["pkey", "-in", "client.key", "-aes256", "-passout",
              f"pass:{CLIENT_KEY_PASSWORD}", "-out", "client-encrypted.key"], d)
    (d / "server-chain.pem").write_text((d / "server.pem").read_text() + (d / "ca.pem").read_text())
    for p in d.glob("*.key"):
        p.chmod(0o600)

    def P(name: str) -> str:
        return str(d / name)

    return {
        "dir": str(d),
        "ca_cert": P("ca.pem"), "ca_key": P("ca.key"),
        "server_cert": P("server.pem"), "server_key": P("server.key"),
        "server_chain": P("server-chain.pem"),
        "client_cert": P("client.pem"), "client_key": P("client.key"),
        "client_key_encrypted": P("client-encrypted.key"),
        "client_key_password": CLIENT_KEY_PASSWORD,
        "expired_cert": P("expired.pem"), "expired_key": P("expired.key"),
        "unknown_ca_cert": P("unknown-ca.pem"), "unknown_ca_key": P("unknown-ca.key"),
        "untrusted_cert": P("untrusted.pem"), "untrusted_key": P("untrusted.key"),
        "untrusted_client_cert": P("untrusted-client.pem"),
        "untrusted_client_key": P("untrusted-client.key"),
        "wronghost_cert": P("wronghost.pem"), "wronghost_key": P("wronghost.key"),
    }


def mint_server_certificate(material: Dict[str, str], stem: str, days: int, self_signed: bool = False
                            ) -> Dict[str, str]:
    """One more server certificate for localhost / 127.0.0.1 / ::1, valid for ``days`` from now: signed by
    the test CA of ``material`` (make_tls_material's), or self-signed. Returns {"cert", "key"}."""
    d = Path(material["dir"])
    _genkey(d / f"{stem}.key")
    san = "DNS:localhost,IP:127.0.0.1,IP:::1"
    if self_signed:
        _openssl(["req", "-x509", "-new", "-key", f"{stem}.key", "-out", f"{stem}.pem", "-days", str(days),
                  "-subj", "/O=dicom-network tests/CN=localhost", "-sha256", "-addext", f"subjectAltName={san}",
                  "-addext", "extendedKeyUsage=serverAuth"], d)
    else:
        _sign(d, stem, "localhost", "ca", san, "serverAuth", days=days)
    (d / f"{stem}.key").chmod(0o600)
    return {"cert": str(d / f"{stem}.pem"), "key": str(d / f"{stem}.key")}


if __name__ == "__main__":  # manual use: python -m tests.peers.tls DIR
    import json
    import sys
    print(json.dumps(make_tls_material(Path(sys.argv[1])), indent=2))
