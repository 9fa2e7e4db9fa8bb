"""The state of a model part between steps, in safe formats: what ``get_state`` returns.

Every stateful part of a model (the memory store, the tracker, the policy, the guards and
the model itself) has ``get_state() -> State`` and ``set_state(state)``; the model's
state nests its parts' under prefixes (``store.``, ``tracker.``, ...). A
:class:`State` holds numpy arrays, polars frames and JSON values only, so a checkpoint
(:mod:`sim.checkpoint`) writes it without pickling and reads it back exactly. No module
reads another's private fields to save or restore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl


@dataclass
class State:
    """A part's state: arrays, frames and JSON values, each by name.

    Attributes:
        arrays: Numpy arrays (no object dtype).
        frames: Polars frames (rows recorded so far).
        values: JSON values (numbers, strings, lists, dicts).
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, prefix: str, part: State) -> None:
        """Nest ``part`` under ``prefix``: its item ``x`` becomes ``prefix.x``."""
        for mine, theirs in self._pairs(part):
            mine.update({f"{prefix}.{name}": value for name, value in theirs.items()})

    def part(self, prefix: str) -> State:
        """The state nested under ``prefix`` (what :meth:`add` put there), unprefixed."""
        head = f"{prefix}."
        found = State()
        for source, target in self._pairs(found):
            nested = {k: v for k, v in source.items() if k.startswith(head)}
            target.update({k.removeprefix(head): v for k, v in nested.items()})
        return found

    def _pairs(self, other: State) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (self.arrays, other.arrays),
            (self.frames, other.frames),
            (self.values, other.values),
        ]


def frame_list(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    """Rows recorded as a list of frames, as one frame (None when there are none)."""
    return pl.concat(frames, how="diagonal_relaxed") if frames else None
