"""``version_added`` as users read it in ansible-doc and antsibull-changelog uses it: every plugin and
role entry point says when it was added, and nothing claims a release later than the one being built
(0.1.0 is the first; a plugin saying 1.0.0 there looked four releases old)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml
from packaging.version import InvalidVersion, Version

from tests.packaging.conftest import REPO_ROOT, galaxy_metadata

# Python files whose DOCUMENTATION/RETURN ansible-doc reads (module_utils and plugin_utils have none).
DOC_VARIABLES = ("DOCUMENTATION", "RETURN")


def python_docs(path: Path) -> Dict[str, Any]:
    """The YAML documentation blocks of a plugin file, parsed, by variable name."""
    docs = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in DOC_VARIABLES:
                    docs[target.id] = yaml.safe_load(node.value.value)
    return docs


def version_added_values(data: Any, where: str) -> Iterator[Tuple[str, Any]]:
    """Every ``version_added`` in a documentation tree, with a path naming where it is."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "version_added":
                yield where, value
            else:
                yield from version_added_values(value, "%s.%s" % (where, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from version_added_values(value, "%s[%d]" % (where, index))


def documented_plugins() -> Dict[str, Dict[str, Any]]:
    """plugins/<type>/<name>.py with DOCUMENTATION, by path from the collection root."""
    found = {}
    for path in sorted((REPO_ROOT / "plugins").glob("*/*.py")):
        docs = python_docs(path)
        if "DOCUMENTATION" in docs:
            found[str(path.relative_to(REPO_ROOT))] = docs
    return found


def role_entry_points() -> Dict[str, Dict[str, Any]]:
    """Every role entry point's argument spec, as ``roles/<role>/meta/argument_specs.yml:<entry point>``."""
    found = {}
    for path in sorted((REPO_ROOT / "roles").glob("*/meta/argument_specs.yml")):
        for entry, spec in yaml.safe_load(path.read_text())["argument_specs"].items():
            found["%s:%s" % (path.relative_to(REPO_ROOT), entry)] = spec
    return found


def every_version_added() -> List[Tuple[str, Any]]:
    found = []
    for name, docs in documented_plugins().items():
        for variable, data in docs.items():
            found += version_added_values(data, "%s %s" % (name, variable))
    for name, spec in role_entry_points().items():
        found += version_added_values(spec, name)
    return found


def test_every_plugin_and_role_entry_point_says_when_it_was_added():
    plugins, entry_points = documented_plugins(), role_entry_points()
    # The walk must see the collection, or the checks below pass on nothing.
    assert {"plugins/modules/echo.py", "plugins/filter/echo_publish_mail.py"} <= set(plugins)
    assert "roles/echo_audit/meta/argument_specs.yml:main" in entry_points
    missing = [name for name, docs in plugins.items() if "version_added" not in docs["DOCUMENTATION"]]
    missing += [name for name, spec in entry_points.items() if "version_added" not in spec]
    assert missing == []


def later_than(found: List[Tuple[str, Any]], building: Version) -> List[Tuple[str, Any]]:
    """The ``version_added`` values that are later than ``building``, or not a version string at all."""
    wrong = []
    for where, value in found:
        try:
            if not isinstance(value, str) or Version(value) > building:
                wrong.append((where, value))
        except InvalidVersion:
            wrong.append((where, value))
    return wrong


def test_no_version_added_is_later_than_the_version_being_built():
    """0.1.0 now; a feature of the coming 0.2.0 legitimately says 0.2.0 once galaxy.yml does."""
    building = Version(galaxy_metadata()["version"])
    found = every_version_added()
    assert len(found) >= 10, found
    assert later_than(found, building) == [], "version_added later than galaxy.yml's %s" % building


@pytest.mark.parametrize("value, later", [("0.1.0", False), ("0.0.9", False), ("0.2.0", True), ("1.0.0", True),
                                          (0.1, True), ("soon", True)])
def test_the_check_names_a_later_or_malformed_version(value, later):
    found = [("plugins/filter/x.py DOCUMENTATION", value)]
    assert later_than(found, Version("0.1.0")) == (found if later else [])
