"""The demo hospital network: a dozen real DICOM AEs on loopback and an inventory that audits them.

Used by ``scripts/demo`` (the README's main command) and by the end-to-end audit test. The AEs
behave as a PACS team meets them in real life: an archive that only knows registered callers
(each from its registered address), a worklist without a Verification context, a printer that
is off, a modality that refuses unknown callers, a slow modality, a site-B archive with an
allowlist, a router between the sites that takes CT and MR images but not the enhanced CT images the
new site-B CT sends (its required service is refused), and the site-B archive's storage classes
discovered from the router. Seven source hosts speak from their own 127.x addresses, where their own AEs
also listen; one more (an ultrasound cart) cannot be reached, so its row must come out ``not_run``.

The archive is also a source of its own (``pacs-a``): an Orthanc with its REST API enabled (local clients
only, a user and password), echoed through that API, whose table of remote AEs has one deliberate mistake -
reading room 1 with a wrong port - so the audit shows the reverse direction failing and the configuration
drift, while reading room 1 itself echoes the archive fine.
"""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from . import dcmtk, orthanc
from .base import ManagedProcess, closed_port, stop_all
from .pynetdicom_peers import start_pynetdicom_peers

SITE_A, SITE_B = "Site A (main hospital)", "Site B (outpatient clinic)"
# What the router takes (pynetdicom_scp's "contexts"): CT and MR images, implicit and explicit VR little endian.
CT_IMAGE_STORAGE, MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
LITTLE_ENDIAN = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]

# Source hosts: inventory name -> (source address, registry names of the AEs it speaks as).
SOURCES = {
    "ct-a1": ("127.20.1.11", ["ct_a1"]),
    "mr-a1": ("127.20.1.12", ["mr_a1"]),
    "ws-a1": ("127.20.1.21", ["ws_a1"]),
    "ws-a2": ("127.20.1.22", ["ws_a2"]),
    "router-b": ("127.20.2.30", ["router_b"]),
    "ct-b1": ("127.20.2.11", ["ct_b1"]),
    "ws-b1": ("127.20.2.21", ["ws_b1"]),
}
# Callers the archive has on file, with the address it expects them from. CT_B1 is missing on
# purpose: the new CT at site B has not been registered yet, which is what an audit is for.
ARCHIVE_KNOWN = {"CT_A1": "127.20.1.11", "MR_A1": "127.20.1.12", "WS_A1": "127.20.1.21",
                 "WS_A2": "127.20.1.22", "ROUTER_B": "127.20.2.30"}
QR_B_KNOWN = {"ROUTER_B": "127.20.2.30", "CT_B1": "127.20.2.11", "WS_B1": "127.20.2.21"}


# The archive's REST API user (its password is made per run).
ARCHIVE_API_USER = "dicom-audit"


class Registry(dict):
    """The registry entries, and ``api``: how the archive's REST API is reached (url, username, password)."""

    api: Dict[str, str] = {}


