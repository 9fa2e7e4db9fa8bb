"""The buffer pool hands out an array's memory again only once nothing refers to it."""

from __future__ import annotations

import numpy as np

from sim.buffers import BufferPool


def test_free_array_is_reused() -> None:
    pool = BufferPool()
    first = pool.empty(10, np.int64)
    address = first.__array_interface__["data"][0]
    del first
    again = pool.empty(8, np.int64)
    assert again.__array_interface__["data"][0] == address
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
    address = small.__array_interface__["data"][0]
    del small
    other = pool.empty(4, np.float64)
    bigger = pool.empty(5, np.int64)
    assert other.__array_interface__["data"][0] != address
    assert bigger.__array_interface__["data"][0] != address


def test_capacity_is_allocated_for_growing_sizes() -> None:
    pool = BufferPool()
    first = pool.empty(3, np.int64, capacity=100)
    address = first.__array_interface__["data"][0]
    del first
    assert pool.empty(100, np.int64).__array_interface__["data"][0] == address


def test_beyond_keep_arrays_are_not_pooled() -> None:
    pool = BufferPool(keep=2)
    held = [pool.empty(4, np.int64) for _ in range(3)]
    addresses = {a.__array_interface__["data"][0] for a in held}
    assert len(addresses) == 3
    del held
    # Only the two pooled arrays come back; the third was never kept.
    reused = [pool.empty(4, np.int64) for _ in range(2)]
    assert {a.__array_interface__["data"][0] for a in reused} < addresses
