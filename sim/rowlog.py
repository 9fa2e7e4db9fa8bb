"""Rows recorded step by step, kept as numpy columns until a table is read.

Building a polars frame costs far more than the few rows a step records (at 10^5 agents
the frames of the tracker's events and the ``steps`` rows cost more than the tracking
arithmetic), so batches of rows wait as column arrays and become frames on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


class RowLog:
    """An append-only log of row batches, read as polars frames in recording order.

    Each batch is a dict of equally long columns (numpy arrays, or lists of str). Reading
    concatenates each run of consecutive batches with the same column names into one
    frame: the same rows, in the same order and with the same dtypes, as one frame per
    batch.

    Args:
        frame: Rows recorded before (a restored state), or None.
    """

    def __init__(self, frame: pl.DataFrame | None = None) -> None:
        self._frames: list[pl.DataFrame] = [] if frame is None else [frame]
        self._pending: list[dict[str, np.ndarray | Sequence[str]]] = []

    def add(self, columns: dict[str, np.ndarray | Sequence[str]]) -> None:
        """Record a batch of rows: one column per name, all of the same length."""
        self._pending.append(columns)

    def __bool__(self) -> bool:
        return bool(self._frames or self._pending)

    def frames(self) -> list[pl.DataFrame]:
        """Every row recorded so far, as frames in recording order."""
        start = 0
        pending = self._pending
        for end in range(1, len(pending) + 1):
            if end == len(pending) or pending[end].keys() != pending[start].keys():
                self._frames.append(_frame(pending[start:end]))
                start = end
        self._pending = []
        return self._frames


def _frame(batches: list[dict[str, np.ndarray | Sequence[str]]]) -> pl.DataFrame:
    """One frame of batches with the same column names."""
    columns: dict[str, np.ndarray | list[str]] = {}
    for name, first in batches[0].items():
        if isinstance(first, np.ndarray):
            columns[name] = np.concatenate([b[name] for b in batches])
        else:
            columns[name] = [value for b in batches for value in b[name]]
    return pl.DataFrame(columns)
