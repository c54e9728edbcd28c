"""native_data (plugins/plugin_utils/_native.py): plain copies, lazy containers unwrapped at any depth."""
from __future__ import annotations

from ansible_collections.dicom.network.plugins.plugin_utils._native import native_data


class _Lazy(dict):
    """Stands in for ansible-core 2.19's lazy dict: reading an item through it would template it."""

    def __getitem__(self, key):
        raise AssertionError("read through the lazy wrapper")

    def items(self):
        raise AssertionError("read through the lazy wrapper")

    def _non_lazy_copy(self):
        return dict(dict.items(self))


def test_plain_data_is_copied():
    data = {"a": [1, {"b": (2, "x")}], "c": None}
    copy = native_data(data)
    assert copy == {"a": [1, {"b": [2, "x"]}], "c": None}
    assert copy is not data and copy["a"] is not data["a"]


def test_lazy_containers_are_read_raw_at_any_depth():
    inner = _Lazy(results=[_Lazy(name="archive", ok=True)])
    outer = _Lazy(host=inner)
    assert native_data(outer) == {"host": {"results": [{"name": "archive", "ok": True}]}}
    assert not isinstance(native_data(outer)["host"], _Lazy)
