"""The example AWX project (examples/awx-project): its survey, schedule, requirements and wrapper
playbooks against the collection, and a job run the way AWX runs it, by ansible-runner, against the
demo hospital network with the collection installed from the built tarball."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from dateutil import rrule

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import MAX_TIMEOUT_S
from tests.packaging import awx
from tests.packaging.conftest import REPO_ROOT, VENV_BIN, galaxy_metadata, installed_env, run
from tests.peers.base import closed_port, stop_all
from tests.peers.demo_network import start_network, write_inventory

PROJECT = REPO_ROOT / "examples" / "awx-project"
SURVEY = json.loads((PROJECT / "survey-audit.json").read_text())
ROLE_OPTIONS = yaml.safe_load((REPO_ROOT / "roles" / "echo_audit" / "meta" / "argument_specs.yml").read_text()
                              )["argument_specs"]["main"]["options"]
# Survey question types that can carry each argument spec type to the role unchanged.
COMPATIBLE = {
    "str": {"text", "textarea", "password", "multiplechoice"},
    "path": {"text", "textarea"},
    "int": {"integer"},
    "float": {"float", "integer"},
    "list": {"multiselect"},
    # No survey type gives a boolean: a multiple choice of the two words is the closest.
    "bool": {"multiplechoice"},
}


def _questions():
    return {question["variable"]: question for question in SURVEY["spec"]}


def _playbook_host_variables():
    """Variables the collection's audit playbook reads in its `hosts:` (set per job, not role options)."""
    (play,) = yaml.safe_load((REPO_ROOT / "playbooks" / "audit.yml").read_text())
    return {name for name in ("echo_audit_hosts",) if name in play["hosts"]}


def test_the_survey_is_one_awx_accepts():
    awx.validate_spec(SURVEY)


def test_every_survey_variable_reaches_the_role_or_the_play_with_a_type_it_accepts():
    for variable, question in _questions().items():
        if variable in _playbook_host_variables():
            assert question["type"] == "text" and question["required"]
            continue
        assert variable in ROLE_OPTIONS, "%s is not an option of the echo_audit role" % variable
        option = ROLE_OPTIONS[variable]
        assert question["type"] in COMPATIBLE[option["type"]], (variable, question["type"], option["type"])
        allowed = option.get("choices")
        if option["type"] == "bool":
            assert set(awx.choices(question)) == {"true", "false"}, variable
        elif allowed and question["type"] in ("multiplechoice", "multiselect"):
            assert set(awx.choices(question)) <= set(allowed), variable
    # What the brief's job needs: where to run from, which peers, the timeouts and the fail policy.
    assert {"echo_audit_hosts", "echo_audit_only_peers", "echo_audit_connect_timeout", "echo_audit_acse_timeout",
            "echo_audit_dimse_timeout", "echo_audit_fail_on_unexpected"} <= set(_questions())


def test_launching_with_the_defaults_gives_vars_the_role_argument_spec_accepts():
    extra_vars = awx.launch_extra_vars(SURVEY)
    role_vars = {k: v for k, v in extra_vars.items() if k not in _playbook_host_variables()}
    result = ArgumentSpecValidator(ROLE_OPTIONS).validate(role_vars)
    assert result.error_messages == []
    # Empty numeric defaults are left out, so the module's own defaults apply.
    assert "echo_audit_connect_timeout" not in extra_vars
    assert extra_vars["echo_audit_hosts"] == "dicom_sources"


def test_the_helper_refuses_answers_awx_would_refuse():
    with pytest.raises(awx.SurveyError, match="not among the choices"):
        awx.launch_extra_vars(SURVEY, {"echo_audit_only_peers": ["no_such_peer"]})
    with pytest.raises(awx.SurveyError, match="not a number"):
        awx.launch_extra_vars(SURVEY, {"echo_audit_connect_timeout": "3"})
    with pytest.raises(awx.SurveyError, match="below the minimum"):
        awx.launch_extra_vars(SURVEY, {"echo_audit_dimse_timeout": 0})
    broken = json.loads(json.dumps(SURVEY))
    broken["spec"][0]["default"] = 5
    with pytest.raises(awx.SurveyError, match="default"):
        awx.validate_spec(broken)


