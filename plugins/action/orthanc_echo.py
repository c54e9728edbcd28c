# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of dicom.network.orthanc_echo: runs the module (usually on the controller, delegated), then
says where the echoes came from and writes the optional journal entry, as dicom.network.echo's action does."""

from __future__ import annotations

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import keep_in_journal


class EchoFromArchive:
    """The echo step of an ActionBase: also used by dicom.network.echo_audit_source, for the audit's archives."""

    def echo_from_archive(self, result, module_args, task_vars):
        """``result`` (ActionBase.run's) merged with dicom.network.orthanc_echo's."""
        module_args = dict(module_args)
        journal = module_args.pop("journal", None)
        host = task_vars.get("inventory_hostname") or ""
        try:
            result = merge_hash(result, self._execute_module(module_name="dicom.network.orthanc_echo",
                                                             module_args=module_args, task_vars=task_vars))
        except AnsibleConnectionFailure as exc:
            result.update(unreachable=True, changed=False, msg=to_text(exc))
        else:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        # The rows of this source say the echoes went through the archive's API, not a host.
        result["echoed_from"] = "Orthanc REST at %s" % (
            (result.get("orthanc") or {}).get("url") or str(module_args.get("url") or "").rstrip("/"))
        keep_in_journal(journal, host, result["echoed_from"], None, result)
        return result


class ActionModule(EchoFromArchive, ActionBase):

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        return self.echo_from_archive(result, self._task.args, task_vars)
