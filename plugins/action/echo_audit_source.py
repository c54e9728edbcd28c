# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of dicom.network.echo_audit_source, the echo step of the echo_audit role: one task for every
kind of source host, so that no host prints a line for a kind it is not. A managed host (or its probe) echoes
with dicom.network.echo, an archive through its REST API with dicom.network.orthanc_echo; each module's own
action step does the rest (where the echo came from, the journal)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.dicom.network.plugins.action.echo import EchoFromTarget
from ansible_collections.dicom.network.plugins.action.orthanc_echo import EchoFromArchive
from ansible_collections.dicom.network.plugins.modules.echo_audit_source import ARGUMENT_SPEC
from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import audit_echo_call


class ActionModule(EchoFromTarget, EchoFromArchive, ActionBase):

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        module, call = audit_echo_call(args["plan"], args["options"], args["journal"], args["api_password"])
        if module == "dicom.network.orthanc_echo":
            return self.echo_from_archive(result, call, task_vars)
        return self.echo_from_target(result, call, task_vars)
