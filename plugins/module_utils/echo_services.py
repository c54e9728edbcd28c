# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services a route must provide, negotiated next to Verification in the echo's own association.

A peer that echoes may still refuse the SOP class a modality sends, or the transfer syntax it sends
it in. Proposing those presentation contexts in the A-ASSOCIATE-RQ and reading the A-ASSOCIATE-AC
answers that without sending any data. This module turns the syntax-checked ``services`` and
``discover`` of echo_validation into UIDs with pydicom (on the managed host), splits them into
associations (one context each, at most 127 next to Verification), and turns the peer's answers into
results. The engine does the negotiation; pydicom and pynetdicom name the SOP classes.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import (
    CONTEXT_RESULTS, Classification, Observation, classify, with_services)
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    EchoInputError, PeerSpec, ServiceSpec)

try:
    import pydicom.uid as pydicom_uid
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import build_context, presentation, sop_class
except ImportError:  # reported to the user by _pynetdicom_dep.ensure_pynetdicom()
    pydicom_uid = None

VERIFICATION_UID = "1.2.840.10008.1.1"
# Presentation context IDs are the odd numbers 1-255: 128 contexts, the first one Verification's.
SERVICES_PER_ASSOCIATION = 127
# pynetdicom's lists of the contexts each family of services uses, by the names it publishes.
_FAMILY_CONTEXTS = {
    "storage": ("AllStoragePresentationContexts",),
    "query_retrieve": ("QueryRetrievePresentationContexts",),
    "worklist": ("BasicWorklistManagementPresentationContexts",),
}


@dataclass(frozen=True)
class Service:
    """One presentation context to propose: a SOP class and its transfer syntaxes, as UIDs."""

    sop_class: str  # pydicom's keyword, or the UID of a SOP class pydicom does not name
    uid: str
    transfer_syntaxes: Tuple[str, ...]
    required: bool = True


def default_transfer_syntaxes() -> Tuple[str, ...]:
    return (str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian))


@functools.lru_cache(maxsize=None)
def _known_sop_classes() -> Dict[str, str]:
    # pynetdicom's names and pydicom's, where they differ (ModalityWorklistInformationFind and
    # ModalityWorklistInformationModelFind): users copy either.
    known = {name: str(value) for module in (pydicom_uid, sop_class) for name, value in vars(module).items()
             if isinstance(value, UID) and value.type == "SOP Class"}
    known.update({UID(uid).keyword: uid for uid in list(known.values()) if UID(uid).keyword})
    return known


@functools.lru_cache(maxsize=None)
def _known_transfer_syntaxes() -> Dict[str, str]:
    return {name: str(value) for name, value in vars(pydicom_uid).items()
            if isinstance(value, UID) and value.type == "Transfer Syntax" and value.keyword == name}


def _suggest(name: str, known: Sequence[str]) -> str:
    lowered = {k.lower(): k for k in known}
    matches = [lowered[name.lower()]] if name.lower() in lowered else \
        difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return "; did you mean %s?" % " or ".join(matches) if matches else ""


def _resolve(name: str, where: str, kind: str, known: Dict[str, str]) -> Tuple[str, str]:
    """(keyword or UID, UID) of a SOP class or transfer syntax; EchoInputError names ``where``."""
    if name[0].isdigit():
        uid_type = UID(name).type
        expected = "SOP Class" if kind == "SOP class" else "Transfer Syntax"
        if uid_type and uid_type != expected:
            raise EchoInputError("%s %s is not a %s: pydicom knows it as %s (%s)"
                                 % (where, name, kind, UID(name).name, uid_type))
        return (UID(name).keyword or name), name
    if name not in known:
        other = _known_transfer_syntaxes() if kind == "SOP class" else _known_sop_classes()
        if name in other:
            raise EchoInputError("%s %s is a %s, not a %s" % (
                where, name, "transfer syntax" if kind == "SOP class" else "SOP class", kind))
        raise EchoInputError("%s %r is not a %s keyword pydicom knows%s"
                             % (where, name, kind, _suggest(name, list(known))))
    # pydicom's keyword where pynetdicom's differs, so that one SOP class has one name in every result.
    return (UID(known[name]).keyword or name), known[name]


def _family_uids(family: str) -> List[str]:
    names = _FAMILY_CONTEXTS.get(family) or tuple(
        name for name in dir(presentation) if name.endswith("PresentationContexts")
        and name not in ("VerificationPresentationContexts", "StoragePresentationContexts"))
    uids: List[str] = []
    for name in names:
        for context in getattr(presentation, name, ()):
            uid = str(context.abstract_syntax)
            if uid not in uids and uid != VERIFICATION_UID:
                uids.append(uid)
    return uids


def resolve_services(specs: Sequence[ServiceSpec], discover: Optional[str]) -> Tuple[Service, ...]:
    """The contexts to propose for one peer: its required services, then those ``discover`` adds."""
    if not specs and not discover:
        return ()
    sop_classes, syntaxes = _known_sop_classes(), _known_transfer_syntaxes()
    services: List[Service] = []
    seen: Dict[str, str] = {}
    for spec in specs:
        label = spec.where
        name, uid = _resolve(spec.sop_class, label, "SOP class", sop_classes)
        if uid == VERIFICATION_UID:
            raise EchoInputError("%s: Verification is proposed in every echo already; list only the services "
                                 "beyond it" % label)
        if uid in seen:
            raise EchoInputError("%s names %s, as %s does: list each SOP class once" % (label, name, seen[uid]))
        seen[uid] = label
        transfer = tuple(_resolve(syntax, "%s.transfer_syntaxes[%d]" % (label, index), "transfer syntax",
                                  syntaxes)[1] for index, syntax in enumerate(spec.transfer_syntaxes))
        if len(set(transfer)) < len(transfer):
            raise EchoInputError("%s.transfer_syntaxes names one transfer syntax twice (by keyword and UID)" % label)
        services.append(Service(name, uid, transfer or default_transfer_syntaxes()))
    if discover:
        for uid in _family_uids(discover):
            if uid not in seen:
                services.append(Service(UID(uid).keyword or uid, uid, default_transfer_syntaxes(), required=False))
    return tuple(services)


