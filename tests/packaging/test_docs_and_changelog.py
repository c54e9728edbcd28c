"""The collection's documentation and changelog pass the linters Galaxy and docs.ansible.com use."""
from __future__ import annotations

import os

from tests.packaging.conftest import REPO_ROOT, VENV_BIN, galaxy_metadata, run


def _tool_env():
    # antsibull-docs runs `ansible` and `ansible-doc` by name: the venv's, not whatever PATH has first.
    return dict(os.environ, PATH="%s%s%s" % (VENV_BIN, os.pathsep, os.environ.get("PATH", "")), ANSIBLE_NOCOLOR="1")


def test_antsibull_docs_lint_finds_nothing_in_plugin_and_role_docs(tmp_path):
    # Run from a scratch directory so nothing the tool may leave behind lands in the checkout.
    completed = run([VENV_BIN / "antsibull-docs", "lint-collection-docs", "--plugin-docs", REPO_ROOT],
                    cwd=str(tmp_path), env=_tool_env(), timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "", completed.stdout


def test_antsibull_changelog_lint_accepts_the_fragments():
    completed = run([VENV_BIN / "antsibull-changelog", "lint"], cwd=str(REPO_ROOT), env=_tool_env())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "", completed.stdout


def test_the_changelog_is_generated_from_the_release_data(tmp_path):
    """CHANGELOG.rst is what antsibull-changelog makes of changelogs/changelog.yaml: nobody edited either by hand
    into disagreement, and the release data itself passes antsibull-changelog's own check."""
    completed = run([VENV_BIN / "antsibull-changelog", "lint-changelog-yaml",
                     REPO_ROOT / "changelogs" / "changelog.yaml"],
                    cwd=str(tmp_path), env=_tool_env())
    assert completed.returncode == 0 and completed.stdout.strip() == "", completed.stdout + completed.stderr
    copy = tmp_path / "collection"
    for name in ("galaxy.yml", "CHANGELOG.rst", "changelogs/config.yaml", "changelogs/changelog.yaml"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((REPO_ROOT / name).read_bytes())
    (copy / "CHANGELOG.rst").write_text("")
    completed = run([VENV_BIN / "antsibull-changelog", "generate", "--is-collection"], cwd=str(copy),
                    env=_tool_env())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (copy / "CHANGELOG.rst").read_text() == (REPO_ROOT / "CHANGELOG.rst").read_text()
    assert "v%s" % galaxy_metadata()["version"] in (REPO_ROOT / "CHANGELOG.rst").read_text().splitlines()
