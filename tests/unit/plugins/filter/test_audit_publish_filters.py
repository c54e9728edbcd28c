"""The publish filter plugins: errors without tracebacks, and the glue around audit_publish.py."""
from __future__ import annotations

import importlib
import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from tests.unit.plugins.plugin_utils.test_audit_matrix import report_of, small_runs

FILTERS = ("echo_publish_history", "echo_publish_index", "echo_publish_mail")


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
def test_documentation_is_complete(name):
    module = plugin(name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["name"] == name
    assert doc["short_description"] and doc["description"] and doc["version_added"]
    for option in doc["options"].values():
        assert option.get("description") and option.get("type")
    assert yaml.safe_load(module.EXAMPLES)
    assert yaml.safe_load(module.RETURN)["_value"]["description"]
    descriptions_are_text(doc, name)


def test_history_filter_errors_are_filter_errors():
    with pytest.raises(AnsibleFilterError) as caught:
        function("echo_publish_history")("{", report=report_of(small_runs()), formats=["json"],
                                         directory="/srv/echo", keep=2, host="reports-1")
    assert str(caught.value).startswith("dicom.network.echo_publish_history: reports-1:/srv/echo/history.json: ")
    with pytest.raises(AnsibleFilterError, match="echo_audit_publish_dir"):
        function("echo_publish_history")(None, report=report_of(small_runs()), formats=["json"], directory="rel",
                                         keep=2)
    with pytest.raises(AnsibleFilterError, match="no summary"):
        function("echo_publish_history")(None, report={"generated_at": "2025-01-02T03:04:05Z"}, formats=["json"],
                                         directory="/srv/echo", keep=2)


def test_index_filter_refuses_what_is_not_a_history():
    with pytest.raises(AnsibleFilterError, match="not a publish history"):
        function("echo_publish_index")({"runs": []})


def test_history_then_index_through_the_filters():
    plan = function("echo_publish_history")(None, report=json.dumps(report_of(small_runs())),
                                            formats=["json", "html"], directory="/srv/echo", keep=2)
    view = function("echo_publish_index")(plan["history"], title="T")
    assert [run["stamp"] for run in view["runs"]] == [plan["stamp"]]


def test_mail_filter_refuses_settings_before_anything_else():
    with pytest.raises(AnsibleFilterError) as caught:
        function("echo_publish_mail")(None, to=["pacs@example.org"], sender="audit@example.org", secure="try",
                                      password_set=True)
    assert str(caught.value).startswith("dicom.network.echo_publish_mail: echo_audit_mail_password is set")


def test_mail_filter_needs_the_mail_module_only_for_the_settings_check(monkeypatch):
    mail_filter = function("echo_publish_mail")
    loader = mail_filter.__globals__["module_loader"]
    monkeypatch.setattr(loader, "find_plugin_with_context",
                        lambda name, *args, **kwargs: type("Context", (), {"resolved": False})())
    settings = {"to": ["pacs@example.org"], "sender": "audit@example.org"}
    with pytest.raises(AnsibleFilterError, match="community.general.mail is not installed"):
        mail_filter(None, **settings)
    # Composing the message, as the filter's EXAMPLES do on their own, works without it.
    message = mail_filter(report_of(small_runs()), markdown="# report", **settings)
    assert message["subject"] and "# report" in message["body"]
