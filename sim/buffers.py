"""Step-sized arrays reused from one step to the next, once nothing refers to them.

At 10^6 agents a retrieval's output columns are tens of MB each. A fresh array of that
size is a fresh memory mapping: the kernel faults in and zeroes every page the step
writes, a cost that grows faster than the step itself. A :class:`BufferPool` hands out
the memory of an earlier array instead, but only when no array uses it any more.

An array is free when its reference count says that only the pool holds it: numpy views
and slices keep a reference to the array owning their memory (``view.base``), and so do
memoryviews and zero-copy exports (arrow, polars), so while any of them is alive the
array is not reused. A caller may therefore keep what it was given (a slice of a pooled
array) for as long as it likes: the pool then allocates another array.
"""

from __future__ import annotations

import sys

import numpy as np


class BufferPool:
    """At most ``keep`` 1-D arrays, reused once only the pool refers to them.

    Args:
        keep: Arrays kept for reuse at most; when all are in use, :meth:`empty` returns
            an unpooled fresh array.
    """

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._arrays: list[np.ndarray] = []

    def empty(self, n: int, dtype: type[np.generic], capacity: int | None = None) -> np.ndarray:
        """An uninitialised 1-D array of ``n`` elements that no other live array shares.

        Args:
            n: Length of the array returned (a view of a pooled array).
            dtype: Its dtype.
            capacity: Length to allocate when no pooled array fits (at least ``n``): a
                caller whose sizes grow from call to call passes its upper bound, so
                that the array is not replaced at every call.
        """
        want = np.dtype(dtype)
        for i in self._free():
            if self._arrays[i].dtype == want and len(self._arrays[i]) >= n:
                return self._arrays[i][:n]
        array = np.empty(max(n, capacity or 0), dtype=want)
        if len(self._arrays) >= self._keep:
            # Drop a free array (the smallest) to make room; none free: do not pool.
            free = self._free()
            if not free:
                return array[:n]
            del self._arrays[min(free, key=lambda i: self._arrays[i].nbytes)]
        self._arrays.append(array)
        return array[:n]

    def _free(self) -> list[int]:
        """Indices of the pooled arrays that no other object refers to."""
        # Two references: the list's and getrefcount's argument (no view is alive).
        return [i for i in range(len(self._arrays)) if sys.getrefcount(self._arrays[i]) == 2]
