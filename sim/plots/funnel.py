"""The funnel from exposure to action: exposed, carrier, expressed, adopter per meme."""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.plots.styles import STATE_COLOURS

#: The funnel's stages, from widest to narrowest: (``steps`` column, state).
FUNNEL_STAGES = (
    ("exposed", "exposed"),
    ("carriers", "carrier"),
    ("expressed", "expressed"),
    ("adopters", "adopter"),
)


def funnel(
    counts: dict[str, dict[str, int]],
    n_agents: int,
    *,
    effects: pl.DataFrame | None = None,
    title: str = "From exposure to action",
) -> Figure:
    """The funnel exposed -> carrier -> expressed -> adopter, one group of bars per meme.

    Args:
        counts: Per meme id, the final counts of each stage (see
            :func:`sim.analysis.effects.funnel_counts`); a stage no meme has (e.g.
            ``expressed`` in a run without scored choices) gets no bar.
        n_agents: Number of agents (the count axis runs to it).
        effects: Optional :func:`sim.analysis.effects.exposure_effects` rows; each meme's
            effect against its controls is written under its bars, and the axis label
            says what the effect and its interval (with its level) are.
        title: The figure title.
    """
    fig = Figure(figsize=(max(5.0, 2.6 * len(counts) + 1.5), 4.4), layout="constrained")
    ax = fig.add_subplot()
    stages = [st for st in FUNNEL_STAGES if any(st[0] in c for c in counts.values())]
    width = 0.8 / max(len(stages), 1)
    for s, (column, state) in enumerate(stages):
        xs = [i + (s - (len(stages) - 1) / 2) * width for i in range(len(counts))]
        values = [memes.get(column, 0) for memes in counts.values()]
        bars = ax.bar(xs, values, width, color=STATE_COLOURS[state], label=state)
        ax.bar_label(bars, fontsize=8)
    labels = []
    for meme in counts:
        label = meme
        if effects is not None and effects.height:
            for row in effects.filter(pl.col("meme_id") == meme).iter_rows(named=True):
                label += (
                    f"\n{row['outcome']} vs {row['control']}: {row['effect']:+.2f} "
                    f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
                )
        labels.append(label)
    ax.set_xticks(range(len(counts)), labels, fontsize=8)
    if effects is not None and effects.height:
        levels = (
            sorted({float(v) for v in effects["level"].drop_nulls()})
            if ("level" in effects.columns)
            else []
        )
        level = " / ".join(f"{v * 100:g} %" for v in levels) or "confidence"
        ax.set_xlabel(
            f"effect = mean outcome exposed minus control [{level} interval, "
            "cluster bootstrap over agents]",
            fontsize=8,
        )
    ax.set_ylim(0, max(n_agents, 1) * 1.08)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"agents (of {n_agents})")
    # Below the axes: inside, the legend would cover the last bars.
    handles, names = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        title="agents ever in the state (adopter: at the end, adoption can be lost)",
        fontsize=8,
        loc="outside lower center",
        ncols=4,
    )
    ax.set_title(title)
    return fig