@dataclass(frozen=True)
class ServicePlan:
    """What one peer proposes: its services, and the presentation contexts of each association
    (Verification's first in each; one association without services)."""

    services: Tuple[Service, ...]
    parts: List[Tuple[Service, ...]]
    contexts: List[list]


def plan_peers(peers: Sequence[PeerSpec]) -> Dict[int, ServicePlan]:
    """Each peer's plan (by its index), every keyword and UID checked before any traffic. Peers that
    propose the same share one plan: its contexts are built once (4 ms for 127 services, as pynetdicom
    checks every UID), and associate() copies them for each association."""
    verification = build_context(VERIFICATION_UID, list(default_transfer_syntaxes()))
    plans: Dict[Tuple[Tuple[ServiceSpec, ...], Optional[str]], ServicePlan] = {}
    by_peer: Dict[int, ServicePlan] = {}
    for peer in peers:
        key = (peer.services, peer.discover)
        if key not in plans:
            # A ServiceSpec's `where` names its peer already when the peer gave it.
            services = resolve_services(peer.services, peer.discover)
            parts = associations(services)
            plans[key] = ServicePlan(services, parts, [[verification] + [
                build_context(service.uid, list(service.transfer_syntaxes)) for service in part] for part in parts])
        by_peer[peer.index] = plans[key]
    return by_peer


def negotiate_remaining(run: Any, associate: Callable[..., None]) -> Optional[Classification]:
    """The services that did not fit in the echo's association of the engine's ``run``: one more
    association for each 127, by ``associate(run, contexts, echo=False)`` (to the address that answered,
    under the same deadlines), each only negotiated and released. The first failure ends them and is
    returned; the echo's own observation and timings stay the run's. Nothing when the echo failed."""
    if len(run.plan.parts) < 2 or classify(run.obs).outcome != "success":
        return None
    echoed, timings, source_address = run.obs, dict(run.timings), run.source_address
    try:
        for number in range(2, len(run.plan.parts) + 1):
            run.obs, run.release_complete = Observation.of_peer(run.spec, count=0), False
            associate(run, run.plan.contexts[number - 1], echo=False)
            verdict = classify(run.obs)
            if verdict.outcome != "success":
                part = run.plan.parts[number - 1]
                verdict.message = "association %d of %d (services %s to %s): %s" % (
                    number, len(run.plan.parts), part[0].sop_class, part[-1].sop_class, verdict.message)
                return verdict
        return None
    finally:
        run.obs, run.source_address = echoed, source_address
        run.timings.update({key: value for key, value in timings.items() if key != "total"})


def associations(services: Sequence[Service]) -> List[Tuple[Service, ...]]:
    """The services of each association, in order; at least one (Verification alone)."""
    if not services:
        return [()]
    return [tuple(services[start:start + SERVICES_PER_ASSOCIATION])
            for start in range(0, len(services), SERVICES_PER_ASSOCIATION)]


def service_results(services: Sequence[Service], answers: Dict[str, Tuple[Optional[int], Optional[str]]]
                    ) -> List[Dict[str, Any]]:
    """One result per service from the A-ASSOCIATE-AC answers (by SOP class UID: result code, transfer
    syntax); a service without an answer was never negotiated (its association did not get that far)."""
    results = []
    for service in services:
        code, transfer_syntax = answers.get(service.uid, (None, None))
        results.append({
            "sop_class": service.sop_class, "uid": service.uid, "required": service.required,
            "accepted": code == 0, "transfer_syntax": transfer_syntax if code == 0 else None,
            "result": None if code is None else CONTEXT_RESULTS.get(code, "result-%d" % code),
        })
    return results


def context_answers(pdu: Any, proposed: Sequence[Any]) -> Tuple[Dict[str, Tuple[Optional[int], Optional[str]]], List[int]]:
    """An A-ASSOCIATE-AC's answer to each proposed context (by abstract syntax UID: result code, and the
    transfer syntax of an accepted one), and the IDs of the contexts it answers that were never proposed."""
    by_id = {context.context_id: str(context.abstract_syntax) for context in proposed}
    answers: Dict[str, Tuple[Optional[int], Optional[str]]] = {}
    unproposed: List[int] = []
    for item in pdu.presentation_context:
        if item.context_id not in by_id:
            unproposed.append(item.context_id)
            continue
        result = item.result if item.result is not None else item.result_reason
        answers[by_id[item.context_id]] = (result, pdu_text(item.transfer_syntax) if result == 0 else None)
    return answers, unproposed


def pdu_text(value: Any) -> Optional[str]:
    """A UID or name as a PDU carries it (bytes or text, padded with NUL or spaces), as text; None stays None."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return None if text is None else str(text).strip("\x00 ")


def verdict_with_services(run: Any) -> Tuple[Classification, List[Dict[str, Any]]]:
    """The engine's ``run`` classified with its services (a refused required one fails the peer), and their results."""
    services = service_results(run.plan.services, run.answers)
    return run.later_failure or with_services(classify(run.obs), services), services
