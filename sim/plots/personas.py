"""Decision outcomes by persona: the expressed share, exposed and unexposed, per persona."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sim.plots.styles import group_style

#: The arms drawn, in order, each with the style of its index (:func:`group_style`).
PERSONA_PLOT_ARMS = ("exposed", "unexposed")

#: The colour of the chance marks.
CHANCE_COLOUR = "0.45"


def persona_shares(outcomes: pl.DataFrame, *, title: str = "Choices by persona") -> Figure:
    """The expressed share per persona and arm with its interval, and the chance level.

    One panel per meme, one row per persona (in the table's order, top to bottom): per
    arm a marker at the share with its interval as a horizontal bar (none with one
    cluster), a grey ``|`` at the share random choices would reach on the same
    decisions, and the number of decisions at the right edge. An arm without decisions
    draws nothing on its row.

    Args:
        outcomes: :func:`sim.analysis.personas.expressed_by_persona` rows of one run
            (columns meme_id, persona_name, arm, n_decisions, expressed_share, ci_low,
            ci_high, chance, level, clusters).
        title: The figure title.
    """
    memes = outcomes["meme_id"].unique(maintain_order=True).to_list()
    rows = max(
        (outcomes.filter(pl.col("meme_id") == m)["persona_name"].n_unique() for m in memes),
        default=1,
    )
    fig = Figure(
        figsize=(6.4 * max(1, len(memes)) ** 0.5 + 1, 0.42 * rows + 1.9), layout="constrained"
    )
    axes = fig.subplots(1, max(1, len(memes)), squeeze=False, sharex=True)[0]
    level = f"{outcomes['level'][0] * 100:g}" if outcomes.height else "95"
    clusters = ", ".join(outcomes["clusters"].unique(maintain_order=True).to_list())
    for ax, meme in zip(axes, memes, strict=False):
        mine = outcomes.filter(pl.col("meme_id") == meme)
        names = mine["persona_name"].unique(maintain_order=True).to_list()
        labels = ["(none)" if n is None else str(n) for n in names]
        where = {n: i for i, n in enumerate(names)}
        for index, arm in enumerate(PERSONA_PLOT_ARMS):
            part = mine.filter(pl.col("arm") == arm, pl.col("n_decisions") > 0)
            if part.height == 0:
                continue
            offset = (index - 0.5) * 0.28
            y = np.array([where[n] for n in part["persona_name"].to_list()], float) + offset
            share = part["expressed_share"].to_numpy().astype(float)
            low = part["ci_low"].fill_null(part["expressed_share"]).to_numpy().astype(float)
            high = part["ci_high"].fill_null(part["expressed_share"]).to_numpy().astype(float)
            style = group_style(index)
            ax.errorbar(
                share,
                y,
                xerr=np.vstack([share - low, high - share]),
                color=style["color"],
                marker=style["marker"],
                linestyle="none",
                capsize=2.5,
                clip_on=False,
            )
            chance = part["chance"].cast(pl.Float64).to_numpy()
            ax.plot(chance, y, linestyle="none", marker="|", markersize=9, color=CHANCE_COLOUR)
            for yy, n in zip(y, part["n_decisions"].to_list(), strict=True):
                ax.annotate(
                    str(n),
                    (1.0, yy),
                    xycoords=("axes fraction", "data"),
                    xytext=(6, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color=style["color"],
                )
        ax.set_yticks(range(len(names)), labels)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlim(-0.03, 1.03)  # a share of 0 or 1 is drawn whole, clear of the counts
        ax.set_title(f"meme {meme!r}", fontsize="medium")
        ax.set_xlabel(
            f"share of decisions that chose its target\n({level} % CI clustered by "
            f"{clusters}; no bar: a single one)"
        )
        ax.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], color=group_style(i)["color"], marker=group_style(i)["marker"], ls="none")
        for i in range(len(PERSONA_PLOT_ARMS))
    ]
    handles.append(Line2D([], [], color=CHANCE_COLOUR, marker="|", markersize=9, ls="none"))
    fig.legend(
        handles,
        [*PERSONA_PLOT_ARMS, "chance (random choices)"],
        loc="outside lower center",
        ncols=3,
        fontsize="small",
    )
    fig.suptitle(title + "\n(numbers at the right: decisions)", fontsize="medium")
    return fig
