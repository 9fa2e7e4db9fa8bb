"""Defenses on the attack/utility plane, with the Pareto frontier."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sim.plots.styles import GROUP_COLOURS, UNDEFENDED_MARKER, group_style


def _label_points(ax: Any, points: list[tuple[float, float, str, str]]) -> None:
    """Write each point's name beside it (axes in 0..1 data units), labels kept apart.

    Labels go to the right of their point (to the left near the right edge); going down
    the plot, a label that would overlap one already placed nearby is moved below it
    and joined to its point by a thin line.
    """
    gap, near = 0.045, 0.3
    placed: list[tuple[float, float]] = []
    for x, y, name, colour in sorted(points, key=lambda p: (-p[1], p[0])):
        left = x > 0.7
        label_y = y
        for px, py in sorted(placed, key=lambda p: -p[1]):
            if abs(px - x) < near and abs(py - label_y) < gap:
                label_y = py - gap
        placed.append((x, label_y))
        label_x = x - 0.03 if left else x + 0.03
        ax.annotate(
            name,
            xy=(x, y),
            xytext=(label_x, label_y),
            textcoords="data",
            ha="right" if left else "left",
            va="center",
            fontsize=8,
            color=colour,
            zorder=5,
            arrowprops=None
            if label_y == y
            else {"arrowstyle": "-", "color": colour, "linewidth": 0.6, "alpha": 0.7},
            bbox={
                "boxstyle": "round,pad=0.15",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.75,
            },
        )


def defense_frontier_plot(
    frontier: pl.DataFrame,
    *,
    arm: str | None = None,
    title: str = "Defenses: attack success against utility",
    attack_label: str = "attack success (share of agents infected by the harmful meme)",
    utility_label: str = "utility (benign knowledge reach, mean over steps)",
    chance: float | None = None,
    attack_chance: float | None = None,
    legend_title: str | None = None,
    panel: str | None = None,
) -> Figure:
    """The attack/utility plane: one point per defense arm, the Pareto frontier drawn.

    Each arm is a point at its mean attack success (x) and mean utility (y) with
    confidence-interval bars over seeds in both directions; arms on the Pareto frontier
    (no arm has lower attack and higher utility) are filled and joined by a step line,
    the others hollow; the undefended arm is a black hexagon (:data:`UNDEFENDED_MARKER`,
    a shape no other arm has). An arm without a utility or attack value is left out;
    where none is left a note says why, once: in the plane, or with panels under the
    figure (naming the panels concerned when others have points), never in every panel
    (e.g. a sweep without a benign meme has no utility anywhere). Every point carries its
    arm's name (moved apart where points crowd, with a thin line to its point). The best
    corner is the top left. Both axes are shares (0..1).

    Args:
        frontier: Output of :func:`sim.analysis.defenses.defense_frontier`.
        arm: The column naming each arm (default: the first column).
        title: Axes title (pass the sweep name in it); the figure title with panels.
        attack_label: The x axis label (say which attack measure the runs used).
        utility_label: The y axis label.
        chance: The utility of random choices (task accuracy at chance), drawn as a
            dotted horizontal line; None draws none.
        attack_chance: The attack success of random choices (the share of agents that
            would have chosen the harmful option at least once by chance), drawn as a
            dotted vertical line; None draws none.
        legend_title: What an arm's label lists, e.g. the swept parameters of
            ``0, 0.1`` (default: the ``arm`` column's name).
        panel: A column whose every value gets its own panel, titled with it: a stratum
            of the non-defense parameters (arms are compared, and the Pareto frontier
            drawn, only within a panel). An arm keeps its colour and marker in every
            panel, and one legend lists the arms. None draws one plane.
    """
    need = ["attack_mean", "attack_low", "attack_high", "utility_mean", "utility_low"]
    need += ["utility_high", "pareto", "undefended"]
    missing = [c for c in need if c not in frontier.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {frontier.columns}")
    if panel is not None and panel not in frontier.columns:
        raise ValueError(f"panel = {panel!r}: not a column; the frame has {frontier.columns}")
    arm = arm or frontier.columns[0]
    legend_title = legend_title if legend_title is not None else arm
    if panel is None:
        fig = Figure(figsize=(7.5, 5.5), layout="constrained")
        ax = fig.add_subplot()
        ordered = frontier.sort("attack_mean", maintain_order=True)
        styles = {str(r[arm]): i for i, r in enumerate(ordered.iter_rows(named=True))}
        if not _frontier_plane(ax, ordered, arm, styles, chance, attack_chance, suffix_pareto=True):
            ax.text(
                0.5,
                0.5,
                _NO_POINT,
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="#555555",
            )
        ax.set_xlabel(attack_label)
        ax.set_ylabel(utility_label)
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                fontsize=8,
                frameon=False,
                title=legend_title,
                title_fontsize=8,
            )
        return fig
    values = frontier[panel].unique(maintain_order=True).to_list()
    columns = min(len(values), 3)
    rows = -(-len(values) // columns) if values else 1
    fig = Figure(figsize=(4.2 * columns + 2.2, 4.0 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, max(columns, 1), squeeze=False, sharex=True, sharey=True)
    arms = frontier[arm].cast(pl.String).unique(maintain_order=True).to_list()
    styles = {name: i for i, name in enumerate(arms)}
    empty = []
    for index, value in enumerate(values):
        ax = axes[index // columns][index % columns]
        part = frontier.filter(pl.col(panel) == value).sort("attack_mean", maintain_order=True)
        if not _frontier_plane(ax, part, arm, styles, chance, attack_chance, suffix_pareto=False):
            empty.append(f"{panel} = {value}")
        ax.set_title(f"{panel} = {value}", fontsize=9)
        if index % columns == 0:
            ax.set_ylabel(utility_label, fontsize=8)
        if index // columns == rows - 1:
            ax.set_xlabel(attack_label, fontsize=8)
    for index in range(len(values), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    # An arm's legend mark is filled whatever its first panel drew (hollow there means
    # "off that panel's frontier", which the legend cannot say for every panel).
    palette = GROUP_COLOURS[:-1]
    for row in frontier.iter_rows(named=True):
        name = str(row[arm])
        label = name + (" (undefended)" if row["undefended"] else "")
        if label in handles:
            index = styles[name]
            colour = "#000000" if row["undefended"] else palette[index % len(palette)]
            marker = UNDEFENDED_MARKER if row["undefended"] else group_style(index)["marker"]
            handles[label] = Line2D(
                [], [], linestyle="none", marker=marker, markersize=8, color=colour
            )
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside right upper",
            fontsize=8,
            frameon=False,
            title=f"{legend_title}\n(filled: on its panel's\nPareto frontier)",
            title_fontsize=8,
        )
    fig.suptitle(title, fontsize=10)
    if empty:
        # Said once for the figure, not in every empty panel.
        where = "" if len(empty) == len(values) else f" in {'; '.join(empty)}"
        first, why = _NO_POINT.split("\n")
        fig.supxlabel(f"{first}{where}\n{why}", fontsize=9, color="#555555")
    return fig


#: The note of a plane without a point (e.g. a sweep without a benign meme or tasks).
_NO_POINT = (
    "no arm has both an attack and a utility value\n(utility needs a benign meme or tasks "
    "with known answers)"
)


def _frontier_plane(
    ax: Any,
    frame: pl.DataFrame,
    arm: str,
    styles: dict[str, int],
    chance: float | None,
    attack_chance: float | None,
    *,
    suffix_pareto: bool,
) -> bool:
    """Draw one attack/utility plane of :func:`defense_frontier_plot` on ``ax``.

    ``styles`` gives each arm's style index (colour and marker); ``suffix_pareto`` adds
    " (Pareto)" to the legend labels of arms on the frontier (one plane only: with
    panels an arm's label must be the same in every panel).

    Returns:
        Whether some arm had both values, i.e. a point was drawn (the caller says why
        not, once for the figure).
    """
    front_x, front_y = [], []
    points: list[tuple[float, float, str, str]] = []
    palette = GROUP_COLOURS[:-1]  # black marks the undefended arm
    for row in frame.iter_rows(named=True):
        x, y = row["attack_mean"], row["utility_mean"]
        if x is None or y is None:
            continue
        xerr = [
            [x - (row["attack_low"] if row["attack_low"] is not None else x)],
            [(row["attack_high"] if row["attack_high"] is not None else x) - x],
        ]
        yerr = [
            [y - (row["utility_low"] if row["utility_low"] is not None else y)],
            [(row["utility_high"] if row["utility_high"] is not None else y) - y],
        ]
        index = styles.get(str(row[arm]), 0)
        style = group_style(index)
        colour = "#000000" if row["undefended"] else palette[index % len(palette)]
        ax.errorbar(
            x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, alpha=0.5, capsize=3, zorder=2
        )
        ax.scatter(
            [x],
            [y],
            s=70,
            marker=UNDEFENDED_MARKER if row["undefended"] else style["marker"],
            facecolors=colour if row["pareto"] or row["undefended"] else "white",
            edgecolors=colour,
            linewidths=1.8,
            zorder=4,
            label=f"{row[arm]}"
            + (" (undefended)" if row["undefended"] else "")
            + (" (Pareto)" if row["pareto"] and suffix_pareto else ""),
        )
        points.append((x, y, str(row[arm]), colour))
        if row["pareto"]:
            front_x.append(x)
            front_y.append(y)
    _label_points(ax, points)
    if front_x:
        ax.step(
            front_x,
            front_y,
            where="post",
            color="#555555",
            linewidth=1.2,
            zorder=1,
            linestyle="--",
            label="Pareto frontier",
        )
    if chance is not None and np.isfinite(chance):
        ax.axhline(
            chance,
            color="#888888",
            linewidth=1.0,
            linestyle=":",
            zorder=0,
            label=f"chance ({chance:.2f}: random choices)",
        )
    if attack_chance is not None and np.isfinite(attack_chance):
        ax.axvline(
            attack_chance,
            color="#888888",
            linewidth=1.0,
            linestyle=":",
            zorder=0,
            label=f"attack by chance ({attack_chance:.2f}: random choices)",
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.annotate(
        "better: up and left",
        xy=(0.02, 0.98),
        xycoords="axes fraction",
        ha="left",
        va="top",
        fontsize=9,
        color="#555555",
    )
    return bool(points)
