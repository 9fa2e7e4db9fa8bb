"""A sweep's run errors, one line per problem: an axis's invalid values on one line.

Every run of a sweep is validated; an error many runs share is listed once, with the
count of runs and one of them. Errors caused by a grid axis are gathered per axis:

* an unknown grid key (``"policy.betaa"``) is wrong whatever the value, so it is one line
  named by its grid key: ``sweep.grid."policy.betaa": unknown key ...``;
* values the key cannot take (``"policy.beta" = [2, 3, 4]`` where beta is at most 1, a
  misspelt choice) are one line naming the grid key, the failing values in grid order
  and what the key allows::

      sweep.grid."policy.beta" = [2, 3, 4]: must be >= 0 and <= 1 (in 6 run(s), e.g. ...)

  What is allowed is the message the values share (``must be one of 'by_id' or
  'shuffled'``); numeric bounds are stated in full from the schema (a value above the
  range and one below it fail with different messages); values failing for different
  reasons are listed reason by reason on the axis's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import annotated_types

from experiments.config import schema_field, shown_value

#: How pydantic's numeric bound errors begin (as error lines show them).
_BOUND_MESSAGES = ("input should be greater than", "input should be less than")
#: Each bound of the schema (annotated_types), the attribute holding it, and its symbol.
_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


class SweptKey(Protocol):
    """What this module reads of a sweep's axis: its key path and its values."""

    @property
    def key(self) -> str:
        """The swept key path, e.g. ``policy.beta``."""
        ...

    @property
    def values(self) -> tuple[Any, ...]:
        """The values it takes, in grid order."""
        ...


def grid_where(key: str) -> str:
    """The config path of grid axis ``key``, quoted when it is a dotted key path."""
    return f'sweep.grid."{key}"' if "." in key else f"sweep.grid.{key}"


def runs_note(runs: Sequence[str]) -> str:
    """`` (in N run(s), e.g. FIRST)``, or `` (ONLY)`` for one run."""
    if len(runs) > 1:
        return f" (in {len(runs)} run(s), e.g. {runs[0]})"
    return f" ({runs[0]})"


def bounds_text(data: Any, key: str) -> str | None:
    """``must be >= 0 and <= 1``: the numeric bounds of ``key``'s field, or None if none.

    Args:
        data: The run document (it selects the variant of a choice, e.g. the policy kind).
        key: The key path.
    """
    info = schema_field(data, key)
    if info is None:
        return None
    bounds = [
        f"{symbol} {getattr(meta, attr)}"
        for kind, attr, symbol in _BOUNDS
        for meta in info.metadata
        if isinstance(meta, kind)
    ]
    return "must be " + " and ".join(bounds) if bounds else None


@dataclass
class _AxisFailures:
    """The runs failing on one axis's values: message -> failing value indices.

    ``data`` is the first failing run's document (it selects the variant whose schema
    bounds the swept key).
    """

    data: Any
    messages: dict[str, list[int]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)


class RunProblems:
    """Collects the error lines of a sweep's runs; :meth:`lines` gives them grouped.

    Args:
        axes: The sweep's axes, in grid order.
    """

    def __init__(self, axes: Sequence[SweptKey]) -> None:
        self._axes = tuple(axes)
        self._runs: dict[str, list[str]] = {}  # line -> its runs
        self._failures: dict[int, _AxisFailures] = {}  # axis index -> its invalid values
        self._order: list[str | int] = []  # lines and axis indices, first seen first

    def __bool__(self) -> bool:
        return bool(self._order)

    def add(self, line: str, point: Sequence[int], run: str, data: Any) -> None:
        """Record error ``line`` of the run ``run`` at grid point ``point``.

        Args:
            line: One error line of the run's validation.
            point: The run's value index on every axis.
            run: The run's directory, relative to the sweep's.
            data: The run's config document.
        """
        for index, (axis, i) in enumerate(zip(self._axes, point, strict=True)):
            head = f"{axis.key} = {shown_value(axis.values[i])}: "
            if not line.startswith(head):
                continue
            message = line[len(head) :]
            if message.startswith("unknown key"):
                line = f"{grid_where(axis.key)}: {message}"
                break
            if index not in self._failures:
                self._failures[index] = _AxisFailures(data)
                self._order.append(index)
            failures = self._failures[index]
            values = failures.messages.setdefault(message, [])
            if i not in values:
                values.append(i)
            if run not in failures.runs:
                failures.runs.append(run)
            return
        if line not in self._runs:
            self._runs[line] = []
            self._order.append(line)
        self._runs[line].append(run)

    def lines(self) -> list[str]:
        """One line per distinct error, and one per axis with invalid values."""
        return [
            f"{entry}{runs_note(self._runs[entry])}"
            if isinstance(entry, str)
            else self._axis_line(self._axes[entry], self._failures[entry])
            for entry in self._order
        ]

    def _axis_line(self, axis: SweptKey, failures: _AxisFailures) -> str:
        messages = failures.messages
        every = sorted({i for values in messages.values() for i in values})
        out_of_bounds = any(m.startswith(_BOUND_MESSAGES) for m in messages)
        bounds = bounds_text(failures.data, axis.key) if out_of_bounds else None
        if bounds is not None:
            # Above and below the range: one reason, the whole range, in message order.
            merged: dict[str, list[int]] = {}
            for message, values in messages.items():
                key = bounds if message.startswith(_BOUND_MESSAGES) else message
                merged.setdefault(key, []).extend(values)
            messages = merged
        shown = ", ".join(shown_value(axis.values[i]) for i in every)
        if len(messages) == 1:
            (reason,) = messages
        else:
            reason = "; ".join(
                f"{', '.join(shown_value(axis.values[i]) for i in sorted(values))}: {message}"
                for message, values in messages.items()
            )
        return f"{grid_where(axis.key)} = [{shown}]: {reason}{runs_note(failures.runs)}"
