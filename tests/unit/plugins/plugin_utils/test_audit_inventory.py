"""Inventory model -> per-host echo plans (plugins/plugin_utils/audit_inventory.py)."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import TLS_KEYS

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import (
    AuditInventoryError,
    resolve_host,
    resolve_hosts,
    validate_registry,
)

REGISTRY = {
    "archive": {"ae_title": "PACS_ARCHIVE", "host": "192.0.2.10", "port": 104, "site": "A", "kind": "archive"},
    "archive_tls": {"ae_title": "PACS_ARCHIVE", "host": "192.0.2.10", "port": 2762, "site": "A", "kind": "archive",
                    "tls": {"enabled": True, "ca_file": "/etc/ca.pem"}},
    "mwl": {"ae_title": "RIS_MWL", "host": "192.0.2.20", "port": 107, "site": "A", "kind": "ris"},
    "printer": {"ae_title": "PRINT_A", "host": "192.0.2.70", "port": "5040", "site": "A", "kind": "printer"},
    "ct1": {"ae_title": " CT1 ", "host": "192.0.2.41", "port": 104, "site": "A", "kind": "modality",
            "description": "<script>alert(1)</script>"},
    "mr1": {"ae_title": "MR1", "host": "192.0.2.42", "port": 104, "site": "A", "kind": "modality"},
    "ws1": {"ae_title": "WS1", "host": "198.51.100.61", "port": 11112, "site": "B", "kind": "workstation"},
}


def resolve(local=("ct1",), lists=None, **kwargs):
    return resolve_host("probe-a", copy.deepcopy(REGISTRY), list(local), lists or {}, **kwargs)


def names(call):
    return [peer["name"] for peer in call["peers"]]


def error_of(**kwargs) -> AuditInventoryError:
    with pytest.raises(AuditInventoryError) as caught:
        resolve(**kwargs)
    return caught.value


def test_one_call_per_calling_ae_with_every_peer():
    plan = resolve(local=["ct1", "mr1"], lists={"dicom_peers_modalities": ["archive", "mwl"],
                                                "dicom_peers": ["printer"]})
    assert [call["calling_ae_title"] for call in plan["calls"]] == ["CT1", "MR1"]
    assert all(names(call) == ["archive", "mwl", "printer"] for call in plan["calls"])
    assert plan["checks"] == 6
    assert plan["calls"][0]["peers"][0] == {"name": "archive", "ae_title": "PACS_ARCHIVE", "host": "192.0.2.10",
                                            "port": 104, "expect": "accept"}


def test_group_lists_come_first_in_name_order_then_host_list():
    plan = resolve(lists={"dicom_peers": ["printer"], "dicom_peers_z": ["mwl"], "dicom_peers_a": ["archive"]})
    assert names(plan["calls"][0]) == ["archive", "mwl", "printer"]


def test_ae_title_is_stripped_and_port_string_converted():
    plan = resolve(local=["ct1"], lists={"dicom_peers": ["printer"]})
    assert plan["calls"][0]["calling_ae_title"] == "CT1"
    assert plan["calls"][0]["peers"][0]["port"] == 5040


def test_reference_with_expect_and_tls_passed_to_module():
    plan = resolve(lists={"dicom_peers": [{"name": "mwl", "expect": "reject"}, "archive_tls"]})
    mwl, tls = plan["calls"][0]["peers"]
    assert mwl["expect"] == "reject"
    assert tls["tls"] == {"enabled": True, "ca_file": "/etc/ca.pem"}
    assert "tls" not in plan["aes"]["archive_tls"], "TLS settings (maybe key passwords) stay out of the report"


def test_tls_true_is_shorthand():
    registry = dict(REGISTRY, secure={"ae_title": "SEC", "host": "h", "port": 2762, "tls": True})
    plan = resolve_host("h1", registry, ["ct1"], {"dicom_peers": ["secure"]})
    assert plan["calls"][0]["peers"][0]["tls"] == {"enabled": True}


def test_peer_tls_settings_are_checked_with_echo_audit_tls_as_the_module_would():
    registry = dict(REGISTRY, half={"ae_title": "HALF", "host": "h", "port": 2762, "tls": {"ca_file": "/etc/ca.pem"}})
    hosts = {"h1": source("ct1", ["half", "archive_tls"], registry)}
    # TLS on for every peer: the registry entry only adds its CA file.
    assert resolve_hosts(hosts, tls={"enabled": True})[1] == []
    for module_tls in (None, {"enabled": False}):
        _plans, errors = resolve_hosts(hosts, tls=module_tls)
        assert errors == ["dicom_aes.half.tls sets ca_file but TLS is off for this peer: add enabled: true to use "
                          "TLS, or enabled: false to keep it plain (or enable TLS for every peer with echo_audit_tls)"]
    assert resolve_hosts(hosts, tls="yes")[1] == ["echo_audit_tls: must be a dictionary, got str"]


def test_inline_peer_gets_a_default_name_and_metadata():
    inline = {"ae_title": "VENDOR", "host": "203.0.113.5", "port": 104, "expect": "blocked",
              "description": "remote service"}
    plan = resolve(lists={"dicom_peers": [inline]})
    (peer,) = plan["calls"][0]["peers"]
    assert peer == {"name": "VENDOR@203.0.113.5:104", "ae_title": "VENDOR", "host": "203.0.113.5", "port": 104,
                    "expect": "blocked"}
    assert plan["aes"][peer["name"]]["inline"] is True
    assert plan["aes"][peer["name"]]["description"] == "remote service"


def test_an_ae_never_checks_itself():
    plan = resolve(local=["ct1", "mr1"], lists={"dicom_peers_modalities": ["ct1", "mr1", "archive"]})
    assert names(plan["calls"][0]) == ["mr1", "archive"]
    assert names(plan["calls"][1]) == ["ct1", "archive"]


def test_local_aes_limits_an_entry():
    plan = resolve(local=["ct1", "mr1"], lists={"dicom_peers": ["archive", {"name": "printer", "local_aes": ["mr1"]}]})
    assert names(plan["calls"][0]) == ["archive"]
    assert names(plan["calls"][1]) == ["archive", "printer"]


def test_one_peer_may_expect_other_outcomes_from_other_calling_aes_of_a_host():
    # "CT1 must be accepted by the archive, MR1 refused", from one host: an entry per calling AE.
    lists = {"dicom_peers": [{"name": "archive", "local_aes": ["ct1"]},
                             {"name": "archive", "local_aes": ["mr1"], "expect": "reject"}, "mwl"]}
    plan = resolve(local=["ct1", "mr1"], lists=lists)
    assert [(call["calling"], [(peer["name"], peer["expect"]) for peer in call["peers"]]) for call in plan["calls"]] == [
        ("ct1", [("archive", "accept"), ("mwl", "accept")]),
        ("mr1", [("archive", "reject"), ("mwl", "accept")])]
    assert plan["checks"] == 4 and list(plan["aes"]).count("archive") == 1
    # Where both entries are for one calling AE, which one it checks would be a guess: refused.
    overlapping = {"dicom_peers": [{"name": "archive", "local_aes": ["ct1", "mr1"]},
                                   {"name": "archive", "local_aes": ["mr1"], "expect": "reject"}]}
    assert "dicom_peers[1] (archive)" in str(error_of(local=["ct1", "mr1"], lists=overlapping))
    everyone = {"dicom_peers": ["archive", {"name": "archive", "local_aes": ["mr1"], "expect": "reject"}]}
    assert "or give each its own local_aes" in str(error_of(local=["ct1", "mr1"], lists=everyone))


def test_identical_repeats_are_merged():
    plan = resolve(lists={"dicom_peers_modalities": ["archive", "mwl"], "dicom_peers": ["archive", {"name": "mwl"}]})
    assert names(plan["calls"][0]) == ["archive", "mwl"]


def test_only_keeps_peers_by_name_or_ae_title():
    plan = resolve(lists={"dicom_peers": ["archive", "archive_tls", "mwl", "printer"]}, only=["PACS_ARCHIVE", "mwl"])
    assert names(plan["calls"][0]) == ["archive", "archive_tls", "mwl"]
    assert plan["only_matched"] == ["PACS_ARCHIVE", "mwl"]
    plan = resolve(lists={"dicom_peers": ["printer"]}, only=["mwl"])
    assert plan["checks"] == 0 and plan["only_matched"] == []


def test_bind_address_and_empty_lists():
    plan = resolve(lists={"dicom_peers": None, "dicom_peers_x": []}, bind_address="192.0.2.40")
    assert plan["bind_address"] == "192.0.2.40"
    assert plan["checks"] == 0 and plan["calls"][0]["peers"] == []


def test_local_aes_may_be_a_single_name():
    plan = resolve_host("h", REGISTRY, "mr1", {"dicom_peers": ["archive"]})
    assert [call["calling"] for call in plan["calls"]] == ["mr1"]


@pytest.mark.parametrize("kwargs, fragments", [
    ({"lists": {"dicom_peers": ["archiv"]}}, ["host probe-a", "dicom_peers[0] (archiv)", "unknown AE 'archiv'",
                                              "did you mean archive"]),
    ({"local": ["ct9"]}, ["dicom_local_aes[0] (ct9)", "unknown AE"]),
    ({"local": []}, ["dicom_local_aes", "is not defined or empty"]),
    ({"lists": {"dicom_peers_modalities": ["archive", 42]}}, ["dicom_peers_modalities[1]",
                                                              "must be a registry name or a dictionary"]),
    ({"lists": {"dicom_peers": "archive"}}, ["dicom_peers", "must be a list"]),
    ({"lists": {"dicom_peers": [{"name": "mwl", "expect": "accepted"}]}}, ["dicom_peers[0] (mwl)",
                                                                           "expect must be one of"]),
    ({"lists": {"dicom_peers": [{"name": "mwl", "expetc": "reject"}]}}, ["dicom_peers[0]", "unknown key(s) expetc"]),
    ({"lists": {"dicom_peers": [{"expect": "reject"}]}}, ["dicom_peers[0]", "name is required"]),
    ({"lists": {"dicom_peers": [{"ae_title": "X", "host": "h"}]}}, ["dicom_peers[0]", "port is required"]),
    ({"lists": {"dicom_peers": [{"ae_title": "X", "host": "h", "port": 70000}]}}, ["between 1 and 65535"]),
    ({"lists": {"dicom_peers": [{"ae_title": "A\\B", "host": "h", "port": 1}]}}, ["ae_title", "backslash"]),
    ({"lists": {"dicom_peers": [{"ae_title": "X" * 17, "host": "h", "port": 1}]}}, ["at most 16"]),
    ({"lists": {"dicom_peers": [{"ae_title": "X", "host": "bad host", "port": 1}]}}, ["host must not contain"]),
    ({"lists": {"dicom_peers": [{"ae_title": "X", "host": "h", "port": 1, "name": "archive"}]}},
     ["inline peer name 'archive' is also a dicom_aes name"]),
    ({"lists": {"dicom_peers_modalities": ["archive"], "dicom_peers": [{"name": "archive", "expect": "reject"}]}},
     ["dicom_peers[0] (archive)", "already listed with other settings in dicom_peers_modalities[0] (archive)"]),
    ({"lists": {"dicom_peers": ["archive", {"ae_title": "PACS_ARCHIVE", "host": "192.0.2.10", "port": 104}]}},
     ["dicom_peers[1]", "inline peer PACS_ARCHIVE@192.0.2.10:104 is PACS_ARCHIVE@192.0.2.10:104, the registry entry "
      "dicom_aes.archive: refer to it by that name"]),
    # Without the registry name on this host too: another host listing archive would get a second column.
    ({"lists": {"dicom_peers": [{"name": "pacs", "ae_title": "PACS_ARCHIVE", "host": "192.0.2.10", "port": 104}]}},
     ["dicom_peers[0] (pacs)", "is PACS_ARCHIVE@192.0.2.10:104, the registry entry dicom_aes.archive"]),
    ({"lists": {"dicom_peers": [{"name": "gw1", "ae_title": "GW", "host": "gw.example.org", "port": 104},
                                {"name": "gw2", "ae_title": "GW", "host": "GW.example.org", "port": 104}]}},
     ["dicom_peers[1] (gw2)", "duplicate AE title GW on GW.example.org:104", "already listed as dicom_peers[0]"]),
    # One host spelled two ways is still one AE: the root's trailing dot, IPv6 written out in full.
    ({"lists": {"dicom_peers": [{"name": "gw1", "ae_title": "GW", "host": "gw.example.org", "port": 104},
                                {"name": "gw2", "ae_title": "GW", "host": "gw.example.org.", "port": 104}]}},
     ["dicom_peers[1] (gw2)", "duplicate AE title GW on gw.example.org.:104", "already listed as dicom_peers[0]"]),
    ({"lists": {"dicom_peers": [{"name": "v6a", "ae_title": "GW", "host": "2001:db8::10", "port": 104},
                                {"name": "v6b", "ae_title": "GW", "host": "2001:0db8:0:0:0:0:0:0010", "port": 104}]}},
     ["dicom_peers[1] (v6b)", "duplicate AE title GW", "already listed as dicom_peers[0]"]),
    ({"lists": {"dicom_peers": [{"name": "mwl", "local_aes": ["mr1"]}]}}, ["local_aes names 'mr1'"]),
    ({"lists": {"dicom_peers": [{"name": "mwl", "local_aes": []}]}}, ["dicom_peers[0] (mwl).local_aes: is empty"]),
    ({"lists": {"other_var": ["mwl"]}}, ["other_var", "must be named dicom_peers"]),
    ({"lists": {"dicom_peers": ["mwl"]}, "bind_address": "192.0.2.1 x"}, ["dicom_bind_address", "address must not"]),
    ({"lists": {"dicom_peers": ["mwl"]}, "only": "mwl x".split() + [5]}, ["echo_audit_only_peers[2]"]),
    ({"lists": {"dicom_peers": [{"ae_title": "X", "host": "10.010.020.057", "port": 1}]}},
     ["dicom_peers[0]", "host '10.010.020.057' is ambiguous", "would read this one as 10.8.16.47"]),
    ({"lists": {"dicom_peers": ["mwl"]}, "bind_address": "127.0.0.01"}, ["dicom_bind_address", "ambiguous"]),
])
def test_mistakes_name_the_host_and_the_entry(kwargs, fragments):
    message = str(error_of(**kwargs))
    assert message.startswith("host probe-a: ")
    for fragment in fragments:
        assert fragment in message


def test_an_inline_peer_is_a_registry_entry_however_its_address_is_written():
    registry = dict(copy.deepcopy(REGISTRY), archive=dict(REGISTRY["archive"], host="2001:db8::10"))
    inline = {"name": "pacs", "ae_title": "PACS_ARCHIVE", "host": "2001:db8:0::10", "port": 104}
    with pytest.raises(AuditInventoryError) as caught:
        resolve_host("probe-a", registry, ["ct1"], {"dicom_peers": [inline]})
    assert "is PACS_ARCHIVE@[2001:db8:0::10]:104, the registry entry dicom_aes.archive" in str(caught.value)


def test_registry_mistakes():
    for registry, fragments in [
        (None, ["dicom_aes", "is not defined"]),
        (["archive"], ["dicom_aes", "must be a dictionary"]),
        ({"a": "PACS"}, ["dicom_aes.a", "must be a dictionary with ae_title"]),
        ({"a": {"ae_title": "A", "host": "h", "port": 1, "colour": "red"}}, ["dicom_aes.a", "unknown key(s) colour"]),
        ({"a": {"ae_title": "A", "host": "H", "port": 1}, "b": {"ae_title": "A", "host": "h", "port": 1}},
         ["dicom_aes.b", "duplicate AE title A on h:1, already defined as dicom_aes.a"]),
        ({"a": {"ae_title": "A", "host": "h", "port": 1, "tls": {"enabled": True, "cafile": "x"}}},
         ["dicom_aes.a", "tls has unknown key(s) cafile"]),
        ({"a": {"ae_title": "A", "host": "h", "port": True}}, ["port must be an integer"]),
        ({"a": {"ae_title": "A", "host": "h", "port": 1, "site": 3}}, ["site must be a string"]),
    ]:
        with pytest.raises(AuditInventoryError) as caught:
            validate_registry(registry, "h1")
        for fragment in fragments:
            assert fragment in str(caught.value), (registry, str(caught.value))


def test_two_local_aes_with_one_title_fail():
    registry = dict(REGISTRY, ct1_other={"ae_title": "CT1", "host": "192.0.2.99", "port": 104})
    with pytest.raises(AuditInventoryError, match="calling AE title CT1 is also used by ct1"):
        resolve_host("h", registry, ["ct1", "ct1_other"], {})


def test_input_is_not_modified():
    registry = copy.deepcopy(REGISTRY)
    lists = {"dicom_peers": ["archive", {"name": "mwl", "expect": "reject"}]}
    before = copy.deepcopy((registry, lists))
    resolve_host("h", registry, ["ct1"], lists)
    assert (registry, lists) == before


_names = st.sampled_from(sorted(REGISTRY))
_entries = st.one_of(_names, st.builds(lambda name, expect: {"name": name, "expect": expect}, _names,
                                       st.sampled_from(["accept", "reject", "blocked"])))


@settings(max_examples=200, deadline=None)
@given(local=st.lists(st.sampled_from(["ct1", "mr1", "ws1"]), min_size=1, max_size=3, unique=True),
       lists=st.dictionaries(st.sampled_from(["dicom_peers", "dicom_peers_a", "dicom_peers_b"]),
                             st.lists(_entries, max_size=6), max_size=3))
def test_property_plan_or_typed_error(local, lists):
    """Any combination either resolves, with each peer once per call and never the caller itself,
    or fails with a typed error naming the host: never another exception."""
    try:
        plan = resolve_host("h1", REGISTRY, local, lists)
    except AuditInventoryError as error:
        assert str(error).startswith("host h1: ")
        return
    for call in plan["calls"]:
        peer_names = names(call)
        assert len(peer_names) == len(set(peer_names))
        assert call["calling"] not in peer_names
        targets = [(p["ae_title"], p["host"], p["port"]) for p in call["peers"]]
        assert len(targets) == len(set(targets))
    assert plan["checks"] == sum(len(call["peers"]) for call in plan["calls"])


@pytest.mark.parametrize("options, fragments", [
    ({"connect_timeout": 0}, ["echo_audit_connect_timeout: must be a positive number of seconds"]),
    ({"dimse_timeout": "soon"}, ["echo_audit_dimse_timeout: must be a number of seconds, got 'soon'"]),
    ({"parallel": "0"}, ["echo_audit_parallel: must be between 1 and 256, got 0"]),
    ({"count": 1001}, ["echo_audit_count: must be between 1 and 1000"]),
    ({"max_pdu": 1}, ["echo_audit_max_pdu: must be 0 (unlimited) or at least 4096"]),
    ({"colour": 1}, ["echo_audit_colour: is not an option of the echo module"]),
])
def test_echo_options_are_checked_as_the_module_would(options, fragments):
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"])}, echo_options=options)
    assert len(errors) == 1
    for fragment in fragments:
        assert fragment in errors[0]


def test_echo_options_left_to_the_module_defaults_pass():
    options = {"connect_timeout": None, "acse_timeout": "2.5", "parallel": "16", "max_pdu": 0}
    assert resolve_hosts({"h1": source("ct1", ["archive"])}, echo_options=options)[1] == []


# ---------------------------------------------------------------------------- every host of the play at once

_SHARED = object()


def source(local="ct1", peers=(), registry=_SHARED, **extra):
    """One host's variables as the action gathers them (the shared REGISTRY unless told otherwise)."""
    spec = {"dicom_aes": REGISTRY if registry is _SHARED else registry, "dicom_local_aes": local, "peer_lists": {"dicom_peers": list(peers)}}
    spec.update(extra)
    return spec