def test_peer_choices_are_registry_names_of_the_example_inventory():
    registry = yaml.safe_load((REPO_ROOT / "inventory.example" / "group_vars" / "all" / "dicom_aes.yml").read_text())
    assert set(awx.choices(_questions()["echo_audit_only_peers"])) <= set(registry["dicom_aes"])


def test_timeout_limits_are_ones_the_echo_module_accepts():
    for variable in ("echo_audit_connect_timeout", "echo_audit_acse_timeout", "echo_audit_dimse_timeout"):
        question = _questions()[variable]
        assert 0 < question["min"] <= question["max"] <= MAX_TIMEOUT_S, variable


def _role_options(*entries):
    specs = yaml.safe_load((REPO_ROOT / "roles" / "echo_audit" / "meta" / "argument_specs.yml").read_text())
    return {name: option for entry in entries for name, option in specs["argument_specs"][entry]["options"].items()}


def test_the_fleet_recipes_use_the_projects_playbooks_and_the_roles_options():
    """The sliced job template and its merge, and the per-site audit and its central merge: every variable is an
    option of the entry point the playbook runs, the merge expects the slice count the template slices into, and the
    workflow's nodes are those job templates, the merge running whatever the slices' outcome."""
    sliced = json.loads((PROJECT / "fleet-sliced.json").read_text())
    per_site = json.loads((PROJECT / "fleet-per-site.json").read_text())
    templates = sliced["job_templates"] + [per_site["site_audit"], per_site["central_merge"]]
    entry = {"audit.yml": ("main",), "merge.yml": ("main", "merge")}
    for template in templates:
        assert (PROJECT / template["playbook"]).is_file(), template["name"]
        variables = yaml.safe_load(template["extra_vars"])
        options = _role_options(*entry[template["playbook"]])
        assert set(variables) <= set(options), (template["name"], set(variables) - set(options))
    audit, merge = sliced["job_templates"]
    audit_vars, merge_vars = (yaml.safe_load(template["extra_vars"]) for template in (audit, merge))
    assert audit["job_slice_count"] == audit_vars["echo_audit_slices"] == merge_vars["echo_audit_merge_slices"] > 1
    # The merge reads where the slices write.
    assert merge_vars["echo_audit_merge_reports"][0].startswith(audit_vars["echo_audit_report_dir"] + "/")
    nodes = {node["identifier"]: node for node in sliced["workflow"]["workflow_nodes"]}
    assert nodes["slices"]["unified_job_template"]["name"] == audit["name"]
    assert nodes["merge"]["unified_job_template"]["name"] == merge["name"]
    assert nodes["slices"]["related"] == {"always_nodes": [{"identifier": "merge"}]}
    site_vars, central_vars = (yaml.safe_load(per_site[key]["extra_vars"]) for key in ("site_audit", "central_merge"))
    assert site_vars["echo_audit_site"] in central_vars["echo_audit_merge_sites"]
    assert site_vars["echo_audit_run_id"] == central_vars["echo_audit_merge_run_id"]
    assert site_vars["echo_audit_publish_host"] == central_vars["echo_audit_merge_from_host"]
    assert site_vars["echo_audit_publish_dir"].startswith(central_vars["echo_audit_merge_from_dir"] + "/")
    assert (PROJECT / "merge.yml").read_text().rstrip().endswith("ansible.builtin.import_playbook: dicom.network.merge")


def test_the_schedule_example_parses_as_awx_parses_it_and_starts_disabled():
    schedule = json.loads((PROJECT / "schedule-example.json").read_text())
    assert schedule["enabled"] is False
    assert "example" in schedule["name"].lower()
    # AWX stores one string: a DTSTART with a time zone, then the RRULE.
    dtstart, rule = schedule["rrule"].split(" ")
    assert dtstart.startswith("DTSTART;TZID=") and rule.startswith("RRULE:")
    occurrences = rrule.rrulestr(schedule["rrule"].replace(" ", "\n"))
    first, second = occurrences[0], occurrences[1]
    assert first.tzinfo is not None
    assert (second - first).days == 1
    # A schedule's extra_data are survey answers: AWX checks them like a launch's.
    awx.launch_extra_vars(SURVEY, schedule["extra_data"])


