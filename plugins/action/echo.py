# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of dicom.network.echo: runs the module on the target, then, on the controller,
says where the echo really came from, explains a target Python too old to run it, and writes the
optional journal entry."""

from __future__ import annotations

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import (
    keep_in_journal,
    unrunnable_module_message,
)


class EchoFromTarget:
    """The echo step of an ActionBase: also used by dicom.network.echo_audit_source, for the audit's hosts."""

    def echo_from_target(self, result, module_args, task_vars):
        """``result`` (ActionBase.run's) merged with dicom.network.echo's on the target (or delegate)."""
        module_args = dict(module_args)
        # A controller path: the module on the target has no use for it.
        journal = module_args.pop("journal", None)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        host = task_vars.get("inventory_hostname") or ""
        # With delegate_to the module ran on the delegate: the matrix row must say so.
        echoed_from = self._task.delegate_to or host
        try:
            result = merge_hash(result, self._execute_module(module_name="dicom.network.echo", module_args=module_args,
                                                             task_vars=task_vars, wrap_async=wrap_async))
        except AnsibleConnectionFailure as exc:
            # Unreachable, as ansible-core would report it, but saying which host could not be
            # reached (a probe, with delegate_to) and kept in the journal like any other answer.
            result.update(unreachable=True, changed=False, msg=to_text(exc))
            wrap_async = False
        else:
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        result["echoed_from"] = echoed_from

        problem = unrunnable_module_message(result, self._interpreter(task_vars))
        if problem:
            result["msg"] = problem

        if not wrap_async:
            loop_var = self._task.loop_control.loop_var if self._task.loop_control else "item"
            keep_in_journal(journal, host, echoed_from, task_vars.get(loop_var), result)
        return result

    def _interpreter(self, task_vars):
        """The target interpreter as configured or discovered, for messages only."""
        try:
            value = task_vars.get("ansible_python_interpreter") or task_vars.get("discovered_interpreter_python")
            return str(self._templar.template(value)) if value else None
        except Exception:  # pylint: disable=broad-except  # a message detail must never fail the task
            return None


class ActionModule(EchoFromTarget, ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        return self.echo_from_target(result, self._task.args, task_vars)
