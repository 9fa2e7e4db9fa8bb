"""The buffer pool hands out an array's memory again only once nothing refers to it."""

from __future__ import annotations

import numpy as np

from sim.buffers import BufferPool


def _address(array: np.ndarray) -> int:
    """Where the array's data starts in memory."""
    return int(array.__array_interface__["data"][0])


def test_free_array_is_reused() -> None:
    pool = BufferPool()
    first = pool.empty(10, np.int64)
    address = _address(first)
    del first
    again = pool.empty(8, np.int64)
    assert _address(again) == address
    assert again.shape == (8,) and again.dtype == np.int64


def test_array_in_use_is_not_reused() -> None:
    pool = BufferPool()
    first = pool.empty(10, np.int64)
    first[:] = 7
    kept = first[2:5]  # a view keeps the memory in use
    del first
    second = pool.empty(10, np.int64)
    second[:] = -1
    assert not np.shares_memory(kept, second)
    assert kept.tolist() == [7, 7, 7]


def test_dtype_and_size_must_fit() -> None:
    pool = BufferPool()
    small = pool.empty(4, np.int64)
    address = _address(small)
    del small
    assert _address(pool.empty(4, np.float64)) != address  # another dtype
    assert _address(pool.empty(5, np.int64)) != address  # larger than the free array


def test_capacity_is_allocated_for_growing_sizes() -> None:
    pool = BufferPool()
    first = pool.empty(3, np.int64, capacity=100)
    address = _address(first)
    del first
    assert _address(pool.empty(100, np.int64)) == address


def test_beyond_keep_arrays_are_not_pooled() -> None:
    pool = BufferPool(keep=2)
    held = [pool.empty(4, np.int64) for _ in range(3)]
    addresses = {_address(a) for a in held}
    assert len(addresses) == 3
    del held
    # Only the two pooled arrays come back; the third was never kept.
    reused = [pool.empty(4, np.int64) for _ in range(2)]
    assert {_address(a) for a in reused} < addresses
