# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The echo audit matrix: per-host echo results in, one report document out.

Pure functions, free of Ansible. The input is what the ``echo_audit`` role gathers for every
source host: the plan resolved by :mod:`audit_inventory` and what its ``dicom.network.echo``
call wrote into the run's journal (which may say the host was unreachable or the task failed).
Every planned (source host, calling AE, peer) becomes exactly one cell; a check that did not
run becomes a ``not_run`` cell that says why, so nothing is silently dropped.

The document is the JSON report (``SCHEMA_VERSION``) and the baseline of the next run.
Every string that reaches it is cleaned by :func:`clean_text`: AE titles, descriptions and
whatever a peer sent are untrusted, and the renderers escape them again for their format.

A 300 x 300 matrix has 90,000 cells of 27 fields, 72 MB as JSON, most of it repeated: every
cell names its row and column again, and the fields a peer answered (outcome, message,
implementation, address...) take a few hundred distinct values. :func:`build_packed` therefore
builds the *packed* form the report step renders from (about 8 times smaller, as fast to
read): the report's top-level keys, the distinct answers once in ``variants``, and per cell
``[row, column, variant, rtt, timings, started_at]`` in ``packed_cells``. :func:`cells_of`
gives the cells of either form, :func:`build_report` the report itself.

A cell's ``services`` (what the module negotiated besides Verification: required services and
discovered ones) are part of its variant: a route's services answer the same from every host.
A variant of a report written before services existed has none (an empty list in its cells), and a
baseline cell without ``services`` shows no service change in the diff.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Mapping
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import OUTCOMES
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import type_name

SCHEMA_VERSION = 1
NOT_RUN = "not_run"
OUTCOME_ORDER = OUTCOMES + (NOT_RUN,)
NOT_RUN_REASONS = ("unreachable", "task_failed", "skipped", "no_result", "interrupted", "setup_failed")
BASELINE_SCOPES = ("all", "run")
DIFF_KINDS = ("broke", "fixed", "appeared", "disappeared", "changed")
MAX_TEXT = 500
RTT_KEYS = ("min", "avg", "max")
TIMING_KEYS = ("connect", "associate", "echo", "release", "total")
PACKING = 1
# A variant: what one check answered, shared by every cell that answered the same.
(V_EXPECT, V_OUTCOME, V_OK, V_MESSAGE, V_PHASE, V_STATUS, V_REJECT, V_VERSION, V_CLASS_UID, V_MAX_PDU, V_ADDRESS,
 V_SOURCE_ADDRESS, V_TRANSFER_SYNTAX, V_NOT_RUN_REASON, V_SERVICES, V_TLS, V_ATTEMPTS) = range(17)
# A variant's TLS certificate (None: no TLS, or none seen), in TLS_FIELDS order (the module's tls_certificate).
TLS_FIELDS = ("sha256", "not_after", "days_left", "verified", "subject", "issuer", "note")
# A variant's services: a tuple of services, each a tuple in SERVICE_FIELDS order (a cell's dictionaries).
SERVICE_FIELDS = ("sop_class", "uid", "required", "accepted", "transfer_syntax", "result")
S_SOP_CLASS, S_UID, S_REQUIRED, S_ACCEPTED, S_TRANSFER_SYNTAX, S_RESULT = range(6)
# A packed cell. rtt and timings are lists in RTT_KEYS / TIMING_KEYS order where False marks a key the
# module did not return (a number is never False: compare with "is"), or None when it returned none;
# rtt is one number when min, avg and max are the same non-zero number (one echo per check, the default).
C_ROW, C_COLUMN, C_VARIANT, C_RTT, C_TIMINGS, C_STARTED_AT = range(6)


