"""sorted_unique gives np.unique's answer, by sorting or by marking."""

from __future__ import annotations

import numpy as np
import pytest

from sim.unique import sorted_unique


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_sorted_unique_equals_np_unique(dtype, n):
    values = np.random.default_rng(n).integers(0, 50, n).astype(dtype)
    for bound in (None, 50, 10_000):
        got = sorted_unique(values, bound)
        expected = np.unique(values)
        assert got.dtype == expected.dtype
        assert got.tolist() == expected.tolist()


def test_sorted_unique_reads_any_shape_and_leaves_the_input_alone():
    values = np.array([[5, 1], [5, 3]], dtype=np.int64)
    assert sorted_unique(values).tolist() == [1, 3, 5]
    assert sorted_unique(values, bound=6).tolist() == [1, 3, 5]
    assert values.tolist() == [[5, 1], [5, 3]]
