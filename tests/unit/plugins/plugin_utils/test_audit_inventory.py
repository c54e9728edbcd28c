"""Inventory model -> per-host echo plans (plugins/plugin_utils/audit_inventory.py)."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import (
    AuditInventoryError,
    check_echo_options,
    check_peer_tls,
    resolve_host,
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
    plan = resolve_host("h1", registry, ["ct1"], {"dicom_peers": ["half", "archive_tls"]})
    # TLS on for every peer: the registry entry only adds its CA file.
    check_peer_tls(plan, {"enabled": True})
    for module_tls in (None, {"enabled": False}):
        with pytest.raises(AuditInventoryError, match=r"^host h1: peer half: dicom_aes\.half\.tls sets ca_file but TLS "
                                                      r"is off for this peer: .*\(or enable TLS for every peer with "
                                                      r"echo_audit_tls\)$"):
            check_peer_tls(plan, module_tls)
    with pytest.raises(AuditInventoryError, match="^host h1: echo_audit_tls: must be a dictionary, got str$"):
        check_peer_tls(plan, "yes")


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
    ({"connect_timeout": 0}, ["host probe-a: echo_audit_connect_timeout: must be a positive number of seconds"]),
    ({"dimse_timeout": "soon"}, ["echo_audit_dimse_timeout: must be a number of seconds, got 'soon'"]),
    ({"parallel": "0"}, ["echo_audit_parallel: must be between 1 and 256, got 0"]),
    ({"count": 1001}, ["echo_audit_count: must be between 1 and 1000"]),
    ({"max_pdu": 1}, ["echo_audit_max_pdu: must be 0 (unlimited) or at least 4096"]),
    ({"colour": 1}, ["echo_audit_colour: is not an option of the echo module"]),
])
def test_echo_options_are_checked_as_the_module_would(options, fragments):
    with pytest.raises(AuditInventoryError) as caught:
        check_echo_options(options, "probe-a")
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_echo_options_left_to_the_module_defaults_pass():
    check_echo_options({"connect_timeout": None, "acse_timeout": "2.5", "parallel": "16", "max_pdu": 0}, "probe-a")
