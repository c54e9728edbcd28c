"""Static checks specific to roles/echo_audit (the checks every role passes, argument specs equal to
the defaults included, are in test_role_argument_specs.py)."""
from __future__ import annotations

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "echo_audit"


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text())


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from _tasks(task.get(section))


WRITERS = ("ansible.builtin.template", "ansible.builtin.copy")


def test_report_files_are_written_0640():
    writers = [task for path in sorted((ROLE / "tasks").glob("*.yml")) for task in _tasks(load("tasks/" + path.name))
               if any(name in task for name in WRITERS)]
    # The published copies and pages; the reports themselves are written 0640 by the report action
    # (tests/unit/plugins/plugin_utils/test_audit_run.py).
    assert len(writers) >= 2
    for task in writers:
        module = next(task[name] for name in WRITERS if name in task)
        # Published copies (tasks/publish.yml) take a configurable mode whose default is 0640 too.
        assert module["mode"] in ("0640", "{{ echo_audit_publish_file_mode }}"), task["name"]
    assert load("defaults/main.yml")["echo_audit_publish_file_mode"] == "0640"
