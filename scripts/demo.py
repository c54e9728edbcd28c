"""The demo hospital: real DICOM peers on loopback, audited by playbooks/audit.yml.

Run by ``scripts/demo`` inside .venv. It starts about a dozen Application Entities with the
behaviours a PACS team meets in real life (an archive that only knows registered callers, a
worklist without a Verification context, a printer that is off, a modality that refuses
unknown callers, a slow modality...), seven source hosts that each speak from their own 127.x
address, one source host that cannot be reached, and the archive itself as a source, echoed through
its REST API, whose table of remote AEs has one wrong port. It writes an inventory for them, runs the
audit, prints the summary and where the reports are, and stops everything it started.

With ``--collections-path DIR`` it runs ``dicom.network.audit`` from the collection installed
under DIR (``ansible-galaxy collection install dicom-network-*.tar.gz -p DIR``) instead of the
checkout: the demo of what users get from the tarball.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.collection_path import ensure_collection_path  # noqa: E402  (the demo reuses the test peers)
from tests.peers.base import closed_port, stop_all  # noqa: E402
from tests.peers.demo_network import start_network, write_inventory  # noqa: E402


def print_where(report_dir: Path) -> None:
    """The audit's own summary is the last thing ansible-playbook printed: say only where to look."""
    print()
    print("Open the HTML report: %s" % (report_dir / "latest.html"))
    print("Also latest.json, latest.md, latest.csv and latest.junit.xml in %s" % report_dir)


def installed_collection(collections_path: Path) -> Tuple[Path, str]:
    """The dicom.network installed under an ANSIBLE_COLLECTIONS_PATH entry, and its version.

    Raises SystemExit with what to do when there is none, before any peer is started.
    """
    root = collections_path / "ansible_collections" / "dicom" / "network"
    manifest = root / "MANIFEST.json"
    if not manifest.is_file():
        raise SystemExit("--collections-path %s: no installed dicom.network (no %s); install the built "
                         "collection with: ansible-galaxy collection install dicom-network-<version>.tar.gz -p %s"
                         % (collections_path, manifest, collections_path))
    try:
        version = json.loads(manifest.read_text())["collection_info"]["version"]
    except (ValueError, KeyError, TypeError):
        raise SystemExit("--collections-path %s: %s is not a collection manifest" % (collections_path, manifest)) \
            from None
    return root, str(version)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO_ROOT / "demo-output"),
                        help="where the inventory and the reports go (default: demo-output/)")
    parser.add_argument("--collections-path", metavar="DIR",
                        help="run dicom.network.audit from the collection installed under DIR (ansible-galaxy "
                             "collection install -p DIR) instead of the checkout")
    args = parser.parse_args(argv)
    if args.collections_path:
        collections = Path(args.collections_path).resolve()
        installed, version = installed_collection(collections)
        # By name, with DIR the only place Ansible looks (no scan of sys.path for other
        # ansible_collections trees): a broken installed copy cannot be masked by another one.
        playbook = "dicom.network.audit"
        ansible_env = {"ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False"}
        print("Using dicom.network %s installed in %s" % (version, installed))
    else:
        playbook = str(REPO_ROOT / "playbooks" / "audit.yml")
        ansible_env = {"ANSIBLE_COLLECTIONS_PATH": str(ensure_collection_path())}
    output = Path(args.output).resolve()
    report_dir = output / "reports"
    inventory_dir = output / "inventory"
    shutil.rmtree(inventory_dir, ignore_errors=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="dicom-network-demo-"))
    started = time.monotonic()
    print("Starting the demo hospital network on loopback...")
    procs, aes = start_network(workdir)
    try:
        titles = ", ".join(sorted(a["ae_title"] for a in aes.values()))
        print("  %d AEs up in %.1f s: %s" % (len(aes), time.monotonic() - started, titles))
        write_inventory(inventory_dir, aes, closed_port())
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_FORKS="8",
                   ANSIBLE_RETRY_FILES_ENABLED="0", **ansible_env)
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_dir),
                   playbook, "-e", "echo_audit_report_dir=%s" % report_dir,
                   "-e", "echo_audit_connect_timeout=3", "-e", "echo_audit_acse_timeout=5",
                   "-e", "echo_audit_dimse_timeout=5"]
        print("Running: %s" % " ".join(command))
        completed = subprocess.run(command, env=env, cwd=str(output), timeout=600, check=False)
        if not (report_dir / "latest.json").exists():
            print("The audit wrote no report (ansible-playbook exit %d)" % completed.returncode, file=sys.stderr)
            return 1
        print_where(report_dir)
        print("ansible-playbook exit code %d: the demo network has deliberate faults and an offline source "
              "host, so the audit fails as it would in a real network" % completed.returncode)
        return 0
    finally:
        stop_all(procs)
        shutil.rmtree(workdir, ignore_errors=True)
        print("Demo network stopped (%.1f s in all)." % (time.monotonic() - started))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
