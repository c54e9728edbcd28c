# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turns the inventory model (registry ``dicom_aes`` plus per-host peer lists) into echo calls.

Pure functions, free of Ansible. :func:`resolve_hosts` resolves every source host of a play at
once and returns the plans with every mistake found, each said once where it was made: a registry
mistake once (not once per host), a host's own mistake as that host's. :func:`resolve_host` resolves
one host and raises :class:`AuditInventoryError` at its first mistake.

Inventory model (see ``roles/echo_audit/README.md``):

* ``dicom_aes``: ``{name: {ae_title, host, port, site, kind, description, tls, services, discover}}``; an
  entry without ``host`` and ``port`` is an AE that only calls (a calling AE title, never a peer).
  ``services`` are what the AE must provide as a called AE, ``discover`` a family of SOP classes to
  propose and report without requiring them (checked for syntax only: the controller has no pydicom).
* per source host: ``dicom_local_aes`` (registry names it speaks as), ``dicom_peers`` and any
  ``dicom_peers_*`` lists (merged), ``dicom_bind_address``, ``dicom_echo_via``, ``dicom_echo_api`` (an
  archive echoed through its REST API, see :mod:`audit_archive`).
* a peer entry is a registry name, ``{name: <registry name>, expect, local_aes, services, discover}`` or
  an inline peer ``{ae_title, host, port, name, expect, local_aes, site, kind, description, tls, services,
  discover}``. A peer entry's ``services`` or ``discover`` replaces the registry entry's for that route;
  a route that expects ``reject`` or ``blocked`` checks no services (the registry's do not apply, and
  setting them on the entry is a mistake).
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import EXPECTATIONS
from ansible_collections.dicom.network.plugins.plugin_utils.audit_archive import (
    EchoApiError,
    api_peers,
    check_echo_api,
    drift_registry,
)
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    CALL_OPTION_CHECKS,
    TLS_KEYS,
    EchoInputError,
    ae_title_problem,
    check_discover,
    check_services,
    ipv4_literal_problem,
    merge_tls,
    type_name,
)

PEER_VARIABLE = "dicom_peers"
PEER_VARIABLE_PREFIX = "dicom_peers_"
REGISTRY_KEYS = ("ae_title", "host", "port", "site", "kind", "description", "tls", "services", "discover")
ROUTE_KEYS = ("services", "discover")
REFERENCE_KEYS = ("name", "expect", "local_aes") + ROUTE_KEYS
INLINE_KEYS = REGISTRY_KEYS + ("name", "expect", "local_aes")
DEFAULT_EXPECT = "accept"
# Host lists in one error line: enough to find the hosts, short enough to read.
MAX_NAMED_HOSTS = 10
ONLY_VARIABLE = "echo_audit_only_peers"


class AuditInventoryError(ValueError):
    """A mistake in the inventory; the message names the host (None: not a host's own) and the entry."""

    def __init__(self, host: Optional[str], entry: str, problem: str) -> None:
        self.host = host
        self.entry = entry
        self.problem = problem
        super().__init__("%s%s: %s" % ("" if host is None else "host %s: " % host, entry, problem))