def test_resolve_hosts_gives_every_plan_with_its_probe():
    plans, errors = resolve_hosts({"h1": source("ct1", ["archive"]), "h2": source("mr1", ["mwl"], dicom_echo_via="probe")},
                                  inventory_hosts=["h1", "h2", "probe"])
    assert errors == []
    assert plans["h1"] == dict(resolve_host("h1", REGISTRY, "ct1", {"dicom_peers": ["archive"]}), echo_via=None)
    assert plans["h2"]["echo_via"] == "probe" and plans["h2"]["checks"] == 1


def test_a_registry_mistake_is_said_once_for_every_host_sharing_the_registry():
    registry = dict(REGISTRY, broken={"ae_title": "BROKEN", "host": "192.0.2.99", "port": 0})
    hosts = {name: source(local, ["archive"], registry) for name, local in (("h1", "ct1"), ("h2", "mr1"), ("h3", "ws1"))}
    plans, errors = resolve_hosts(hosts)
    assert errors == ["dicom_aes.broken: port must be an integer between 1 and 65535, got 0"]
    # The hosts that do not use the broken entry are resolved all the same (the action stops on errors anyway).
    assert sorted(plans) == ["h1", "h2", "h3"]


def test_a_peer_of_a_broken_registry_entry_is_not_blamed_on_the_host():
    registry = dict(REGISTRY, broken={"ae_title": "BROKEN", "host": "192.0.2.99"})
    plans, errors = resolve_hosts({"h1": source("ct1", ["broken"], registry), "h2": source("mr1", ["archive"], registry)},
                                  only="broken,archive")
    assert errors == ["dicom_aes.broken: has host but no port: give both host and port (where the AE listens), "
                      "or neither for an AE that only calls"]
    assert sorted(plans) == ["h2"]


