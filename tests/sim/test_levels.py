"""Distinct values and ranks by hashing, against numpy's sort."""

from __future__ import annotations

import numpy as np
import pytest

from sim.levels import distinct_ranks


@pytest.mark.parametrize("n_distinct", [1, 2, 37, 4096])
def test_distinct_ranks_equal_numpys_unique(n_distinct):
    rng = np.random.default_rng(n_distinct)
    pool = rng.random(n_distinct) * 3 - 1
    values = rng.choice(pool, size=20_000)
    values[:n_distinct] = pool  # every value of the pool occurs
    distinct, rank = distinct_ranks(values)
    expected, inverse = np.unique(values, return_inverse=True)
    assert distinct.tolist() == expected.tolist()
    assert rank.tolist() == inverse.reshape(-1).tolist()
    assert rank.dtype == np.int64


def test_more_distinct_values_than_the_limit_is_none():
    values = np.arange(100, dtype=np.float64)
    assert distinct_ranks(values, limit=99) is None
    distinct, rank = distinct_ranks(values, limit=100)
    assert distinct.tolist() == values.tolist()
    assert rank.tolist() == list(range(100))


def test_negative_zero_is_zero_and_empty_input_has_no_values():
    distinct, rank = distinct_ranks(np.array([0.5, -0.0, 0.0, 0.5, -1.0]))
    assert distinct.tolist() == [-1.0, 0.0, 0.5]
    assert str(distinct[1]) == "0.0"  # (not -0.0)
    assert rank.tolist() == [2, 1, 1, 2, 0]
    distinct, rank = distinct_ranks(np.zeros(0))
    assert len(distinct) == 0 and len(rank) == 0