def _show(value: Any) -> str:
    """A user's value in a message: text quoted and cut, numbers as written, containers by their type."""
    if isinstance(value, str):
        text = str(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        # Quoted as written (A\B, not repr's A\\B); repr only to show control characters.
        return "'%s'" % text if text.isprintable() else repr(text)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return repr(float(value))
    kind = type_name(value)
    return "%s %s" % ("an" if kind[0] in "aeiou" else "a", kind)


def _hosts_text(hosts: Sequence[str]) -> str:
    shown = ", ".join(hosts[:MAX_NAMED_HOSTS])
    return shown if len(hosts) <= MAX_NAMED_HOSTS else "%s and %d more" % (shown, len(hosts) - MAX_NAMED_HOSTS)


def _suggest(name: str, registry: Mapping[str, Mapping[str, Any]]) -> str:
    """Close registry names, and entries whose AE title the name is (any case) or is close to."""
    by_title: Dict[str, List[str]] = {}
    for key in sorted(registry, key=str):
        by_title.setdefault(registry[key]["ae_title"].upper(), []).append(key)
    folded = name.strip().upper()
    hints: List[Tuple[str, str]] = []
    for key in by_title.get(folded, []):
        hints.append((key, "%s (AE title %s)" % (key, registry[key]["ae_title"])))
    for key in difflib.get_close_matches(name, sorted(registry, key=str), n=3):
        hints.append((key, key))
    for title in difflib.get_close_matches(folded, sorted(by_title), n=3):
        for key in by_title[title]:
            hints.append((key, "%s (AE title %s)" % (key, registry[key]["ae_title"])))
    seen: Set[str] = set()
    shown = []
    for key, text in hints:
        if key not in seen:
            seen.add(key)
            shown.append(text)
    return " (did you mean %s?)" % ", ".join(shown[:3]) if shown else ""


def _text(value: Any, host: Optional[str], entry: str, key: str, required: bool = False) -> Optional[str]:
    if value is None or value == "":
        if required:
            raise AuditInventoryError(host, entry, "%s is required" % key)
        return None
    if not isinstance(value, str):
        raise AuditInventoryError(host, entry, "%s must be a string, got %s" % (key, type_name(value)))
    return value


def _port(value: Any, host: Optional[str], entry: str) -> int:
    if value is None or value == "":
        raise AuditInventoryError(host, entry, "port is required")
    if isinstance(value, bool):
        raise AuditInventoryError(host, entry, "port must be an integer, got %s" % _show(value))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise AuditInventoryError(host, entry, "port must be an integer between 1 and 65535, got %s" % _show(value))
    return int(value)


def _network_host(value: Any, host: Optional[str], entry: str, key: str = "host") -> str:
    text = _text(value, host, entry, key, required=True)
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
        raise AuditInventoryError(host, entry, "%s must not contain spaces or control characters, got %s"
                                  % (key, _show(text)))
    problem = ipv4_literal_problem(text)
    if problem:
        raise AuditInventoryError(host, entry, "%s %s" % (key, problem))
    return str(text)


def _tls(value: Any, host: Optional[str], entry: str) -> Optional[Dict[str, Any]]:
    """``tls: true`` is shorthand for ``{enabled: true}``; a dictionary passes to the echo module."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"enabled": value}
    if not isinstance(value, Mapping):
        raise AuditInventoryError(host, entry, "tls must be a boolean or a dictionary, got %s" % type_name(value))
    unknown = sorted(str(key) for key in value if key not in TLS_KEYS)
    if unknown:
        raise AuditInventoryError(host, entry, "tls has unknown key(s) %s; valid keys are %s"
                                  % (", ".join(unknown), ", ".join(TLS_KEYS)))
    return dict(value)


def _route_services(raw: Mapping[str, Any], host: Optional[str], entry: str) -> Dict[str, Any]:
    """``services`` and ``discover`` of an entry as the echo module takes them (only those given), checked
    for syntax as the module checks them: a keyword is not resolved here (no pydicom on the controller)."""
    checked: Dict[str, Any] = {}
    try:
        if raw.get("services") is not None:
            checked["services"] = [service.sop_class if not service.transfer_syntaxes else
                                   {"sop_class": service.sop_class,
                                    "transfer_syntaxes": list(service.transfer_syntaxes)}
                                   for service in check_services(raw["services"])]
        discover = check_discover(raw.get("discover"))
        if discover is not None:
            checked["discover"] = discover
    except EchoInputError as error:
        raise AuditInventoryError(host, entry, str(error)) from None
    return checked


def _unknown_keys(raw: Mapping[str, Any], allowed: Sequence[str], host: Optional[str], entry: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        raise AuditInventoryError(host, entry, "unknown key(s) %s; valid keys are %s"
                                  % (", ".join(unknown), ", ".join(allowed)))


def _given(value: Any) -> bool:
    return value is not None and value != ""


def _ae(raw: Any, host: Optional[str], entry: str, allowed: Sequence[str] = REGISTRY_KEYS) -> Dict[str, Any]:
    """Validate one AE definition (registry entry or inline peer) and return it normalized.

    A registry entry may leave out both ``host`` and ``port``: an AE that only calls (host and port None).
    """
    if not isinstance(raw, Mapping):
        raise AuditInventoryError(host, entry, "must be a dictionary with ae_title, host and port, got %s"
                                  % type_name(raw))
    _unknown_keys(raw, allowed, host, entry)
    if raw.get("ae_title") is None:
        raise AuditInventoryError(host, entry, "ae_title is required")
    problem = ae_title_problem(raw["ae_title"])
    if problem:
        raise AuditInventoryError(host, entry, "ae_title %s (got %s)" % (problem, _show(raw["ae_title"])))
    has_host, has_port = _given(raw.get("host")), _given(raw.get("port"))
    if allowed is REGISTRY_KEYS and has_host != has_port:
        raise AuditInventoryError(host, entry, "has %s but no %s: give both host and port (where the AE listens), or "
                                  "neither for an AE that only calls" % (("host", "port") if has_host else ("port", "host")))
    listens = has_host or allowed is not REGISTRY_KEYS
    needs = _route_services(raw, host, entry)
    if needs and not listens:
        raise AuditInventoryError(host, entry, "has %s but no host and port: only an AE that listens provides "
                                  "services; give it host and port, or remove %s"
                                  % (" and ".join(needs), " and ".join(needs)))
    return {
        "ae_title": str(raw["ae_title"]).strip(" "),
        "host": _network_host(raw.get("host"), host, entry) if listens else None,
        "port": _port(raw.get("port"), host, entry) if listens else None,
        "site": _text(raw.get("site"), host, entry, "site"),
        "kind": _text(raw.get("kind"), host, entry, "kind"),
        "description": _text(raw.get("description"), host, entry, "description"),
        "tls": _tls(raw.get("tls"), host, entry),
        "needs": needs,
    }


def _target(ae: Mapping[str, Any]) -> Optional[Tuple[str, str, int]]:
    """What identifies a listening AE; None for an AE that only calls."""
    # AE titles are case-sensitive (PS3.5); one host may be spelled several ways: DNS names in any case
    # and with the root's trailing dot, IP addresses in any of their textual forms.
    if ae["host"] is None:
        return None
    return ae["ae_title"], _host_key(ae["host"]), ae["port"]


@functools.lru_cache(maxsize=4096)
def _host_key(host: str) -> str:
    # Cached: every host's plan compares the same peers' addresses again; 300 hosts x 300 peers
    # resolve in 0.8 s instead of 2.4 s (best of 5, this machine).
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower().rstrip(".") or host


def _describe(ae: Mapping[str, Any]) -> str:
    host = ae["host"]
    if host is None:
        return "%s (calls only)" % ae["ae_title"]
    return "%s@%s:%d" % (ae["ae_title"], "[%s]" % host if ":" in host else host, ae["port"])


def _registry(registry: Any) -> Tuple[Optional[Dict[str, Dict[str, Any]]], Set[str], List[AuditInventoryError]]:
    """``dicom_aes`` normalized (None when unusable), the names of its broken entries, and every mistake."""
    if registry is None:
        return None, set(), [AuditInventoryError(None, "dicom_aes", "is not defined: define the AE registry, usually "
                                                 "in group_vars/all (see inventory.example)")]
    if not isinstance(registry, Mapping):
        return None, set(), [AuditInventoryError(None, "dicom_aes", "must be a dictionary of name: AE, got %s"
                                                 % type_name(registry))]
    problems: List[AuditInventoryError] = []
    normalized: Dict[str, Dict[str, Any]] = {}
    broken: Set[str] = set()
    owners: Dict[Tuple[str, str, int], str] = {}
    for name in sorted(registry, key=str):
        if not isinstance(name, str) or not name.strip():
            problems.append(AuditInventoryError(None, "dicom_aes", "names must be non-empty strings, got %s"
                                                % _show(name)))
            continue
        entry = "dicom_aes.%s" % name
        try:
            ae = _ae(registry[name], None, entry)
        except AuditInventoryError as error:
            problems.append(error)
            broken.add(name)
            continue
        ae["name"] = str(name)
        target = _target(ae)
        if target is not None and target in owners:
            problems.append(AuditInventoryError(None, entry, "duplicate AE title %s on %s:%d, already defined as "
                                                "dicom_aes.%s: one AE, one entry"
                                                % (ae["ae_title"], ae["host"], ae["port"], owners[target])))
            broken.add(name)
            continue
        if target is not None:
            owners[target] = name
        normalized[name] = ae
    return normalized, broken, problems


def validate_registry(registry: Any, host: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Check ``dicom_aes`` and return it normalized; raise its first mistake (two names for one AE
    title on one host:port are one)."""
    aes, _broken, problems = _registry(registry)
    if problems:
        raise AuditInventoryError(host, problems[0].entry, problems[0].problem)
    return aes or {}


def _name_list(value: Any, host: Optional[str], entry: str, what: str = "registry name") -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise AuditInventoryError(host, entry, "must be a %s or a list of %ss, got %s" % (what, what, type_name(value)))
    names = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise AuditInventoryError(host, "%s[%d]" % (entry, index), "must be a %s, got %s" % (what, _show(item)))
        names.append(str(item))
    return names


def _comma_names(value: Any, known: Iterable[str] = ()) -> Any:
    """``a,b`` from the command line (-e) as a list; a string that is a known name stays whole."""
    if isinstance(value, str) and "," in value and value not in known:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _peer_local_aes(value: Any, host: str, entry: str) -> Optional[List[str]]:
    """A peer's ``local_aes``: None (every calling AE of the host) or the names it is limited to."""
    if value is None:
        return None
    names = _name_list(value, host, entry)
    if not names:
        # An empty list (often a template that found nothing) would otherwise widen the check to
        # every calling AE, the opposite of what a limit means.
        raise AuditInventoryError(host, entry, "is empty: list the calling AEs (registry names) to check this peer "
                                  "from, or leave local_aes out to check it from every calling AE of the host")
    return names


def _peer_lists(peer_lists: Any, host: str) -> List[Tuple[str, Any]]:
    """``dicom_peers_*`` in name order, then ``dicom_peers``: group lists first, host additions last."""
    if peer_lists is None:
        return []
    if not isinstance(peer_lists, Mapping):
        raise AuditInventoryError(host, "peer lists", "must be a dictionary of variable name: list, got %s"
                                  % type_name(peer_lists))
    ordered = sorted((name for name in peer_lists if name != PEER_VARIABLE), key=str)
    if PEER_VARIABLE in peer_lists:
        ordered.append(PEER_VARIABLE)
    for name in ordered:
        if not (name == PEER_VARIABLE or (isinstance(name, str) and name.startswith(PEER_VARIABLE_PREFIX))):
            raise AuditInventoryError(host, str(name), "peer list variables must be named %s or %s*"
                                      % (PEER_VARIABLE, PEER_VARIABLE_PREFIX))
    return [(name, peer_lists[name]) for name in ordered]


def _reference(raw: Any) -> Optional[str]:
    """The registry name a peer entry refers to, when it is a reference (not an inline peer)."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping) and "ae_title" not in raw and isinstance(raw.get("name"), str):
        return raw["name"]
    return None


def _peer(raw: Any, registry: Mapping[str, Dict[str, Any]], host: str, entry: str) -> Dict[str, Any]:
    """Resolve one peer entry to {name, ae (normalized), expect, local_aes, entry}."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise AuditInventoryError(host, entry, "must be a registry name or a dictionary, got %s"
                                  % type_name(raw))
    if "ae_title" in raw:
        ae = _ae(raw, host, entry, INLINE_KEYS)
        name = _text(raw.get("name"), host, entry, "name") or _describe(ae)
        if name in registry:
            raise AuditInventoryError(host, entry, "inline peer name %s is also a dicom_aes name: refer to the "
                                      "registry entry by name, or choose another name" % _show(name))
        ae["name"] = str(name)
        inline = True
    else:
        _unknown_keys(raw, REFERENCE_KEYS, host, entry)
        name = _text(raw.get("name"), host, entry, "name", required=True)
        if name not in registry:
            raise AuditInventoryError(host, "%s (%s)" % (entry, name), "unknown AE %s, not in dicom_aes%s"
                                      % (_show(name), _suggest(name, registry)))
        ae = dict(registry[name])
        if ae["host"] is None:
            raise AuditInventoryError(host, "%s (%s)" % (entry, name), "dicom_aes.%s has no host and port, so it can "
                                      "only call: it cannot be a peer. Give it host and port if it listens, or "
                                      "remove it from %s" % (name, entry.split("[")[0]))
        inline = False
    expect = raw.get("expect") if raw.get("expect") is not None else DEFAULT_EXPECT
    if expect not in EXPECTATIONS:
        raise AuditInventoryError(host, "%s (%s)" % (entry, name), "expect must be one of %s, got %s"
                                  % (", ".join(EXPECTATIONS), _show(expect)))
    # The entry's own services and discover replace the registry's, each on its own.
    needs = dict(ae["needs"])
    if not inline:
        needs.update(_route_services(raw, host, "%s (%s)" % (entry, name)))
    if expect != "accept":
        given = [key for key in ROUTE_KEYS if raw.get(key) is not None]
        if given:
            raise AuditInventoryError(host, "%s (%s)" % (entry, name), "sets %s but expects %s: services are checked "
                                      "only on a route that must accept; remove %s from this entry"
                                      % (" and ".join(given), expect, " and ".join(given)))
        # A registry entry's services are what it provides to the callers it accepts, not to this one.
        needs = {}
    return {
        "name": str(name),
        "ae": ae,
        "inline": inline,
        "expect": expect,
        "needs": needs,
        "local_aes": _peer_local_aes(raw.get("local_aes"), host, "%s (%s).local_aes" % (entry, name)),
        "entry": "%s (%s)" % (entry, name),
    }


