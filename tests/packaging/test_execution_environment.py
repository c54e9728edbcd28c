"""The execution environment: the collection's EE metadata and the example EE definition.

``ansible-builder create`` needs no container runtime. The two steps of the image build that
decide what ends up in it are then run here as the Containerfile runs them: the galaxy stage's
``ansible-galaxy collection install -r requirements.yml`` in the context's _build directory, and the
builder stage's introspection of the installed collections, which yields the pip requirements.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.packaging.conftest import REPO_ROOT, VENV_BIN, galaxy_metadata, installed_env, run

EXAMPLE = REPO_ROOT / "examples" / "execution-environment"


def _requirement_names(lines):
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(line.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("!")[0]
                         .split("~")[0].strip().lower())
    return names


def test_collection_ee_metadata_names_the_python_requirements_and_no_system_packages():
    meta = yaml.safe_load((REPO_ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["version"] == 1
    python = meta["dependencies"]["python"]
    assert "pynetdicom" in _requirement_names((REPO_ROOT / python).read_text().splitlines())
    # pynetdicom and pydicom are pure Python: a system dependency listed here would need a bindep file.
    system = meta["dependencies"].get("system")
    assert system is None or (REPO_ROOT / system).is_file()


def _pins_for(lines, python_version):
    """name -> specifier of the requirements whose marker holds on ``python_version``."""
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"python_version": python_version}):
                pins[requirement.name.lower()] = str(requirement.specifier)
    return pins


# The tested minors (issue 19): the engine's speed tricks use pynetdicom internals, so an EE gets the
# release the tests ran, whichever Python it has.
TESTED_PINS = {"3.9": {"pynetdicom": "<2.1,>=2.0", "pydicom": "<2.5,>=2.4"},
               "3.11": {"pynetdicom": "<3.1,>=3.0", "pydicom": "<3.1,>=3.0"}}


@pytest.mark.parametrize("python_version", sorted(TESTED_PINS))
def test_requirements_pin_the_tested_minors_for_each_python(python_version):
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    assert _pins_for(lines, python_version) == TESTED_PINS[python_version]


def test_example_ee_tarball_name_follows_the_collection_version():
    requirements = yaml.safe_load((EXAMPLE / "requirements.yml").read_text())
    (entry,) = requirements["collections"]
    assert entry["type"] == "file"
    assert Path(entry["name"]).name == "dicom-network-%s.tar.gz" % galaxy_metadata()["version"]


def test_builder_create_writes_a_context_that_installs_the_collection_and_pynetdicom(built_collection, tmp_path):
    definition = yaml.safe_load((EXAMPLE / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    # The example builds from the tarball next to it, as its comment says to build it.
    example = tmp_path / "execution-environment"
    shutil.copytree(EXAMPLE, example)
    shutil.copy2(built_collection.tarball, example / built_collection.tarball.name)
    context = tmp_path / "context"
    created = run([VENV_BIN / "ansible-builder", "create", "--file", example / "execution-environment.yml",
                   "--context", context, "--output-filename", "Containerfile"], cwd=str(example))
    assert created.returncode == 0, created.stdout + created.stderr

    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="%s"' % definition["images"]["base_image"]["name"] in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "introspect" in containerfile
    build = context / "_build"
    assert (build / "collections" / built_collection.tarball.name).is_file()

    # Galaxy stage: offline, from the context alone, in /build's place, into an empty collections
    # path (as the image's is; the checkout on this process's path would count as installed).
    collections = tmp_path / "ee-collections"
    installed = run([VENV_BIN / "ansible-galaxy", "collection", "install", "--offline", "-r", "requirements.yml",
                     "--collections-path", collections], cwd=str(build), env=installed_env(collections))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (collections / "ansible_collections" / "dicom" / "network" / "MANIFEST.json").is_file()

    # Builder stage: the context's own introspection script over what the galaxy stage installed.
    pip_requirements = tmp_path / "requirements.txt"
    introspected = run([VENV_BIN / "python", build / "scripts" / "introspect.py", "introspect", collections,
                        "--write-pip", pip_requirements, "--write-bindep", tmp_path / "bindep.txt"])
    assert introspected.returncode == 0, introspected.stdout + introspected.stderr
    lines = pip_requirements.read_text().splitlines()
    assert "pynetdicom" in _requirement_names(lines)
    # The markers survive introspection: the EE's pip picks the tested minor for the EE's Python.
    for python_version, pins in TESTED_PINS.items():
        assert _pins_for(lines, python_version) == pins, lines
    assert any("from collection dicom.network" in line for line in lines)
    assert not (tmp_path / "bindep.txt").exists()  # no system packages to install
