"""Curves: prevalence and spread over steps, counts per step, a metric over a parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.plots.axes import (
    LineEntry,
    ParameterAxis,
    category_order,
    count_axis,
    draw_censored,
    draw_line,
    group_label,
    line_legend,
    note_at_floor,
    share_axis,
    split_by,
)
from sim.plots.styles import (
    COUNT_STATES,
    MAX_LEGEND_INSIDE,
    STATE_COLOURS,
    group_style,
    state_rank,
    state_style,
)


def spread_curves(
    bands: pl.DataFrame,
    *,
    group: str | Sequence[str] | None = None,
    title: str = "Spread",
    ylabel: str = "fraction of agents",
    panel: str | None = None,
) -> Figure:
    """Mean curves with confidence bands, one line per group (and meme).

    Grouping by ``state`` draws each state in its palette colour and style, in
    :data:`STATE_ORDER`; other groups get distinct colours, dash patterns and markers
    (:func:`group_style`), sorted by their values. With ``panel`` (e.g. ``"meme_id"``)
    each value of that column gets a panel of its own, side by side with a shared y
    axis, and a group keeps its style in every panel. More than
    :data:`MAX_LEGEND_INSIDE` lines put the legend beside the axes, where it hides no
    curve (centred on their height: at the top it covered the end of the figure title).

    Args:
        bands: Columns ``step, mean`` and optionally ``low, high`` (e.g. from
            :func:`sim.analysis.aggregate.curve_bands`), ``meme_id`` and the group columns.
        group: Column(s) distinguishing the lines (e.g. ``"graph"``).
        title: Axes title (the figure title with panels).
        ylabel: Y axis label (the axis runs from 0 to 1).
        panel: Column whose values get one panel each (None: one panel).
    """
    groups = [group] if isinstance(group, str) else list(group or [])
    if "meme_id" in bands.columns and bands["meme_id"].n_unique() > 1 and panel != "meme_id":
        groups.append("meme_id")
    panels = split_by(bands, [panel]) if panel is not None else [((), bands)]
    keys = [key for key, _ in split_by(bands, groups)]
    if "state" in groups:
        at = groups.index("state")
        keys.sort(key=lambda k: (state_rank(k[at]), group_label(k)))
    else:
        keys.sort(key=lambda k: tuple((v is None, v) for v in k))
    width = 7.0 if len(panels) == 1 else 3.6 * len(panels) + 0.6
    beside = len(keys) > MAX_LEGEND_INSIDE or panel is not None
    fig = Figure(figsize=(width + (2.2 if beside else 0), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (panel_key, panel_part) in zip(axes, panels, strict=True):
        parts = dict(split_by(panel_part, groups))
        for index, key in enumerate(keys):
            if key not in parts:
                continue
            part = parts[key].sort("step")
            step = part["step"].to_numpy()
            if "state" in groups:
                style = state_style(str(key[groups.index("state")]))
            else:
                style = group_style(index)
            label = group_label(key) if groups else None
            line = draw_line(ax, step, part["mean"].to_numpy(), style, index, label)
            if {"low", "high"} <= set(part.columns):
                low = part["low"].fill_null(part["mean"]).to_numpy()
                high = part["high"].fill_null(part["mean"]).to_numpy()
                ax.fill_between(step, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        if panel is not None:
            ax.set_title(f"{panel} = {group_label(panel_key)}")
        share_axis(ax)
    for ax in axes[1:]:
        ax.set_ylabel("")
    if panel is None:
        axes[0].set_title(title)
    else:
        fig.suptitle(title)
    if groups:
        legend_title = ", ".join(groups)
        if beside:
            found: dict[str, Any] = {}
            for ax in axes:
                for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                    found.setdefault(name, handle)
            fig.legend(
                list(found.values()),
                list(found),
                title=legend_title,
                fontsize="small",
                loc="outside right center",
            )
        else:
            axes[0].legend(title=legend_title, fontsize="small")
    return fig


def prevalence_curves(
    prev: pl.DataFrame,
    *,
    meme_id: str | None = None,
    states: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Prevalence of each state over steps for one run and meme.

    Args:
        prev: Output of :func:`sim.analysis.prevalence.prevalence`.
        meme_id: The meme (default: the first).
        states: States to draw, one line each (those absent from ``prev`` are skipped).
            Default: :func:`default_states`.
        title: Axes title (default: the meme; pass the run name in it).
    """
    memes = prev["meme_id"].unique(maintain_order=True).to_list()
    meme_id = meme_id or (memes[0] if memes else None)
    if meme_id not in memes:
        raise ValueError(f"meme_id = {meme_id!r}: not in the table; memes are {memes}")
    if states is None:
        states = default_states(prev, extra=("infected",))
    sub = prev.filter((pl.col("meme_id") == meme_id) & pl.col("state").is_in(list(states)))
    return spread_curves(
        sub.rename({"prevalence": "mean"}), group="state", title=title or f"meme {meme_id!r}"
    )


