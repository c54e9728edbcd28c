"""Static checks every role of the collection passes: meta/argument_specs.yml documents exactly the
variables of defaults/main.yml with the same defaults, every public variable carries the role's
prefix, and the role has what Galaxy's importer wants (README, meta/main.yml)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterator, Set

import pytest
import yaml

from tests.unit.plugins.filter.test_audit_publish_filters import descriptions_are_text

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "tasks").is_dir())


def load(role: str, relative: str) -> Any:
    return yaml.safe_load((ROLES_DIR / role / relative).read_text())


def entry_points(role: str) -> Dict[str, Dict[str, Any]]:
    return load(role, "meta/argument_specs.yml")["argument_specs"]


def _tasks(tasks) -> Iterator[Dict[str, Any]]:
    for task in tasks or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from _tasks(task.get(section))


def facts_set(role: str) -> Set[str]:
    """Variables the role's tasks create with set_fact: its outputs (and internal state)."""
    names: Set[str] = set()
    for path in (ROLES_DIR / role / "tasks").glob("*.yml"):
        for task in _tasks(yaml.safe_load(path.read_text())):
            names |= set(task.get("ansible.builtin.set_fact") or {})
    return names


def test_there_are_roles():
    assert "echo_audit" in ROLES and "echo_venv" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_every_default_with_the_same_value(role):
    defaults = load(role, "defaults/main.yml")
    specs = entry_points(role)
    assert "main" in specs
    documented: Set[str] = set()
    for entry, spec in specs.items():
        assert spec.get("short_description"), (role, entry)
        assert (ROLES_DIR / role / "tasks" / ("%s.yml" % entry)).is_file(), (role, entry)
        for name, option in spec.get("options", {}).items():
            assert name in defaults, (role, entry, name, "documented but not in defaults/main.yml")
            assert option.get("description"), (role, entry, name)
            assert option.get("type"), (role, entry, name)
            if defaults[name] is None:
                assert "default" not in option, (role, entry, name)
            else:
                assert option.get("default") == defaults[name], (role, entry, name)
            documented.add(name)
    assert sorted(documented) == sorted(defaults), (role, "undocumented defaults", set(defaults) - documented)


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_are_prefixed_and_descriptions_are_text(role):
    assert all(name.startswith(role + "_") for name in load(role, "defaults/main.yml"))
    descriptions_are_text(load(role, "meta/argument_specs.yml"), "%s argument_specs" % role)


@pytest.mark.parametrize("role", ROLES)
def test_every_prefixed_variable_used_is_a_default_or_a_documented_output(role):
    """A typo in a variable name, or an input nobody documented, shows up here."""
    defaults = set(load(role, "defaults/main.yml"))
    used: Set[str] = set()
    paths = list((ROLES_DIR / role / "tasks").glob("*.yml")) + list((ROLES_DIR / role / "templates").glob("*.j2"))
    for path in paths:
        used |= set(re.findall(r"(?<![.\w])(%s_[a-z0-9_]+)\b" % role, path.read_text()))
    outputs = used & facts_set(role) - defaults
    assert used - defaults - outputs == set(), sorted(used - defaults - outputs)
    readme = (ROLES_DIR / role / "README.md").read_text()
    assert all("`%s`" % name in readme for name in outputs), ("facts set but not in README.md", sorted(outputs))


@pytest.mark.parametrize("role", ROLES)
def test_galaxy_metadata_and_readme(role):
    assert (ROLES_DIR / role / "README.md").read_text().strip()
    info = load(role, "meta/main.yml")["galaxy_info"]
    assert info["role_name"] == role
    assert info["namespace"] == "dicom"
    assert info.get("description") and info.get("license")
