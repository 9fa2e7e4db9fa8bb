"""Ordinary memory pages for the arrays a step allocates.

On Linux, NumPy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``)
for every new array of 4 MiB or more. At 10^6 agents a step allocates several such
arrays (tens of MB each) and frees them again. On the virtual machines this project
runs on, the first touch of a fresh 2 MiB huge page cost about 10 ms (the host backs the
page anew), so the huge pages a step faulted in took about half of its CPU time (0.24 s of
0.5 s at the peak of a spread, measured as system time), where ordinary 4 KiB pages,
which the kernel recycles from what the last step freed, took 0.02 s. No speed-up from
fewer TLB misses made up for it (user time was the same, or lower, without them).

:func:`ordinary_pages` turns NumPy's advice off for the duration of a block, and
restores the setting after it: it changes how memory is obtained, never what a
computation gives. The setting is the whole process's, so only the main thread changes
it: blocks in two threads at once (say, two live dashboard sessions stepping their
models) could otherwise end in the wrong order and leave it off, or restore it in the
middle of the other's block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np


def _advice_setter() -> Callable[[bool], bool] | None:
    """NumPy's switch for huge-page advice, or None where this NumPy has none.

    ``_set_madvise_hugepage(enabled)`` sets whether new arrays get the advice and returns
    the previous setting (NumPy >= 1.20; Linux only in effect).
    """
    for module in ("_core", "core"):
        multiarray = getattr(getattr(np, module, None), "multiarray", None)
        setter = getattr(multiarray, "_set_madvise_hugepage", None)
        if callable(setter):
            return setter
    return None


@contextmanager
def ordinary_pages() -> Iterator[None]:
    """Within the block, new NumPy arrays get no huge-page advice; after it, as before.

    The switch is NumPy's, so for the block's duration it holds for arrays allocated by
    every thread of the process. Outside the main thread, and with a NumPy that has no
    such switch, this does nothing (see the module docstring).
    """
    setter = _advice_setter()
    if setter is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)
