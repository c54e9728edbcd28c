"""Services beyond Verification: their syntax (pure), their resolution with pydicom, how they are split
into associations and how the peer's answers become results and the outcome."""
from __future__ import annotations

import struct
import types

import pytest

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import Classification, with_services
from ansible_collections.dicom.network.plugins.module_utils.echo_services import (
    SERVICES_PER_ASSOCIATION,
    Service,
    associations,
    context_answers,
    plan_peers,
    resolve_services,
    service_results,
)
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    EchoInputError,
    check_discover,
    check_services,
    validate_request,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
IMPLICIT, EXPLICIT, J2K_LOSSLESS = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"


def peer(**overrides):
    base = {"ae_title": "PACS", "host": "127.0.0.1", "port": 11112}
    base.update(overrides)
    return base


@pytest.mark.parametrize("services, message", [
    ("CTImageStorage", "services must be a list of SOP classes"),
    (["CT Image Storage"], "services[0] must be a pydicom keyword (letters and digits, like CTImageStorage) or a UID"),
    (["1.2.840.10008.5.1.4.1.1.02"], "services[0] is not a valid UID: numbers joined by single dots, without leading zeros"),
    (["1." + "2" * 70], "services[0] is not a valid UID: 72 characters, at most 64 allowed"),
    ([""], "services[0] must be a keyword or a UID"),
    ([{"transfer_syntaxes": ["JPEG2000Lossless"]}], "services[0].sop_class is required"),
    ([{"sop_class": "CTImageStorage", "ts": []}], "services[0] has unknown key(s) ts; valid keys are sop_class, transfer_syntaxes"),
    ([{"sop_class": "CTImageStorage", "transfer_syntaxes": []}], "services[0].transfer_syntaxes must be a non-empty list"),
    ([{"sop_class": "CTImageStorage", "transfer_syntaxes": ["JPEG2000Lossless", "JPEG2000Lossless"]}],
     "services[0].transfer_syntaxes[1] names JPEG2000Lossless twice"),
    (["CTImageStorage", {"sop_class": "CTImageStorage"}],
     "services[1] names CTImageStorage again (also services[0]); list each SOP class once"),
])
def test_service_syntax_mistakes_are_named(services, message):
    with pytest.raises(EchoInputError) as caught:
        check_services(services)
    assert str(caught.value).startswith(message)


def test_service_syntax_keeps_what_was_written():
    (plain, detailed) = check_services(["CTImageStorage", {"sop_class": ENHANCED_CT,
                                                           "transfer_syntaxes": ["JPEG2000Lossless", IMPLICIT]}])
    assert (plain.sop_class, plain.transfer_syntaxes, plain.where) == ("CTImageStorage", (), "services[0]")
    assert (detailed.sop_class, detailed.transfer_syntaxes) == (ENHANCED_CT, ("JPEG2000Lossless", IMPLICIT))


def test_discover_takes_a_family_only():
    assert check_discover("storage") == "storage"
    assert check_discover(None) is None
    with pytest.raises(EchoInputError, match=r"^discover must be one of storage, query_retrieve, worklist, all, got 'ct'"):
        check_discover("ct")


def test_a_peer_replaces_the_module_services_and_refusing_peers_get_none():
    request = validate_request({"services": ["CTImageStorage"], "discover": "worklist", "peers": [
        peer(name="a"), peer(name="b", services=["MRImageStorage"], discover="storage"),
        peer(name="c", services=[]), peer(name="d", expect="reject")]})
    a, b, c, d = request.peers
    assert [s.sop_class for s in a.services] == ["CTImageStorage"] and a.discover == "worklist"
    assert [s.sop_class for s in b.services] == ["MRImageStorage"] and b.discover == "storage"
    assert b.services[0].where == "peers[1] (b).services[0]"
    assert c.services == () and c.discover == "worklist"
    assert d.services == () and d.discover is None


@pytest.mark.parametrize("expect, keys", [("reject", {"services": ["CTImageStorage"]}),
                                          ("blocked", {"discover": "storage"})])
def test_services_on_a_peer_that_must_not_accept_are_a_mistake(expect, keys):
    with pytest.raises(EchoInputError) as caught:
        validate_request({"peers": [peer(name="x", expect=expect, **keys)]})
    assert str(caught.value) == "peers[0] (x) sets %s but expects %s: services are checked only on a route that must " \
        "accept" % (next(iter(keys)), expect)


def test_keywords_and_uids_resolve_with_the_default_transfer_syntaxes():
    services = resolve_services(check_services(
        ["CTImageStorage", {"sop_class": ENHANCED_CT, "transfer_syntaxes": ["JPEG2000Lossless", IMPLICIT]},
         "1.2.826.0.1.3680043.2.1143.1.1"]), None)
    assert services == (
        Service("CTImageStorage", CT, (IMPLICIT, EXPLICIT)),
        Service("EnhancedCTImageStorage", ENHANCED_CT, (J2K_LOSSLESS, IMPLICIT)),
        # A private SOP class keeps its UID as its name.
        Service("1.2.826.0.1.3680043.2.1143.1.1", "1.2.826.0.1.3680043.2.1143.1.1", (IMPLICIT, EXPLICIT)))


