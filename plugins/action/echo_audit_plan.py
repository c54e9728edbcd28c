# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of dicom.network.echo_audit_plan: checks the audit's options and every source host's
inventory on the controller, once, and starts the run's journal."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ansible.plugins.action import ActionBase

from ansible_collections.dicom.network.plugins.modules.echo_audit_plan import ARGUMENT_SPEC
from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import echo_peers, resolve_hosts
from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import registry_digests, run_identity
from ansible_collections.dicom.network.plugins.plugin_utils.audit_standin import standin_plan
from ansible_collections.dicom.network.plugins.plugin_utils.audit_run import (
    check_options,
    check_report_dir,
    interrupted_journals,
    read_baseline,
    start_journal,
    utc_now,
)

_PEER_LISTS = re.compile(r"^dicom_peers(_.+)?$")
_HOST_VARIABLES = ("dicom_aes", "dicom_local_aes", "dicom_bind_address", "dicom_echo_via", "dicom_echo_api")
ECHO_OPTIONS = ("connect_timeout", "acse_timeout", "dimse_timeout", "parallel", "count", "max_pdu", "retries",
                "retry_delay")


def plain(value):
    """Dicts, lists and strings of what ansible-core hands over (each value read, and so templated, once)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        check_mode = bool(self._task.check_mode)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        args = plain(args)
        if args["unmatched_hosts_pattern"]:
            result.update(failed=True, changed=False, msg=(
                "no host of the inventory matches echo_audit_hosts=%s: put the source hosts in the group dicom_sources, "
                "or set echo_audit_hosts to their group or pattern" % args["unmatched_hosts_pattern"]))
            return result
        options, errors = check_options(args)
        hostvars = task_vars["hostvars"]
        hosts = list(task_vars.get("ansible_play_hosts_all") or [])
        batch = set(task_vars.get("ansible_play_batch") or hosts)
        apart = [host for host in hosts if host not in batch]
        if apart:
            errors.append("%s did not get here with the other source hosts (another serial batch, or failed before the "
                          "role): the audit builds one matrix of every host of the play, so run it without serial"
                          % ", ".join(apart[:10]))
        inputs = {}
        for host in hosts:
            variables = hostvars[host]
            names = [name for name in variables if _PEER_LISTS.match(name)]
            inputs[host] = {name: plain(variables[name]) for name in _HOST_VARIABLES if name in variables}
            inputs[host]["peer_lists"] = {name: plain(variables[name]) for name in names}
        inventory = set(task_vars.get("groups", {}).get("all", [])) | {"localhost"}
        echo_options = {name: args.get(name) for name in ECHO_OPTIONS}
        plans, problems = resolve_hosts(inputs, only=options["only_peers"], echo_options=echo_options,
                                        tls=args.get("tls"), inventory_hosts=sorted(inventory))
        errors.extend(problems)
        standin = None
        if args["standin"] is not None:
            device, host = (str(args["standin"].get(key) or "") for key in ("device", "host"))
            if not device:
                errors.append("echo_audit_standin_device is empty: name the new device's entry of dicom_aes")
            if not host or host not in inventory:
                errors.append("echo_audit_standin_host %s: name the inventory host that stands in for the device (it "
                              "runs dicom.network.listen on the device's address)" % ("is empty" if not host else
                                                                                      "%s is not in the inventory" % host))
            if device and not problems:
                standin, problems = standin_plan(plans, device)
                errors.extend(problems)
        started_at = utc_now()
        registry = registry_digests([inputs[host].get("dicom_aes") for host in sorted(inputs)])
        identity, problems = run_identity(args["run_id"], args["slice"], args["slices"], args["site"], args["awx"],
                                          started_at, registry)
        errors.extend(problems)
        errors.extend(read_baseline(options)[1])
        if not errors:
            errors.extend(check_report_dir(options, check_mode))
        if errors:
            # Each mistake once: the one in msg, or several in errors, one per item.
            if len(errors) == 1:
                result.update(failed=True, changed=False, msg="the audit stops before any echo: %s" % errors[0])
            else:
                result.update(failed=True, changed=False, errors=errors,
                              msg="the audit stops before any echo: %d mistakes, listed in errors" % len(errors))
            return result

        run = {"started_at": started_at, "options": options, "check_mode": check_mode, "identity": identity}
        earlier = interrupted_journals(options["report_dir"], planned_only=True) if options["journal"] else []
        try:
            run["journal"] = start_journal(options, run, plans, check_mode)
        except OSError as error:
            result.update(failed=True, changed=False, msg="the audit's journal cannot be started in %s: %s"
                          % (options["report_dir"] if options["journal"] and not check_mode else "the temporary directory",
                             error.strerror or error))
            return result
        for plan in plans.values():
            plan["echo_peers"] = echo_peers(plan)
        if earlier:
            names = ", ".join(os.path.basename(path) for path in earlier)
            result["warnings"] = ["%d interrupted audit run(s) left a journal in %s (%s): unless an audit is still "
                                  "running there, report them with the playbook dicom.network.recover "
                                  "(-e echo_audit_report_dir=%s)"
                                  % (len(earlier), options["report_dir"], names, options["report_dir"])]
        result.update(changed=False, run=run, plans=plans)
        if standin is not None:
            result["standin"] = standin
        return result
