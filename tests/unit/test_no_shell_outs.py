"""Nothing in the collection hands a command line to a shell: user input (AE titles, hosts, paths,
versions) must never be parsed by one. Plugins start no processes at all; role tasks and playbooks
run commands only as argv lists, and the one raw command quotes every value it interpolates."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# Process-starting APIs a plugin could reach for; the collection's plugins need none of them.
_FORBIDDEN_CALLS = {"system", "popen", "Popen", "run", "call", "check_call", "check_output", "getoutput",
                    "getstatusoutput", "run_command", "spawnl", "spawnv", "execv", "execl", "execve", "execvp"}
_FORBIDDEN_MODULES = {"subprocess", "pty", "commands"}
_SHELL_MODULES = {"shell", "ansible.builtin.shell", "ansible.legacy.shell", "raw", "ansible.builtin.raw",
                  "script", "ansible.builtin.script", "expect", "ansible.builtin.expect"}
_COMMAND_MODULES = {"command", "ansible.builtin.command", "ansible.legacy.command"}


def _python_offences(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        for name in names:
            if name in _FORBIDDEN_MODULES:
                yield "%s:%d imports %s" % (path, node.lineno, name)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            receiver = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            if name in _FORBIDDEN_CALLS and receiver in ("os", "subprocess", "module", "self", "pty"):
                yield "%s:%d calls %s.%s" % (path, node.lineno, receiver, name)
            for keyword in node.keywords:
                if keyword.arg in ("shell", "use_unsafe_shell") and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    yield "%s:%d passes %s=" % (path, node.lineno, keyword.arg)


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _tasks(node.get(key))


def _yaml_offences(path: Path):
    for task in _tasks(yaml.safe_load(path.read_text())):
        name = task.get("name", "?")
        for module in _SHELL_MODULES & set(task):
            command = task[module] if isinstance(task[module], str) else ""
            expressions = re.findall(r"{{(.*?)}}", command, re.S)
            # The one accepted shape: a fixed command line whose every value is shell-quoted (the
            # echo_venv probe must run before any module can, to name a Python too old for them).
            if not command or not expressions or not all(re.search(r"\|\s*quote\s*$", e) for e in expressions):
                yield "%s: task %r uses %s" % (path, name, module)
        for module in _COMMAND_MODULES & set(task):
            arguments = task[module]
            argv = arguments.get("argv") if isinstance(arguments, dict) else None
            # A list, or one template that builds the list: either way each element is one argument.
            templated_list = isinstance(argv, str) and argv.strip().startswith("{{") and argv.strip().endswith("}}")
            if not (isinstance(argv, list) or templated_list):
                yield "%s: task %r runs %s without an argv list" % (path, name, module)


def test_plugins_start_no_process_and_use_no_shell():
    files = sorted((REPO_ROOT / "plugins").rglob("*.py"))
    assert len(files) > 10
    offences = [offence for path in files for offence in _python_offences(path)]
    assert offences == []


def test_role_tasks_and_playbooks_run_commands_only_as_argv_lists():
    files = sorted(list((REPO_ROOT / "roles").glob("*/tasks/*.yml")) + list((REPO_ROOT / "playbooks").glob("*.yml")))
    assert len(files) > 8
    offences = [offence for path in files for offence in _yaml_offences(path)]
    assert offences == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    bad_python = tmp_path / "bad.py"
    bad_python.write_text("import subprocess\nimport os\nos.system('echo ' + x)\nf(y, shell=True)\n")
    assert len(list(_python_offences(bad_python))) == 3
    bad_tasks = tmp_path / "bad.yml"
    bad_tasks.write_text(yaml.safe_dump([
        {"name": "a", "ansible.builtin.shell": "echoscu {{ host }}"},
        {"name": "q", "ansible.builtin.raw": "{{ python | quote }} -c {{ code | quote }}"},
        {"name": "b", "block": [{"name": "c", "ansible.builtin.command": "pip install {{ version }}"}]},
        {"name": "d", "ansible.builtin.command": {"argv": ["pip", "install", "{{ version }}"]}}]))
    assert [offence.split("task ")[1] for offence in _yaml_offences(bad_tasks)] == [
        "'a' uses ansible.builtin.shell", "'c' runs ansible.builtin.command without an argv list"]