def test_two_registries_each_mistake_names_the_hosts_that_have_it():
    other = dict(REGISTRY, extra={"ae_title": "EXTRA", "port": 104}, mwl=dict(REGISTRY["mwl"], expect="accept"))
    hosts = {"ws1": source("ws1", ["archive"]), "ws2": source("ct1", ["archive"]),
             "ws3": source("ct1", ["archive"], other), "ws4": source("mr1", ["archive"], other),
             "ws5": source("mr1", ["archive"], registry=None)}
    plans, errors = resolve_hosts(hosts)
    assert errors == [
        "dicom_aes.extra of ws3, ws4: has port but no host: give both host and port (where the AE listens), or "
        "neither for an AE that only calls",
        "dicom_aes.mwl of ws3, ws4: unknown key(s) expect; valid keys are ae_title, host, port, site, kind, description, "
        "tls, services, discover",
        "dicom_aes of ws5: is not defined: define the AE registry, usually in group_vars/all (see inventory.example)",
    ]
    assert sorted(plans) == ["ws1", "ws2", "ws3", "ws4"]


def test_a_mistake_every_registry_shares_is_said_plainly():
    a = dict(REGISTRY, bad={"ae_title": "A\\B", "host": "h", "port": 1})
    b = dict(a, extra={"ae_title": "EXTRA", "host": "h", "port": 2})
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"], a), "h2": source("ct1", ["archive"], b)})
    assert errors == ["dicom_aes.bad: ae_title must not contain a backslash (got 'A\\B')"]


