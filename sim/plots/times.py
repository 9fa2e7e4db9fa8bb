"""A time to a fraction against a swept parameter: the Kaplan-Meier median over seeds.

The mean time over the seeds that reached a fraction leans early when some never did
(2 of 10 seeds at step 3 give a mean of 3); the Kaplan-Meier median uses every seed, the
ones that never got there censored at their last step
(:func:`sim.analysis.aggregate.aggregate_metrics`' ``<t>_km_median``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator

from sim.plots.axes import (
    LineEntry,
    ParameterAxis,
    category_order,
    draw_censored,
    group_label,
    line_legend,
    note_at_floor,
    split_by,
    stack_apart,
)
from sim.plots.styles import group_style


def time_by_parameter(
    agg: pl.DataFrame,
    x: str,
    time: str = "t50",
    *,
    group: Sequence[str] = (),
    runs: str = "runs",
    reached: str | None = None,
    title: str | None = None,
) -> Figure:
    """The Kaplan-Meier median of a time to a fraction against one swept parameter.

    One point per value of ``x`` (and combination of the ``group`` columns, one line
    each, drawn slightly apart as in :func:`sim.plots.metric_by_parameter`): the median
    step ``<time>_km_median`` over all the point's seeds, labelled ``k/n`` (``k`` of its
    ``n`` seeds reached the fraction). No interval is drawn: the median comes without
    one. Where the median is censored (null: fewer than half the seeds got there by the
    last step ``T`` the curve covers, ``<time>_km_end``) an upward arrow
    (:data:`sim.plots.CENSORED_MARKER`) stands at ``T``, labelled ``>T`` and ``k/n``
    (the labels of several lines at (nearly) the same x stacked under each other in line
    order, :func:`sim.plots.stack_apart`, where they overlapped);
    where it is undefined (no seed observed at all) ``undefined`` is written at the
    axis bottom. A numeric parameter's medians are joined by a line, broken at censored
    points (a censored median is no value to join). The legend shows what each line
    draws: a line whose medians are all censored is only its arrows, and its entry is
    the arrow, labelled ``(all beyond T)``; one whose medians are all undefined,
    ``(undefined)``, without line or marker and in the line's colour, as its
    ``undefined`` texts (and as ``(never)`` in :func:`sim.plots.metric_by_parameter`).
    The y axis says what is plotted; a
    caption under the axes says how the median treats seeds that never got there.

    Args:
        agg: Output of :func:`sim.analysis.aggregate.aggregate_metrics` (columns ``x``,
            the ``group`` columns, ``<time>_km_median``, ``<time>_km_end``, ``<time>_n``)
            and optionally ``runs`` (seeds per point).
        x: The parameter along the x axis.
        time: The time, e.g. ``"t50"``.
        group: Columns distinguishing the lines.
        runs: The column of seeds per point (without it the labels give ``k`` alone).
        reached: What reaching the time means, for the labels (default: ``50 %`` for
            ``t50``, the time's name for another name).
        title: Axes title (default: the time; pass the sweep name in it).
    """
    cols = [f"{time}_km_median", f"{time}_km_end", f"{time}_n"]
    missing = [c for c in [x, *group, *cols] if c not in agg.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {agg.columns}")
    if reached is None:
        fraction = re.fullmatch(r"t(\d+)", time)
        reached = f"{fraction.group(1)} %" if fraction else time
    axis = ParameterAxis.of(agg, x)
    groups = list(group)
    parts = split_by(agg, groups)
    parts.sort(key=lambda kp: tuple((v is None, category_order(v)) for v in kp[0]))
    fig = Figure(figsize=(max(5.5, 1.3 * len(axis.values) + 3), 4.3), layout="constrained")
    ax = fig.add_subplot()
    censored_any = False
    # The ">T k/n" notes, kept apart once the figure is done (and from the medians' k/n).
    beyond: list[Annotation] = []
    counts: list[Annotation] = []
    entries: list[LineEntry] = []  # one legend entry per line: what is drawn
    for index, (key, part) in enumerate(parts):
        part = axis.in_order(part, x)
        pos = axis.at(part[x].to_list(), index, len(parts))
        median = part[cols[0]].cast(pl.Float64).to_numpy()
        end = part[cols[1]].cast(pl.Float64).to_numpy()
        style = group_style(index)
        label = group_label(key)
        # NaN where censored or undefined: the line breaks there. A line without a median
        # is not drawn (its legend entry would show a line and marker drawn nowhere).
        if not np.isnan(median).all():
            (line,) = ax.plot(
                pos,
                median,
                color=style["color"],
                linestyle=style["linestyle"] if axis.ordered else "none",
                marker=style["marker"],
                markersize=7,
                clip_on=False,
            )
            entries.append(LineEntry(label, style["color"], line))
        censored = np.isnan(median) & ~np.isnan(end)
        if censored.any():  # (an empty unclipped line would count as a point at 0, 0)
            censored_any = True
            arrows = draw_censored(ax, pos[censored], end[censored], style["color"])
            if np.isnan(median).all():  # the arrows are all that is drawn of the line
                entries.append(LineEntry(f"{label} (all beyond T)", style["color"], arrows))
        if np.isnan(median).all() and not censored.any():  # "undefined" texts alone
            entries.append(LineEntry(f"{label} (undefined)", style["color"]))
        reached_n = part[cols[2]].to_list()
        seeds = part[runs].to_list() if runs in part.columns else [None] * part.height
        for px, m, t, k, n in zip(pos, median, end, reached_n, seeds, strict=True):
            count = f"{k}/{n}" if n is not None else f"{k}"
            if np.isnan(m) and np.isnan(t):
                note_at_floor(ax, px, f"undefined ({count})", index, style["color"])
                continue
            if np.isnan(m):  # censored: ">T" and k/n under the arrow, narrow
                note = ax.annotate(
                    f">{t:.0f}\n{count}",
                    (px, t),
                    xytext=(0, -13),
                    textcoords="offset points",
                    ha="center",
                    va="top",
                    fontsize=7,
                    color=style["color"],
                )
                beyond.append(note)
            else:
                note = ax.annotate(
                    count,
                    (px, m),
                    xytext=(5, 4),
                    textcoords="offset points",
                    fontsize=7,
                    color=style["color"],
                )
                counts.append(note)
    axis.draw(fig, ax, x)
    ax.set_ylabel(f"{time}: Kaplan-Meier median step\n(k/n: seeds that reached {reached})")
    shown = agg.select(cols[:2]).cast(pl.Float64).to_numpy()
    shown = shown[np.isfinite(shown)]
    # Room above the highest point for its arrow and label.
    ax.set_ylim(0, float(shown.max()) * 1.12 + 0.5 if len(shown) else 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title or time)
    if groups:
        line_legend(ax, entries, ", ".join(groups))
    lines = [
        f"median over all seeds, those that never reached {reached} counted as not there "
        "by their last step; no interval"
    ]
    if censored_any:
        lines.append(
            f"\u2191 >T: fewer than half reached {reached} by the last step T, so the median "
            "lies beyond it"
        )
    # Wrapped to the figure's width (about 14 characters an inch at this size).
    width = int(fig.get_figwidth() * 14)
    fig.supxlabel("\n".join(textwrap.fill(line, width) for line in lines), fontsize=7)
    axis.fit_labels(fig, ax)  # the layout is complete: the notes can be measured
    stack_apart(fig, beyond, counts)  # two lines' notes at the same x no longer overlap
    return fig