def default_states(prev: pl.DataFrame, *, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """exposed, carrier, expressed (only if some agent expressed a meme), adopter, ``extra``.

    ``expressed`` needs scored choices (LLM runs with choice tasks); in other runs it is
    zero throughout and left out rather than drawn as a line at 0.
    """
    expressed = prev.filter((pl.col("state") == "expressed") & (pl.col("count") > 0)).height
    states = (
        ("exposed", "carrier", "expressed", "adopter")
        if expressed
        else (
            "exposed",
            "carrier",
            "adopter",
        )
    )
    return (*states, *extra)


def memes_compared(
    prev: pl.DataFrame,
    *,
    states: Sequence[str] | None = None,
    memes: Sequence[str] | None = None,
    title: str = "Memes compared",
) -> Figure:
    """Several memes in the same panels: one panel per state, one line per meme.

    Each panel is drawn in its state's colour; memes differ in dash pattern and marker,
    so a race between memes reads off one panel.

    Args:
        prev: Output of :func:`sim.analysis.prevalence.prevalence`.
        states: States, one panel each (those absent from ``prev`` are skipped).
            Default: :func:`default_states`.
        memes: Memes in legend order (default: sorted); each keeps its style in every
            figure given the same order.
        title: Figure title (pass the run name in it).
    """
    present = set(prev["state"].unique().to_list())
    states = default_states(prev) if states is None else states
    shown = [s for s in states if s in present]
    if not shown:
        raise ValueError(f"states = {list(states)}: none in the table; it has {sorted(present)}")
    memes = list(memes) if memes is not None else sorted(prev["meme_id"].unique().to_list())
    fig = Figure(figsize=(3.6 * len(shown) + 0.6, 3.8), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False, sharey=True)[0]
    for ax, state in zip(axes, shown, strict=True):
        for index, meme in enumerate(memes):
            part = prev.filter((pl.col("state") == state) & (pl.col("meme_id") == meme))
            part = part.sort("step")
            style = {**group_style(index), "color": STATE_COLOURS[state]}
            x, y = part["step"].to_numpy(), part["prevalence"].to_numpy()
            draw_line(ax, x, y, style, index, str(meme))
        ax.set_title(state, color=STATE_COLOURS[state])
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        share_axis(ax)
    for ax in axes[1:]:
        ax.set_ylabel("")
    axes[0].legend(title="meme", fontsize="small")
    fig.suptitle(title)
    return fig


def counts_per_step(
    steps: pl.DataFrame,
    columns: Sequence[str] = ("transmissions", "new_adopters"),
    *,
    memes: Sequence[str] | None = None,
    title: str = "Events per step",
) -> Figure:
    """Counts per step from the ``steps`` table: one panel per column, one line per meme.

    Count axes start at 0 with integer ticks. A column that counts entries into a state
    is drawn in that state's colour; memes differ in dash pattern and marker.

    Args:
        steps: The ``steps`` table (``step``, ``meme_id`` and the columns).
        columns: Count columns, one panel each.
        memes: Memes in legend order (default: sorted), as in :func:`memes_compared`.
        title: Figure title (pass the run name in it).
    """
    missing = [c for c in columns if c not in steps.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the steps table; it has {steps.columns}")
    memes = list(memes) if memes is not None else sorted(steps["meme_id"].unique().to_list())
    fig = Figure(figsize=(6.8, 2.4 * len(columns) + 0.6), layout="constrained")
    axes = fig.subplots(len(columns), 1, squeeze=False, sharex=True)[:, 0]
    for ax, column in zip(axes, columns, strict=True):
        for index, meme in enumerate(memes):
            part = steps.filter(pl.col("meme_id") == meme).sort("step")
            style = group_style(index)
            if column in COUNT_STATES and len(memes) == 1:
                style["color"] = STATE_COLOURS[COUNT_STATES[column]]
            x, y = part["step"].to_numpy(), part[column].to_numpy()
            draw_line(ax, x, y, style, index, str(meme))
        ax.set_ylabel(column.replace("_", " "))
        count_axis(ax)
        ax.legend(title="meme", fontsize="small")
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


def metric_by_parameter(
    agg: pl.DataFrame,
    x: str,
    metric: str,
    *,
    group: Sequence[str] = (),
    title: str | None = None,
    share: bool | None = None,
    level: float = 0.95,
) -> Figure:
    """A metric's mean and confidence interval over seeds against one swept parameter.

    A numeric parameter's points sit at its values, with a tick at each (0, 2, 5 are not
    evenly spaced, so slopes read true); a categorical one's (e.g. defense arms) sit
    evenly spaced (numbers among them in numeric order, see
    :func:`sim.plots.axes.category_order`). One line per combination of the ``group`` columns
    (e.g. the other swept parameters, the meme), each with its own colour, dash pattern
    and marker, drawn slightly apart (by at most an eighth of the smallest gap between
    two values) so the error bars do not hide each other. Points are joined by lines
    only when the parameter is numeric: categories have no order for a line to follow.
    Where only ``k`` of
    ``n`` seeds have a value (e.g. ``t50`` when 50 % was not always reached) the point
    is labelled ``k/n``; where none has one, ``never`` is written at the axis bottom.
    The y label says over how many seeds the means and intervals are, counting only the
    points with a value (``over 3 seeds``; ``over 2–3 seeds``, the fewest to the most,
    when they differ; not ``0/3``: a "never" point is no mean over 0 seeds).
    Where the interval reached beyond the runs' last step (``<metric>_high_censored``,
    e.g. ``t50`` of :func:`sim.analysis.aggregate.aggregate_metrics`), its bar stops at
    that step and ends in an upward arrow (:data:`CENSORED_MARKER`, unlike any line's
    marker), and a note under the axes says so. A line with no value at any point is not
    drawn: its legend entry is its label and "(never)", without line or marker, in the
    colour of its "never" texts.

    Args:
        agg: Output of :func:`sim.analysis.aggregate.aggregate` (columns ``x``, the
            ``group`` columns, ``<metric>_mean``, ``_low``, ``_high``, ``_n``) and
            optionally ``<metric>_rows`` (seeds per point, for the ``k/n`` labels) and
            ``<metric>_high_censored``.
        x: The parameter along the x axis.
        metric: The metric.
        group: Columns distinguishing the lines.
        title: Axes title (default: the metric; pass the sweep name in it).
        share: Whether the metric is a share (axis 0..1); default: when every mean and
            bound lies in [0, 1].
        level: The confidence level of the intervals (for the axis label).
    """
    cols = [f"{metric}_mean", f"{metric}_low", f"{metric}_high", f"{metric}_n"]
    missing = [c for c in [x, *group, *cols] if c not in agg.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {agg.columns}")
    axis = ParameterAxis.of(agg, x)
    ordered = axis.ordered
    groups = list(group)
    parts = split_by(agg, groups)
    parts.sort(key=lambda kp: tuple((v is None, category_order(v)) for v in kp[0]))
    fig = Figure(figsize=(max(5.5, 1.3 * len(axis.values) + 3), 4), layout="constrained")
    ax = fig.add_subplot()
    values = agg.select(cols[:3]).to_numpy().astype(float)
    finite = values[np.isfinite(values)]
    if share is None:
        share = bool(len(finite) == 0 or (finite.min() >= 0 and finite.max() <= 1))
    any_censored = False
    entries: list[LineEntry] = []  # one legend entry per line: what is drawn
    for index, (key, part) in enumerate(parts):
        part = axis.in_order(part, x)
        pos = axis.at(part[x].to_list(), index, len(parts))
        mean = part[cols[0]].cast(pl.Float64).to_numpy()
        low = part[cols[1]].fill_null(part[cols[0]]).cast(pl.Float64).to_numpy()
        high = part[cols[2]].fill_null(part[cols[0]]).cast(pl.Float64).to_numpy()
        style = group_style(index)
        label = group_label(key)
        if np.isnan(mean).all():
            # Nothing to draw but its "never" texts: a legend entry without line or marker.
            entries.append(LineEntry(f"{label} (never)", style["color"]))
        else:
            drawn = ax.errorbar(
                pos,
                mean,
                yerr=np.vstack([mean - low, high - mean]),
                color=style["color"],
                linestyle=style["linestyle"] if ordered else "none",
                marker=style["marker"],
                capsize=3,
                clip_on=False,  # a share of exactly 0 or 1 sits on the axis, fully drawn
            )
            entries.append(LineEntry(label, style["color"], drawn))
        censored_col = f"{metric}_high_censored"
        if censored_col in part.columns:
            beyond = part[censored_col].fill_null(False).to_numpy().astype(bool)
            # Only with a point: an empty unclipped line counts as one at (0, 0) pixels,
            # and the layout then shrank the axes to take it in.
            if beyond.any():
                any_censored = True
                draw_censored(ax, pos[beyond], high[beyond], style["color"])
        n = part[cols[3]].to_list()
        rows = part[f"{metric}_rows"].to_list() if f"{metric}_rows" in part.columns else n
        for px, m, k, total in zip(pos, mean, n, rows, strict=True):
            if k == 0:
                note_at_floor(ax, px, "never", index, style["color"])
            elif total is not None and k < total:
                ax.annotate(
                    f"{k}/{total}",
                    (px, m),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize=7,
                    color=style["color"],
                )
    axis.draw(fig, ax, x)
    ax.set_ylabel(f"{metric} (mean, {level * 100:g} % CI {_over_seeds(agg[cols[3]])})")
    if share:
        ax.set_ylim(0.0, 1.0)
    else:
        ax.set_ylim(bottom=min(0.0, float(finite.min())) if len(finite) else 0.0)
    ax.set_title(title or metric)
    if groups:
        line_legend(ax, entries, ", ".join(groups))
    if any_censored:
        fig.supxlabel(
            "\u2191: the interval reaches beyond the runs' last step; its bar stops there "
            "(the upper bound is censored)",
            fontsize=7,
        )
    axis.fit_labels(fig, ax)  # last: the layout is complete
    return fig


def _over_seeds(valid: pl.Series) -> str:
    """What the means and intervals are over, given each point's seeds with a value.

    Only the points with a value count: those without one are drawn as "never", not as
    a mean over no seed. ``"over 3 seeds"`` when they all have 3, ``"over 2–3 seeds"``
    (the fewest to the most) when they differ, ``"over seeds: none has a value"`` when
    no point has one.
    """
    counts = sorted({int(v) for v in valid.drop_nulls() if v > 0})
    if not counts:
        return "over seeds: none has a value"
    low, high = counts[0], counts[-1]
    span = f"{low}" if low == high else f"{low}–{high}"
    return f"over {span} seed{'' if high == 1 else 's'}"


def side_by_side_curves(curves: pl.DataFrame, *, title: str = "Spread by run") -> Figure:
    """Prevalence curves of several runs (columns ``label, meme_id, step, prevalence``)."""
    renamed = curves.rename({"prevalence": "mean"})
    return spread_curves(renamed, group="label", title=title)