def _module_peer(peer: Mapping[str, Any]) -> Dict[str, Any]:
    ae = peer["ae"]
    spec = {"name": peer["name"], "ae_title": ae["ae_title"], "host": ae["host"], "port": ae["port"],
            "expect": peer["expect"]}
    if ae["tls"] is not None:
        spec["tls"] = ae["tls"]
    # Only what is given: the plan (plan.json, the module's arguments) stays as small as without services.
    spec.update(peer["needs"])
    return spec


def _matches(peer: Mapping[str, Any], tokens: Sequence[str]) -> List[str]:
    return [token for token in tokens if token in (peer["name"], peer["ae"]["ae_title"])]


def _public(ae: Mapping[str, Any], inline: bool = False) -> Dict[str, Any]:
    """Metadata the matrix needs about an AE (no TLS settings: they may hold key paths or passwords).

    ``host`` and ``port`` are None for an AE that only calls (then it is only ever a row).
    """
    return {"name": ae["name"], "ae_title": ae["ae_title"], "host": ae["host"], "port": ae["port"],
            "site": ae["site"], "kind": ae["kind"], "description": ae["description"], "inline": inline}


def _echo_option_problems(options: Any, host: Optional[str]) -> List[AuditInventoryError]:
    if not isinstance(options, Mapping):
        return [AuditInventoryError(host, "echo options", "must be a dictionary, got %s" % type_name(options))]
    problems = []
    for name, value in options.items():
        variable = "echo_audit_%s" % name
        check = CALL_OPTION_CHECKS.get(name)
        if check is None:
            problems.append(AuditInventoryError(host, variable, "is not an option of the echo module"))
            continue
        if value is None:
            continue  # the module's default
        if not isinstance(value, (str, int, float)):
            problems.append(AuditInventoryError(host, variable, "must be a number, got %s" % _show(value)))
            continue
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # from -e on the command line, as the module's options convert it
        try:
            check(value)
        except EchoInputError as error:
            problem = str(error)
            problems.append(AuditInventoryError(host, variable, problem[len(name) + 1:] if problem.startswith(name + " ")
                                                else problem))
    return problems


