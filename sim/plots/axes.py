"""Drawing helpers the figures share: lines that stay visible, share and count axes.

A line's markers stay visible where it coincides with earlier lines; share axes run from
0 to 1; count axes start at 0 and have integer ticks; a frame splits into one part (one
line) per group, labelled by the group's values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator


def _draw_line(
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


def _share_axis(ax: Axes) -> None:
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(ax.get_ylabel() or "fraction of agents")


def _count_axis(ax: Axes) -> None:
    """A count axis: starts at 0, integer ticks, and reaches at least 1.

    (Counts that are all 0 would otherwise get an axis up to about 0.05 with fractional
    ticks, which no count can take.)
    """
    ax.set_ylim(0, max(ax.get_ylim()[1], 1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _label(key: object) -> str:
    if isinstance(key, tuple):
        return ", ".join(str(k) for k in key)
    return str(key)


def _parts(frame: pl.DataFrame, by: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """``frame`` split by the columns ``by``, in order of first appearance.

    With no column, the one part is the whole frame, keyed ``()``.
    """
    if not by:
        return [((), frame)]
    return list(frame.group_by(by, maintain_order=True))