def test_no_registry_at_all_is_one_line():
    _plans, errors = resolve_hosts({"h1": {"dicom_local_aes": "ct1"}, "h2": source("ct1", ["archive"], registry=None)})
    assert errors == ["dicom_aes: is not defined: define the AE registry, usually in group_vars/all (see inventory.example)"]
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"], registry=["archive"])})
    assert errors == ["dicom_aes: must be a dictionary of name: AE, got list"]


def test_every_mistake_of_every_host_is_listed():
    hosts = {
        "h1": source("ct9", ["archiv", {"name": "mwl", "expect": "accepted"}, "printer"], dicom_bind_address="10.0.0.1 x"),
        "h2": source("mr1", [{"name": "mwl", "local_aes": ["ct1"]}, 42]),
        "h3": source("ws1", ["archive"]),
        "h4": {"dicom_aes": REGISTRY, "peer_lists": {"dicom_peers": "archive", "dicom_peers_x": [{"name": "mwl", "local_aes": "ct1"}]}},
    }
    plans, errors = resolve_hosts(hosts)
    assert errors == [
        "host h1: dicom_local_aes[0] (ct9): unknown AE 'ct9', not in dicom_aes (did you mean ct1?)",
        "host h1: dicom_bind_address: address must not contain spaces or control characters, got '10.0.0.1 x'",
        "host h1: dicom_peers[0] (archiv): unknown AE 'archiv', not in dicom_aes (did you mean archive, archive_tls?)",
        "host h1: dicom_peers[1] (mwl): expect must be one of accept, reject, blocked, got 'accepted'",
        "host h2: dicom_peers[0] (mwl): local_aes names 'ct1', which is not in this host's dicom_local_aes (mr1)",
        "host h2: dicom_peers[1]: must be a registry name or a dictionary, got int",
        "host h4: dicom_local_aes: is not defined or empty: list the registry names this host speaks as (the calling AE titles)",
        "host h4: dicom_peers: must be a list of peers, got str",
    ]
    assert list(plans) == ["h3"]