def _tls_problem(peer_tls: Any, module_tls: Mapping[str, Any], where: str) -> Optional[str]:
    try:
        merge_tls(module_tls, peer_tls, where)
    except EchoInputError as error:
        return "%s (or enable TLS for every peer with echo_audit_tls)" % error
    return None


class _Resolved:
    """One host's resolution: its plan (None when it has a mistake), every mistake, and what the
    play-wide checks need (its peers after the limit, the limit entries it matched, the names its
    broken entries referred to)."""

    def __init__(self) -> None:
        self.plan: Optional[Dict[str, Any]] = None
        self.problems: List[AuditInventoryError] = []
        self.blocked = False  # refers to a broken registry entry: said once, as the registry's mistake
        self.peers: List[Dict[str, Any]] = []
        self.all_peers: List[Dict[str, Any]] = []
        self.matched: List[str] = []
        self.mentioned: Set[str] = set()


def _resolve(host: str, aes: Mapping[str, Dict[str, Any]], broken: Set[str], local_aes: Any, peer_lists: Any,
             bind_address: Any, tokens: Sequence[str]) -> _Resolved:
    """Resolve one host against a valid registry, collecting every mistake (the first of each entry)."""
    out = _Resolved()
    problems = out.problems

    calling: List[Dict[str, Any]] = []
    try:
        declared = _name_list(_comma_names(local_aes, aes), host, "dicom_local_aes")
        if not declared:
            raise AuditInventoryError(host, "dicom_local_aes", "is not defined or empty: list the registry names this "
                                      "host speaks as (the calling AE titles)")
    except AuditInventoryError as error:
        problems.append(error)
        declared = []
    titles: Dict[str, str] = {}
    for index, name in enumerate(declared):
        entry = "dicom_local_aes[%d] (%s)" % (index, name)
        if name in broken:
            out.blocked = True
            continue
        if name not in aes:
            problems.append(AuditInventoryError(host, entry, "unknown AE %s, not in dicom_aes%s"
                                                % (_show(name), _suggest(name, aes))))
            continue
        ae = aes[name]
        if ae["ae_title"] in titles:
            if titles[ae["ae_title"]] == name:
                continue
            problems.append(AuditInventoryError(host, entry, "calling AE title %s is also used by %s on this host"
                                                % (ae["ae_title"], titles[ae["ae_title"]])))
            continue
        titles[ae["ae_title"]] = name
        calling.append(ae)

    if bind_address is not None and bind_address != "":
        try:
            bind_address = _network_host(bind_address, host, "dicom_bind_address", "address")
        except AuditInventoryError as error:
            problems.append(error)
            bind_address = None
    else:
        bind_address = None

    peers: List[Dict[str, Any]] = []
    by_name: Dict[str, List[Dict[str, Any]]] = {}
    by_target: Dict[Tuple[str, str, int], Dict[str, Any]] = {}
    registered = {_target(ae): name for name, ae in aes.items() if _target(ae) is not None}
    try:
        lists = _peer_lists(peer_lists, host)
    except AuditInventoryError as error:
        problems.append(error)
        lists = []
    for variable, entries in lists:
        if entries is None:
            continue
        if not isinstance(entries, (list, tuple)):
            problems.append(AuditInventoryError(host, variable, "must be a list of peers, got %s" % type_name(entries)))
            continue
        for index, raw in enumerate(entries):
            reference = _reference(raw)
            if reference is not None and reference in broken:
                out.blocked = True
                out.mentioned.add(reference)
                continue
            try:
                peer = _peer(raw, aes, host, "%s[%d]" % (variable, index))
                # Without a usable dicom_local_aes (said above) every limit would be reported again.
                for name in peer["local_aes"] if peer["local_aes"] and declared else []:
                    if name not in declared:
                        raise AuditInventoryError(host, peer["entry"], "local_aes names %s, which is not in this "
                                                  "host's dicom_local_aes (%s)" % (_show(name), ", ".join(declared)))
                listed = by_name.get(peer["name"], [])
                if any(all(previous[key] == peer[key] for key in ("ae", "expect", "local_aes", "needs"))
                       for previous in listed):
                    continue
                # One peer may be listed again for other calling AEs of this host ("SRC_A must be accepted,
                # SRC_X refused"): each calling AE checks it once, as one of the entries says.
                clash = next((previous for previous in listed if not _disjoint(previous["local_aes"], peer["local_aes"])),
                             None)
                if clash is not None:
                    raise AuditInventoryError(host, peer["entry"], "peer %s is already listed with other settings in "
                                              "%s: list it once, give both entries the same expect, local_aes, "
                                              "services and discover, or give each its own local_aes (the calling "
                                              "AEs it is checked from)" % (peer["name"], clash["entry"]))
                target = _target(peer["ae"])
                if peer["inline"] and target in registered:
                    # Another host naming the registry entry would get a second column for the same AE.
                    raise AuditInventoryError(host, peer["entry"], "inline peer %s is %s, the registry entry "
                                              "dicom_aes.%s: refer to it by that name (with expect or local_aes as "
                                              "needed), so that the matrix has one column for it"
                                              % (peer["name"], _describe(peer["ae"]), registered[target]))
                if target in by_target and by_target[target]["name"] != peer["name"]:
                    raise AuditInventoryError(host, peer["entry"], "duplicate AE title %s on %s:%d, already listed as %s"
                                              % (peer["ae"]["ae_title"], peer["ae"]["host"], peer["ae"]["port"],
                                                 by_target[target]["entry"]))
            except AuditInventoryError as error:
                problems.append(error)
                if reference is not None:
                    out.mentioned.add(reference)
                continue
            by_name.setdefault(peer["name"], []).append(peer)
            by_target[target] = peer
            peers.append(peer)

    out.all_peers = peers
    if tokens:
        kept = []
        for peer in peers:
            hits = _matches(peer, tokens)
            if hits:
                kept.append(peer)
                out.matched.extend(hit for hit in hits if hit not in out.matched)
        peers = kept
    out.peers = peers
    if problems or out.blocked:
        return out

    calls = []
    known: Dict[str, Dict[str, Any]] = {}
    for ae in calling:
        known[ae["name"]] = _public(ae)
        call_peers = []
        for peer in peers:
            # An AE verifying itself proves nothing; group lists ("every archive checks every archive")
            # naturally include the caller.
            if peer["name"] == ae["name"] or (_target(ae) is not None and _target(peer["ae"]) == _target(ae)):
                continue
            if peer["local_aes"] is not None and ae["name"] not in peer["local_aes"]:
                continue
            call_peers.append(_module_peer(peer))
            known[peer["name"]] = _public(peer["ae"], peer["inline"])
        calls.append({"calling": ae["name"], "calling_ae_title": ae["ae_title"], "peers": call_peers})

    out.plan = {
        "host": host,
        "bind_address": bind_address,
        "calls": calls,
        "aes": {name: known[name] for name in sorted(known)},
        "checks": sum(len(call["peers"]) for call in calls),
        "only_matched": sorted(out.matched),
    }
    return out


