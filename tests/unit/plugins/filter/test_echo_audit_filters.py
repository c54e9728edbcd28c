"""The echo audit filter plugins: documentation, Ansible loading, and errors without tracebacks."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping

import pytest
import yaml
from ansible.errors import AnsibleFilterError

import json
import re

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import unpack_report
from tests.unit.plugins.plugin_utils.test_audit_matrix import REGISTRY, registered, report_of, small_runs, split

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
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["generated_at"]), report["generated_at"]
    # The default is a stamp the publishing filter takes, as the filters' EXAMPLES chain them.
    history = function("echo_publish_history")(None, report=report, formats=["json"], directory="/srv/echo", keep=2)
    assert history["stamp"] == report["generated_at"].replace("-", "").replace(":", "")
    assert json.loads(function("echo_matrix")(plans, results=results, generated_at="now", as_json=True)) == \
        json.loads(json.dumps(function("echo_matrix")(plans, results=results, generated_at="now")))
    with pytest.raises(AnsibleFilterError, match="dicom.network.echo_matrix: host x: no peer plan"):
        function("echo_matrix")({"x": None})
    with pytest.raises(AnsibleFilterError, match="b.json: not a JSON report"):
        function("echo_matrix")(plans, results=results, baseline="{", baseline_source="b.json")
    assert function("echo_matrix")({}, baseline="")["baseline"] is None


class _Lazy(dict):
    """Stands in for ansible-core 2.19's lazy dict: reading an item through it would template it."""

    def __getitem__(self, key):
        raise AssertionError("read through the lazy wrapper")

    def get(self, key, default=None):
        raise AssertionError("read through the lazy wrapper")

    def items(self):
        raise AssertionError("read through the lazy wrapper")

    def _non_lazy_copy(self):
        return dict(dict.items(self))


class _LazyList(list):
    def __iter__(self):
        raise AssertionError("read through the lazy wrapper")

    def __getitem__(self, index):
        raise AssertionError("read through the lazy wrapper")

    def _non_lazy_copy(self):
        return list(list.__iter__(self))


class _Readable(dict):
    """A lazy dict read through (templating each value, in ansible-core): right, only slower."""

    reads = 0

    def get(self, key, default=None):
        _Readable.reads += 1
        return dict.get(self, key, default)

    def _non_lazy_copy(self):
        return dict(dict.items(self))


def _lazy(value, depth, wrapper=None):
    """``value`` with its containers down to ``depth`` levels wrapped, as if read from variables."""
    if depth < 0:
        return value
    if isinstance(value, dict):
        return (wrapper or _Lazy)({key: _lazy(item, depth - 1, wrapper) for key, item in value.items()})
    if isinstance(value, list):
        return (_LazyList if wrapper is None else list)(_lazy(item, depth - 1, wrapper) for item in value)
    return value


def test_echo_matrix_reads_lazy_containers_without_templating_them():
    plans, results = split(small_runs())
    expected = function("echo_matrix")(plans, results=results, generated_at="now")
    # What the role hands the filter: each host's plan and result read from hostvars, and what those hold
    # if a template read them before: a plan's calls and AE registry, a result's loop items and their results.
    got = function("echo_matrix")(_lazy(plans, 2), results=_lazy(results, 4), generated_at="now",
                                  setup_failures=_Lazy({"ws-1": None}), only_peers=None,
                                  baseline=_lazy(json.loads(json.dumps(expected)), 1))
    assert got["cells"] == expected["cells"] and got["baseline"]["counts"]["broke"] == 0
    # Deeper lazy containers are read through, which is only slower.
    _Readable.reads = 0
    deep = function("echo_matrix")(_lazy(plans, 9, _Readable), results=_lazy(results, 9, _Readable),
                                   generated_at="now")
    assert deep == expected and _Readable.reads > 0


def test_echo_matrix_packed_as_the_role_keeps_it():
    plans, results = split(small_runs())
    text = function("echo_matrix")(plans, results=results, generated_at="now", as_json=True, packed=True)
    packed = json.loads(text)
    assert packed["packing"] == 1 and "cells" not in packed
    full = function("echo_matrix")(plans, results=results, generated_at="now")
    assert function("echo_matrix_export")(text, "json") == function("echo_matrix_export")(full, "json")
    assert function("echo_matrix_view")(text, "summary") == function("echo_matrix_view")(full, "summary")
    assert function("echo_matrix")(plans, results=results, generated_at="now", packed=True)["packed_cells"]


