# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turns the inventory model (registry ``dicom_aes`` plus per-host peer lists) into echo calls.

Pure functions, free of Ansible: the ``dicom.network.echo_audit_peers`` filter is the only caller
in the collection. Every user mistake raises :class:`AuditInventoryError` naming the host and the
inventory entry, before any packet leaves a source host.

Inventory model (see ``roles/echo_audit/README.md``):

* ``dicom_aes``: ``{name: {ae_title, host, port, site, kind, description, tls}}``
* per source host: ``dicom_local_aes`` (registry names it speaks as), ``dicom_peers`` and any
  ``dicom_peers_*`` lists (merged), ``dicom_bind_address``.
* a peer entry is a registry name, ``{name: <registry name>, expect, local_aes}`` or an inline
  peer ``{ae_title, host, port, name, expect, local_aes, site, kind, description, tls}``.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import EXPECTATIONS
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    CALL_OPTION_CHECKS,
    TLS_KEYS,
    EchoInputError,
    ae_title_problem,
    ipv4_literal_problem,
    merge_tls,
    type_name,
)

PEER_VARIABLE = "dicom_peers"
PEER_VARIABLE_PREFIX = "dicom_peers_"
REGISTRY_KEYS = ("ae_title", "host", "port", "site", "kind", "description", "tls")
REFERENCE_KEYS = ("name", "expect", "local_aes")
INLINE_KEYS = REGISTRY_KEYS + ("name", "expect", "local_aes")
DEFAULT_EXPECT = "accept"


class AuditInventoryError(ValueError):
    """A mistake in the inventory; the message names the host and the entry."""

    def __init__(self, host: str, entry: str, problem: str) -> None:
        self.host = host
        self.entry = entry
        self.problem = problem
        super().__init__("host %s: %s: %s" % (host, entry, problem))


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return " (did you mean %s?)" % ", ".join(close) if close else ""


def _text(value: Any, host: str, entry: str, key: str, required: bool = False) -> Optional[str]:
    if value is None or value == "":
        if required:
            raise AuditInventoryError(host, entry, "%s is required" % key)
        return None
    if not isinstance(value, str):
        raise AuditInventoryError(host, entry, "%s must be a string, got %s" % (key, type_name(value)))
    return value


def _port(value: Any, host: str, entry: str) -> int:
    if value is None:
        raise AuditInventoryError(host, entry, "port is required")
    if isinstance(value, bool):
        raise AuditInventoryError(host, entry, "port must be an integer, got %r" % (value,))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise AuditInventoryError(host, entry, "port must be an integer between 1 and 65535, got %r" % (value,))
    return value


def _network_host(value: Any, host: str, entry: str, key: str = "host") -> str:
    text = _text(value, host, entry, key, required=True)
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
        raise AuditInventoryError(host, entry, "%s must not contain spaces or control characters, got %r" % (key, text))
    problem = ipv4_literal_problem(text)
    if problem:
        raise AuditInventoryError(host, entry, "%s %s" % (key, problem))
    return text


def _tls(value: Any, host: str, entry: str) -> Optional[Dict[str, Any]]:
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


