"""The echo audit filter plugins: documentation, Ansible loading, and errors without tracebacks."""
from __future__ import annotations

import importlib
import inspect

import pytest
import yaml
from ansible.errors import AnsibleFilterError

import json

from tests.unit.plugins.module_utils.test_audit_matrix import REGISTRY, registered, report_of, small_runs, split

FILTERS = ("echo_audit_peers", "echo_matrix", "echo_matrix_view", "echo_matrix_export", "md_escape",
           "echo_publish_history", "echo_publish_index", "echo_publish_mail")


def descriptions_are_text(node, where=""):
    """A description item like ``- Do this: that`` is a YAML mapping, which ansible-doc cannot show."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "short_description"):
                for item in value if isinstance(value, list) else [value]:
                    assert isinstance(item, str), "%s.%s: %r is not text (quote it)" % (where, key, item)
            else:
                descriptions_are_text(value, "%s.%s" % (where, key))
    elif isinstance(node, list):
        for value in node:
            descriptions_are_text(value, where)


def plugin(name):
    return importlib.import_module("ansible_collections.dicom.network.plugins.filter.%s" % name)


def function(name):
    return plugin(name).FilterModule().filters()[name]


@pytest.mark.parametrize("name", FILTERS)
def test_documentation_is_complete_and_matches_the_signature(name):
    module = plugin(name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["name"] == name
    assert doc["short_description"] and doc["description"] and doc["version_added"]
    assert "_input" in doc["options"]
    for option in doc["options"].values():
        assert option.get("description") and option.get("type")
    assert yaml.safe_load(module.EXAMPLES)
    assert yaml.safe_load(module.RETURN)["_value"]["description"]
    descriptions_are_text(doc, name)
    descriptions_are_text(yaml.safe_load(module.RETURN), name)
    parameters = list(inspect.signature(function(name)).parameters)
    assert sorted(parameters[1:]) == sorted(key for key in doc["options"] if key != "_input")


def test_echo_audit_peers_error_is_a_filter_error_naming_host_and_entry():
    with pytest.raises(AnsibleFilterError) as caught:
        function("echo_audit_peers")(REGISTRY, host="ws-9", local_aes=["ws1"], peer_lists={"dicom_peers": ["nope"]})
    assert str(caught.value).startswith("dicom.network.echo_audit_peers: host ws-9: dicom_peers[0] (nope): unknown AE")
    plan = function("echo_audit_peers")(REGISTRY, host="ws-9", local_aes=["ws1"], peer_lists={"dicom_peers": ["mwl"]})
    assert plan["checks"] == 1


def test_echo_matrix_defaults_generated_at_and_wraps_errors():
    plans, results = split(small_runs())
    report = function("echo_matrix")(plans, results=results)
    assert report["generated_at"].endswith("+00:00")
    assert json.loads(function("echo_matrix")(plans, results=results, generated_at="now", as_json=True)) == \
        json.loads(json.dumps(function("echo_matrix")(plans, results=results, generated_at="now")))
    with pytest.raises(AnsibleFilterError, match="dicom.network.echo_matrix: host x: no peer plan"):
        function("echo_matrix")({"x": None})
    with pytest.raises(AnsibleFilterError, match="b.json: not a JSON report"):
        function("echo_matrix")(plans, results=results, baseline="{", baseline_source="b.json")
    assert function("echo_matrix")({}, baseline="")["baseline"] is None


def test_echo_matrix_view_and_export_wrap_bad_input():
    with pytest.raises(AnsibleFilterError, match="echo_matrix_view: not a report of dicom.network.echo_matrix"):
        function("echo_matrix_view")({"rows": []})
    with pytest.raises(AnsibleFilterError, match="echo_matrix_view: view must be one of"):
        function("echo_matrix_view")(report_of(small_runs()), "pdf")
    with pytest.raises(AnsibleFilterError, match="echo_matrix_export: format must be one of"):
        function("echo_matrix_export")(report_of(small_runs()), "xlsx")
    assert function("echo_matrix_view")(report_of(small_runs()), "md", markdown_max_columns="2")["matrix"] is None
    assert function("echo_matrix_export")(json.dumps(report_of(small_runs())), "csv").startswith("source_host,")


def test_md_escape_filter():
    assert function("md_escape")("<b>|") == "&lt;b&gt;\\|"


def test_registered_fixture_is_what_the_role_registers():
    # Guard for the fixture the unit tests share: the loop items carry the call as ``item``.
    runs = small_runs()
    assert registered(runs["probe-a"]["plan"])["results"][0]["item"]["calling"] == "ct1"