def start_network(workdir: Path) -> Tuple[List[ManagedProcess], Dict[str, Dict[str, Any]]]:
    """Start every AE of the demo hospital and return its processes and registry entries (a :class:`Registry`)."""
    procs: List[ManagedProcess] = []
    aes: Dict[str, Dict[str, Any]] = Registry()

    own_address = {name: address for address, names in SOURCES.values() for name in names}

    def add(name, ae_title, port, site, kind, description, host=None):
        aes[name] = {"ae_title": ae_title, "host": host or own_address.get(name, "127.0.0.1"), "port": port,
                     "site": site, "kind": kind, "description": description}

    try:
        proc, qr_b = dcmtk.start_dcmqrscp(workdir, qr_ae="QR_B", callers=QR_B_KNOWN)
        procs.append(proc)
        add("qr_b", "QR_B", qr_b.port, SITE_B, "archive", "DCMTK dcmqrscp: site B short-term archive")
        proc, mwl_b = dcmtk.start_wlmscpfs(workdir, ae_title="MWL_B")
        procs.append(proc)
        add("mwl_b", "MWL_B", mwl_b.port, SITE_B, "ris", "DCMTK wlmscpfs: site B worklist")
        proc, ws_a1 = dcmtk.start_storescp(workdir, ae_title="WS_A1", name="ws-a1-storescp")
        procs.append(proc)
        # storescp listens on every address: reading room 1 is reached at its own.
        add("ws_a1", "WS_A1", ws_a1.port, SITE_A, "workstation", "Reading room 1 (DCMTK storescp)")
        specs = {
            "ris_mwl": ({"behaviour": "no-verification", "ae_title": "RIS_MWL"}, ""),
            "ct_a1": ({"behaviour": "reject-calling", "ae_title": "CT_A1",
                       "allowed_calling": ["PACS_ARCHIVE", "WS_A1", "ECHOSCU"]}, ""),
            "mr_a1": ({"behaviour": "accept", "ae_title": "MR_A1"}, ""),
            "ws_a2": ({"behaviour": "accept", "ae_title": "WS_A2"}, ""),
            # Takes CT and MR images, not Enhanced CT: the new CT's route to it is service_rejected.
            "router_b": ({"behaviour": "accept", "ae_title": "ROUTER_B",
                          "contexts": [[CT_IMAGE_STORAGE, LITTLE_ENDIAN], [MR_IMAGE_STORAGE, LITTLE_ENDIAN]]}, ""),
            "ct_b1": ({"behaviour": "slow", "delay": 1.5, "ae_title": "CT_B1"}, ""),
            "printer_b": ({"behaviour": "accept", "ae_title": "PRINTER_B"}, ""),
            "ws_b1": ({"behaviour": "reject-called", "ae_title": "WS_B1"}, ""),
        }
        # An AE of a source host listens on that host's address, as in a real network.
        for name, (spec, _notes) in specs.items():
            if name in own_address:
                spec["host"] = own_address[name]
        proc, scps = start_pynetdicom_peers(workdir / "pynetdicom", specs, prefix="demo")
        procs.append(proc)
        add("ris_mwl", "RIS_MWL", scps["ris_mwl"].port, SITE_A, "ris",
            "RIS worklist: answers C-FIND only, no Verification context")
        add("ct_a1", "CT_A1", scps["ct_a1"].port, SITE_A, "modality",
            "CT, emergency department: accepts only the archive and reading room 1")
        add("mr_a1", "MR_A1", scps["mr_a1"].port, SITE_A, "modality", "MR scanner <b>3T</b>")
        add("ws_a2", "WS_A2", scps["ws_a2"].port, SITE_A, "workstation",
            "Reading room 2 <script>alert('demo: descriptions are escaped')</script>")
        add("router_b", "ROUTER_B", scps["router_b"].port, SITE_B, "router", "DICOM router between the sites")
        # What every caller sends through the router; a route may ask for more (ct-b1, below).
        aes["router_b"]["services"] = ["CTImageStorage", "MRImageStorage"]
        add("ct_b1", "CT_B1", scps["ct_b1"].port, SITE_B, "modality", "New CT at site B, answers slowly")
        add("printer_b", "PRINTER_B", scps["printer_b"].port, SITE_B, "printer", "Film printer, site B")
        add("ws_b1", "WS_B1", scps["ws_b1"].port, SITE_B, "workstation", "Site B review station")
        add("printer_a", "DRYVIEW_A", closed_port(), SITE_A, "printer", "Film printer, site A: switched off")
        # The archive's table of remote AEs: every registered caller from its address, with the port it listens
        # on (where the archive sends to it). One deliberate mistake: reading room 1 with a wrong port.
        table = {}
        for ae_title, address in sorted(ARCHIVE_KNOWN.items()):
            (name,) = [key for key, ae in aes.items() if ae["ae_title"] == ae_title]
            port = aes[name]["port"] if name != "ws_a1" else closed_port()
            table[name.replace("_", "-")] = {"AET": ae_title, "Host": address, "Port": port}
        password = secrets.token_urlsafe(12)
        proc, archive = orthanc.start_orthanc(
            workdir, name="pacs-archive", ae_title="PACS_ARCHIVE", known_calling={}, extra_modalities=table,
            extra_config={"AuthenticationEnabled": True, "RegisteredUsers": {ARCHIVE_API_USER: password}})
        procs.append(proc)
        add("pacs_archive", "PACS_ARCHIVE", archive.port, SITE_A, "archive",
            "Orthanc archive: only registered callers, each from its registered address")
        aes.api = {"url": "http://127.0.0.1:%d" % archive.extra["http_port"], "username": ARCHIVE_API_USER,
                   "password": password}
    except BaseException:  # Ctrl-C too: stop the peers already started
        stop_all(procs)
        raise
    return procs, aes