class AuditMatrixError(ValueError):
    """The gathered results or the baseline cannot be turned into a report; says which and why."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a matrix is built or parsed.

    Both allocate hundreds of thousands of containers, and every few thousand allocations the
    collector would walk the whole heap again (Ansible's variables included): half the time of a
    300 x 300 matrix. The trees built here have no reference cycles, so reference counting frees them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_FLOAT = frozenset((float,))


# C0 and C1 controls, bidirectional marks and overrides (a line could read differently from its
# bytes), line and paragraph separators, lone surrogates and non-characters.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")


def _replace_unsafe(match: Any) -> str:
    return " " if match.group(0) in "\r\n\t" else "\ufffd"


def clean_text(value: Any, limit: int = MAX_TEXT) -> Optional[str]:
    """One printable line from untrusted text: controls become U+FFFD, newlines spaces, long text is cut."""
    if value is None:
        return None
    text = "%s" % (value,)
    # Most text is printable ASCII: two C-level checks instead of a regular expression.
    if not (text.isascii() and text.isprintable()):
        text = _UNSAFE_CHARACTERS.sub(_replace_unsafe, text)
    if len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    return text


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return round(value, 3) if math.isfinite(value) else None


class _Numbers:
    """Round trips and timings of every cell, packed at once: 720,000 numbers at 300 x 300.

    Each must be a finite number rounded to 3 decimals (:func:`_number`). round() costs 0.5 µs and a
    Python call per number more, so when every value is a float (what the module returns) each
    distinct one is rounded once and the rest is looked up in C.
    """

    def __init__(self) -> None:
        self._memo: Dict[float, Optional[float]] = {}

    def pack(self, value: Any, keys: Sequence[str]) -> Optional[List[Any]]:
        """``rtt_ms`` or ``timings_ms`` as a list in ``keys`` order (False: key absent), None when none is there."""
        if not isinstance(value, dict) and not isinstance(value, Mapping):
            return None
        packed = [_number(value[key]) if key in value else False for key in keys]
        return None if all(item is False for item in packed) else packed

    def pack_many(self, values: Sequence[Any], keys: Sequence[str]) -> List[Optional[List[Any]]]:
        """:meth:`pack` of each value."""
        packed: List[Optional[List[Any]]] = [None] * len(values)
        where: List[int] = []
        found: List[Tuple[Any, ...]] = []
        take = itemgetter(*keys)
        for index, value in enumerate(values):
            if value.__class__ is dict:
                try:
                    found.append(take(value))
                    where.append(index)
                    continue
                except KeyError:
                    pass
            packed[index] = self.pack(value, keys)
        flat = list(chain.from_iterable(found))
        # Only floats: 1, 1.0 and True are equal dictionary keys but not equal numbers here.
        if set(map(type, flat)) <= _FLOAT:
            memo = self._memo
            for item in set(flat).difference(memo):
                memo[item] = _number(item)
            # -0.0 == 0.0 shares their entry but prints differently; a zero float rounds to itself.
            flat = list(map(memo.__getitem__, flat)) if not flat.count(0.0) else \
                [memo[item] if item else item for item in flat]
        else:
            flat = [_number(item) for item in flat]
        width = len(keys)
        for position, index in enumerate(where):
            packed[index] = flat[position * width:(position + 1) * width]
        return packed

    def pack_rtts(self, values: Sequence[Any]) -> List[Any]:
        """:meth:`pack_many` for ``rtt_ms``, one number where min, avg and max are one non-zero number."""
        return [rtt[0] if rtt and _one_number(rtt) else rtt for rtt in self.pack_many(values, RTT_KEYS)]


def _one_number(values: Sequence[Any]) -> bool:
    # Not zero: -0.0 == 0.0 but prints differently.
    return isinstance(values[0], float) and values[0] != 0 and values[0] == values[1] == values[2]


def rtt_values(packed: Any) -> List[Any]:
    """min, avg and max of a packed rtt (None for each one missing)."""
    if packed is None:
        return [None, None, None]
    if isinstance(packed, (int, float)):
        return [packed, packed, packed]
    return [None if item is False else item for item in packed]


def unpack_numbers(packed: Any, keys: Sequence[str]) -> Optional[Dict[str, Optional[float]]]:
    """The ``rtt_ms`` / ``timings_ms`` dictionary of a packed cell."""
    if packed is None or packed == []:
        return None
    if isinstance(packed, (int, float)):
        packed = (packed,) * len(keys)
    return {key: item for key, item in zip(keys, packed) if item is not False}


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _reject(value: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(value, Mapping):
        return None
    return {key: (value[key] if isinstance(value[key], int) and not isinstance(value[key], bool)
                  else clean_text(value[key], 80)) for key in ("result", "source", "reason") if key in value}


def _site(value: Any) -> str:
    return clean_text(value, 80) or ""


def _ae_meta(ae: Mapping[str, Any]) -> Dict[str, Any]:
    port = _int(ae.get("port"))
    return {
        "name": clean_text(ae.get("name"), 120) or "",
        "ae_title": clean_text(ae.get("ae_title"), 64) or "",
        "host": clean_text(ae.get("host"), 255) or "",
        "port": port,
        "site": _site(ae.get("site")),
        "kind": clean_text(ae.get("kind"), 40) or "",
        "description": clean_text(ae.get("description")) or "",
    }


def _row_sort_key(row: Mapping[str, Any]) -> Tuple:
    return (row["site"] == "", row["site"], row["kind"], row["calling_ae_title"], row["source_host"], row["calling"])


def _column_sort_key(column: Mapping[str, Any]) -> Tuple:
    return (column["site"] == "", column["site"], column["kind"], column["ae_title"], column["name"],
            column["host"], column["port"] or 0)


def _task_message(result: Mapping[str, Any]) -> str:
    message = result.get("msg") or result.get("skip_reason") or result.get("stderr") or ""
    return clean_text(message, 300) or "no message"


def _call_problem(echo: Any, item: Optional[Mapping[str, Any]], source: str,
                  missing: Optional[Tuple[str, str]] = None) -> Optional[Tuple[str, str]]:
    """(not_run_reason, message) when the module did not return per-peer results for a call."""
    if item is None:
        if isinstance(echo, Mapping) and echo.get("unreachable"):
            return "unreachable", "host unreachable: %s" % _task_message(echo)
        if isinstance(echo, Mapping) and echo.get("skipped"):
            return "skipped", "echo task skipped: %s" % _task_message(echo)
        if isinstance(echo, Mapping) and echo.get("failed"):
            return "task_failed", "echo task failed: %s" % _task_message(echo)
        return missing or ("no_result", "the echo task did not run for this calling AE (the host left the play earlier)")
    if item.get("unreachable"):
        probe = item.get("echoed_from")
        if isinstance(probe, str) and probe and probe != source:
            return "unreachable", "probe %s unreachable: %s" % (clean_text(probe, 255), _task_message(item))
        return "unreachable", "host unreachable: %s" % _task_message(item)
    if isinstance(item.get("results"), list):
        return None
    if item.get("skipped"):
        return "skipped", "echo task skipped: %s" % _task_message(item)
    # The role registers with failed_when: false, which clears "failed" but keeps the message.
    if item.get("failed") or item.get("msg") or item.get("exception"):
        return "task_failed", "echo task failed: %s" % _task_message(item)
    return "no_result", "the echo task returned no results"


def _hashable(value: Any) -> Any:
    """A variant as a dictionary key (its reject is a dictionary)."""
    return value if value is None or not isinstance(value, dict) else tuple(value.items())


def _service(entry: Any) -> Optional[Tuple[Any, ...]]:
    """One service of a module result, cleaned, in SERVICE_FIELDS order (None: not a service)."""
    if not isinstance(entry, Mapping):
        return None
    get = entry.get
    return (clean_text(get("sop_class"), 80) or clean_text(get("uid"), 80) or "?", clean_text(get("uid"), 80),
            get("required") is True, get("accepted") is True, clean_text(get("transfer_syntax"), 80),
            clean_text(get("result"), 40))


def pack_services(value: Any) -> Tuple[Tuple[Any, ...], ...]:
    """A cell's or result's ``services`` list as a variant holds it."""
    if not value or not isinstance(value, (list, tuple)):
        return ()
    return tuple(service for service in map(_service, value) if service is not None)


def pack_certificate(value: Any) -> Optional[Tuple[Any, ...]]:
    """The module's ``tls_certificate`` of a result as a variant holds it (cleaned), or None."""
    if not isinstance(value, Mapping) or not value.get("sha256"):
        return None
    days = value.get("days_left")
    return (clean_text(value.get("sha256"), 100), clean_text(value.get("not_after"), 40),
            days if isinstance(days, int) and not isinstance(days, bool) else None, value.get("verified") is True,
            clean_text(value.get("subject"), 300), clean_text(value.get("issuer"), 300), clean_text(value.get("note"), 300))


def variant_certificate(variant: Sequence[Any]) -> Optional[Dict[str, Any]]:
    """A variant's TLS certificate as a dictionary; None for a variant without one (or of an older report)."""
    packed = variant[V_TLS] if len(variant) > V_TLS else None
    return dict(zip(TLS_FIELDS, packed)) if packed else None


