"""The demo hospital: real DICOM peers on loopback, audited by playbooks/audit.yml.

Run by ``scripts/demo`` inside .venv. It starts about a dozen Application Entities with the
behaviours a PACS team meets in real life (an archive that only knows registered callers, a
worklist without a Verification context, a printer that is off, a modality that refuses
unknown callers, a slow modality...), seven source hosts that each speak from their own 127.x
address, one source host that cannot be reached, and the archive itself as a source, echoed through
its REST API, whose table of remote AEs has one wrong port. It writes an inventory for them, runs the
audit, prints the summary and where the reports are, and stops everything it started.

DCMTK and Orthanc cannot bind to one address: their ports listen on every interface. So, as root with
``ip netns``, the demo runs its peers and the audit in a network namespace of its own (loopback only, no
route out), which it deletes when it ends, however it ends; where it cannot, it says so on stderr and runs
on this machine's loopback. ``--no-netns`` runs it there without trying.

With ``--collections-path DIR`` it runs ``dicom.network.audit`` from the collection installed
under DIR (``ansible-galaxy collection install dicom-network-*.tar.gz -p DIR``) instead of the
checkout: the demo of what users get from the tarball.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.collection_path import ensure_collection_path  # noqa: E402  (the demo reuses the test peers)
from tests.peers.base import closed_port, stop_all  # noqa: E402
from tests.peers.demo_network import start_network, write_inventory  # noqa: E402
from tests.peers.netns import NetNamespace, NetnsUnavailable  # noqa: E402

IN_NAMESPACE = "in network namespace %s (loopback only, no route out)"
ON_HOST = "on this machine's loopback (DCMTK and Orthanc listen on all its interfaces while it runs)"
CANNOT = ("demo: cannot create a network namespace (%s); the demo peers listen on all interfaces of this "
          "machine (DCMTK and Orthanc cannot bind to one address) while the demo runs")
# Ctrl-C, kill and a closed terminal all stop the demo the same way: peers stopped, namespace deleted.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long the namespace's owner waits, after a signal, for the demo inside to stop its peers (Orthanc
# alone takes ~3.5 s) before it kills what is left in the namespace.
STOP_TIMEOUT_S = 20.0


class Stopped(KeyboardInterrupt):
    """The first stop signal: the demo unwinds as on Ctrl-C, stopping its peers on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_on_signals() -> None:
    """Turn the first of STOP_SIGNALS into :class:`Stopped`, and ignore the later ones: a Ctrl-C reaches the
    whole process group, and the namespace's owner forwards it too, so a second signal must not break off the
    cleanup the first one started."""
    received: List[int] = []

    def handler(signum: int, _frame) -> None:
        if not received:
            received.append(signum)
            raise Stopped(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


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


def stop_playbook(playbook_run: subprocess.Popen, why: BaseException) -> None:
    """Stop ansible-playbook as a Ctrl-C does, so that it stops its forked workers too; kill it if it has not
    ended within 5 s. On a Ctrl-C from the terminal it got the SIGINT itself already."""
    if playbook_run.poll() is None and not (isinstance(why, Stopped) and why.signum == signal.SIGINT):
        playbook_run.send_signal(signal.SIGINT)
    try:
        playbook_run.wait(5)
    except subprocess.TimeoutExpired:
        playbook_run.kill()
        playbook_run.wait()


def run_demo(args: argparse.Namespace, where: str) -> int:
    """Start the demo network here, audit it, print where the reports are, and stop the network."""
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
    print("Starting the demo hospital network %s..." % where)
    procs: list = []
    try:
        procs, aes = start_network(workdir)
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
        # Our lines before ansible-playbook's, also when stdout is a pipe.
        sys.stdout.flush()
        playbook_run = subprocess.Popen(command, env=env, cwd=str(output))
        try:
            code = playbook_run.wait(600)
        except BaseException as exc:
            # The peers stop (Orthanc takes ~3.5 s) while ansible-playbook does (up to 5 s after a Ctrl-C).
            for proc in procs:
                proc.terminate()
            stop_playbook(playbook_run, exc)
            raise
        if not (report_dir / "latest.json").exists():
            print("The audit wrote no report (ansible-playbook exit %d)" % code, file=sys.stderr)
            return 1
        print_where(report_dir)
        print("ansible-playbook exit code %d: the demo network has deliberate faults and an offline source "
              "host, so the audit fails as it would in a real network" % code)
        return 0
    finally:
        stop_all(procs)
        shutil.rmtree(workdir, ignore_errors=True)
        print("Demo network stopped (%.1f s in all)." % (time.monotonic() - started))


def create_namespace() -> Tuple[Optional[NetNamespace], str]:
    """A network namespace of the demo's own (lo up, no default route), or None and why not, in one line.

    Call with STOP_SIGNALS blocked, so that no signal lands between its creation and the ``finally``
    that deletes it.
    """
    try:
        for name in NetNamespace.remove_abandoned("dicom-demo"):
            print("demo: deleted network namespace %s, left behind by a demo that was killed" % name, file=sys.stderr)
        return NetNamespace.create(prefix="dicom-demo"), ""
    except (NetnsUnavailable, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return None, " ".join(str(exc).split())


def run_in_namespace(namespace: NetNamespace, argv: List[str]) -> int:
    """Run this script again inside ``namespace`` (``ip netns exec``), so that the peers, Orthanc's and
    DCMTK's children and ansible-playbook all live there; then delete the namespace and whatever is left in
    it, however the demo ended. Returns the demo's exit code."""
    try:
        # A signal that came while the namespace was being created is handled here, inside the try.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        sys.stdout.flush()
        demo = subprocess.Popen([shutil.which("ip") or "ip", "netns", "exec", namespace.name, sys.executable,
                                 str(Path(__file__).resolve())] + argv + ["--in-netns", namespace.name])
        try:
            code = demo.wait()
        except Stopped as stopped:
            # On Ctrl-C the demo got SIGINT too and ignores this second signal.
            demo.send_signal(signal.SIGTERM)
            try:
                code = demo.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print("demo: the demo did not stop within %.0f s; killing what is left in network namespace %s"
                      % (STOP_TIMEOUT_S, namespace.name), file=sys.stderr)
                code = 128 + stopped.signum
        return code if code >= 0 else 128 - code
    finally:
        namespace.delete()
        if Path("/run/netns", namespace.name).exists():
            print("demo: could not delete network namespace %s; delete it with: ip netns delete %s"
                  % (namespace.name, namespace.name), file=sys.stderr)


def inside(name: str) -> bool:
    """Is this process in the network namespace ``ip netns`` knows as ``name``?"""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(os.path.join("/run/netns", name)).st_ino
    except OSError:
        return False


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO_ROOT / "demo-output"),
                        help="where the inventory and the reports go (default: demo-output/)")
    parser.add_argument("--collections-path", metavar="DIR",
                        help="run dicom.network.audit from the collection installed under DIR (ansible-galaxy "
                             "collection install -p DIR) instead of the checkout")
    parser.add_argument("--no-netns", action="store_true",
                        help="run the demo peers on this machine's loopback even as root; by default the demo "
                             "runs them and the audit in a network namespace of its own when it can (root and "
                             "'ip netns'), because DCMTK and Orthanc listen on all interfaces")
    # The demo itself, re-run inside the namespace it created.
    parser.add_argument("--in-netns", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.collections_path:
        installed_collection(Path(args.collections_path).resolve())  # refused before anything is created
    if args.in_netns and not inside(args.in_netns):
        parser.error("--in-netns %s: this process is not in that network namespace" % args.in_netns)
    stop_on_signals()
    try:
        if args.in_netns:
            return run_demo(args, IN_NAMESPACE % args.in_netns)
        if args.no_netns:
            return run_demo(args, ON_HOST)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        namespace, reason = create_namespace()
        if namespace is not None:
            return run_in_namespace(namespace, argv)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        print(CANNOT % reason, file=sys.stderr)
        return run_demo(args, ON_HOST)
    except Stopped as stopped:
        print("demo: stopped by %s" % stopped, file=sys.stderr)
        return 128 + stopped.signum


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
