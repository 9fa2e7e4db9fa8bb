import polars as pl
import pytest

from sim.columns import int_max


def test_int_max_of_an_integer_column_skips_nulls():
    assert int_max(pl.Series("step", [3, None, 7, 1])) == 7
    assert type(int_max(pl.Series("step", [3, 7], dtype=pl.UInt16))) is int


def test_int_max_of_an_empty_column_is_the_default_or_an_error():
    assert int_max(pl.Series("hop", [], dtype=pl.Int64), 0) == 0
    assert int_max(pl.Series("hop", [None], dtype=pl.Int64), -1) == -1
    with pytest.raises(ValueError, match="'hop' holds no value"):
        int_max(pl.Series("hop", [], dtype=pl.Int64))


def test_int_max_refuses_a_column_that_is_not_integer():
    with pytest.raises(ValueError, match=r"expected integers, found 2\.5"):
        int_max(pl.Series("x", [1.0, 2.5]))