def variant_attempts(variant: Sequence[Any]) -> int:
    """How many times the check was echoed (1 for a variant of an older report)."""
    return variant[V_ATTEMPTS] if len(variant) > V_ATTEMPTS and variant[V_ATTEMPTS] else 1


def variant_services(variant: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """A variant's services; none for a variant of a report written before services existed."""
    return variant[V_SERVICES] if len(variant) > V_SERVICES and variant[V_SERVICES] else ()


def refused(service: Sequence[Any]) -> bool:
    """A service the peer negotiated and did not accept (a service never negotiated is not refused)."""
    return not service[S_ACCEPTED] and service[S_RESULT] is not None


def service_states(services: Optional[Sequence[Sequence[Any]]]) -> Optional[Dict[str, Tuple[str, bool]]]:
    """The required services that were negotiated, by UID (or name): (name, accepted). None: not known."""
    if services is None:
        return None
    return {service[S_UID] or service[S_SOP_CLASS]: (service[S_SOP_CLASS], bool(service[S_ACCEPTED]))
            for service in services if service[S_REQUIRED] and (service[S_ACCEPTED] or refused(service))}


class _Variants:
    """The distinct answers of a matrix; a cell refers to its answer by index.

    Answers repeat: the same outcome, message and peer implementation for every check of a peer.
    Each distinct raw answer is cleaned once; the raw key keeps every value's class, as clean_text
    turns 1 and True into different texts although they are equal (and hash equal) in Python.
    """

    def __init__(self) -> None:
        self.values: List[Tuple[Any, ...]] = []
        self._by_value: Dict[Tuple[Any, ...], int] = {}
        self._by_raw: Dict[Tuple[Any, ...], int] = {}
        self._services: Dict[Any, Tuple[Tuple[Any, ...], ...]] = {}

    def add(self, variant: Tuple[Any, ...]) -> int:
        key = tuple(_hashable(item) for item in variant)
        index = self._by_value.get(key)
        if index is None:
            index = self._by_value[key] = len(self.values)
            self.values.append(variant)
        return index

    def not_run(self, expect: str, reason: str, message: str) -> int:
        return self.add((expect, NOT_RUN, False, message, None, None, None, None, None, None, None, None, None, reason,
                         (), None, 1))

    def services(self, value: Any) -> Tuple[Tuple[Any, ...], ...]:
        """:func:`pack_services` of a result's services, cleaned once per distinct list (a route's
        services answer the same from every host)."""
        if not value:
            return ()
        try:
            key: Any = tuple(tuple(map(entry.get, SERVICE_FIELDS)) for entry in value)
            key = (key, tuple(type(item) for entry in key for item in entry))
            packed = self._services.get(key)
        except (AttributeError, TypeError):
            key, packed = None, None
        if packed is None:
            packed = pack_services(value)
            if key is not None:
                self._services[key] = packed
        return packed

    def answer(self, expect: str, result: Mapping[str, Any]) -> int:
        """The variant of one module result (a result of dicom.network.echo for one peer)."""
        get = result.get
        peer = get("peer")
        if not isinstance(peer, dict) and not isinstance(peer, Mapping):
            peer = {}
        raw = (expect, get("outcome"), get("ok") is True, get("message"), get("phase"), get("status"),
               peer.get("implementation_version_name"), peer.get("implementation_class_uid"), peer.get("max_pdu"),
               get("address"), get("source_address"), get("transfer_syntax"), self.services(get("services")),
               pack_certificate(get("tls_certificate")), _int(get("attempts")) or 1)
        reject = get("reject")
        if reject is None:
            try:
                key = raw + tuple(map(type, raw))
                return self._by_raw[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable value where a text was expected: no shortcut
                key = None
        else:
            key = None
        index = self.add((
            expect, clean_text(raw[1], 40) or "unknown", raw[2], clean_text(raw[3]) or "", clean_text(raw[4], 20),
            _int(raw[5]), _reject(reject), clean_text(raw[6], 80), clean_text(raw[7], 80), _int(raw[8]),
            clean_text(raw[9], 80), clean_text(raw[10], 80), clean_text(raw[11], 80), None, raw[12], raw[13], raw[14]))
        if key is not None:
            self._by_raw[key] = index
        return index


class _Columns:
    """Called AEs seen in any plan or result; one column per distinct (name, AE title, host, port)."""

    def __init__(self) -> None:
        self._by_key: Dict[Tuple[str, str, str, Optional[int]], Dict[str, Any]] = {}
        self._by_raw: Dict[Tuple[Any, ...], Dict[str, Any]] = {}

    def get(self, ae: Any) -> Dict[str, Any]:
        # Every host's plan describes the same peers again: clean each distinct peer once. The first
        # description of a column wins, as without the shortcut.
        raw = (ae.get("name"), ae.get("ae_title"), ae.get("host"), ae.get("port"))
        try:
            raw += tuple(map(type, raw))
            column = self._by_raw.get(raw)
        except TypeError:
            raw, column = None, None
        if column is None:
            meta = _ae_meta(ae)
            key = _column_key(meta)
            if key not in self._by_key:
                meta["inline"] = bool(ae.get("inline"))
                self._by_key[key] = meta
            column = self._by_key[key]
            if raw is not None:
                self._by_raw[raw] = column
        return column

    def finish(self) -> List[Dict[str, Any]]:
        return _name_columns(sorted(self._by_key.values(), key=_column_sort_key))


def _column_key(column: Mapping[str, Any]) -> Tuple[str, str, str, Optional[int]]:
    """What makes a column distinct: one called AE (name, AE title, host, port)."""
    return column["name"], column["ae_title"], column["host"].lower(), column["port"]


def _name_columns(columns: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each column's id: its name, or name (AE@host:port) where two columns share a name."""
    names: Dict[str, int] = {}
    for column in columns:
        names[column["name"]] = names.get(column["name"], 0) + 1
    for column in columns:
        # Inline peers on two hosts may share a name while pointing at different AEs.
        unique = names[column["name"]] == 1
        column["id"] = column["name"] if unique else "%s (%s@%s:%s)" % (
            column["name"], column["ae_title"], column["host"], column["port"])
    return columns


def _plan(host: str, plan: Any) -> Mapping[str, Any]:
    if not isinstance(plan, Mapping) or not isinstance(plan.get("calls"), list) \
            or not isinstance(plan.get("aes"), Mapping):
        raise AuditMatrixError("host %s: no peer plan was gathered (the plan step, dicom.network.echo_audit_plan, "
                               "must run before the report)" % host)
    return plan


def _items_by_calling(echo: Any, calls: Sequence[Any] = ()) -> Dict[str, Mapping[str, Any]]:
    """The echo call results of a host, keyed by the calling AE they ran for.

    The role makes one call per host, each peer carrying its calling AE title: that call's results
    are split by calling AE here. A loop item that names its calling AE (a string, or a call) is
    that AE's call, as journals of older runs have it.
    """
    items: Dict[str, Mapping[str, Any]] = {}
    results = echo.get("results") if isinstance(echo, Mapping) else None
    if not isinstance(results, list):
        return items
    by_title = {}
    for call in calls:
        if isinstance(call, Mapping) and isinstance(call.get("calling"), str):
            by_title.setdefault(str(call.get("calling_ae_title") or "").strip(), call["calling"])
    for item in results:
        if not isinstance(item, Mapping):
            continue
        call = item.get("item")
        if isinstance(call, str):
            items[call] = item
        elif isinstance(call, Mapping) and isinstance(call.get("calling"), str):
            items[call["calling"]] = item
        else:
            answers = item.get("results")
            if not isinstance(answers, list):
                # Failed or unreachable before any peer: the same reason for every calling AE.
                items.update((calling, item) for calling in by_title.values())
                continue
            split: Dict[str, List[Any]] = {calling: [] for calling in by_title.values()}
            for answer in answers:
                title = str(answer.get("calling_ae_title") or "").strip() if isinstance(answer, Mapping) else ""
                if title in by_title:
                    split[by_title[title]].append(answer)
            for calling, answered in split.items():
                items[calling] = dict(item, results=answered)
    return items


class Matrix:
    """Rows, columns, the distinct answers (variants) and the packed cells, in row then column order."""

    def __init__(self, rows: List[Dict[str, Any]], columns: List[Dict[str, Any]], variants: List[Sequence[Any]],
                 cells: List[List[Any]]) -> None:
        self.rows, self.columns, self.variants, self.cells = rows, columns, variants, cells

    def cell(self, packed: Sequence[Any]) -> Dict[str, Any]:
        """One cell of the report, as a dictionary."""
        row, column, variant = self.rows[packed[C_ROW]], self.columns[packed[C_COLUMN]], self.variants[packed[C_VARIANT]]
        reject = variant[V_REJECT]
        return {
            "row": row["id"], "column": column["id"], "source_host": row["source_host"],
            "calling_ae_title": row["calling_ae_title"], "calling_site": row["site"], "peer": column["name"],
            "called_ae_title": column["ae_title"], "called_site": column["site"], "peer_host": column["host"],
            "peer_port": column["port"], "expect": variant[V_EXPECT], "outcome": variant[V_OUTCOME],
            "ok": variant[V_OK], "message": variant[V_MESSAGE], "phase": variant[V_PHASE], "status": variant[V_STATUS],
            "reject": dict(reject) if reject is not None else None,
            "rtt_ms": unpack_numbers(packed[C_RTT], RTT_KEYS), "timings_ms": unpack_numbers(packed[C_TIMINGS], TIMING_KEYS),
            "peer_implementation_version": variant[V_VERSION], "peer_implementation_class_uid": variant[V_CLASS_UID],
            "peer_max_pdu": variant[V_MAX_PDU], "address": variant[V_ADDRESS],
            "source_address": variant[V_SOURCE_ADDRESS], "transfer_syntax": variant[V_TRANSFER_SYNTAX],
            "started_at": packed[C_STARTED_AT], "not_run_reason": variant[V_NOT_RUN_REASON],
            "services": [dict(zip(SERVICE_FIELDS, service)) for service in variant_services(variant)],
            "tls_certificate": variant_certificate(variant), "attempts": variant_attempts(variant),
        }

    def dicts(self) -> Iterator[Dict[str, Any]]:
        """Every cell as a dictionary, one at a time."""
        return (self.cell(packed) for packed in self.cells)


def collect(
    plans: Mapping[str, Any], results: Optional[Mapping[str, Any]] = None,
    missing: Optional[Tuple[str, str]] = None, setup_failures: Optional[Mapping[str, Any]] = None,
) -> Matrix:
    """The matrix of every planned check, sorted by site, kind and AE title.

    ``plans`` maps each source host to its plan, ``results`` to its echo results as
    :func:`results_from_journal` gives them (missing or ``None`` when the task never ran there). ``missing`` is the (reason, message)
    of hosts without any result, when the caller knows why (an interrupted play). ``setup_failures``
    maps hosts whose preparation failed (no pynetdicom virtualenv) to the reason their echo never ran.
    """
    if not isinstance(plans, Mapping):
        raise AuditMatrixError("plans must be a dictionary of source host: plan, got %s" % type_name(plans))
    if results is None:
        results = {}
    if not isinstance(results, Mapping):
        raise AuditMatrixError("results must be a dictionary of source host: registered echo result, got %s"
                               % type_name(results))
    if not isinstance(setup_failures, Mapping):
        setup_failures = {}
    rows: List[Dict[str, Any]] = []
    columns = _Columns()
    variants = _Variants()
    numbers = _Numbers()
    pending: List[List[Any]] = []
    for host in sorted(plans, key=str):
        source = clean_text(host, 255) or ""
        plan = _plan(source, plans[host])
        echo = results.get(host)
        failure = clean_text(setup_failures.get(host), 300)
        if failure:
            echo = None
        items = _items_by_calling(echo, plan["calls"])
        aes = plan["aes"]
        for call in plan["calls"]:
            calling = call.get("calling")
            meta = _ae_meta(aes.get(calling) or {"name": calling, "ae_title": call.get("calling_ae_title")})
            row = {"id": "%s/%s" % (source, meta["name"]), "source_host": source, "calling": meta["name"],
                   "calling_ae_title": meta["ae_title"], "site": meta["site"], "kind": meta["kind"],
                   "description": meta["description"], "ae_host": meta["host"], "ae_port": meta["port"]}
            rows.append(row)
            item = items.get(calling)
            # Where the module really ran: the host itself, or the probe it was delegated to.
            echoed_from = clean_text(item.get("echoed_from"), 255) if item is not None else None
            row["echoed_from"] = echoed_from if echoed_from and echoed_from != source else None
            planned = call.get("peers") or []
            if not planned:
                continue
            problem = ("setup_failed", failure) if failure else _call_problem(echo, item, source, missing)
            answers: Dict[str, Mapping[str, Any]] = {}
            if problem is None:
                for result in item["results"]:
                    if (isinstance(result, dict) or isinstance(result, Mapping)) and isinstance(result.get("name"), str):
                        answers.setdefault(result["name"], result)
                if item.get("failed"):
                    # Results came back but the task failed anyway: missing peers say why.
                    problem = ("task_failed", "echo task failed: %s" % _task_message(item))
            for spec in planned:
                # The plan's metadata of the peer, or the module arguments when the plan lacks it.
                ae = aes.get(spec.get("name")) or spec
                expect = spec.get("expect") or "accept"
                result = answers.pop(spec.get("name"), None)
                if result is None:
                    reason, message = problem or ("no_result", "the echo module returned no result for this peer")
                    pending.append([row, columns.get(ae), variants.not_run(expect, reason, message), None, None, None])
                else:
                    pending.append([row, columns.get(ae), variants.answer(expect, result), result.get("rtt_ms"),
                                    result.get("timings_ms"), clean_text(result.get("started_at"), 40)])
            for name in sorted(answers):
                # The module answered for a peer nobody planned: show it rather than drop it.
                result = answers[name]
                column = columns.get({"name": name, "ae_title": result.get("ae_title"), "host": result.get("host"),
                                      "port": result.get("port")})
                pending.append([row, column, variants.answer(clean_text(result.get("expect"), 20) or "accept", result),
                                result.get("rtt_ms"), result.get("timings_ms"), clean_text(result.get("started_at"), 40)])
    rows.sort(key=_row_sort_key)
    ordered_columns = columns.finish()
    # Rows by identity: two calls cannot share a row even if a broken plan gave them one id.
    row_index = {id(row): index for index, row in enumerate(rows)}
    column_index = {id(column): index for index, column in enumerate(ordered_columns)}
    rtts = numbers.pack_rtts([entry[C_RTT] for entry in pending])
    timings = numbers.pack_many([entry[C_TIMINGS] for entry in pending], TIMING_KEYS)
    for entry, rtt, timing in zip(pending, rtts, timings):
        entry[C_ROW], entry[C_COLUMN] = row_index[id(entry[C_ROW])], column_index[id(entry[C_COLUMN])]
        entry[C_RTT], entry[C_TIMINGS] = rtt, timing
    width = len(ordered_columns)
    pending.sort(key=lambda entry: entry[C_ROW] * width + entry[C_COLUMN])
    return Matrix(rows, ordered_columns, variants.values, pending)


def combine(matrices: Sequence[Matrix]) -> Matrix:
    """One matrix of several with disjoint rows (the slices of one audit), ordered as :func:`collect` orders one.

    A column (called AE) several matrices share becomes one column, described as the first matrix describes it;
    answers that are equal become one variant.
    """
    rows: List[Dict[str, Any]] = []
    by_key: Dict[Tuple[str, str, str, Optional[int]], Dict[str, Any]] = {}
    variants = _Variants()
    pending: List[List[Any]] = []
    for matrix in matrices:
        own_rows = [dict(row) for row in matrix.rows]
        rows.extend(own_rows)
        own_columns = []
        for column in matrix.columns:
            key = _column_key(column)
            if key not in by_key:
                by_key[key] = dict(column)
            own_columns.append(by_key[key])
        own_variants = [variants.add(tuple(variant)) for variant in matrix.variants]
        pending.extend([own_rows[packed[C_ROW]], own_columns[packed[C_COLUMN]], own_variants[packed[C_VARIANT]],
                        packed[C_RTT], packed[C_TIMINGS], packed[C_STARTED_AT]] for packed in matrix.cells)
    rows.sort(key=_row_sort_key)
    columns = _name_columns(sorted(by_key.values(), key=_column_sort_key))
    row_index = {id(row): index for index, row in enumerate(rows)}
    column_index = {id(column): index for index, column in enumerate(columns)}
    for entry in pending:
        entry[C_ROW], entry[C_COLUMN] = row_index[id(entry[C_ROW])], column_index[id(entry[C_COLUMN])]
    width = len(columns)
    pending.sort(key=lambda entry: entry[C_ROW] * width + entry[C_COLUMN])
    return Matrix(rows, columns, variants.values, pending)


def _summarize(matrix: Matrix) -> Dict[str, Any]:
    """Counts over the cells: ``failed`` ran but was not as expected, ``not_run`` never ran; both are not ok."""
    uses: Dict[int, int] = {}
    for packed in matrix.cells:
        uses[packed[C_VARIANT]] = uses.get(packed[C_VARIANT], 0) + 1
    by_outcome: Dict[str, int] = {}
    ok = 0
    for index, count in uses.items():
        variant = matrix.variants[index]
        by_outcome[variant[V_OUTCOME]] = by_outcome.get(variant[V_OUTCOME], 0) + count
        ok += count if variant[V_OK] else 0
    not_run = by_outcome.get(NOT_RUN, 0)
    return {
        "total": len(matrix.cells),
        "ok": ok,
        "failed": len(matrix.cells) - ok - not_run,
        "not_run": not_run,
        "by_outcome": {outcome: by_outcome[outcome] for outcome in outcome_order(by_outcome)},
        "source_hosts": len({matrix.rows[row]["source_host"] for row in {packed[C_ROW] for packed in matrix.cells}}),
    }


def outcome_order(outcomes: Iterable[str]) -> List[str]:
    """Known outcomes in their documented order, then any other in alphabetical order."""
    present = set(outcomes)
    known = [outcome for outcome in OUTCOME_ORDER if outcome in present]
    return known + sorted(present - set(OUTCOME_ORDER))


def pair_key(cell: Mapping[str, Any]) -> Tuple[str, str, str]:
    """What identifies a check across runs: who called, as which AE title, which peer."""
    return cell["source_host"], cell["calling_ae_title"], cell["peer"]


def _side(cell: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if cell is None:
        return None
    # expect too: a pair whose outcome stayed while the inventory changed its expectation must say so.
    return {"outcome": cell["outcome"], "ok": cell["ok"], "expect": cell.get("expect"),
            "message": cell.get("message") or ""}


def _in_scope(cell: Mapping[str, Any], hosts: Optional[Iterable[str]], peers: Optional[Iterable[str]]) -> bool:
    if hosts is not None and cell["source_host"] not in hosts:
        return False
    if peers is not None and cell["peer"] not in peers and cell.get("called_ae_title") not in peers:
        return False
    return True


def _service_changes(was: Mapping[str, Any], now: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    """Required services accepted before and refused now, and refused before and accepted now (by name).

    ``services`` of a diff cell is :func:`service_states` (None: the side knows no services).
    """
    before, after = was.get("services"), now.get("services")
    if not before or not after:
        return [], []
    broke = sorted(name for key, (name, accepted) in after.items() if not accepted and before.get(key, ("", False))[1])
    fixed = sorted(name for key, (name, accepted) in after.items()
                   if accepted and key in before and not before[key][1])
    return broke, fixed


# RTT drift: a pair whose round trip grew at least this many times and by at least this many ms.
RTT_DRIFT_FACTOR, RTT_DRIFT_MS = 3.0, 20.0
# What a peer announced or showed, compared with the baseline: (diff key, words).
_PEER_FACTS = (("implementation_class_uid", "implementation class UID"),
               ("implementation_version", "implementation version"), ("max_pdu", "max PDU"))


def rtt_average(packed: Any) -> Optional[float]:
    """The average round trip of a packed cell's ``rtt`` (see C_RTT), or None."""
    if isinstance(packed, (int, float)) and not isinstance(packed, bool):
        return float(packed)
    if isinstance(packed, (list, tuple)) and len(packed) > 1 and isinstance(packed[1], (int, float)) \
            and not isinstance(packed[1], bool):
        return float(packed[1])
    return None


def peer_changes(was: Mapping[str, Any], now: Mapping[str, Any]) -> List[str]:
    """What changed on the peer side of a pair since the baseline, in words: what the peer announces
    (implementation, max PDU), its TLS certificate, and its round trip (RTT_DRIFT_FACTOR times and
    RTT_DRIFT_MS more). A fact only one side knows (a baseline written before it was recorded, a check
    that did not reach the peer) is no change."""
    changes = []
    for key, words in _PEER_FACTS:
        before, after = was.get(key), now.get(key)
        if before is not None and after is not None and before != after:
            changes.append("%s %s -> %s" % (words, before, after))
    before, after = was.get("tls_sha256"), now.get("tls_sha256")
    if before and after and before != after:
        changes.append("TLS certificate %s... -> %s...%s" % (
            before[:11], after[:11], " (valid until %s)" % now["tls_not_after"] if now.get("tls_not_after") else ""))
    before, after = was.get("rtt_avg"), now.get("rtt_avg")
    if before is not None and after is not None and after >= RTT_DRIFT_FACTOR * before \
            and after - before >= RTT_DRIFT_MS:
        changes.append("RTT %.1f ms -> %.1f ms (%.1fx)" % (before, after, after / before if before else float("inf")))
    return changes


def diff_cells(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    hosts: Optional[Iterable[str]] = None,
    peers: Optional[Iterable[str]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Pairs that broke, were fixed, appeared, disappeared, or changed: another outcome with the same
    verdict, or the peer itself changed (:func:`peer_changes`, listed as ``changes`` of any pair).

    A required service accepted before and refused now is a regression: its pair broke even when it
    was not ok before for another reason (``services_broke`` names them); refused before and accepted
    now, it was fixed (``services_fixed``). A service that breaks wins over one fixed in the same pair.
    ``hosts`` / ``peers`` restrict both sides (a verify run limited to a few hosts or peers must
    not report everything else as disappeared). ``diff(a, b)`` mirrors ``diff(b, a)``.
    """
    hosts = set(hosts) if hosts is not None else None
    peers = set(peers) if peers is not None else None
    old = {pair_key(cell): cell for cell in before if _in_scope(cell, hosts, peers)}
    new = {pair_key(cell): cell for cell in after if _in_scope(cell, hosts, peers)}
    diff: Dict[str, List[Dict[str, Any]]] = {kind: [] for kind in DIFF_KINDS}
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        broke, fixed = _service_changes(was, now) if was is not None and now is not None else ([], [])
        changes = peer_changes(was, now) if was is not None and now is not None else []
        if was is None:
            kind = "appeared"
        elif now is None:
            kind = "disappeared"
        elif was["ok"] and not now["ok"]:
            kind = "broke"
        elif now["ok"] and not was["ok"]:
            kind = "fixed"
        elif broke:
            kind = "broke"
        elif fixed:
            kind = "fixed"
        elif was["outcome"] != now["outcome"] or changes:
            kind = "changed"
        else:
            continue
        either = now or was
        pair = {
            "source_host": key[0], "calling_ae_title": key[1], "peer": key[2],
            "called_ae_title": either.get("called_ae_title") or "",
            "before": _side(was), "after": _side(now),
        }
        # Only where a service changed: a diff without services reads as it always did.
        if broke:
            pair["services_broke"] = broke
        if fixed:
            pair["services_fixed"] = fixed
        if changes:
            pair["changes"] = changes
        diff[kind].append(pair)
    return diff


def new_failures(diff: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
    """Pairs that fail now and did not before: every broke pair, and every appeared pair that is not ok.

    What a "no new failures" gate counts: a pair the baseline never had, failing (or not run) now, is
    as new a failure as one that broke.
    """
    return len(diff["broke"]) + sum(1 for pair in diff["appeared"] if not pair["after"]["ok"])


def baseline_counts(diff: Mapping[str, Sequence[Mapping[str, Any]]]) -> Dict[str, int]:
    """The number of pairs per diff list (DIFF_KINDS order), then ``new_failures`` and ``peer_changes``
    (pairs whose peer changed: see :func:`peer_changes`)."""
    counts = {kind: len(diff[kind]) for kind in DIFF_KINDS}
    counts["new_failures"] = new_failures(diff)
    counts["peer_changes"] = sum(1 for kind in DIFF_KINDS for pair in diff[kind] if pair.get("changes"))
    return counts


def parse_report(baseline: Any, source: str = "baseline") -> Any:
    """A report (a baseline) given as its JSON text, parsed; anything else is returned as it is."""
    if isinstance(baseline, (str, bytes)):
        try:
            with paused_gc():
                baseline = json.loads(baseline)
        except ValueError as error:
            raise AuditMatrixError("%s: not a JSON report of dicom.network.echo_audit (invalid JSON: %s)"
                                   % (source, error))
    return baseline


def _peer_facts(class_uid: Any, version: Any, max_pdu: Any, certificate: Optional[Sequence[Any]],
                rtt: Any) -> Dict[str, Any]:
    """The facts :func:`peer_changes` compares, of a cell of either side."""
    return {"implementation_class_uid": clean_text(class_uid, 80), "implementation_version": clean_text(version, 80),
            "max_pdu": _int(max_pdu), "tls_sha256": certificate[0] if certificate else None,
            "tls_not_after": certificate[1] if certificate else None,
            "rtt_avg": rtt if isinstance(rtt, (int, float)) and not isinstance(rtt, bool) else None}


def baseline_cells(baseline: Any, source: str = "baseline") -> List[Dict[str, Any]]:
    """The cells of a previous JSON report, checked well enough to diff against."""
    if not isinstance(baseline, Mapping):
        raise AuditMatrixError("%s: not a JSON report of dicom.network.echo_audit (expected an object, got %s)"
                               % (source, type_name(baseline)))
    version = baseline.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AuditMatrixError("%s: not a JSON report of dicom.network.echo_audit (no schema_version)" % source)
    if version > SCHEMA_VERSION:
        raise AuditMatrixError("%s: schema_version %d is newer than this collection understands (%d); "
                               "upgrade dicom.network" % (source, version, SCHEMA_VERSION))
    if is_packed(baseline):
        # A packed report (the role's own form) is read as the report it stands for.
        try:
            baseline = unpack_report(baseline)
        except (KeyError, IndexError, TypeError, AuditMatrixError) as error:
            raise AuditMatrixError("%s: not a packed report of dicom.network.echo_audit (%s)" % (source, error))
    cells = baseline.get("cells")
    if not isinstance(cells, list):
        raise AuditMatrixError("%s: cells must be a list" % source)
    checked = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise AuditMatrixError("%s: cells[%d] must be an object" % (source, index))
        for key in ("source_host", "calling_ae_title", "peer", "outcome"):
            if not isinstance(cell.get(key), str):
                raise AuditMatrixError("%s: cells[%d].%s must be a string" % (source, index, key))
        if not isinstance(cell.get("ok"), bool):
            raise AuditMatrixError("%s: cells[%d].ok must be true or false" % (source, index))
        checked.append({
            "source_host": cell["source_host"], "calling_ae_title": cell["calling_ae_title"],
            "peer": cell["peer"], "called_ae_title": clean_text(cell.get("called_ae_title"), 64) or "",
            "outcome": cell["outcome"], "ok": cell["ok"], "expect": clean_text(cell.get("expect"), 20),
            "message": clean_text(cell.get("message")) or "",
            # A report written before services existed knows none: no service change against it.
            "services": service_states(pack_services(cell["services"])) if "services" in cell else None,
            **_peer_facts(cell.get("peer_implementation_class_uid"), cell.get("peer_implementation_version"),
                          cell.get("peer_max_pdu"), pack_certificate(cell.get("tls_certificate")),
                          (cell.get("rtt_ms") or {}).get("avg") if isinstance(cell.get("rtt_ms"), Mapping) else None),
        })
    return checked


def results_from_journal(records: Any) -> Dict[str, Dict[str, Any]]:
    """The registered-result shape (host: {"results": [loop items]}) from echo journal entries.

    Each entry is what the dicom.network.echo action plugin wrote for one call (JSON text or a
    dictionary); entries that are not readable are refused by index, never skipped silently.
    """
    if not isinstance(records, (list, tuple)):
        raise AuditMatrixError("journal: expected a list of entries, got %s" % type_name(records))
    by_host: Dict[str, Dict[str, Any]] = {}
    for index, record in enumerate(records):
        if isinstance(record, (str, bytes)):
            try:
                record = json.loads(record)
            except ValueError as error:
                raise AuditMatrixError("journal entry %d: invalid JSON (%s)" % (index, error))
        if not isinstance(record, Mapping) or not isinstance(record.get("host"), str) \
                or not isinstance(record.get("result"), Mapping):
            raise AuditMatrixError("journal entry %d: not an entry of the dicom.network.echo journal" % index)
        item = dict(record["result"])
        item["item"] = record.get("item")
        item["echoed_from"] = record.get("echoed_from")
        by_host.setdefault(record["host"], {"results": []})["results"].append(item)
    return by_host


def partial_reasons(summary: Mapping[str, Any], only_peers: Optional[Sequence[str]] = None,
                    limit: Optional[str] = None, interrupted: Optional[str] = None) -> List[str]:
    """Why a report does not cover every planned check of the whole inventory (empty: complete).

    A partial report must never silently become the baseline the next runs are judged against.
    """
    reasons = []
    if interrupted:
        reasons.append("interrupted: %s" % interrupted)
    if limit:
        reasons.append("hosts limited to %s" % limit)
    if only_peers:
        reasons.append("peers limited to %s" % ", ".join(only_peers))
    if summary.get("not_run"):
        reasons.append("%d check(s) did not run" % summary["not_run"])
    return reasons


def _report_head(
    matrix: Matrix,
    generated_at: str,
    started_at: Optional[str],
    title: Optional[str],
    baseline: Any,
    baseline_source: Optional[str],
    baseline_scope: str,
    only_peers: Optional[Sequence[str]],
    limit: Optional[str],
    interrupted: Optional[str],
) -> Dict[str, Any]:
    summary = _summarize(matrix)
    only_peers = sorted(clean_text(token, 120) for token in only_peers) if only_peers else None
    reasons = partial_reasons(summary, only_peers, clean_text(limit, 300), interrupted)
    rows, columns = matrix.rows, matrix.columns
    sites = sorted({row["site"] for row in rows} | {column["site"] for column in columns},
                   key=lambda site: (site == "", site))
    report: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": clean_text(generated_at, 40),
        "started_at": clean_text(started_at, 40),
        "title": clean_text(title, 200) or "DICOM echo audit",
        "scope": {"source_hosts": sorted({row["source_host"] for row in rows}),
                  "only_peers": only_peers, "limit": clean_text(limit, 300) or None},
        "complete": not reasons,
        "partial_reasons": reasons,
        "sites": sites,
        "rows": rows,
        "columns": columns,
        "summary": summary,
        "baseline": None,
    }
    if baseline is not None and baseline != "":
        source = clean_text(baseline_source, 300) or "baseline"
        baseline = parse_report(baseline, source)
        old = baseline_cells(baseline, source)
        hosts = report["scope"]["source_hosts"] if baseline_scope == "run" else None
        peers = list(only_peers) if baseline_scope == "run" and only_peers else None
        # What the diff reads of a cell comes from its variant: taken once per distinct answer.
        answers = [dict({"outcome": variant[V_OUTCOME], "ok": variant[V_OK], "expect": variant[V_EXPECT],
                         "message": variant[V_MESSAGE], "services": service_states(variant_services(variant))},
                        **_peer_facts(variant[V_CLASS_UID], variant[V_VERSION], variant[V_MAX_PDU],
                                      variant[V_TLS] if len(variant) > V_TLS else None, None))
                   for variant in matrix.variants]
        new = [dict(answers[packed[C_VARIANT]], source_host=rows[packed[C_ROW]]["source_host"],
                    calling_ae_title=rows[packed[C_ROW]]["calling_ae_title"], peer=columns[packed[C_COLUMN]]["name"],
                    called_ae_title=columns[packed[C_COLUMN]]["ae_title"], rtt_avg=rtt_average(packed[C_RTT]))
               for packed in matrix.cells]
        diff = diff_cells(old, new, hosts=hosts, peers=peers)
        report["baseline"] = dict(
            source=source,
            generated_at=clean_text(baseline.get("generated_at"), 40),
            title=clean_text(baseline.get("title"), 200),
            scope=baseline_scope,
            counts=baseline_counts(diff),
            **diff)
    return report


def build_packed(
    plans: Mapping[str, Any],
    results: Optional[Mapping[str, Any]],
    generated_at: str,
    interrupted: Optional[str] = None,
    setup_failures: Optional[Mapping[str, Any]] = None,
    **head: Any,
) -> Dict[str, Any]:
    """The report in its packed form: the keys of :func:`build_report` with ``packing``, ``variants`` and
    ``packed_cells`` instead of ``cells``; ``head`` (``started_at``, ``title``, the baseline...) as for
    :func:`packed_report`.

    ``interrupted`` (a message) marks a report rebuilt from the journal of a play that stopped early:
    hosts without a journal entry become ``not_run`` cells with reason ``interrupted``.
    """
    _check_scope(head.get("baseline_scope", "all"))
    interrupted = clean_text(interrupted, 300)
    missing = ("interrupted", "no result: %s" % interrupted) if interrupted else None
    with paused_gc():
        matrix = collect(plans, results, missing, setup_failures)
        return packed_report(matrix, generated_at, interrupted=interrupted, **head)


def _check_scope(baseline_scope: Any) -> None:
    if baseline_scope not in BASELINE_SCOPES:
        raise AuditMatrixError("baseline_scope must be one of %s, got %r" % (", ".join(BASELINE_SCOPES), baseline_scope))


def packed_report(
    matrix: Matrix,
    generated_at: str,
    started_at: Optional[str] = None,
    title: Optional[str] = None,
    baseline: Any = None,
    baseline_source: Optional[str] = None,
    baseline_scope: str = "all",
    only_peers: Optional[Sequence[str]] = None,
    limit: Optional[str] = None,
    interrupted: Optional[str] = None,
) -> Dict[str, Any]:
    """The packed report of a matrix (of :func:`collect` or :func:`combine`): summary, scope, partial
    reasons and the diff against the baseline.

    ``baseline_scope`` ``run`` compares only pairs of the matrix's source hosts (and, with ``only_peers``,
    of those peers); ``all`` reports every baseline pair missing now as disappeared.
    """
    _check_scope(baseline_scope)
    with paused_gc():
        report = _report_head(matrix, generated_at, started_at, title, baseline, baseline_source, baseline_scope,
                              only_peers, limit, interrupted)
    report.update(packing=PACKING, variants=matrix.variants, packed_cells=matrix.cells)
    return report


def build_report(plans: Mapping[str, Any], results: Optional[Mapping[str, Any]], generated_at: str,
                 **options: Any) -> Dict[str, Any]:
    """The JSON report: rows, columns, one cell per check, summary, and the diff against a baseline.

    Options as for :func:`build_packed`, which builds the same report in its packed form.
    """
    return unpack_report(build_packed(plans, results, generated_at, **options))


_REPORT_ORDER = ("schema_version", "generated_at", "started_at", "title", "run", "scope", "complete", "partial_reasons",
                 "sites", "rows", "columns", "cells", "summary", "baseline", "certificates", "standin",
                 "archive_configuration")


def is_packed(report: Mapping[str, Any]) -> bool:
    return "packed_cells" in report


def matrix_of(report: Mapping[str, Any]) -> Matrix:
    """The rows, columns, variants and packed cells of a report in either form (a full one is packed here)."""
    if is_packed(report):
        if report.get("packing") != PACKING:
            raise AuditMatrixError("packed report of an unknown packing %r" % (report.get("packing"),))
        return Matrix(report["rows"], report["columns"], report["variants"], report["packed_cells"])
    rows, columns = report["rows"], report["columns"]
    row_index = {row["id"]: index for index, row in enumerate(rows)}
    column_index = {column["id"]: index for index, column in enumerate(columns)}
    variants = _Variants()
    cells = []
    for cell in report["cells"]:
        rtt, timings = cell.get("rtt_ms"), cell.get("timings_ms")
        cells.append([
            row_index[cell["row"]], column_index[cell["column"]],
            variants.add((cell["expect"], cell["outcome"], cell["ok"], cell["message"], cell.get("phase"),
                          cell.get("status"), cell.get("reject"), cell.get("peer_implementation_version"),
                          cell.get("peer_implementation_class_uid"), cell.get("peer_max_pdu"), cell.get("address"),
                          cell.get("source_address"), cell.get("transfer_syntax"), cell.get("not_run_reason"),
                          pack_services(cell.get("services")), pack_certificate(cell.get("tls_certificate")),
                          _int(cell.get("attempts")) or 1)),
            _pack_rtt(rtt),
            [timings[key] if key in timings else False for key in TIMING_KEYS] if timings else None,
            cell.get("started_at")])
    return Matrix(rows, columns, variants.values, cells)


def _pack_rtt(rtt: Optional[Mapping[str, Any]]) -> Any:
    if not rtt:
        return None
    packed = [rtt[key] if key in rtt else False for key in RTT_KEYS]
    return packed[0] if _one_number(packed) else packed


def cells_of(report: Mapping[str, Any]) -> Iterator[Dict[str, Any]]:
    """The cells of a report in either form, as dictionaries."""
    if is_packed(report):
        return matrix_of(report).dicts()
    return iter(report["cells"])


def unpack_report(report: Mapping[str, Any]) -> Dict[str, Any]:
    """The report (with ``cells``) of a report in either form; keys in the report's usual order."""
    if not is_packed(report):
        return dict(report)
    full = {key: report[key] for key in _REPORT_ORDER if key != "cells" and key in report}
    full["cells"] = list(cells_of(report))
    # A go-live check's section; an audit's report has none.
    return {key: full[key] for key in _REPORT_ORDER if key in full}