def _disjoint(one: Optional[Sequence[str]], other: Optional[Sequence[str]]) -> bool:
    """Whether two entries' ``local_aes`` share no calling AE (an entry without local_aes is for every one)."""
    return one is not None and other is not None and not set(one) & set(other)


def resolve_host(
    host: str,
    registry: Any,
    local_aes: Any,
    peer_lists: Any,
    bind_address: Any = None,
    only: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """Resolve one source host's inventory into its plan: one echo call per calling AE.

    ``peer_lists`` maps variable names (``dicom_peers``, ``dicom_peers_*``) to lists of peer
    entries. ``only`` keeps the peers whose registry name or AE title is listed (verify mode).
    An AE never checks itself; identical repeats of a peer are merged; a peer listed again with other
    settings for other calling AEs (disjoint ``local_aes``) is checked from each as its entry says; two
    entries for one AE title on one host:port, one name with two different settings for one calling AE,
    or an inline peer that is a registry entry, raise :class:`AuditInventoryError` (the first mistake; :func:`resolve_hosts` gives all).
    """
    host = str(host)
    aes = validate_registry(registry, host)
    tokens = _name_list(only, host, ONLY_VARIABLE) if only else []
    resolved = _resolve(host, aes, set(), local_aes, peer_lists, bind_address, tokens)
    if resolved.problems:
        raise resolved.problems[0]
    return resolved.plan


def _only_tokens(only: Any) -> Tuple[List[str], List[str]]:
    """``echo_audit_only_peers`` as a list of names (a list, or ``a,b`` text from -e), and its mistakes."""
    if only is None or only == "":
        return [], []
    if isinstance(only, str):
        return [part.strip() for part in only.split(",") if part.strip()], []
    if not isinstance(only, (list, tuple)):
        return [], ["%s: must be a list of registry names or AE titles, or one text like archive,mwl; got %s"
                    % (ONLY_VARIABLE, type_name(only))]
    tokens: List[str] = []
    errors = []
    for index, item in enumerate(only):
        if not isinstance(item, str) or not item.strip():
            errors.append("%s[%d]: must be a registry name or AE title, got %s" % (ONLY_VARIABLE, index, _show(item)))
        elif item.strip() not in tokens:
            tokens.append(str(item).strip())
    return tokens, errors


def _echo_via(value: Any, host: str, inventory_hosts: Optional[Iterable[str]]) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AuditInventoryError(host, "dicom_echo_via", "must be the name of an inventory host (the probe that runs "
                                  "this source's echoes), got %s" % _show(value))
    if inventory_hosts is not None:
        known = sorted(str(name) for name in inventory_hosts)
        if value not in known:
            close = sorted(difflib.get_close_matches(value, known, n=3))
            raise AuditInventoryError(host, "dicom_echo_via", "%s is not a host of the inventory%s: name the probe host "
                                      "that runs this source's echoes (delegate_to), or leave dicom_echo_via out"
                                      % (value, " (did you mean %s?)" % ", ".join(close) if close else ""))
    return str(value)


def _registry_lines(hosts: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> Tuple[
        Dict[str, Tuple[Optional[Dict[str, Dict[str, Any]]], Set[str]]], List[str]]:
    """Validate each distinct ``dicom_aes`` once. Returns, per host, its registry (None: unusable) and
    broken entry names, and the error lines: a mistake every host shares is said plainly, one only some
    hosts' registry has names those hosts."""
    groups: List[Tuple[Any, List[str]]] = []
    for name in names:
        value = hosts[name].get("dicom_aes")
        for group in groups:
            # Usually one value from group_vars/all for every host: compare by identity first.
            if group[0] is value or group[0] == value:
                group[1].append(name)
                break
        else:
            groups.append((value, [name]))
    per_host: Dict[str, Tuple[Optional[Dict[str, Dict[str, Any]]], Set[str]]] = {}
    said: Dict[Tuple[str, str], Set[str]] = {}
    for value, members in groups:
        aes, broken, problems = _registry(value)
        for name in members:
            per_host[name] = (aes, broken)
        for problem in problems:
            said.setdefault((problem.entry, problem.problem), set()).update(members)
    # Hosts without a registry are told so on their own line; the registry's mistakes are the same
    # for every other host, so they are said plainly when those hosts all share them.
    with_registry = {name for name in names if isinstance(hosts[name].get("dicom_aes"), Mapping)}
    lines = []
    for (entry, problem), members in said.items():
        if members == set(names) or members == with_registry:
            lines.append("%s: %s" % (entry, problem))
        else:
            lines.append("%s of %s: %s" % (entry, _hosts_text(sorted(members)), problem))
    return per_host, lines


def _host_lines(problems: Sequence[AuditInventoryError]) -> List[str]:
    """Hosts' own mistakes, one line each; the same mistake of several hosts (a list in their group_vars)
    once, naming them all."""
    hosts_of: Dict[Tuple[str, str], List[str]] = {}
    for problem in problems:
        members = hosts_of.setdefault((problem.entry, problem.problem), [])
        if problem.host not in members:
            members.append(problem.host)
    return ["%s %s: %s: %s" % ("host" if len(members) == 1 else "hosts", _hosts_text(members), entry, problem)
            for (entry, problem), members in hosts_of.items()]


def _peer_tls_lines(names: Sequence[str], resolved: Mapping[str, _Resolved], module_tls: Mapping[str, Any],
                    plans: Dict[str, Dict[str, Any]]) -> List[str]:
    """TLS settings of the peers this run checks, merged with ``echo_audit_tls``: a registry entry's
    mistake once, whichever hosts list it; an inline peer's as its host's. Drops the plans it fails."""
    lines: List[str] = []
    for name in names:
        for peer in resolved[name].peers if name in resolved else []:
            if peer["ae"]["tls"] is None:
                continue
            if peer["inline"]:
                problem = _tls_problem(peer["ae"]["tls"], module_tls, peer["entry"])
                line = "host %s: %s" % (name, problem) if problem else None
            else:
                line = _tls_problem(peer["ae"]["tls"], module_tls, "dicom_aes.%s" % peer["name"])
            if line:
                plans.pop(name, None)
                if line not in lines:
                    lines.append(line)
    return lines


def _unmatched_lines(tokens: Sequence[str], resolved: Mapping[str, _Resolved], mentioned: Set[str]) -> List[str]:
    """One line per ``echo_audit_only_peers`` entry that selects no peer of any host, unless it names an
    entry that already has its own error (that error says it)."""
    matched = {token for result in resolved.values() for token in result.matched}
    known: Dict[str, str] = {}
    for result in resolved.values():
        for peer in result.all_peers:
            known.setdefault(peer["name"].upper(), peer["name"])
            known.setdefault(peer["ae"]["ae_title"].upper(), peer["ae"]["ae_title"])
    lines = []
    for token in tokens:
        if token in matched or token in mentioned:
            continue
        close = [known[token.upper()]] if token.upper() in known else [
            known[key] for key in difflib.get_close_matches(token.upper(), sorted(known), n=3)]
        lines.append("%s: %s is not a peer (registry name or AE title) of any host in this play%s"
                     % (ONLY_VARIABLE, token, " (did you mean %s?)" % ", ".join(close) if close else ""))
    return lines


def echo_peers(plan: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The peers of a host's one module call: each carries the calling AE title it is echoed as; an archive's
    only what its REST API can echo."""
    peers = [dict(peer, calling_ae_title=call["calling_ae_title"]) for call in plan["calls"] for peer in call["peers"]]
    return api_peers(peers) if plan.get("echo_api") else peers


def resolve_hosts(
    hosts: Mapping[str, Mapping[str, Any]],
    *,
    only: Any = None,
    echo_options: Any = None,
    tls: Any = None,
    inventory_hosts: Optional[Iterable[str]] = None,
) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """Resolve every source host of a play at once: ``(plans, errors)``.

    ``hosts`` maps each host to its own variables: ``dicom_aes``, ``dicom_local_aes``, ``peer_lists``
    (``{variable name: list}`` of its ``dicom_peers`` and ``dicom_peers_*``), ``dicom_bind_address``,
    ``dicom_echo_via``; a missing key is an undefined variable. ``only`` is ``echo_audit_only_peers``
    (a list, or ``a,b`` text), ``echo_options`` the role's echo options (``{connect_timeout: ...}``),
    ``tls`` ``echo_audit_tls``, ``inventory_hosts`` every inventory host name (for ``dicom_echo_via``).

    ``plans`` has the plan of every host without a mistake (:func:`resolve_host`'s, plus ``echo_via``:
    the probe host or None). ``errors`` lists every mistake once, one line each, where it was made: a
    registry or role option mistake once for the play, a host's own as ``host <name>: ...``. The play
    must stop when it is not empty.
    """
    names = sorted((str(name) for name in hosts), key=str)
    hosts = {str(name): spec for name, spec in hosts.items()}
    errors: List[str] = []
    if echo_options is not None:
        errors.extend(str(error) for error in _echo_option_problems(echo_options, None))
    module_tls, tls_usable = tls, True
    if module_tls is not None and not isinstance(module_tls, Mapping):
        errors.append("echo_audit_tls: must be a dictionary, got %s" % type_name(module_tls))
        tls_usable = False
    elif module_tls is not None:
        try:
            merge_tls(module_tls, None, "echo_audit_tls")
        except EchoInputError as error:
            # Said once here; every peer's merge would only repeat it.
            errors.append("echo_audit_%s" % error if str(error).startswith("tls") else "echo_audit_tls: %s" % error)
            tls_usable = False
    tokens, only_errors = _only_tokens(only)
    errors.extend(only_errors)
    bad_specs = [name for name in names if not isinstance(hosts[name], Mapping)]
    for name in bad_specs:
        errors.append("host %s: its variables must be a dictionary, got %s" % (name, type_name(hosts[name])))
    names = [name for name in names if name not in bad_specs]
    registries, registry_errors = _registry_lines(hosts, names)
    errors.extend(registry_errors)

    plans: Dict[str, Dict[str, Any]] = {}
    resolved: Dict[str, _Resolved] = {}
    host_errors: List[AuditInventoryError] = []
    mentioned: Set[str] = set()
    for name in names:
        spec = hosts[name]
        aes, broken = registries[name]
        problems: List[AuditInventoryError] = []
        result: Optional[_Resolved] = None
        if aes is not None:
            result = _resolve(name, aes, broken, spec.get("dicom_local_aes"), spec.get("peer_lists"),
                              spec.get("dicom_bind_address"), tokens)
            resolved[name] = result
            problems.extend(result.problems)
            mentioned |= result.mentioned | broken
        try:
            echo_via = _echo_via(spec.get("dicom_echo_via"), name, inventory_hosts)
        except AuditInventoryError as error:
            problems.append(error)
            echo_via = None
        echo_api = None
        if spec.get("dicom_echo_api") is not None:
            try:
                echo_api = check_echo_api(spec["dicom_echo_api"])
            except EchoApiError as error:
                problems.append(AuditInventoryError(name, "dicom_echo_api", str(error)))
            for other in ("dicom_echo_via", "dicom_bind_address"):
                if spec.get(other) not in (None, ""):
                    problems.append(AuditInventoryError(name, "dicom_echo_api", "and %s exclude each other: an "
                                                        "archive echoes from its own address, through its API"
                                                        % other))
        host_errors.extend(problems)
        if result is not None and result.plan is not None and not problems:
            plans[name] = dict(result.plan, echo_via=echo_via)
            if echo_api is not None:
                plans[name]["echo_api"] = echo_api
                # The archive's modality table against the registry: every listening AE is known, the AEs
                # this archive must reach are required.
                plans[name]["drift"] = {
                    "registry": drift_registry(aes),
                    "required": sorted({peer["name"] for call in result.plan["calls"] for peer in call["peers"]
                                        if peer.get("expect", "accept") == "accept"})}
    errors.extend(_host_lines(host_errors))

    if tls_usable:
        errors.extend(_peer_tls_lines(names, resolved, module_tls or {}, plans))
    if tokens:
        errors.extend(_unmatched_lines(tokens, resolved, mentioned))
    if not errors and sum(plan["checks"] for plan in plans.values()) == 0:
        errors.append("Nothing to check: no host in this play (%s) has a peer%s. Give the source hosts dicom_peers "
                      "or dicom_peers_* lists (see inventory.example)"
                      % (_hosts_text(names) or "none", " matching %s" % ONLY_VARIABLE if tokens else ""))
    return plans, errors