def test_the_same_mistake_of_several_hosts_is_one_line_naming_them():
    group_list = {"dicom_peers_modalities": ["archive", "RIS_MWL"]}
    hosts = {name: dict(source(local), peer_lists=group_list) for name, local in (("ct", "ct1"), ("mr", "mr1"))}
    hosts["ws"] = source("ws1", ["archive"])
    plans, errors = resolve_hosts(hosts)
    assert errors == ["hosts ct, mr: dicom_peers_modalities[1] (RIS_MWL): unknown AE 'RIS_MWL', not in dicom_aes "
                      "(did you mean mwl (AE title RIS_MWL)?)"]
    assert list(plans) == ["ws"]


@pytest.mark.parametrize("reference, hint", [
    ("WS1", "(did you mean ws1 (AE title WS1)?)"),
    ("ris_mwl", "(did you mean mwl (AE title RIS_MWL)?)"),
    ("pacs_archive", "(did you mean archive (AE title PACS_ARCHIVE), archive_tls (AE title PACS_ARCHIVE)?)"),
    ("mr2", "(did you mean mr1?)"),
    ("gateway", None),
])
def test_did_you_mean_names_the_entry_whose_ae_title_was_written(reference, hint):
    _plans, errors = resolve_hosts({"h1": source("ct1", [reference])})
    (line,) = errors
    assert line.startswith("host h1: dicom_peers[0] (%s): unknown AE '%s', not in dicom_aes" % (reference, reference))
    assert line.endswith(hint) if hint else line.endswith("not in dicom_aes")
    _plans, errors = resolve_hosts({"h1": source([reference], ["archive"])})
    assert errors == ["host h1: dicom_local_aes[0] (%s): %s" % (reference, line.split(": ", 2)[2])]


