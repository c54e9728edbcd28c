"""The collection's documentation and changelog pass the linters Galaxy and docs.ansible.com use."""
from __future__ import annotations

import os

from tests.packaging.conftest import REPO_ROOT, VENV_BIN, run


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