def test_the_project_requirements_accept_this_collection_version():
    requirements = yaml.safe_load((PROJECT / "collections" / "requirements.yml").read_text())
    (entry,) = requirements["collections"]
    assert entry["name"] == "dicom.network"
    assert meets_requirements(galaxy_metadata()["version"], entry["version"])


@pytest.mark.ansible
def test_the_wrappers_import_the_collection_playbooks(built_collection):
    for wrapper, playbook in (("audit.yml", "audit"), ("verify.yml", "verify")):
        (play,) = yaml.safe_load((PROJECT / wrapper).read_text())
        assert play["ansible.builtin.import_playbook"] == "dicom.network.%s" % playbook
        assert (built_collection.installed / "playbooks" / ("%s.yml" % playbook)).is_file()
        checked = run([VENV_BIN / "ansible-playbook", "--syntax-check", "-i", "localhost,", PROJECT / wrapper],
                      env=installed_env(built_collection.collections_path))
        assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------------ jobs under ansible-runner

@pytest.fixture(scope="module")
def demo_network(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("awx-demo-network")
    procs, aes = start_network(workdir / "peers")
    try:
        yield write_inventory(workdir / "inventory", aes, closed_port())
    finally:
        stop_all(procs)


def run_job(built_collection, inventory: Path, workdir: Path, extra_vars, playbook="audit.yml"):
    """One job as AWX hands it to ansible-runner: a private data dir with the project, the
    inventory, the launch's extra vars and the job's environment variables."""
    private = workdir / "job"
    shutil.copytree(PROJECT, private / "project")
    shutil.copytree(inventory, private / "inventory")
    (private / "env").mkdir()
    (private / "env" / "extravars").write_text(yaml.safe_dump(dict(extra_vars)))
    (private / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": str(built_collection.collections_path),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False", "ANSIBLE_FORKS": "8", "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1"}))
    # A small environment of its own: ansible-runner records the whole of it in artifacts/<id>/command.
    env = {"PATH": "%s%s/usr/bin:/bin" % (VENV_BIN, os.pathsep), "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8"}
    completed = run([VENV_BIN / "ansible-runner", "run", private, "-p", playbook, "--ident", "job"], env=env,
                    timeout=600)
    artifacts = private / "artifacts" / "job"
    events = [json.loads(path.read_text()) for path in sorted((artifacts / "job_events").glob("*.json"))]
    return SimpleNamespace(completed=completed, private=private, events=events,
                           status=(artifacts / "status").read_text().strip() if (artifacts / "status").exists() else None,
                           rc=int((artifacts / "rc").read_text()) if (artifacts / "rc").exists() else None,
                           stdout=(artifacts / "stdout").read_text() if (artifacts / "stdout").exists() else "")


def _report(job, report_dir: Path):
    latest = report_dir / "latest.json"
    assert latest.is_file(), "the job wrote no report:\n" + job.stdout[-4000:]
    return json.loads(latest.read_text())


def _data(event) -> dict:
    """An event's event_data; warnings and verbose output come as events without one."""
    return event.get("event_data") or {}


def _stats(job):
    (stats,) = [event for event in job.events if event.get("event") == "playbook_on_stats"]
    assert "artifact_data" in _data(stats), stats
    return _data(stats)


def _role_task_dirs(job):
    return {_data(event)["task_path"].rsplit("/", 1)[0] for event in job.events
            if _data(event).get("role") == "echo_audit" and _data(event).get("task_path")}


