"""Plots of spread: every function builds and RETURNS a matplotlib Figure.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot, no global
state), so they render headless (Agg) and in notebooks alike; save one with
``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
import polars as pl
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from sim.analysis.fits import FitResult
from sim.analysis.infections import ENVIRONMENT
from sim.analysis.loading import Run
from sim.analysis.prevalence import states_at

#: Colours of the agent states in network plots.
STATE_COLOURS = {
    "susceptible": "#d9d9d9",
    "exposed": "#fdae61",
    "carrier": "#d7191c",
    "adopter": "#2c7bb6",
}


def _label(key: object) -> str:
    if isinstance(key, tuple):
        return ", ".join(str(k) for k in key)
    return str(key)


def spread_curves(
    bands: pl.DataFrame,
    *,
    group: str | Sequence[str] | None = None,
    title: str = "Spread",
    ylabel: str = "fraction of agents",
) -> Figure:
    """Mean curves with confidence bands, one line per group (and meme).

    Args:
        bands: Columns ``step, mean`` and optionally ``low, high`` (e.g. from
            :func:`sim.analysis.aggregate.curve_bands`), ``meme_id`` and the group columns.
        group: Column(s) distinguishing the lines (e.g. ``"graph"``).
        title: Axes title.
        ylabel: Y axis label.
    """
    groups = [group] if isinstance(group, str) else list(group or [])
    if "meme_id" in bands.columns and bands["meme_id"].n_unique() > 1:
        groups.append("meme_id")
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    parts = bands.group_by(groups, maintain_order=True) if groups else [((), bands)]
    for key, part in parts:
        part = part.sort("step")
        step = part["step"].to_numpy()
        line = ax.plot(step, part["mean"].to_numpy(), label=_label(key) if groups else None)[0]
        if {"low", "high"} <= set(part.columns):
            low = part["low"].fill_null(part["mean"]).to_numpy()
            high = part["high"].fill_null(part["mean"]).to_numpy()
            ax.fill_between(step, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(-0.02, 1.02)
    if groups:
        ax.legend(title=", ".join(groups), fontsize="small")
    return fig


def prevalence_curves(
    prev: pl.DataFrame,
    *,
    meme_id: str | None = None,
    states: Sequence[str] = ("exposed", "carrier", "adopter", "infected"),
    title: str | None = None,
) -> Figure:
    """Prevalence of each state over steps for one run and meme.

    Args:
        prev: Output of :func:`sim.analysis.prevalence.prevalence`.
        meme_id: The meme (default: the first).
        states: States to draw, one line each.
        title: Axes title (default: the meme).
    """
    memes = prev["meme_id"].unique(maintain_order=True).to_list()
    meme_id = meme_id or (memes[0] if memes else None)
    if meme_id not in memes:
        raise ValueError(f"meme_id = {meme_id!r}: not in the table; memes are {memes}")
    sub = prev.filter((pl.col("meme_id") == meme_id) & pl.col("state").is_in(list(states)))
    return spread_curves(
        sub.rename({"prevalence": "mean"}), group="state", title=title or f"meme {meme_id!r}"
    )


def network_states(
    run: Run,
    steps: Sequence[int],
    *,
    meme_id: str | None = None,
    layout_seed: int = 0,
    node_size: float = 12.0,
) -> Figure:
    """The network coloured by each agent's state at the end of each chosen step.

    States: susceptible, exposed, carrier, adopter (the most advanced flag wins; see
    :func:`sim.analysis.prevalence.states_at`). The layout is a spring layout seeded with
    ``layout_seed`` (the same for every panel).
    """
    meme_id = meme_id or run.meme_ids[0]
    if not steps:
        raise ValueError("steps: give at least one step to draw")
    n = run.n_agents
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(run.graph.select("source", "target").iter_rows())
    pos = nx.spring_layout(graph, seed=layout_seed)
    xy = np.array([pos[i] for i in range(n)])
    edges = run.graph.select("source", "target").to_numpy()
    segments = np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], axis=1) if len(edges) else []
    fig = Figure(figsize=(4 * len(steps), 4.4), layout="constrained")
    axes = fig.subplots(1, len(steps), squeeze=False)[0]
    for ax, step in zip(axes, steps, strict=True):
        states = states_at(run.agents, n, step, meme_id)["state"].to_list()
        ax.add_collection(LineCollection(segments, colors="#bbbbbb", linewidths=0.3, zorder=1))
        colours = [STATE_COLOURS[s] for s in states]
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=node_size, zorder=2, linewidths=0)
        counts = {s: states.count(s) for s in STATE_COLOURS}
        ax.set_title(f"step {step}: " + ", ".join(f"{k[:3]} {v}" for k, v in counts.items()))
        ax.set_axis_off()
        ax.autoscale_view()
    handles = [axes[0].scatter([], [], c=c, s=30, label=s) for s, c in STATE_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle(f"{run.name}: meme {meme_id!r}")
    return fig


def _tree_layout(parent: dict[int, int | None]) -> dict[int, tuple[float, float]]:
    """x: leaves in depth-first order, parents centred over children; y: -depth."""
    children: dict[int, list[int]] = {node: [] for node in parent}
    roots = []
    for node, p in parent.items():
        if p is None or p not in parent:
            roots.append(node)
        else:
            children[p].append(node)
    pos: dict[int, tuple[float, float]] = {}
    next_x = 0.0
    for root in sorted(roots):
        stack: list[tuple[int, int, bool]] = [(root, 0, False)]
        while stack:
            node, depth, done = stack.pop()
            kids = sorted(children[node])
            if done or not kids:
                if kids:
                    xs = [pos[k][0] for k in kids]
                    pos[node] = ((min(xs) + max(xs)) / 2, -depth)
                else:
                    pos[node] = (next_x, -depth)
                    next_x += 1.0
                continue
            stack.append((node, depth, True))
            stack.extend((k, depth + 1, False) for k in reversed(kids))
        next_x += 1.0  # gap between cascades
    return pos


def transmission_tree(
    tree: pl.DataFrame, *, title: str = "Transmission tree", max_nodes: int = 2000
) -> Figure:
    """The transmission tree (forest) of one meme, coloured by infection step.

    Args:
        tree: Rows ``agent_id, source_agent, step`` for one meme (e.g. from
            :func:`sim.analysis.cascades.tree_edges`); null source = root.
        title: Figure title.
        max_nodes: Draw at most this many nodes (the earliest infected).
    """
    tree = tree.sort("step", "agent_id").head(max_nodes)
    parent = {
        int(a): (None if s is None else int(s))
        for a, s in tree.select("agent_id", "source_agent").iter_rows()
    }
    for p in [p for p in parent.values() if p is not None and p not in parent]:
        parent[p] = None  # e.g. the environment: a root node
    step_of = dict(zip(tree["agent_id"].to_list(), tree["step"].to_list(), strict=True))
    pos = _tree_layout(parent)
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.add_subplot()
    segments = [[pos[p], pos[c]] for c, p in parent.items() if p is not None]
    ax.add_collection(LineCollection(segments, colors="#888888", linewidths=0.6, zorder=1))
    nodes = list(pos)
    xy = np.array([pos[v] for v in nodes]) if nodes else np.zeros((0, 2))
    steps = np.array([step_of.get(v, 0) for v in nodes], dtype=float)
    points = ax.scatter(xy[:, 0], xy[:, 1], c=steps, cmap="viridis", s=18, zorder=2)
    if ENVIRONMENT in pos:
        ax.annotate("environment", pos[ENVIRONMENT], textcoords="offset points", xytext=(4, 4))
    fig.colorbar(points, ax=ax, label="infection step")
    depth = int(-xy[:, 1].min()) if len(xy) else 0
    ax.set_yticks([-d for d in range(depth + 1)], [str(d) for d in range(depth + 1)])
    ax.set_ylabel("generation (hop)")
    ax.set_xticks([])
    ax.set_title(f"{title} ({len(nodes)} nodes)")
    ax.autoscale_view()
    return fig


def mutation_by_hop(
    by_hop: pl.DataFrame, *, metric: str = "edit", title: str = "Drift from the seed by hop"
) -> Figure:
    """Mean distance from the seeded statement by hop, with ±1 sd bars, per meme.

    Args:
        by_hop: Output of :func:`sim.analysis.mutation.drift_by_hop`.
        metric: ``"edit"`` (normalized edit distance) or ``"jaccard"`` (token Jaccard).
        title: Axes title.
    """
    if metric not in ("edit", "jaccard"):
        raise ValueError(f"metric = {metric!r}: must be 'edit' or 'jaccard'")
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for (meme_id,), part in by_hop.group_by("meme_id", maintain_order=True):
        part = part.sort("hop")
        ax.errorbar(
            part["hop"].to_numpy(),
            part[f"{metric}_mean"].to_numpy(),
            yerr=part[f"{metric}_sd"].fill_null(0).to_numpy(),
            marker="o",
            capsize=3,
            label=str(meme_id),
        )
    ax.set_xlabel("hop from the seed")
    ax.set_ylabel("normalized edit distance" if metric == "edit" else "token Jaccard distance")
    ax.set_title(title)
    ax.legend(title="meme", fontsize="small")
    return fig


def heatmap(
    frame: pl.DataFrame, x: str, y: str, value: str, *, title: str | None = None, fmt: str = ".2f"
) -> Figure:
    """A heat map of ``value`` over two swept parameters (mean over duplicate cells).

    Args:
        frame: Long table with columns ``x``, ``y`` and ``value``.
        x: Column along the horizontal axis.
        y: Column along the vertical axis.
        value: Column to colour by.
        title: Axes title (default: the value column).
        fmt: Format of the annotated cell values.
    """
    missing = [c for c in (x, y, value) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {frame.columns}")
    cells = frame.group_by(x, y).agg(pl.col(value).cast(pl.Float64).mean())
    xs = sorted(cells[x].unique().to_list())
    ys = sorted(cells[y].unique().to_list())
    grid = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, v in cells.select(x, y, value).iter_rows():
        grid[ys.index(yv), xs.index(xv)] = np.nan if v is None else v
    fig = Figure(figsize=(1.2 * len(xs) + 2.5, 0.8 * len(ys) + 1.8), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="magma", aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    finite = grid[np.isfinite(grid)]
    middle = (finite.min() + finite.max()) / 2 if len(finite) else 0.0
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v):
            colour = "black" if v > middle else "white"
            ax.text(c, r, format(v, fmt), ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, label=value)
    ax.set_title(title or value)
    return fig


def fitted_curve(fit: FitResult, *, title: str | None = None) -> Figure:
    """Observed prevalence and the fitted model curve, with the fitted parameters."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    t = fit.t
    k = len(t)
    ax.plot(t, fit.observed[:k], "o", markersize=3, label="observed")
    ax.plot(t, fit.fitted[:k], "-", label=f"{fit.model} fit")
    if len(fit.observed) > k:  # SIR with removed
        ax.plot(t, fit.observed[k:], "s", markersize=3, label="removed (observed)")
        ax.plot(t, fit.fitted[k:], "--", label="removed (fit)")
    params = ", ".join(f"{name}={v:.3g}" for name, v in fit.params.items())
    r2 = "n/a" if fit.r2 is None else f"{fit.r2:.3f}"
    ax.set_title(title or f"{fit.model}: {params}\nR²={r2}, RMSE={fit.rmse:.3g}", fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("fraction of agents")
    ax.legend(fontsize="small")
    return fig


def side_by_side_curves(curves: pl.DataFrame, *, title: str = "Spread by run") -> Figure:
    """Prevalence curves of several runs (columns ``label, meme_id, step, prevalence``)."""
    renamed = curves.rename({"prevalence": "mean"})
    return spread_curves(renamed, group="label", title=title)