CALLING_ONLY = dict(REGISTRY, scu={"ae_title": "WS_SCU", "site": "B", "kind": "workstation"})


def test_a_calling_only_ae_is_a_row():
    plans, errors = resolve_hosts({"ws-scu": source("scu", ["archive", "mwl"], CALLING_ONLY)})
    assert errors == []
    the_plan = plans["ws-scu"]
    assert [(call["calling_ae_title"], [peer["name"] for peer in call["peers"]]) for call in the_plan["calls"]] == [
        ("WS_SCU", ["archive", "mwl"])]
    assert the_plan["aes"]["scu"] == {"name": "scu", "ae_title": "WS_SCU", "host": None, "port": None, "site": "B",
                                      "kind": "workstation", "description": None, "inline": False}
    # Its AE title may be another entry's too: it has no address to clash on.
    registry = dict(CALLING_ONLY, scu2={"ae_title": "WS_SCU"})
    assert validate_registry(registry)["scu2"]["host"] is None


def test_a_calling_only_ae_is_never_a_peer():
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive", {"name": "scu", "expect": "blocked"}], CALLING_ONLY)})
    assert errors == ["host h1: dicom_peers[1] (scu): dicom_aes.scu has no host and port, so it can only call: it cannot "
                      "be a peer. Give it host and port if it listens, or remove it from dicom_peers"]


@pytest.mark.parametrize("entry, message", [
    ({"ae_title": "X", "host": "192.0.2.5"}, "has host but no port: give both host and port (where the AE listens), "
                                             "or neither for an AE that only calls"),
    ({"ae_title": "X", "port": 104}, "has port but no host: give both host and port (where the AE listens), "
                                     "or neither for an AE that only calls"),
    ({"ae_title": "X", "host": "192.0.2.5", "port": ""}, "has host but no port"),
])
def test_host_and_port_go_together(entry, message):
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"], dict(REGISTRY, half=entry))})
    (line,) = errors
    assert line.startswith("dicom_aes.half: " + message)


def test_an_inline_peer_needs_host_and_port():
    _plans, errors = resolve_hosts({"h1": source("ct1", [{"ae_title": "VENDOR"}])})
    assert errors == ["host h1: dicom_peers[0]: host is required"]


@pytest.mark.parametrize("only", ["archive, RIS_MWL", " archive,,RIS_MWL ,", ["archive", "RIS_MWL"], ("archive", " RIS_MWL")])
def test_only_peers_as_a_list_or_comma_separated_text(only):
    plans, errors = resolve_hosts({"h1": source("ct1", ["archive", "mwl", "printer"]), "h2": source("mr1", ["printer"])},
                                  only=only)
    assert errors == []
    assert names(plans["h1"]["calls"][0]) == ["archive", "mwl"] and plans["h1"]["only_matched"] == ["RIS_MWL", "archive"]
    assert plans["h2"]["checks"] == 0


def test_an_only_peers_entry_that_selects_nothing():
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive", "mwl"]), "h2": source("mr1", ["printer"])},
                                   only="archive,ris_mwl,gateway")
    assert errors == [
        "echo_audit_only_peers: ris_mwl is not a peer (registry name or AE title) of any host in this play "
        "(did you mean RIS_MWL?)",
        "echo_audit_only_peers: gateway is not a peer (registry name or AE title) of any host in this play",
    ]
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"])}, only=["archive", 5])
    assert errors == ["echo_audit_only_peers[1]: must be a registry name or AE title, got 5"]
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"])}, only={"archive": 1})
    assert errors == ["echo_audit_only_peers: must be a list of registry names or AE titles, or one text like "
                      "archive,mwl; got dict"]


@pytest.mark.parametrize("via, message", [
    ("probe-c", "probe-c is not a host of the inventory (did you mean probe-a, probe-b?): name the probe host that "
                "runs this source's echoes (delegate_to), or leave dicom_echo_via out"),
    ("elsewhere", "elsewhere is not a host of the inventory: name the probe host that runs this source's echoes "
                  "(delegate_to), or leave dicom_echo_via out"),
    (["probe-a"], "must be the name of an inventory host (the probe that runs this source's echoes), got a list"),
    ("", "must be the name of an inventory host (the probe that runs this source's echoes), got ''"),
])
def test_echo_via_must_be_an_inventory_host(via, message):
    plans, errors = resolve_hosts({"ct-appl": source("ct1", ["archive"], dicom_echo_via=via), "h2": source("mr1", ["mwl"])},
                                  inventory_hosts=["ct-appl", "h2", "probe-a", "probe-b"])
    assert errors == ["host ct-appl: dicom_echo_via: " + message]
    assert list(plans) == ["h2"]