@pytest.mark.parametrize("services, message", [
    (["CTImageStorag"], "services[0] 'CTImageStorag' is not a SOP class keyword pydicom knows; did you mean "
                        "CTImageStorage or"),
    (["ctimagestorage"], "services[0] 'ctimagestorage' is not a SOP class keyword pydicom knows; did you mean "
                         "CTImageStorage?"),
    (["ImplicitVRLittleEndian"], "services[0] ImplicitVRLittleEndian is a transfer syntax, not a SOP class"),
    ([IMPLICIT], "services[0] 1.2.840.10008.1.2 is not a SOP class: pydicom knows it as Implicit VR Little Endian"),
    ([{"sop_class": "CTImageStorage", "transfer_syntaxes": ["CTImageStorage"]}],
     "services[0].transfer_syntaxes[0] CTImageStorage is a SOP class, not a transfer syntax"),
    ([{"sop_class": "CTImageStorage", "transfer_syntaxes": [CT]}],
     "services[0].transfer_syntaxes[0] 1.2.840.10008.5.1.4.1.1.2 is not a transfer syntax: pydicom knows it as "
     "CT Image Storage"),
    ([{"sop_class": "CTImageStorage", "transfer_syntaxes": ["JPEG2000Losless"]}],
     "services[0].transfer_syntaxes[0] 'JPEG2000Losless' is not a transfer syntax keyword pydicom knows; did you "
     "mean JPEG2000Lossless"),
    ([{"sop_class": "CTImageStorage", "transfer_syntaxes": ["ImplicitVRLittleEndian", IMPLICIT]}],
     "services[0].transfer_syntaxes names one transfer syntax twice (by keyword and UID)"),
    (["Verification"], "services[0]: Verification is proposed in every echo already"),
    (["CTImageStorage", CT], "services[1] names CTImageStorage, as services[0] does: list each SOP class once"),
])
def test_resolution_mistakes_are_named_with_close_matches(services, message):
    with pytest.raises(EchoInputError) as caught:
        resolve_services(check_services(services), None)
    assert str(caught.value).startswith(message)


def test_a_peer_mistake_names_the_peer():
    request = validate_request({"peers": [peer(name="ok"), peer(name="pacs", services=["CTImageStorge"])]})
    with pytest.raises(EchoInputError, match=r"^peers\[1\] \(pacs\)\.services\[0\] 'CTImageStorge' is not"):
        plan_peers(request.peers)


def test_discovery_adds_what_is_not_required_and_keeps_required_ones_required():
    services = resolve_services(check_services(["CTImageStorage"]), "storage")
    assert services[0] == Service("CTImageStorage", CT, (IMPLICIT, EXPLICIT), required=True)
    discovered = services[1:]
    assert len(discovered) > 150 and not any(s.required for s in discovered)
    assert CT not in {s.uid for s in discovered} and ENHANCED_CT in {s.uid for s in discovered}
    # pydicom's keyword in every result; pynetdicom's different one is understood as input.
    assert {s.sop_class for s in resolve_services((), "worklist")} == {"ModalityWorklistInformationModelFind"}
    assert resolve_services(check_services(["ModalityWorklistInformationFind"]), None)[0] == \
        resolve_services(check_services(["ModalityWorklistInformationModelFind"]), None)[0]
    everything = resolve_services((), "all")
    assert len({s.uid for s in everything}) == len(everything) > len(discovered)
    assert "1.2.840.10008.1.1" not in {s.uid for s in everything}


def test_peers_that_propose_the_same_share_one_plan_with_verification_first_in_each_association():
    request = validate_request({"services": ["CTImageStorage"], "peers": [
        peer(name="a"), peer(name="b"), peer(name="c", discover="all"), peer(name="d", services=[])]})
    plans = plan_peers(request.peers)
    assert plans[0] is plans[1]
    assert [len(contexts) for contexts in plans[0].contexts] == [2]
    assert [len(contexts) for contexts in plans[2].contexts] == [128, len(plans[2].services) - 127 + 1]
    assert all(contexts[0].abstract_syntax == "1.2.840.10008.1.1" for contexts in plans[2].contexts)
    assert plans[2].contexts[0][1].abstract_syntax == CT
    assert list(plans[2].contexts[0][1].transfer_syntax) == [IMPLICIT, EXPLICIT]
    assert (plans[3].services, [len(c) for c in plans[3].contexts]) == ((), [1])