def test_echo_matrix_with_its_summary_from_one_call():
    plans, results = split(small_runs())
    both = function("echo_matrix")(plans, results=results, generated_at="now", as_json=True, packed=True,
                                   with_summary=True, console_limit=1)
    assert sorted(both) == ["report", "summary"]
    assert both["report"] == function("echo_matrix")(plans, results=results, generated_at="now", as_json=True,
                                                     packed=True)
    assert both["summary"] == function("echo_matrix_view")(both["report"], "summary", console_limit=1)
    assert both["summary"]["console"][-1] == "... 2 more line(s) in the reports"
    unpacked = function("echo_matrix")(plans, results=results, generated_at="now", with_summary=True, console_limit=1)
    assert unpacked["report"]["cells"] and unpacked["summary"] == both["summary"]
    with pytest.raises(AnsibleFilterError, match="echo_matrix: console_limit must be a whole number >= 0, got 'ten'"):
        function("echo_matrix")(plans, results=results, with_summary=True, console_limit="ten")


def test_echo_matrix_summary_gives_the_new_failures_against_the_baseline():
    # The baseline knew probe-a only; probe-b (unreachable: not run) and ws-1 (all as expected) are new.
    runs = small_runs()
    old = report_of({"probe-a": runs["probe-a"]})
    plans, results = split(runs)
    both = function("echo_matrix")(plans, results=results, generated_at="now", as_json=True, packed=True,
                                   baseline=json.dumps(old), with_summary=True)
    assert both["summary"]["baseline_counts"] == {"broke": 0, "fixed": 0, "appeared": 4, "disappeared": 0,
                                                  "changed": 0, "new_failures": 2}
    assert json.loads(both["report"])["baseline"]["counts"] == both["summary"]["baseline_counts"]


class _HostVars(Mapping):
    """Stands in for hostvars[host] (ansible-core's HostVarsVars): a Mapping that templates what is read."""

    reads = []

    def __init__(self, variables):
        self._variables = variables

    def __getitem__(self, key):
        _HostVars.reads.append(key)
        return self._variables[key]

    def __iter__(self):
        return iter(self._variables)

    def __len__(self):
        return len(self._variables)


def test_echo_matrix_from_host_variables_as_the_role_calls_it():
    _HostVars.reads = []
    plans, results = split(small_runs())
    names = {"plan": "_echo_audit_plan", "results": "__echo_audit_echo", "setup_failure": "_echo_audit_setup_failure"}
    hostvars = {host: {"_echo_audit_plan": plan, "unrelated": 1} for host, plan in plans.items()}
    for host, echo in results.items():
        hostvars[host]["__echo_audit_echo"] = echo
    hostvars["ws-1"]["_echo_audit_setup_failure"] = "no virtualenv"
    got = function("echo_matrix")({host: _HostVars(variables) for host, variables in hostvars.items()},
                                  from_hostvars=names, generated_at="now", packed=True)
    assert sorted(_HostVars.reads) == sorted(list(names.values()) * 3), "each variable of each host read once"
    expected = function("echo_matrix")(plans, results=results, setup_failures={"ws-1": "no virtualenv"},
                                       generated_at="now", packed=True)
    assert got == expected
    assert {c["not_run_reason"] for c in unpack_report(got)["cells"] if c["source_host"] == "ws-1"} == {"setup_failed"}
    with pytest.raises(AnsibleFilterError, match="from_hostvars must name the variables plan, results, setup_failure"):
        function("echo_matrix")(hostvars, from_hostvars={"plan": "_echo_audit_plan"})
    with pytest.raises(AnsibleFilterError, match="host probe-a: its variables must be a dictionary"):
        function("echo_matrix")({"probe-a": None}, from_hostvars=names)


def test_echo_matrix_view_and_export_wrap_bad_input():
    with pytest.raises(AnsibleFilterError, match="echo_matrix_view: not a report of dicom.network.echo_matrix"):
        function("echo_matrix_view")({"rows": []})
    with pytest.raises(AnsibleFilterError, match="echo_matrix_view: failures_limit must be a whole number >= 0"):
        function("echo_matrix_view")(report_of(small_runs()), "md", failures_limit="-1")
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