def test_nothing_to_check():
    hosts = {"h1": source("ct1", []), "h2": {"dicom_aes": REGISTRY, "dicom_local_aes": "mr1"},
             "h3": source("ct1", ["ct1"])}
    plans, errors = resolve_hosts(hosts)
    assert errors == ["Nothing to check: no host in this play (h1, h2, h3) has a peer. Give the source hosts dicom_peers "
                      "or dicom_peers_* lists (see inventory.example)"]
    assert sorted(plans) == ["h1", "h2", "h3"]
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"]), "h2": source("mr1", ["mwl"])}, only="printer")
    assert errors == ["echo_audit_only_peers: printer is not a peer (registry name or AE title) of any host in this play",
                      ]
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"]), "h2": source("mr1", ["printer"])}, only="PRINT_A")
    assert errors == []
    _plans, errors = resolve_hosts({"h1": source("ct1", ["archive"]), "h2": source("ct1", ["printer"])}, only="ct1")
    assert errors[0].startswith("echo_audit_only_peers: ct1 is not a peer")
    _plans, errors = resolve_hosts({"h1": source("ct1", ["ct1", "archive"])}, only="ct1")
    assert errors == ["Nothing to check: no host in this play (h1) has a peer matching echo_audit_only_peers. Give the "
                      "source hosts dicom_peers or dicom_peers_* lists (see inventory.example)"]


def test_echo_options_and_tls_mistakes_are_said_once():
    registry = dict(REGISTRY, half={"ae_title": "HALF", "host": "h", "port": 2762, "tls": {"ca_file": "/etc/ca.pem"}})
    hosts = {name: source(local, ["half", "archive"], registry) for name, local in (("h1", "ct1"), ("h2", "mr1"), ("h3", "ws1"))}
    hosts["h4"] = source("ct1", [{"name": "vendor", "ae_title": "V", "host": "203.0.113.5", "port": 2762,
                                  "tls": {"verify": False}}])
    plans, errors = resolve_hosts(hosts, echo_options={"connect_timeout": 0, "parallel": 16, "count": 1001}, tls=None)
    assert errors == [
        "echo_audit_connect_timeout: must be a positive number of seconds, got 0",
        "echo_audit_count: must be between 1 and 1000, got 1001",
        "dicom_aes.half.tls sets ca_file but TLS is off for this peer: add enabled: true to use TLS, or enabled: false "
        "to keep it plain (or enable TLS for every peer with echo_audit_tls)",
        "host h4: dicom_peers[0] (vendor).tls sets verify but TLS is off for this peer: add enabled: true to use TLS, "
        "or enabled: false to keep it plain (or enable TLS for every peer with echo_audit_tls)",
    ]
    assert plans == {}
    plans, errors = resolve_hosts(hosts, tls={"enabled": True})
    assert errors == [] and sorted(plans) == ["h1", "h2", "h3", "h4"]
    _plans, errors = resolve_hosts(hosts, tls="yes")
    assert errors == ["echo_audit_tls: must be a dictionary, got str"]
    _plans, errors = resolve_hosts(hosts, tls={"enabled": True, "cafile": "/x"})
    assert errors == ["echo_audit_tls has unknown key(s) cafile; valid keys are " + ", ".join(TLS_KEYS)]


def test_dicom_local_aes_as_comma_separated_text():
    plans, errors = resolve_hosts({"h1": source("ct1, mr1", ["archive"])})
    assert errors == [] and [call["calling"] for call in plans["h1"]["calls"]] == ["ct1", "mr1"]


def test_error_lines_are_one_line_each_without_python_objects():
    hosts = {"h1": source(["ct1", {"x": 1}], [{"name": "mwl", "expect": ["accept"]}, object()], dicom_echo_via=3),
             "h2": source("ct1", ["archive"], registry={"a": {"ae_title": "A", "host": "h", "port": {"x": 1}}, 7: {}}),
             "h3": "not a dictionary"}
    _plans, errors = resolve_hosts(hosts, only=[object()], echo_options={"parallel": object()}, tls=[])
    assert len(errors) >= 8
    for line in errors:
        assert "\n" not in line and "object at 0x" not in line and "Traceback" not in line, line


_hosts = st.dictionaries(st.sampled_from(["h1", "h2", "h3"]),
                         st.builds(lambda local, lists: {"dicom_aes": REGISTRY, "dicom_local_aes": local, "peer_lists": lists},
                                   st.lists(st.sampled_from(["ct1", "mr1", "ws1", "scu"]), min_size=1, max_size=3, unique=True),
                                   st.dictionaries(st.sampled_from(["dicom_peers", "dicom_peers_a"]),
                                                   st.lists(_entries, max_size=5), max_size=2)),
                         min_size=1)


@settings(max_examples=200, deadline=None)
@given(hosts=_hosts)
def test_property_resolve_hosts_agrees_with_resolve_host(hosts):
    """Each host gets resolve_host's plan, or resolve_host fails on a mistake resolve_hosts lists."""
    plans, errors = resolve_hosts(hosts)
    for name, spec in hosts.items():
        try:
            expected = resolve_host(name, REGISTRY, spec["dicom_local_aes"], spec["peer_lists"])
        except AuditInventoryError as error:
            assert name not in plans
            assert any(line.endswith(": %s: %s" % (error.entry, error.problem)) and name in line for line in errors)
            continue
        assert plans[name] == dict(expected, echo_via=None)
    if all(name in plans for name in hosts):
        checks = sum(plan["checks"] for plan in plans.values())
        assert (errors == []) == (checks > 0)


