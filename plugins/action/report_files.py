# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of dicom.network.report_files: writes text files on the controller, in the worker
process, without a module process per file (ansible.builtin.template and copy start one each)."""

from __future__ import annotations

import os

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.dicom.network.plugins.plugin_utils.controller_files import (
    DEFAULT_MODE,
    ControllerFileError,
    apply_plans,
    check_files,
    parse_mode,
    plan_diff,
    plan_file,
)

ARGUMENT_SPEC = {
    # raw, checked by check_files and parse_mode: the list and str types would convert what they
    # should refuse (a comma-separated string into a list, a dict into its repr, 416 into "416").
    "files": {"type": "raw", "required": True},
    "mode": {"type": "raw", "default": DEFAULT_MODE},
}


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check_mode = bool(self._task.check_mode)
        try:
            mode = parse_mode(args["mode"])
            # Every file is checked before the first is written: a bad destination changes nothing.
            plans = [plan_file(spec, mode, check_mode=check_mode) for spec in check_files(args["files"])]
        except ControllerFileError as exc:
            raise AnsibleActionFail(str(exc)) from None

        if not check_mode:
            done: list = []
            try:
                apply_plans(plans, done)
            except ControllerFileError as exc:
                written = [plan.dest for plan in done if plan.changed]
                result.update(failed=True, changed=bool(written), files=[plan.summary() for plan in done],
                              msg="%s%s" % (exc, "; already written: %s" % ", ".join(written) if written else ""))
                return result

        result["changed"] = any(plan.changed for plan in plans)
        result["files"] = [plan.summary() for plan in plans]
        missing = sorted({os.path.dirname(plan.dest) for plan in plans if plan.directory_missing})
        if missing:
            result["warnings"] = ["check mode: the directory %s does not exist yet, so every file counts as new; in a "
                                  "real run an earlier task must create it (the echo_audit role's preflight does)"
                                  % ", ".join(missing)]
        if self._task.diff:
            result["diff"] = [entry for plan in plans if plan.changed
                              for entry in plan_diff(plan, C.MAX_FILE_SIZE_FOR_DIFF)]
        return result
