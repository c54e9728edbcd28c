# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report filters freeze the heap in a forked worker (as Ansible runs each task) and nowhere else."""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import sys

import pytest

from ansible_collections.dicom.network.plugins.filter.echo_matrix import FilterModule
from ansible_collections.dicom.network.plugins.plugin_utils._worker_heap import outside_inherited_heap


def _summary_in_child(queue) -> None:
    inherited = [{"host": index} for index in range(1000)]  # stands for the controller's heap
    before = gc.get_freeze_count()
    view = FilterModule().filters()["echo_matrix"]({}, with_summary=True)["summary"]
    queue.put((before, gc.get_freeze_count(), view["summary"]["total"], len(inherited)))


def test_a_filter_call_in_a_forked_worker_freezes_what_the_worker_inherited():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_summary_in_child, args=(queue,))
    child.start()
    before, after, total = queue.get(timeout=60)[:3]
    child.join(60)
    assert child.exitcode == 0
    assert total == 0
    assert after > before + 1000  # at least the inherited list's dictionaries are frozen


class _RecordFreezeAtImport:
    """A meta path finder that notes the freeze count when the report code starts to load."""

    def __init__(self, watched: str):
        self.watched = watched
        self.frozen_then = None

    def find_spec(self, name, path=None, target=None):
        if name == self.watched and self.frozen_then is None:
            self.frozen_then = gc.get_freeze_count()
        return None  # the real finders load it


def _import_filter_in_child(queue, filter_name) -> None:
    for name in [name for name in sys.modules if name.startswith("ansible_collections.dicom.network.plugins.")
                 and not name.endswith("._worker_heap")]:
        del sys.modules[name]  # as in a worker, which compiles the filter and the report code anew
    inherited = [{"host": index} for index in range(1000)]  # stands for the controller's heap
    before = gc.get_freeze_count()
    recorder = _RecordFreezeAtImport("ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix")
    sys.meta_path.insert(0, recorder)
    try:
        importlib.import_module("ansible_collections.dicom.network.plugins.filter." + filter_name)
    finally:
        sys.meta_path.remove(recorder)
    queue.put((before, recorder.frozen_then, len(inherited)))


@pytest.mark.parametrize("filter_name", ["echo_matrix"])
def test_importing_a_report_filter_in_a_forked_worker_freezes_before_the_report_code_loads(filter_name):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_import_filter_in_child, args=(queue, filter_name))
    child.start()
    before, frozen_then = queue.get(timeout=60)[:2]
    child.join(60)
    assert child.exitcode == 0
    assert frozen_then is not None, "the report code was not imported anew"
    assert frozen_then > before + 1000


def test_in_the_controller_process_the_collector_is_left_alone():
    frozen = gc.get_freeze_count()
    view = FilterModule().filters()["echo_matrix"]({}, with_summary=True)["summary"]
    assert view["summary"]["total"] == 0
    assert gc.get_freeze_count() == frozen


def test_the_wrapped_function_keeps_its_name_and_its_errors():
    def broken() -> None:
        raise ValueError("bad input")

    wrapped = outside_inherited_heap(broken)
    assert wrapped.__name__ == "broken"
    with pytest.raises(ValueError, match="bad input"):
        wrapped()
