"""dicom.network.echo's ``services`` and ``discover`` against real peers (issue 20).

One proposal (PROPOSAL: eight SOP classes, some limited to one transfer syntax) goes to every kind
of peer; what each answered was measured on this machine (DCMTK 3.6.7, Orthanc 1.10.1, pynetdicom
3.0.4 and 2.0.2) and is asserted exactly, then compared with what pynetdicom's own requestor reads
from the same A-ASSOCIATE-AC. DCMTK storescu, sending a file of an accepted and of a refused class,
shows that "accepted" means the store gets through. Discovery proposes every storage class
(more than 127: two associations); a peer that refuses the second association is named as such;
bad ``services`` input is refused by the real module before any traffic.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

import pytest
from pynetdicom import AE, AllStoragePresentationContexts, build_context

from tests.peers import dcmtk as dcmtk_mod
from tests.peers import orthanc as orthanc_mod
from tests.peers.base import peer_env, stop_all
from tests.peers.fixtures import _retry
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.system.helpers import echo, peer_entry, run_module

pytestmark = pytest.mark.peers

CALLING = "KNOWN_SCU"  # on dcmqrscp's and Orthanc's lists of callers; the others take anyone
VERIFICATION = "1.2.840.10008.1.1"
IVR, EVR, J2K = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"
CT, MR, SC = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.7"
DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
STUDY_FIND, STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.5.1.4.1.2.2.2"
MWL = "1.2.840.10008.5.1.4.31"
PRIVATE = "1.2.826.0.1.3680043.2.1143.1.1"  # a SOP class UID no standard names

# The proposal, as a user writes it, and the same as (name in the results, UID, transfer syntaxes) for
# pynetdicom. pynetdicom's keyword for the worklist class is reported as pydicom's.
PROPOSAL = ["CTImageStorage", "MRImageStorage",
            {"sop_class": "SecondaryCaptureImageStorage", "transfer_syntaxes": ["ImplicitVRLittleEndian"]},
            {"sop_class": "DigitalXRayImageStorageForPresentation", "transfer_syntaxes": ["JPEG2000Lossless"]},
            "StudyRootQueryRetrieveInformationModelFind", "StudyRootQueryRetrieveInformationModelMove",
            "ModalityWorklistInformationFind", PRIVATE]
CONTEXTS = [("CTImageStorage", CT, [IVR, EVR]), ("MRImageStorage", MR, [IVR, EVR]),
            ("SecondaryCaptureImageStorage", SC, [IVR]), ("DigitalXRayImageStorageForPresentation", DX, [J2K]),
            ("StudyRootQueryRetrieveInformationModelFind", STUDY_FIND, [IVR, EVR]),
            ("StudyRootQueryRetrieveInformationModelMove", STUDY_MOVE, [IVR, EVR]),
            ("ModalityWorklistInformationModelFind", MWL, [IVR, EVR]), (PRIVATE, PRIVATE, [IVR, EVR])]

# PS3.8 9.3.3.2 result codes, in the words the module reports them.
WORDS = {0: "acceptance", 1: "user-rejection", 2: "no-reason", 3: "abstract-syntax-not-supported",
         4: "transfer-syntaxes-not-supported"}
ABSTRACT, SYNTAX = WORDS[3], WORDS[4]


def accepted(transfer_syntax: str) -> Tuple[str, str]:
    return ("acceptance", transfer_syntax)


def refused(word: str) -> Tuple[str, None]:
    return (word, None)


# Measured: what each peer answered to PROPOSAL, in its order (result, accepted transfer syntax).
# DCMTK-based peers pick EVR when IVR and EVR are offered; pynetdicom picks by its own list (IVR first).
EXPECTED: Dict[str, List[Tuple[str, Optional[str]]]] = {
    # storescp without options: no JPEG 2000 (4), no query/retrieve or worklist, no private class (3).
    "storescp": [accepted(EVR), accepted(EVR), accepted(IVR), refused(SYNTAX),
                 refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT)],
    # storescp +xa: every transfer syntax, so the JPEG 2000-only DX context is accepted.
    "storescp+xa": [accepted(EVR), accepted(EVR), accepted(IVR), accepted(J2K),
                    refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT)],
    # storescp -xf PROFILE_CT: Verification, CT (EVR) and SC (EVR) only.
    "storescp-xf": [accepted(EVR), refused(ABSTRACT), refused(SYNTAX), refused(ABSTRACT),
                    refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT)],
    # dcmqrscp: storage (but not this DX class) and query/retrieve; no worklist.
    "dcmqrscp": [accepted(EVR), accepted(EVR), accepted(IVR), refused(ABSTRACT),
                 accepted(EVR), accepted(EVR), refused(ABSTRACT), refused(ABSTRACT)],
    # wlmscpfs: the worklist only.
    "wlmscpfs": [refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT),
                 refused(ABSTRACT), refused(ABSTRACT), accepted(EVR), refused(ABSTRACT)],
    # Orthanc as configured by tests/peers/orthanc.py: every transfer syntax, no worklist plugin,
    # UnknownSopClassAccepted false (its default).
    "orthanc": [accepted(EVR), accepted(EVR), accepted(IVR), accepted(J2K),
                accepted(EVR), accepted(EVR), refused(ABSTRACT), refused(ABSTRACT)],
    # Orthanc with AcceptedTransferSyntaxes [EVR] and UnknownSopClassAccepted true: storage contexts
    # without EVR are refused with 3 (not 4); query/retrieve is not limited; the private class accepted.
    "orthanc-restricted": [accepted(EVR), accepted(EVR), refused(ABSTRACT), refused(ABSTRACT),
                           accepted(EVR), accepted(EVR), refused(ABSTRACT), accepted(EVR)],
    # pynetdicom SCP with PYNETDICOM_CONTEXTS.
    "pynetdicom": [accepted(EVR), accepted(IVR), refused(SYNTAX), refused(SYNTAX),
                   refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT), refused(ABSTRACT)],
    # Hand-written SCP answering CT with 1 and MR with 2 (no pynetdicom SCP can), the rest accepted
    # with the first transfer syntax offered.
    "hostile": [refused(WORDS[1]), refused(WORDS[2]), accepted(IVR), accepted(J2K),
                accepted(IVR), accepted(IVR), accepted(IVR), accepted(IVR)],
}
PYNETDICOM_CONTEXTS = [[CT, [EVR]], [MR, [IVR, EVR]], [SC, [EVR]], [DX, [EVR]]]
HOSTILE_RESULTS = {CT: 1, MR: 2}
PROFILE_CT = [("VerificationSOPClass", ["LittleEndianImplicit", "LittleEndianExplicit"]),
              ("CTImageStorage", ["LittleEndianExplicit"]), ("SecondaryCaptureImageStorage", ["LittleEndianExplicit"])]
# What default storescp (and Orthanc) refuse of pynetdicom 3.0's AllStoragePresentationContexts, all
# with 3; pynetdicom 2.0's list has none of them.
STORESCP_UNKNOWN_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.11.12", "1.2.840.10008.5.1.4.1.1.481.23", "1.2.840.10008.5.1.4.1.1.481.24",
    "1.2.840.10008.5.1.4.1.1.481.25", "1.2.840.10008.5.1.4.1.1.6.3", "1.2.840.10008.5.1.4.1.1.66.7",
    "1.2.840.10008.5.1.4.1.1.66.8", "1.2.840.10008.5.1.4.1.1.77.1.8", "1.2.840.10008.5.1.4.1.1.77.1.9",
    "1.2.840.10008.5.1.4.1.1.88.77", "1.2.840.10008.5.1.4.1.1.9.1.4", "1.2.840.10008.5.1.4.1.1.9.100.1",
    "1.2.840.10008.5.1.4.1.1.9.100.2"}
STORAGE_UIDS = [str(context.abstract_syntax) for context in AllStoragePresentationContexts]


def _need(*binaries: str) -> None:
    missing = [name for name in binaries if shutil.which(name) is None]
    if missing:
        pytest.skip("missing binaries: %s" % ", ".join(missing))


@pytest.fixture(scope="module")
def service_peers(dcmtk_peers, orthanc_peer, peers_workdir, peer_reaper, hostile_factory):
    """Every peer of EXPECTED by name: the shared DCMTK and Orthanc peers and this suite's own."""
    if orthanc_mod.orthanc_binary() is None:
        pytest.skip("Orthanc binary not found")
    workdir = peers_workdir / "services"
    workdir.mkdir(exist_ok=True)
    procs = []
    peers = {"storescp": dcmtk_peers["storescp"], "dcmqrscp": dcmtk_peers["dcmqrscp"],
             "wlmscpfs": dcmtk_peers["wlmscpfs"], "orthanc": orthanc_peer}
    starts = {
        "storescp+xa": lambda: dcmtk_mod.start_storescp(workdir, name="storescp-xa", options=["+xa"]),
        "storescp-xf": lambda: dcmtk_mod.start_storescp(workdir, name="storescp-xf", options=(
            dcmtk_mod.write_storescp_profile(workdir / "ct.cfg", PROFILE_CT, "CTAndSC"))),
        # The same storescp without Verification in its profile.
        "storescp-xf-no-verification": lambda: dcmtk_mod.start_storescp(
            workdir, name="storescp-xf-nov", options=dcmtk_mod.write_storescp_profile(
                workdir / "ct-only.cfg", PROFILE_CT[1:], "CTAndSCOnly")),
        "orthanc-restricted": lambda: orthanc_mod.start_orthanc(workdir, name="orthanc-restricted", extra_config={
            "AcceptedTransferSyntaxes": [EVR], "UnknownSopClassAccepted": True}),
        "pynetdicom": lambda: start_pynetdicom_peers(workdir / "pynetdicom", {"contexts": (
            {"behaviour": "accept", "ae_title": "SERVICES_SCP", "contexts": PYNETDICOM_CONTEXTS},
            "Verification, CT (EVR), MR (IVR, EVR), SC (EVR), DX (EVR)")}),
    }
    try:
        for key, start in starts.items():
            proc, peer = _retry(start)
            procs.append(proc)
            peers[key] = peer["contexts"] if key == "pynetdicom" else peer
    except Exception:
        stop_all(procs)
        raise
    peers["hostile"] = hostile_factory("dicom-ok", results=HOSTILE_RESULTS)
    yield peers
    peer_reaper.terminate(procs)


