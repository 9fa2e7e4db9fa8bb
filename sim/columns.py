"""Typed aggregates of polars columns.

Polars types ``Series.max()`` as any Python literal or None, whatever the column's dtype;
the readers of run tables need an ``int`` from an integer column (a step, a hop count, an
agent id) and a clear error when there is none.
"""

from __future__ import annotations

import polars as pl


def int_max(column: pl.Series, default: int | None = None) -> int:
    """The largest value of an integer column, nulls skipped.

    Args:
        column: A column of an integer (or boolean) dtype.
        default: Returned when the column holds no non-null value; None: raise instead.

    Returns:
        The maximum as a Python ``int``.

    Raises:
        ValueError: The column holds no value and there is no default, or its maximum
            is not an integer.
    """
    value = column.max()
    if value is None:
        if default is None:
            raise ValueError(f"column {column.name!r} holds no value")
        return default
    if not isinstance(value, int):
        raise ValueError(f"column {column.name!r}: expected integers, found {value!r}")
    return int(value)