def test_more_than_one_association_holds_carries_the_rest_in_further_ones():
    assert associations(()) == [()]
    services = tuple(Service(str(n), "1.2.3.%d" % n, (IMPLICIT,)) for n in range(300))
    split = associations(services)
    assert [len(part) for part in split] == [SERVICES_PER_ASSOCIATION, SERVICES_PER_ASSOCIATION, 46]
    assert sum(split, ()) == services


def test_answers_become_results_in_the_standards_words():
    services = (Service("CTImageStorage", CT, (IMPLICIT,)), Service("EnhancedCTImageStorage", ENHANCED_CT, (J2K_LOSSLESS,)),
                Service("X", "1.2.3", (IMPLICIT,)), Service("Y", "1.2.4", (IMPLICIT,), required=False))
    results = service_results(services, {CT: (0, EXPLICIT), ENHANCED_CT: (4, None), "1.2.4": (1, None)})
    assert [(r["sop_class"], r["accepted"], r["transfer_syntax"], r["result"], r["required"]) for r in results] == [
        ("CTImageStorage", True, EXPLICIT, "acceptance", True),
        ("EnhancedCTImageStorage", False, None, "transfer-syntaxes-not-supported", True),
        ("X", False, None, None, True),  # never negotiated
        ("Y", False, None, "user-rejection", False)]


def _result(sop_class, accepted, result, required=True):
    return {"sop_class": sop_class, "accepted": accepted, "result": result, "required": required}


def test_a_refused_required_service_turns_a_success_into_service_rejected():
    success = Classification("success", "release", "C-ECHO success (0x0000)", status=0)
    verdict = with_services(success, [_result("CTImageStorage", True, "acceptance"),
                                      _result("EnhancedCTImageStorage", False, "abstract-syntax-not-supported"),
                                      _result("ModalityWorklistInformationFind", False, None),
                                      _result("MRImageStorage", False, "abstract-syntax-not-supported", required=False)])
    assert (verdict.outcome, verdict.phase, verdict.status) == ("service_rejected", "associate", 0)
    assert verdict.message == ("C-ECHO success, but 2 of 3 required service(s) refused: EnhancedCTImageStorage "
                               "(abstract-syntax-not-supported), ModalityWorklistInformationFind (not answered)")


def test_accepted_services_and_discovery_are_counted_in_the_success_message():
    success = Classification("success", "release", "C-ECHO success (0x0000)", status=0)
    verdict = with_services(success, [_result("CTImageStorage", True, "acceptance"),
                                      _result("MRImageStorage", True, "acceptance", required=False),
                                      _result("PETImageStorage", False, "abstract-syntax-not-supported", required=False)])
    assert (verdict.outcome, verdict.message) == (
        "success", "C-ECHO success (0x0000); 1 required service(s) accepted; discovery: 1 of 2 SOP class(es) accepted")


def test_a_message_names_ten_refused_services_and_counts_the_rest():
    success = Classification("success", "release", "C-ECHO success (0x0000)", status=0)
    verdict = with_services(success, [_result("S%d" % n, False, "no-reason") for n in range(25)])
    assert verdict.message.endswith("S9 (no-reason) and 15 more (see services)")
    assert verdict.message.startswith("C-ECHO success, but 25 of 25 required service(s) refused: S0 (no-reason), ")


def test_other_outcomes_stay_what_they_are():
    refused = Classification("context_rejected", "associate", "association accepted but ...")
    assert with_services(refused, [_result("CTImageStorage", False, "abstract-syntax-not-supported")]) is refused


def _ac_item(context_id, result, transfer_syntax=b""):
    """A presentation context item of an A-ASSOCIATE-AC, decoded by pynetdicom from its wire bytes."""
    from pynetdicom.pdu_items import PresentationContextItemAC
    sub_item = bytes([0x40, 0]) + struct.pack(">H", len(transfer_syntax)) + transfer_syntax
    body = bytes([context_id, 0, result, 0]) + sub_item
    item = PresentationContextItemAC()
    item.decode(bytes([0x21, 0]) + struct.pack(">H", len(body)) + body)
    return item


def test_an_associate_ac_is_read_as_answers_by_sop_class_and_contexts_never_proposed():
    from pynetdicom.presentation import build_context
    proposed = []
    for context_id, uid in ((1, "1.2.840.10008.1.1"), (3, CT), (5, ENHANCED_CT)):
        context = build_context(uid)
        context.context_id = context_id
        proposed.append(context)
    pdu = types.SimpleNamespace(presentation_context=[
        _ac_item(1, 0, EXPLICIT.encode() + b"\x00"), _ac_item(3, 3), _ac_item(5, 0, IMPLICIT.encode()),
        _ac_item(7, 0, IMPLICIT.encode())])
    answers, unproposed = context_answers(pdu, proposed)
    assert answers == {"1.2.840.10008.1.1": (0, EXPLICIT), CT: (3, None), ENHANCED_CT: (0, IMPLICIT)}
    assert unproposed == [7]