def _unknown_keys(raw: Mapping[str, Any], allowed: Sequence[str], host: str, entry: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        raise AuditInventoryError(host, entry, "unknown key(s) %s; valid keys are %s"
                                  % (", ".join(unknown), ", ".join(allowed)))


def _ae(raw: Any, host: str, entry: str, allowed: Sequence[str] = REGISTRY_KEYS) -> Dict[str, Any]:
    """Validate one AE definition (registry entry or inline peer) and return it normalized."""
    if not isinstance(raw, Mapping):
        raise AuditInventoryError(host, entry, "must be a dictionary with ae_title, host and port, got %s"
                                  % type_name(raw))
    _unknown_keys(raw, allowed, host, entry)
    if raw.get("ae_title") is None:
        raise AuditInventoryError(host, entry, "ae_title is required")
    problem = ae_title_problem(raw["ae_title"])
    if problem:
        raise AuditInventoryError(host, entry, "ae_title %s (got %r)" % (problem, raw["ae_title"]))
    return {
        "ae_title": raw["ae_title"].strip(" "),
        "host": _network_host(raw.get("host"), host, entry),
        "port": _port(raw.get("port"), host, entry),
        "site": _text(raw.get("site"), host, entry, "site"),
        "kind": _text(raw.get("kind"), host, entry, "kind"),
        "description": _text(raw.get("description"), host, entry, "description"),
        "tls": _tls(raw.get("tls"), host, entry),
    }


def _target(ae: Mapping[str, Any]) -> Tuple[str, str, int]:
    # AE titles are case-sensitive (PS3.5); one host may be spelled several ways: DNS names in any case
    # and with the root's trailing dot, IP addresses in any of their textual forms.
    return ae["ae_title"], _host_key(ae["host"]), ae["port"]


def _host_key(host: str) -> str:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower().rstrip(".") or host


def _describe(ae: Mapping[str, Any]) -> str:
    host = ae["host"]
    return "%s@%s:%d" % (ae["ae_title"], "[%s]" % host if ":" in host else host, ae["port"])


def validate_registry(registry: Any, host: str) -> Dict[str, Dict[str, Any]]:
    """Check ``dicom_aes`` and return it normalized; two names for one AE title on one host:port fail."""
    if registry is None:
        raise AuditInventoryError(host, "dicom_aes", "is not defined: define the AE registry (see inventory.example)")
    if not isinstance(registry, Mapping):
        raise AuditInventoryError(host, "dicom_aes", "must be a dictionary of name: AE, got %s"
                                  % type_name(registry))
    normalized: Dict[str, Dict[str, Any]] = {}
    owners: Dict[Tuple[str, str, int], str] = {}
    for name in sorted(registry, key=str):
        if not isinstance(name, str) or not name.strip():
            raise AuditInventoryError(host, "dicom_aes", "names must be non-empty strings, got %r" % (name,))
        entry = "dicom_aes.%s" % name
        ae = _ae(registry[name], host, entry)
        ae["name"] = name
        target = _target(ae)
        if target in owners:
            raise AuditInventoryError(host, entry, "duplicate AE title %s on %s:%d, already defined as dicom_aes.%s"
                                      % (ae["ae_title"], ae["host"], ae["port"], owners[target]))
        owners[target] = name
        normalized[name] = ae
    return normalized


def _name_list(value: Any, host: str, entry: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise AuditInventoryError(host, entry, "must be a registry name or a list of registry names, got %s"
                                  % type_name(value))
    names = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise AuditInventoryError(host, "%s[%d]" % (entry, index), "must be a registry name, got %r" % (item,))
        names.append(item)
    return names


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


def _local_aes(value: Any, registry: Mapping[str, Dict[str, Any]], host: str) -> List[Dict[str, Any]]:
    names = _name_list(value, host, "dicom_local_aes")
    if not names:
        raise AuditInventoryError(host, "dicom_local_aes", "is not defined or empty: list the registry names this "
                                  "host speaks as (the calling AE titles)")
    local: List[Dict[str, Any]] = []
    titles: Dict[str, str] = {}
    for index, name in enumerate(names):
        entry = "dicom_local_aes[%d] (%s)" % (index, name)
        if name not in registry:
            raise AuditInventoryError(host, entry, "unknown AE %r, not in dicom_aes%s" % (name, _suggest(name, registry)))
        ae = registry[name]
        if ae["ae_title"] in titles:
            if titles[ae["ae_title"]] == name:
                continue
            raise AuditInventoryError(host, entry, "calling AE title %s is also used by %s on this host"
                                      % (ae["ae_title"], titles[ae["ae_title"]]))
        titles[ae["ae_title"]] = name
        local.append(ae)
    return local


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
            raise AuditInventoryError(host, entry, "inline peer name %r is also a dicom_aes name: refer to the "
                                      "registry entry by name, or choose another name" % name)
        ae["name"] = name
        inline = True
    else:
        _unknown_keys(raw, REFERENCE_KEYS, host, entry)
        name = _text(raw.get("name"), host, entry, "name", required=True)
        if name not in registry:
            raise AuditInventoryError(host, "%s (%s)" % (entry, name), "unknown AE %r, not in dicom_aes%s"
                                      % (name, _suggest(name, registry)))
        ae = dict(registry[name])
        inline = False
    expect = raw.get("expect") if raw.get("expect") is not None else DEFAULT_EXPECT
    if expect not in EXPECTATIONS:
        raise AuditInventoryError(host, "%s (%s)" % (entry, name), "expect must be one of %s, got %r"
                                  % (", ".join(EXPECTATIONS), expect))
    return {
        "name": name,
        "ae": ae,
        "inline": inline,
        "expect": expect,
        "local_aes": _peer_local_aes(raw.get("local_aes"), host, "%s (%s).local_aes" % (entry, name)),
        "entry": "%s (%s)" % (entry, name),
    }


def _module_peer(peer: Mapping[str, Any]) -> Dict[str, Any]:
    ae = peer["ae"]
    spec = {"name": peer["name"], "ae_title": ae["ae_title"], "host": ae["host"], "port": ae["port"],
            "expect": peer["expect"]}
    if ae["tls"] is not None:
        spec["tls"] = ae["tls"]
    return spec


def _matches(peer: Mapping[str, Any], tokens: Sequence[str]) -> List[str]:
    return [token for token in tokens if token in (peer["name"], peer["ae"]["ae_title"])]


def _public(ae: Mapping[str, Any], inline: bool = False) -> Dict[str, Any]:
    """Metadata the matrix needs about an AE (no TLS settings: they may hold key paths or passwords)."""
    return {"name": ae["name"], "ae_title": ae["ae_title"], "host": ae["host"], "port": ae["port"],
            "site": ae["site"], "kind": ae["kind"], "description": ae["description"], "inline": inline}


def check_echo_options(options: Any, host: str) -> None:
    """The role's echo options (``echo_audit_connect_timeout``...), checked as the module would.

    Done before any echo: otherwise every host's call fails with the same message and the whole
    matrix, ``latest.*`` included, becomes not_run.
    """
    if not isinstance(options, Mapping):
        raise AuditInventoryError(host, "echo options", "must be a dictionary, got %s" % type_name(options))
    for name, value in options.items():
        variable = "echo_audit_%s" % name
        check = CALL_OPTION_CHECKS.get(name)
        if check is None:
            raise AuditInventoryError(host, variable, "is not an option of the echo module")
        if value is None:
            continue  # the module's default
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # from -e on the command line, as the module's options convert it
        try:
            check(value)
        except EchoInputError as error:
            problem = str(error)
            raise AuditInventoryError(host, variable, problem[len(name) + 1:] if problem.startswith(name + " ")
                                      else problem) from None


def check_peer_tls(plan: Mapping[str, Any], module_tls: Any) -> None:
    """Every planned peer's TLS settings merged with ``echo_audit_tls``, checked as the module would.

    A registry entry with ``tls: {ca_file: ...}`` but TLS off would fail that host's whole call; here it
    stops the play before any echo instead. No file is read: the files are on the source hosts.
    """
    host = plan["host"]
    if module_tls is not None and not isinstance(module_tls, Mapping):
        raise AuditInventoryError(host, "echo_audit_tls", "must be a dictionary, got %s" % type_name(module_tls))
    for call in plan["calls"]:
        for peer in call["peers"]:
            if peer.get("tls") is None:
                continue
            try:
                merge_tls(module_tls or {}, peer["tls"], "dicom_aes.%s" % peer["name"])
            except EchoInputError as error:
                raise AuditInventoryError(host, "peer %s" % peer["name"], "%s (or enable TLS for every peer with "
                                          "echo_audit_tls)" % error) from None


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
    An AE never checks itself; identical repeats of a peer are merged; two entries for one
    AE title on one host:port, one name with two different settings, or an inline peer that is a
    registry entry, raise :class:`AuditInventoryError`.
    """
    host = str(host)
    aes = validate_registry(registry, host)
    calling = _local_aes(local_aes, aes, host)
    calling_names = [ae["name"] for ae in calling]
    if bind_address is not None and bind_address != "":
        bind_address = _network_host(bind_address, host, "dicom_bind_address", "address")
    else:
        bind_address = None
    tokens = _name_list(only, host, "echo_audit_only_peers") if only else []

    peers: List[Dict[str, Any]] = []
    by_name: Dict[str, Dict[str, Any]] = {}
    by_target: Dict[Tuple[str, str, int], Dict[str, Any]] = {}
    registered = {_target(ae): name for name, ae in aes.items()}
    for variable, entries in _peer_lists(peer_lists, host):
        if entries is None:
            continue
        if not isinstance(entries, (list, tuple)):
            raise AuditInventoryError(host, variable, "must be a list of peers, got %s" % type_name(entries))
        for index, raw in enumerate(entries):
            peer = _peer(raw, aes, host, "%s[%d]" % (variable, index))
            for name in peer["local_aes"] or []:
                if name not in calling_names:
                    raise AuditInventoryError(host, peer["entry"], "local_aes names %r, which is not in this "
                                              "host's dicom_local_aes (%s)" % (name, ", ".join(calling_names)))
            previous = by_name.get(peer["name"])
            if previous is not None:
                same = all(previous[key] == peer[key] for key in ("ae", "expect", "local_aes"))
                if same:
                    continue
                raise AuditInventoryError(host, peer["entry"], "peer %s is already listed with other settings in "
                                          "%s: list it once, or give both entries the same expect and local_aes"
                                          % (peer["name"], previous["entry"]))
            target = _target(peer["ae"])
            if peer["inline"] and target in registered:
                # Another host naming the registry entry would get a second column for the same AE.
                raise AuditInventoryError(host, peer["entry"], "inline peer %s is %s, the registry entry dicom_aes.%s: "
                                          "refer to it by that name (with expect or local_aes as needed), so that "
                                          "the matrix has one column for it"
                                          % (peer["name"], _describe(peer["ae"]), registered[target]))
            if target in by_target:
                raise AuditInventoryError(host, peer["entry"], "duplicate AE title %s on %s:%d, already listed as %s"
                                          % (peer["ae"]["ae_title"], peer["ae"]["host"], peer["ae"]["port"],
                                             by_target[target]["entry"]))
            by_name[peer["name"]] = peer
            by_target[target] = peer
            peers.append(peer)

    matched: List[str] = []
    if tokens:
        kept = []
        for peer in peers:
            hits = _matches(peer, tokens)
            if hits:
                kept.append(peer)
                matched.extend(hit for hit in hits if hit not in matched)
        peers = kept

    calls = []
    known: Dict[str, Dict[str, Any]] = {}
    for ae in calling:
        known[ae["name"]] = _public(ae)
        call_peers = []
        for peer in peers:
            # An AE verifying itself proves nothing; group lists ("every archive checks every archive")
            # naturally include the caller.
            if peer["name"] == ae["name"] or _target(peer["ae"]) == _target(ae):
                continue
            if peer["local_aes"] is not None and ae["name"] not in peer["local_aes"]:
                continue
            call_peers.append(_module_peer(peer))
            known[peer["name"]] = _public(peer["ae"], peer["inline"])
        calls.append({"calling": ae["name"], "calling_ae_title": ae["ae_title"], "peers": call_peers})

    return {
        "host": host,
        "bind_address": bind_address,
        "calls": calls,
        "aes": {name: known[name] for name in sorted(known)},
        "checks": sum(len(call["peers"]) for call in calls),
        "only_matched": sorted(matched),
    }


def resolve_hosts(hosts, *, only=None, echo_options=None, tls=None, inventory_hosts=None):
    """Temporary: every host's plan and every problem (replaced by the full version)."""
    plans, errors = {}, []
    for host, inputs in hosts.items():
        try:
            plan = resolve_host(host, inputs.get("dicom_aes"), inputs.get("dicom_local_aes"), inputs.get("peer_lists"),
                                inputs.get("dicom_bind_address"), only)
            check_echo_options(echo_options or {}, host)
            check_peer_tls(plan, tls)
            plan["echo_via"] = inputs.get("dicom_echo_via")
            plans[host] = plan
        except AuditInventoryError as error:
            if str(error) not in errors:
                errors.append(str(error))
    return plans, errors
