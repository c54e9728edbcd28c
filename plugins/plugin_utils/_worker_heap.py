# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep Python's cyclic garbage collector off the heap an Ansible worker process inherits.

Each task runs in a worker forked from the controller, which at 300 x 300 holds some 3.6 million
objects (every host's plan and registered results). The report filters allocate a few hundred
thousand more, and the collector's next full pass then walks the whole inherited heap, writing
into every object's header, so the kernel copies each of its pages: one such pass took 3.2 s of
the 4.9 s the HTML report's task item took in the 300 x 300 benchmark, where the filter itself
took 0.23 s. Freezing moves every object alive so far out of the collector's reach (Python's own
advice for forked children, see gc.freeze); the worker exits when its task ends, so nothing frozen
outlives it. The controller's main process is left alone.

The report filter modules also freeze when they are imported in a worker, before they import the
report code: ansible-core's collection loader compiles that code from source in every worker, and
the allocations of the compile alone can set off such a full pass (0.3-1.1 s measured in the
300 x 300 matrix task, depending on the load).
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
from typing import Any, Callable, TypeVar

_Filter = TypeVar("_Filter", bound=Callable[..., Any])


def _in_forked_worker() -> bool:
    return multiprocessing.parent_process() is not None


def freeze_inherited_heap() -> None:
    """Freeze everything alive so far, in a forked worker only."""
    if _in_forked_worker():
        gc.freeze()


def outside_inherited_heap(function: _Filter) -> _Filter:
    """``function`` with everything alive before and after each call frozen, in a worker process only."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        freeze_inherited_heap()
        try:
            return function(*args, **kwargs)
        finally:
            # What the call keeps (the parsed report the next template reuses) joins the frozen heap.
            freeze_inherited_heap()

    return wrapper  # type: ignore[return-value]
