"""Drawing helpers the figures share: lines that stay visible, share and count axes.

A line's markers stay visible where it coincides with earlier lines; share axes run from
0 to 1; count axes start at 0 and have integer ticks; a frame splits into one part (one
line) per group, labelled by the group's values; a swept parameter along the x axis
(:class:`ParameterAxis`) puts numbers at their values and categories evenly apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator


def draw_line(
    ax: Axes, x: np.ndarray, y: np.ndarray, style: dict[str, Any], index: int, label: str | None
) -> Line2D:
    """One line whose markers still show where it coincides with earlier lines.

    On a long line the markers are offset by ``index``; on a short one (under 20 points,
    a marker at every point) later lines get smaller markers, so a coinciding point shows
    each line's marker inside the earlier one's (white marker edges keep them apart when
    the lines share a colour).
    """
    every = max(1, len(x) // 10)
    (line,) = ax.plot(
        x,
        y,
        label=label,
        markevery=(index % every, every),
        markersize=5 if every > 1 else max(10 - 4.5 * index, 3),
        markeredgecolor="white",
        markeredgewidth=0.8,
        zorder=3 + index if style.get("linewidth", 2) < 4 else 2,
        clip_on=False,
        **style,
    )
    return line


def share_axis(ax: Axes) -> None:
    """A share axis: from 0 to 1, labelled "fraction of agents" unless it has a label."""
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(ax.get_ylabel() or "fraction of agents")


def count_axis(ax: Axes) -> None:
    """A count axis: starts at 0, integer ticks, and reaches at least 1.

    (Counts that are all 0 would otherwise get an axis up to about 0.05 with fractional
    ticks, which no count can take.)
    """
    ax.set_ylim(0, max(ax.get_ylim()[1], 1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def group_label(key: object) -> str:
    """A group's legend label: its values joined by ", " (``(0.1, "ring")`` -> ``0.1, ring``)."""
    if isinstance(key, tuple):
        return ", ".join(str(k) for k in key)
    return str(key)


def split_by(frame: pl.DataFrame, by: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """``frame`` split by the columns ``by``, in order of first appearance.

    With no column, the one part is the whole frame, keyed ``()``.
    """
    if not by:
        return [((), frame)]
    return list(frame.group_by(by, maintain_order=True))


@dataclass(frozen=True)
class ParameterAxis:
    """A swept parameter along the x axis: where each of its values sits.

    A numeric parameter's values sit at their values, with a tick at each (0, 2, 5 are
    not evenly spaced, so slopes read true); a categorical one's (e.g. defense arms) sit
    evenly spaced in sorted order. Several lines at the same values are drawn slightly
    apart (:meth:`offset`, by at most an eighth of the smallest gap between two values)
    so their error bars do not hide each other.

    Attributes:
        values: The parameter's distinct values, sorted.
        ordered: Whether they are numbers (an order a line may follow, a distance an
            axis may show); labels have neither.
        positions: The x position of each value, in the order of ``values``.
        unit: The smallest distance between two positions (1 with a single value).
    """

    values: tuple[Any, ...]
    ordered: bool
    positions: tuple[float, ...]
    unit: float

    @classmethod
    def of(cls, frame: pl.DataFrame, x: str) -> ParameterAxis:
        """The axis of column ``x`` of ``frame`` (numeric when its dtype is)."""
        values = tuple(sorted(frame[x].unique().to_list()))
        ordered = frame.schema[x].is_numeric()
        positions = tuple(float(v) if ordered else float(i) for i, v in enumerate(values))
        gaps = np.diff(positions)
        return cls(values, ordered, positions, float(gaps.min()) if len(gaps) else 1.0)

    def at(self, values: Sequence[Any], index: int = 0, lines: int = 1) -> np.ndarray:
        """The x positions of ``values`` for the ``index``-th of ``lines`` lines."""
        where = dict(zip(self.values, self.positions, strict=True))
        offset = (index - (lines - 1) / 2) * (0.25 / max(lines, 1)) * self.unit
        return np.array([where[v] for v in values], dtype=float) + offset

    def draw(self, fig: Figure, ax: Axes, label: str) -> None:
        """Set the x limits, a tick at each value and the axis label.

        Half a step beyond the ends, as between two categories; on a numeric axis also a
        tenth of the range, so values far apart do not sit on its edges. A numeric tick
        label that would overlap the previous one is left blank (:func:`_spaced_labels`).
        """
        ticks = [str(v) for v in self.values]
        if self.values:
            first, last = self.positions[0], self.positions[-1]
            pad = max(0.5 * self.unit, 0.1 * (last - first)) if self.ordered else 0.5
            ax.set_xlim(first - pad, last + pad)
            if self.ordered:
                inches = fig.get_figwidth() - 1.3  # about the axes' width: less the y label
                per_inch = (last - first + 2 * pad) / inches
                ticks = _spaced_labels([p / per_inch for p in self.positions], ticks)
        ax.set_xticks(list(self.positions), ticks)
        ax.set_xlabel(label)


def _spaced_labels(inches: list[float], labels: list[str]) -> list[str]:
    """Tick labels that do not overlap: a label too close to the last one shown is blank.

    ``inches`` are the ticks' positions along the axis, in inches, increasing. A label
    is shown when it lies at least half the two labels' widths (about 0.07 inch a
    character at the default size) plus 0.08 inch from the last label shown; its tick
    stays either way (e.g. beta = 0.01, 0.02, 0.05 on an axis up to 0.5: ``0.02`` is
    left blank rather than written over ``0.01``).
    """
    shown: list[str] = []
    last: tuple[float, str] | None = None
    for at, label in zip(inches, labels, strict=True):
        if last is None or at - last[0] >= 0.07 * (len(label) + len(last[1])) / 2 + 0.08:
            shown.append(label)
            last = (at, label)
        else:
            shown.append("")
    return shown