@pytest.mark.peers
@pytest.mark.ansible
def test_the_audit_job_fails_on_the_demo_faults_and_publishes_the_summary(built_collection, demo_network, tmp_path):
    report_dir = tmp_path / "reports"
    extra_vars = awx.launch_extra_vars(
        SURVEY, {"echo_audit_connect_timeout": 3.0, "echo_audit_acse_timeout": 5.0, "echo_audit_dimse_timeout": 5.0},
        template_extra_vars={"echo_audit_report_dir": str(report_dir)})
    job = run_job(built_collection, demo_network, tmp_path, extra_vars)
    assert job.status is not None, job.completed.stdout[-3000:] + job.completed.stderr[-3000:]
    assert "Traceback" not in job.stdout
    # The demo network has deliberate faults: the role's verdict fails the job, as in test_audit_e2e,
    # and nothing else does.
    # 4: the demo's unreachable source host (ansible-playbook's code for an unreachable host) besides the verdict.
    assert (job.status, job.rc) == ("failed", 4), job.stdout[-3000:]
    assert job.completed.returncode != 0
    report = _report(job, report_dir)
    published = _stats(job)["artifact_data"]["echo_audit"]
    failed = [_data(event) for event in job.events if event.get("event") == "runner_on_failed"]
    # The summary task carries the verdict: its message is the summary, the counts first.
    assert [data.get("task_action") for data in failed] == ["ansible.builtin.debug"], job.stdout[-3000:]
    assert (failed[0].get("res") or {}).get("msg", [])[0] == published["lines"][0]
    unreachable = [_data(event) for event in job.events if event.get("event") == "runner_on_unreachable"]
    assert [data.get("host") for data in unreachable] == ["us-a1"], job.stdout[-3000:]
    assert published["summary"] == report["summary"]
    assert published["summary"]["failed"] > 0 and published["summary"]["not_run"] > 0
    assert published["generated_at"] == report["generated_at"]
    assert published["reports"]["json"] == str(report_dir / "latest.json")
    assert published["lines"][0].startswith("DICOM echo audit: %d checks" % report["summary"]["total"])
    # Every role task came from the copy installed from the tarball (the argument spec check is
    # attributed to the playbook that calls the role).
    task_dirs = _role_task_dirs(job)
    assert str(built_collection.installed / "roles" / "echo_audit" / "tasks") in task_dirs
    assert all(path.startswith(str(built_collection.installed) + os.sep) for path in task_dirs), task_dirs


# AWX surveys have no boolean type: the fail policy arrives as the text "false", which the role
# must not read as true (any non-empty string is true to Jinja).
@pytest.mark.peers
@pytest.mark.ansible
def test_the_survey_answer_false_lets_the_job_succeed_and_still_report(built_collection, demo_network, tmp_path):
    # Site A and B modalities checked against the archive only: CT_B1 is not registered there (a fault).
    answers = {"echo_audit_hosts": "dicom_modalities:!us-a1", "echo_audit_only_peers": ["pacs_archive"],
               "echo_audit_connect_timeout": 3.0, "echo_audit_acse_timeout": 5.0, "echo_audit_dimse_timeout": 5.0,
               "echo_audit_fail_on_unexpected": "false"}
    extra_vars = awx.launch_extra_vars(SURVEY, answers,
                                       template_extra_vars={"echo_audit_report_dir": str(tmp_path / "reports")})
    job = run_job(built_collection, demo_network, tmp_path, extra_vars)
    report = _report(job, tmp_path / "reports")
    assert {c["source_host"] for c in report["cells"]} == {"ct-a1", "mr-a1", "ct-b1"}
    assert {c["called_ae_title"] for c in report["cells"]} == {"PACS_ARCHIVE"}
    assert report["summary"]["failed"] >= 1  # CT_B1 is refused by the archive
    assert _stats(job)["artifact_data"]["echo_audit"]["summary"] == report["summary"]
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]


def test_the_orthanc_api_credential_type_injects_what_the_archive_host_vars_use():
    """AWX's rules for a custom credential type (awx/main/fields.py: CredentialInputField and
    CredentialTypeInjectorField): fields with an id, a type and a label; secrets marked; injectors that
    template only declared fields. The variables it injects are the ones the documentation's host_vars use."""
    spec = yaml.safe_load((PROJECT / "credential-types" / "orthanc-api.yml").read_text())
    assert set(spec) == {"inputs", "injectors"}
    fields = {field["id"]: field for field in spec["inputs"]["fields"]}
    for field in fields.values():
        assert field["type"] == "string" and field["label"]
    assert fields["password"].get("secret") is True and not fields["url"].get("secret")
    assert set(spec["inputs"]["required"]) == set(fields)
    injected = spec["injectors"]["extra_vars"]
    assert set(spec["injectors"]) == {"extra_vars"}
    assert {value.strip("{} ") for value in injected.values()} == set(fields)
    readme = (PROJECT / "README.md").read_text()
    for variable in injected:
        assert '"{{ %s }}"' % variable in readme
