"""Static checks of roles/echo_audit: argument specs equal the defaults, every option is documented."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.unit.plugins.filter.test_echo_audit_filters import descriptions_are_text

ROLE = Path(__file__).resolve().parents[3] / "roles" / "echo_audit"


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text())


def test_argument_specs_document_every_default_with_the_same_value():
    defaults = load("defaults/main.yml")
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, spec in options.items():
        assert spec.get("description"), name
        assert spec.get("type"), name
        if defaults[name] is None:
            assert "default" not in spec, name
        else:
            assert spec.get("default") == defaults[name], name


def test_public_variables_are_prefixed_and_descriptions_are_text():
    defaults = load("defaults/main.yml")
    assert all(name.startswith("echo_audit_") for name in defaults)
    descriptions_are_text(load("meta/argument_specs.yml"), "argument_specs")


def test_every_echo_audit_variable_used_is_a_documented_default():
    defaults = set(load("defaults/main.yml"))
    used = set()
    for path in list((ROLE / "tasks").glob("*.yml")) + list((ROLE / "templates").glob("*.j2")):
        used |= set(re.findall(r"(?<![.\w])(echo_audit_[a-z_]+)\b", path.read_text()))
    assert used <= defaults, sorted(used - defaults)


def test_templates_declare_trim_and_lstrip_blocks():
    for path in (ROLE / "templates").glob("*.j2"):
        text = path.read_text()
        if "{%" in text:
            assert text.startswith("#jinja2: trim_blocks: True, lstrip_blocks: True\n"), path.name


def test_report_files_are_written_0640():
    tasks = load("tasks/report.yml")
    writers = [task for task in tasks if "ansible.builtin.template" in task or "ansible.builtin.copy" in task]
    assert len(writers) == 2
    for task in writers:
        module = task.get("ansible.builtin.template") or task.get("ansible.builtin.copy")
        assert module["mode"] == "0640"