def _services(peer, services, **overrides) -> Dict:
    (result,) = echo([peer_entry(peer, calling_ae_title=CALLING, services=services, **overrides)])
    return result


def _table(result: Dict) -> List[Tuple[str, Optional[str]]]:
    return [(service["result"], service["transfer_syntax"]) for service in result["services"]]


def _expected_services(key: str) -> List[Dict]:
    return [{"sop_class": name, "uid": uid, "required": True, "accepted": word == "acceptance",
             "transfer_syntax": syntax, "result": word}
            for (name, uid, _syntaxes), (word, syntax) in zip(CONTEXTS, EXPECTED[key])]


def _requestor_view(peer) -> Dict[str, Tuple[str, Optional[str]]]:
    """What pynetdicom's own requestor reads from the AC for the same contexts: abstract syntax ->
    (result in words, accepted transfer syntax)."""
    ae = AE(ae_title=CALLING)
    ae.connection_timeout = ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 5
    contexts = [build_context(VERIFICATION, [IVR, EVR])] + [
        build_context(uid, syntaxes) for _name, uid, syntaxes in CONTEXTS]
    assoc = ae.associate(peer.host, peer.port, contexts=contexts, ae_title=peer.ae_title or "ANY_SCP")
    try:
        assert assoc.is_established, "pynetdicom could not associate with %s" % peer.name
        view = {str(cx.abstract_syntax): ("acceptance", str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
        view.update({str(cx.abstract_syntax): (WORDS[cx.result], None) for cx in assoc.rejected_contexts})
    finally:
        assoc.release()
        if not assoc.is_released:
            assoc.abort()
    return view


# --------------------------------------------------------------------------- each peer, exactly
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_peer_answers_the_proposal_as_measured(service_peers, key):
    result = _services(service_peers[key], PROPOSAL)
    assert result["services"] == _expected_services(key)
    refusals = [(name, word) for (name, _uid, _ts), (word, _syntax) in zip(CONTEXTS, EXPECTED[key])
                if word != "acceptance"]
    # Every peer refuses something of PROPOSAL: the echo worked, the route does not carry all of it.
    assert (result["outcome"], result["phase"], result["ok"], result["status"]) == (
        "service_rejected", "associate", False, 0)
    assert result["message"] == "C-ECHO success, but %d of %d required service(s) refused: %s" % (
        len(refusals), len(PROPOSAL), ", ".join("%s (%s)" % refusal for refusal in refusals))


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_pynetdicom_requestor_reads_the_same_answers(service_peers, key):
    peer = service_peers[key]
    view = _requestor_view(peer)
    assert view.pop(VERIFICATION)[0] == "acceptance"
    module = {service["uid"]: (service["result"], service["transfer_syntax"])
              for service in _services(peer, PROPOSAL)["services"]}
    assert module == view
    assert view == dict(zip((uid for _name, uid, _syntaxes in CONTEXTS), EXPECTED[key]))


def test_all_required_services_accepted_is_success(service_peers):
    result = _services(service_peers["storescp+xa"], ["CTImageStorage", "MRImageStorage", {
        "sop_class": "DigitalXRayImageStorageForPresentation", "transfer_syntaxes": ["JPEG2000Lossless"]}])
    assert (result["outcome"], result["ok"], result["phase"]) == ("success", True, "release")
    assert result["message"] == "C-ECHO success (0x0000); 3 required service(s) accepted"
    assert _table(result) == [accepted(EVR), accepted(EVR), accepted(J2K)]


def test_the_same_proposal_without_xa_is_refused_for_its_transfer_syntax(service_peers):
    result = _services(service_peers["storescp"], [
        {"sop_class": "CTImageStorage", "transfer_syntaxes": ["JPEG2000Lossless"]}])
    assert (result["outcome"], result["ok"]) == ("service_rejected", False)
    assert result["message"] == ("C-ECHO success, but 1 of 1 required service(s) refused: "
                                 "CTImageStorage (transfer-syntaxes-not-supported)")


def test_verification_refused_stays_context_rejected_and_services_are_still_reported(service_peers):
    result = _services(service_peers["storescp-xf-no-verification"], ["CTImageStorage", "MRImageStorage"])
    assert (result["outcome"], result["phase"], result["ok"]) == ("context_rejected", "associate", False)
    assert result["message"] == ("association accepted but the Verification presentation context was rejected "
                                 "(abstract-syntax-not-supported)")
    assert _table(result) == [accepted(EVR), refused(ABSTRACT)]


def test_a_peer_refusing_every_context_is_context_rejected_with_the_services_reported(service_peers):
    """storescp sends an A-ASSOCIATE-AC with every context refused (not an RJ); pynetdicom then aborts."""
    result = _services(service_peers["storescp-xf-no-verification"], ["MRImageStorage"])
    assert (result["outcome"], result["phase"], result["ok"]) == ("context_rejected", "associate", False)
    assert result["services"] == [{"sop_class": "MRImageStorage", "uid": MR, "required": True, "accepted": False,
                                   "transfer_syntax": None, "result": ABSTRACT}]


@pytest.mark.parametrize("count, associations", [(127, 1), (128, 2)])
def test_127_services_fit_next_to_verification_and_the_128th_needs_another_association(service_peers, count,
                                                                                       associations):
    peer = service_peers["pynetdicom"]  # counts its connections
    before = peer.connection_count()
    result = _services(peer, STORAGE_UIDS[:count])
    assert peer.connection_count() - before == associations
    assert len(result["services"]) == count and all(s["result"] is not None for s in result["services"])
    assert sorted(s["uid"] for s in result["services"] if s["accepted"]) == sorted(
        {CT, MR, SC, DX} & set(STORAGE_UIDS[:count]))
    assert result["outcome"] == "service_rejected"


# --------------------------------------------------------------------------- storescu agrees
DUMP = """(0008,0016) UI ={sop_class}
(0008,0018) UI [{instance}]
(0008,0060) CS [{modality}]
(0010,0010) PN [Services^Test]
(0010,0020) LO [I20]
(0020,000d) UI [2.25.20200000000000000000000000001]
(0020,000e) UI [2.25.20200000000000000000000000002]
"""


def test_storescu_stores_the_accepted_class_and_finds_no_context_for_the_refused_one(
        service_peers, peers_workdir, tmp_path):
    _need("/usr/bin/storescu", "/usr/bin/dump2dcm")
    peer = service_peers["storescp-xf"]
    files = {}
    for modality, sop_class, instance in (("CT", "CTImageStorage", "2.25.20200000000000000000000000011"),
                                          ("MR", "MRImageStorage", "2.25.20200000000000000000000000012")):
        dump = tmp_path / ("%s.dump" % modality)
        dump.write_text(DUMP.format(sop_class=sop_class, instance=instance, modality=modality))
        files[modality] = tmp_path / ("%s.dcm" % modality)
        subprocess.run(["/usr/bin/dump2dcm", "-q", str(dump), str(files[modality])], check=True, timeout=30)
    incoming = peers_workdir / "services" / "storescp-xf" / "incoming"  # its -od (tests/peers/dcmtk.py)
    sent = {modality: subprocess.run(
        ["/usr/bin/storescu", "-aet", CALLING, "-aec", peer.ae_title, "-to", "5", "-ta", "5", "-td", "5",
         peer.host, str(peer.port), str(path)], capture_output=True, text=True, timeout=60, env=peer_env(),
        check=False)
        for modality, path in files.items()}
    assert (sent["CT"].returncode, sent["CT"].stdout, sent["CT"].stderr) == (0, "", "")
    assert (incoming / "CT.2.25.20200000000000000000000000011").is_file()
    assert (sent["MR"].returncode, sent["MR"].stdout) == (1, "")
    assert sent["MR"].stderr.splitlines() == [
        "E: No presentation context for: (MR) %s" % MR,
        "E: Store SCU Failed: 0006:0208 DIMSE No valid Presentation Context ID"]
    assert sorted(path.name for path in incoming.iterdir()) == ["CT.2.25.20200000000000000000000000011"]
    result = _services(peer, ["CTImageStorage", "MRImageStorage"])
    assert _table(result) == [accepted(EVR), refused(ABSTRACT)]
    assert result["message"] == ("C-ECHO success, but 1 of 2 required service(s) refused: "
                                 "MRImageStorage (abstract-syntax-not-supported)")


# --------------------------------------------------------------------------- discover
def test_discover_storage_proposes_every_storage_class_in_two_associations(service_peers):
    storescp = _services(service_peers["storescp"], None, discover="storage")
    assert [service["uid"] for service in storescp["services"]] == STORAGE_UIDS
    assert len(STORAGE_UIDS) > 127  # 170 on pynetdicom 3.0, 157 on 2.0: two associations either way
    refused_uids = {service["uid"] for service in storescp["services"] if not service["accepted"]}
    assert refused_uids == STORESCP_UNKNOWN_STORAGE & set(STORAGE_UIDS)
    assert {(s["required"], s["result"], s["transfer_syntax"]) for s in storescp["services"] if not s["accepted"]} <= {
        (False, ABSTRACT, None)}
    assert {(s["required"], s["result"], s["transfer_syntax"]) for s in storescp["services"] if s["accepted"]} == {
        (False, "acceptance", EVR)}
    # Discovery informs; it never fails the route.
    assert (storescp["outcome"], storescp["ok"]) == ("success", True)
    assert storescp["message"] == "C-ECHO success (0x0000); discovery: %d of %d SOP class(es) accepted" % (
        len(STORAGE_UIDS) - len(refused_uids), len(STORAGE_UIDS))

    peer = service_peers["pynetdicom"]  # counts its connections
    before = peer.connection_count()
    counted = _services(peer, None, discover="storage")
    assert peer.connection_count() - before == 2
    assert {s["uid"]: s["transfer_syntax"] for s in counted["services"] if s["accepted"]} == {
        CT: EVR, MR: IVR, SC: EVR, DX: EVR}
    assert counted["message"].endswith("discovery: 4 of %d SOP class(es) accepted" % len(STORAGE_UIDS))


def test_discover_worklist_on_wlmscpfs(service_peers):
    result = _services(service_peers["wlmscpfs"], None, discover="worklist")
    assert result["services"] == [{"sop_class": "ModalityWorklistInformationModelFind", "uid": MWL, "required": False,
                                   "accepted": True, "transfer_syntax": EVR, "result": "acceptance"}]
    assert (result["outcome"], result["ok"]) == ("success", True)


def test_discover_query_retrieve_on_dcmqrscp(service_peers):
    result = _services(service_peers["dcmqrscp"], None, discover="query_retrieve")
    # Patient Root, Study Root and Patient/Study Only, each FIND, MOVE and GET; pynetdicom's list also has
    # Repository Query and Composite Instance (Root) Retrieve, which dcmqrscp refuses with 3.
    qr_models = {"1.2.840.10008.5.1.4.1.2.%d.%d" % (model, service) for model in (1, 2, 3) for service in (1, 2, 3)}
    assert {s["uid"] for s in result["services"] if s["accepted"]} == qr_models
    assert {(s["result"], s["required"]) for s in result["services"] if s["uid"] not in qr_models} == {
        (ABSTRACT, False)}
    assert (result["outcome"], result["ok"]) == ("success", True)
    assert result["message"].endswith("discovery: 9 of %d SOP class(es) accepted" % len(result["services"]))


def test_the_module_reports_discovery_without_failing_the_task(service_peers):
    completed = run_module({"peers": [
        peer_entry(service_peers["storescp"], calling_ae_title=CALLING, discover="storage"),
        peer_entry(service_peers["wlmscpfs"], calling_ae_title=CALLING, discover="worklist")]})
    assert (completed.returncode, completed.stderr) == (0, "")
    document = json.loads(completed.stdout)
    assert not document.get("failed")
    storescp, wlmscpfs = document["results"]
    assert [(r["outcome"], r["ok"], len(r["services"])) for r in document["results"]] == [
        ("success", True, len(STORAGE_UIDS)), ("success", True, 1)]
    assert sum(s["accepted"] for s in storescp["services"]) == len(STORAGE_UIDS) - len(
        STORESCP_UNKNOWN_STORAGE & set(STORAGE_UIDS))
    assert wlmscpfs["services"][0]["result"] == "acceptance"


def test_a_refused_second_association_is_named(hostile_factory):
    """The echo's association (Verification and the first 127 services) is accepted, the next one is
    rejected: the outcome is that rejection, said to be association 2 of 2."""
    peer = hostile_factory("dicom-ok", reject_from=2, result=1, source=1, reason=1)
    (result,) = echo([peer_entry(peer, discover="storage")])
    assert peer.connection_count() == 2
    assert (result["outcome"], result["phase"], result["ok"]) == ("rejected", "associate", False)
    assert result["reject"] == {"result": "permanent", "source": "service-user", "reason": "no-reason-given"}
    first, rest = result["services"][:127], result["services"][127:]
    assert result["message"].startswith("association 2 of 2 (services %s to %s): A-ASSOCIATE-RJ " % (
        rest[0]["sop_class"], rest[-1]["sop_class"])), result["message"]
    assert {(s["accepted"], s["result"]) for s in first} == {(True, "acceptance")}
    assert len(rest) == len(STORAGE_UIDS) - 127
    assert {(s["accepted"], s["result"], s["transfer_syntax"]) for s in rest} == {(False, None, None)}


# --------------------------------------------------------------------------- bad input
BAD_SERVICES = {
    "unknown keyword": ({"services": ["CTImageStorag"]},
                        "peers[0] (p).services[0] 'CTImageStorag' is not a SOP class keyword pydicom knows; "
                        "did you mean CTImageStorage or RTImageStorage or MRImageStorage?"),
    "malformed UID": ({"services": ["1.2.840.10008.5.1.4.1.1.2."]},
                      "peers[0] (p).services[0] is not a valid UID: numbers joined by single dots, without leading "
                      "zeros (got '1.2.840.10008.5.1.4.1.1.2.')"),
    "SOP class as transfer syntax": (
        {"services": [{"sop_class": "CTImageStorage", "transfer_syntaxes": ["MRImageStorage"]}]},
        "peers[0] (p).services[0].transfer_syntaxes[0] MRImageStorage is a SOP class, not a transfer syntax"),
    "SOP class UID as transfer syntax": (
        {"services": [{"sop_class": "CTImageStorage", "transfer_syntaxes": [MR]}]},
        "peers[0] (p).services[0].transfer_syntaxes[0] %s is not a transfer syntax: pydicom knows it as MR Image "
        "Storage (SOP Class)" % MR),
    "duplicate": ({"services": ["CTImageStorage", CT]},
                  "peers[0] (p).services[1] names CTImageStorage, as peers[0] (p).services[0] does: list each SOP "
                  "class once"),
    "services on expect reject": ({"services": ["CTImageStorage"], "expect": "reject"},
                                  "peers[0] (p) sets services but expects reject: services are checked only on a "
                                  "route that must accept"),
}


def test_bad_services_are_invalid_input_before_any_traffic(hostile_factory):
    peer = hostile_factory("dicom-ok")
    cases = sorted(BAD_SERVICES)

    def run(case):
        options, _message = BAD_SERVICES[case]
        return run_module({"peers": [dict(peer_entry(peer, name="p"), **options)]})

    with ThreadPoolExecutor(len(cases)) as pool:
        completed = dict(zip(cases, pool.map(run, cases)))
    for case in cases:
        got = completed[case]
        assert (got.returncode, got.stderr) == (1, ""), case
        document = json.loads(got.stdout)
        assert (document["failed"], document["msg"]) == (True, "invalid input: " + BAD_SERVICES[case][1]), case
        assert "results" not in document and "Traceback" not in got.stdout
    assert peer.connection_count() == 0
