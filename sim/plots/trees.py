"""Transmission trees and the drift of carrying entries along them (by hop)."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.analysis.infections import ENVIRONMENT
from sim.plots.styles import group_style


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

    The bars describe the spread of entries (not a confidence interval) and stop at the
    range of a distance, [0, 1]; the y axis says so.

    Args:
        by_hop: Output of :func:`sim.analysis.mutation.drift_by_hop`.
        metric: ``"edit"`` (normalized edit distance) or ``"jaccard"`` (token Jaccard).
        title: Axes title.
    """
    if metric not in ("edit", "jaccard"):
        raise ValueError(f"metric = {metric!r}: must be 'edit' or 'jaccard'")
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for index, ((meme_id,), part) in enumerate(by_hop.group_by("meme_id", maintain_order=True)):
        part = part.sort("hop")
        style = group_style(index)
        mean = part[f"{metric}_mean"].to_numpy()
        sd = part[f"{metric}_sd"].fill_null(0).to_numpy()
        ax.errorbar(
            part["hop"].to_numpy() + 0.06 * index,  # side by side, so the bars stay apart
            mean,
            # A distance lies in [0, 1]: the bars stop there.
            yerr=np.vstack([np.minimum(sd, mean), np.minimum(sd, 1.0 - mean)]),
            color=style["color"],
            linestyle=style["linestyle"],
            marker=style["marker"],
            capsize=3,
            clip_on=False,
            label=str(meme_id),
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("hop from the seed")
    what = "normalized edit distance" if metric == "edit" else "token Jaccard distance"
    ax.set_ylabel(f"{what}\n(mean ± 1 sd over entries)")
    ax.set_ylim(bottom=0.0)
    ax.set_title(title)
    ax.legend(title="meme", fontsize="small")
    return fig