# ---------------------------------------------------------------------------------------------- services


SERVICES = dict(REGISTRY, archive=dict(REGISTRY["archive"], services=[
    "CTImageStorage", {"sop_class": "1.2.840.10008.5.1.4.1.1.4", "transfer_syntaxes": ["ExplicitVRLittleEndian"]}]))


def test_registry_services_go_to_every_route_and_a_peer_entry_replaces_them_for_its_own():
    plan = resolve_host("probe-a", SERVICES, ["ct1", "mr1"], {
        "dicom_peers": ["archive", {"name": "printer", "discover": "storage"}],
        "dicom_peers_x": []})
    archive = plan["calls"][0]["peers"][0]
    assert archive["services"] == ["CTImageStorage", {"sop_class": "1.2.840.10008.5.1.4.1.1.4",
                                                      "transfer_syntaxes": ["ExplicitVRLittleEndian"]}]
    assert "discover" not in archive
    assert plan["calls"][0]["peers"][1] == {"name": "printer", "ae_title": "PRINT_A", "host": "192.0.2.70",
                                            "port": 5040, "expect": "accept", "discover": "storage"}
    routed = resolve_host("probe-a", SERVICES, ["ct1"], {"dicom_peers": [
        {"name": "archive", "services": ["EnhancedCTImageStorage"], "discover": "all"}]})
    assert routed["calls"][0]["peers"][0]["services"] == ["EnhancedCTImageStorage"]
    assert routed["calls"][0]["peers"][0]["discover"] == "all"
    # An empty list on the route: this caller needs none of the registry's services.
    none = resolve_host("probe-a", SERVICES, ["ct1"], {"dicom_peers": [{"name": "archive", "services": []}]})
    assert none["calls"][0]["peers"][0]["services"] == []


def test_a_route_that_must_not_accept_checks_no_registry_services():
    plan = resolve_host("probe-a", SERVICES, ["ct1"], {"dicom_peers": [{"name": "archive", "expect": "reject"}]})
    assert plan["calls"][0]["peers"][0] == {"name": "archive", "ae_title": "PACS_ARCHIVE", "host": "192.0.2.10",
                                            "port": 104, "expect": "reject"}


@pytest.mark.parametrize("entry, problem", [
    ({"name": "archive", "expect": "reject", "services": ["CTImageStorage"]},
     "dicom_peers[0] (archive): sets services but expects reject: services are checked only on a route that must "
     "accept; remove services from this entry"),
    ({"ae_title": "X1", "host": "192.0.2.99", "port": 104, "expect": "blocked", "discover": "storage"},
     "dicom_peers[0] (X1@192.0.2.99:104): sets discover but expects blocked"),
    ({"name": "archive", "services": ["1.2.840.10008.05.1"]},
     "dicom_peers[0] (archive): services[0] is not a valid UID: numbers joined by single dots, without leading zeros"),
    ({"name": "archive", "services": [{"sop_class": "CTImageStorage", "transfer_syntaxes": ["Not-A-Syntax"]}]},
     "dicom_peers[0] (archive): services[0].transfer_syntaxes[0] must be a pydicom keyword"),
    ({"name": "archive", "services": ["CTImageStorage", "MRImageStorage", "CTImageStorage"]},
     "dicom_peers[0] (archive): services[2] names CTImageStorage again (also services[0])"),
    ({"name": "archive", "services": "CTImageStorage"},
     "dicom_peers[0] (archive): services must be a list of SOP classes"),
    ({"name": "archive", "discover": "everything"},
     "dicom_peers[0] (archive): discover must be one of storage, query_retrieve, worklist, all, got 'everything'"),
])
def test_bad_services_on_a_peer_entry_are_that_hosts_mistake(entry, problem):
    plans, errors = resolve_hosts({"h1": source("ct1", [entry], SERVICES)})
    assert plans == {} and len(errors) == 1
    assert errors[0].startswith("host h1: " + problem), errors


def test_bad_registry_services_are_said_once_for_every_host():
    registry = dict(REGISTRY, mwl=dict(REGISTRY["mwl"], services=["ModalityWorklistInformationFind", "1.2.3."]),
                    ct1=dict(REGISTRY["ct1"], host=None, port=None, discover="storage"))
    hosts = {name: source(local, ["archive", "mwl"], registry) for name, local in (("h1", "mr1"), ("h2", "ws1"))}
    _plans, errors = resolve_hosts(hosts)
    assert errors == [
        "dicom_aes.ct1: has discover but no host and port: only an AE that listens provides services; give it host "
        "and port, or remove discover",
        "dicom_aes.mwl: services[1] is not a valid UID: numbers joined by single dots, without leading zeros "
        "(got '1.2.3.')"]


def test_two_entries_for_one_peer_must_agree_on_services():
    error = error_of(lists={"dicom_peers_a": [{"name": "archive", "services": ["CTImageStorage"]}],
                            "dicom_peers": ["archive"]})
    assert "give both entries the same expect, local_aes, services and discover" in str(error)