def write_inventory(directory: Path, aes: Dict[str, Dict[str, Any]], unreachable_port: int) -> Path:
    """An inventory in the documented model (see inventory.example/), for the demo's sources."""
    group_vars = directory / "group_vars"
    (group_vars / "all").mkdir(parents=True, exist_ok=True)
    host_vars = directory / "host_vars"
    host_vars.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    hosts = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": python},
            "children": {
                "dicom_sources": {"children": {
                    "dicom_modalities": {"hosts": {"ct-a1": None, "mr-a1": None, "ct-b1": None,
                                                   "us-a1": None}},
                    "dicom_workstations": {"hosts": {"ws-a1": None, "ws-a2": None, "ws-b1": None}},
                    "dicom_routers": {"hosts": {"router-b": None}},
                    "dicom_archives": {"hosts": {"pacs-a": None}} if getattr(aes, "api", None) else {},
                }},
            },
        }
    }
    (directory / "hosts.yml").write_text(json.dumps(hosts, indent=2))
    (group_vars / "all" / "dicom_aes.yml").write_text(json.dumps({"dicom_aes": aes}, indent=2))
    # Declared once per group, extended per host: every modality must reach the archive and the
    # worklist of its site; every workstation must reach the archive.
    (group_vars / "dicom_modalities.yml").write_text(json.dumps(
        {"dicom_peers_modalities": ["pacs_archive"]}, indent=2))
    (group_vars / "dicom_workstations.yml").write_text(json.dumps(
        {"dicom_peers_workstations": ["pacs_archive"]}, indent=2))
    per_host = {
        "ct-a1": {"dicom_peers": ["ris_mwl", "printer_a", "ws_a1"]},
        "mr-a1": {"dicom_peers": ["ris_mwl", "ws_a1", {"name": "ct_a1", "expect": "reject"}]},
        # The new CT sends enhanced CT images through the router, which does not take them.
        "ct-b1": {"dicom_peers": ["qr_b", "mwl_b", "printer_b",
                                  {"name": "router_b", "services": ["CTImageStorage", "EnhancedCTImageStorage"]}]},
        "ws-a1": {"dicom_peers": ["ct_a1", "mr_a1"]},
        # Only the archive and reading room 1 may query the ED CT: reading room 2 must be refused.
        "ws-a2": {"dicom_peers": [{"name": "ct_a1", "expect": "reject"}, "mr_a1"]},
        # Segmentation: site B workstations have no route to site A's printer network.
        "ws-b1": {"dicom_peers": ["qr_b", "router_b", {"name": "printer_a", "expect": "blocked"}]},
        # Which storage classes the site-B archive takes, found out and reported, none required.
        "router-b": {"dicom_peers": ["pacs_archive", {"name": "qr_b", "discover": "storage"}, "mwl_b", "ws_b1"]},
    }
    for host, (address, local_aes) in SOURCES.items():
        data = {"dicom_bind_address": address, "dicom_local_aes": local_aes}
        data.update(per_host.get(host, {}))
        (host_vars / ("%s.yml" % host)).write_text(json.dumps(data, indent=2))
    # An ultrasound cart that is switched off: its row must still appear, marked not_run.
    (host_vars / "us-a1.yml").write_text(json.dumps({
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": unreachable_port,
        "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes",
        "dicom_local_aes": ["us_a1"], "dicom_peers": ["pacs_archive"]}, indent=2))
    api = getattr(aes, "api", None)
    if api:
        # The archive, audited through its REST API: it must reach the reading rooms and the site-A modalities
        # (C-MOVE destinations). Its credentials sit apart, as an AWX credential or a vault would keep them.
        archive_vars = host_vars / "pacs-a"
        archive_vars.mkdir(exist_ok=True)
        (archive_vars / "main.yml").write_text(json.dumps({
            "dicom_local_aes": ["pacs_archive"], "dicom_peers": ["ws_a1", "ws_a2", "ct_a1", "mr_a1"],
            "dicom_echo_api": {"type": "orthanc", "url": "{{ orthanc_api_url }}",
                               "username": "{{ orthanc_api_username }}", "password": "{{ orthanc_api_password }}"}},
            indent=2))
        credentials = archive_vars / "credentials.yml"
        credentials.write_text(json.dumps({"orthanc_api_url": api["url"], "orthanc_api_username": api["username"],
                                           "orthanc_api_password": api["password"]}, indent=2))
        credentials.chmod(0o600)
    aes_with_us = dict(aes)
    aes_with_us["us_a1"] = {"ae_title": "US_A1", "host": "127.0.0.1", "port": unreachable_port,
                            "site": SITE_A, "kind": "modality", "description": "Ultrasound cart (offline)"}
    (group_vars / "all" / "dicom_aes.yml").write_text(json.dumps({"dicom_aes": aes_with_us}, indent=2))
    return directory
