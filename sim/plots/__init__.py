"""Plots of spread: every function builds and RETURNS a matplotlib Figure.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot, no global
state), so they render headless (Agg) and in notebooks alike; save one with
``fig.savefig(path)``.

Conventions shared by every figure (and by ``experiments.report``):

* one palette, :data:`STATE_COLOURS`, maps each agent state to its colour, and legends
  list states in :data:`STATE_ORDER` (never alphabetically);
* lines that may coincide stay visible: each state (or group) has its own line style,
  marker and width (:data:`STATE_STYLES`, :func:`group_style`), wide lines are drawn
  first, and markers of different lines are offset along the x axis;
* share axes run from 0 to 1; count axes start at 0 and have integer ticks;
* titles carry the run (or sweep) name when the caller passes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from sim.analysis.fits import FitResult
from sim.analysis.infections import ENVIRONMENT
from sim.analysis.loading import Run
from sim.analysis.prevalence import states_at

#: Agent states in legend order: the node states from the least to the most advanced,
#: then ``infected`` (seeds plus agents with an infection edge).
STATE_ORDER = ("susceptible", "exposed", "carrier", "expressed", "adopter", "infected")

#: The colour of each state, the same in every figure (Okabe-Ito, colour-blind safe).
STATE_COLOURS = {
    "susceptible": "#bdbdbd",
    "exposed": "#E69F00",
    "carrier": "#D55E00",
    "expressed": "#CC79A7",
    "adopter": "#0072B2",
    "infected": "#009E73",
}

#: Line style of each state in curves: lines that coincide (carriers = adopters in an SI
#: run) stay distinguishable: ``infected`` is a wide pale band drawn first, the others
#: differ in dash pattern and marker.
STATE_STYLES: dict[str, dict[str, Any]] = {
    "infected": {"linestyle": "-", "linewidth": 6.0, "alpha": 0.35, "marker": None},
    "exposed": {"linestyle": "-", "linewidth": 2.2, "alpha": 1.0, "marker": "v"},
    "carrier": {"linestyle": "--", "linewidth": 2.0, "alpha": 1.0, "marker": "s"},
    "expressed": {"linestyle": "-.", "linewidth": 1.8, "alpha": 1.0, "marker": "^"},
    "adopter": {"linestyle": ":", "linewidth": 2.4, "alpha": 1.0, "marker": "o"},
    "susceptible": {"linestyle": "-", "linewidth": 1.5, "alpha": 1.0, "marker": "x"},
}

#: Count columns of the ``steps`` table -> state (for colours of count plots).
COUNT_STATES = {
    "exposed": "exposed",
    "carriers": "carrier",
    "expressed": "expressed",
    "adopters": "adopter",
    "infected": "infected",
    "new_exposed": "exposed",
    "new_carriers": "carrier",
    "new_expressed": "expressed",
    "new_adopters": "adopter",
    "infections": "infected",
}

#: The marker ending an interval bar whose upper bound lay beyond the runs' last step.
CENSORED_MARKER = "$\\uparrow$"

#: Most lines whose legend goes inside the axes; with more it goes beside them.
MAX_LEGEND_INSIDE = 6

_GROUP_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_GROUP_DASHES = ("-", "--", "-.", ":")
#: One marker more than colours: the i-th and (i+7)-th lines differ in marker too (the
#: (colour, marker) pairs repeat only after 56 lines).
_GROUP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: The marker of the undefended arm in :func:`defense_frontier_plot`: a hexagon, a shape
#: no :func:`group_style` line uses (a square was also the second arm's marker).
UNDEFENDED_MARKER = "h"


def group_style(index: int) -> dict[str, Any]:
    """Colour, dash pattern and marker of the ``index``-th non-state line of a figure.

    Colours (7), dash patterns (4) and markers (8) cycle with different periods, so
    lines stay distinct even where they coincide, and no two of the first 56 lines
    share both colour and marker.
    """
    return {
        "color": _GROUP_COLOURS[index % len(_GROUP_COLOURS)],
        "linestyle": _GROUP_DASHES[index % len(_GROUP_DASHES)],
        "marker": _GROUP_MARKERS[index % len(_GROUP_MARKERS)],
        "linewidth": 2.0,
        "alpha": 1.0,
    }


def state_style(state: str) -> dict[str, Any]:
    """Colour and line style of a state (see :data:`STATE_STYLES`)."""
    if state not in STATE_COLOURS:
        raise ValueError(f"state = {state!r}: must be one of {list(STATE_ORDER)}")
    return {"color": STATE_COLOURS[state], **STATE_STYLES[state]}


def _state_rank(state: object) -> int:
    return STATE_ORDER.index(str(state)) if str(state) in STATE_ORDER else len(STATE_ORDER)


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


def edge_segments(xy: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
    """Line segments for a :class:`LineCollection` of a graph's edges.

    Args:
        xy: Node positions, shape ``(n, 2)``, row ``i`` for node ``i``.
        edges: ``(source, target)`` node pairs, shape ``(m, 2)``.

    Returns:
        One ``(2, 2)`` array per edge: its two end points (the list form that
        ``LineCollection`` documents).
    """
    if not len(edges):
        return []
    return list(np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], axis=1))


def network_node_size(n_agents: int) -> float:
    """A node's marker area (points squared) in a network panel about 4 inches wide.

    ``2400 / n ** 0.8`` kept within 8..400: large for a few agents (400 for 8, a node
    20 points across), small enough that hundreds do not merge (about 17 for 500).
    """
    return float(np.clip(2400.0 / max(n_agents, 1) ** 0.8, 8.0, 400.0))


def carrier_ring_width(node_size: float) -> float:
    """The width (points) of a carrier's ring around a node of area ``node_size``.

    A fifth of the node's diameter, at least 1 point: the ring grows with the node, so it
    shows on 8 agents as on 500 (a fixed thin ring vanished around large nodes).
    """
    return max(1.0, 0.2 * float(np.sqrt(node_size)))


def draw_network_states(
    ax: Axes,
    xy: np.ndarray,
    segments: list[np.ndarray],
    states: np.ndarray,
    carrier: np.ndarray,
    node_states: Sequence[str],
    *,
    node_size: float,
    edge_width: float = 0.3,
) -> None:
    """Draw a network on ``ax``: grey edges, nodes filled by state, carriers ringed.

    Each state in ``node_states`` (least to most advanced) is one scatter collection,
    drawn in that order so that rarer, more advanced states lie on top; a carrier's node
    has an edge (its ring) in the carrier colour, :func:`carrier_ring_width` wide, and
    every other node none.

    Args:
        ax: The axes.
        xy: Node positions, shape ``(n, 2)``.
        segments: The edges (:func:`edge_segments`).
        states: Each agent's state name, shape ``(n,)``.
        carrier: Whether each agent is a carrier, shape ``(n,)``.
        node_states: The states to draw, in drawing order.
        node_size: Marker area in points squared (:func:`network_node_size`).
        edge_width: Width of the graph's edges in points.
    """
    ax.add_collection(LineCollection(segments, colors="#cccccc", linewidths=edge_width, zorder=1))
    for rank, state in enumerate(node_states):
        mask = states == state
        if not mask.any():
            continue
        ax.scatter(
            xy[mask, 0],
            xy[mask, 1],
            c=STATE_COLOURS[state],
            s=node_size,
            zorder=2 + rank,
            edgecolors=np.where(carrier[mask], STATE_COLOURS["carrier"], "none").tolist(),
            linewidths=carrier_ring_width(node_size),
        )


def state_legend(node_states: Sequence[str], ring_label: str) -> list[Any]:
    """Legend handles of a network figure: one patch per state, then the carrier ring."""
    handles: list[Any] = [Patch(color=STATE_COLOURS[s], label=s) for s in node_states]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=8,
            markerfacecolor="white",
            markeredgecolor=STATE_COLOURS["carrier"],
            markeredgewidth=2.0,
            label=ring_label,
        )
    )
    return handles


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
    panels = _parts(bands, [panel]) if panel is not None else [((), bands)]
    keys = [key for key, _ in _parts(bands, groups)]
    if "state" in groups:
        at = groups.index("state")
        keys.sort(key=lambda k: (_state_rank(k[at]), _label(k)))
    else:
        keys.sort(key=lambda k: tuple((v is None, v) for v in k))
    width = 7.0 if len(panels) == 1 else 3.6 * len(panels) + 0.6
    beside = len(keys) > MAX_LEGEND_INSIDE or panel is not None
    fig = Figure(figsize=(width + (2.2 if beside else 0), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (panel_key, panel_part) in zip(axes, panels, strict=True):
        parts = dict(_parts(panel_part, groups))
        for index, key in enumerate(keys):
            if key not in parts:
                continue
            part = parts[key].sort("step")
            step = part["step"].to_numpy()
            if "state" in groups:
                style = state_style(str(key[groups.index("state")]))
            else:
                style = group_style(index)
            label = _label(key) if groups else None
            line = _draw_line(ax, step, part["mean"].to_numpy(), style, index, label)
            if {"low", "high"} <= set(part.columns):
                low = part["low"].fill_null(part["mean"]).to_numpy()
                high = part["high"].fill_null(part["mean"]).to_numpy()
                ax.fill_between(step, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        if panel is not None:
            ax.set_title(f"{panel} = {_label(panel_key)}")
        _share_axis(ax)
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
            _draw_line(ax, x, y, style, index, str(meme))
        ax.set_title(state, color=STATE_COLOURS[state])
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _share_axis(ax)
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
            _draw_line(ax, x, y, style, index, str(meme))
        ax.set_ylabel(column.replace("_", " "))
        _count_axis(ax)
        ax.legend(title="meme", fontsize="small")
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


def network_states(
    run: Run,
    steps: Sequence[int],
    *,
    meme_id: str | None = None,
    layout_seed: int = 0,
    node_size: float | None = None,
) -> Figure:
    """The network coloured by each agent's state at the end of each chosen step.

    A node's fill is its most advanced state (susceptible < exposed < carrier <
    expressed < adopter; see :func:`sim.analysis.prevalence.states_at`; expressed only
    in runs where some agent expressed the meme); carriers keep a ring in the
    carrier colour whatever their fill, so carriers that also adopted stay visible.
    Rarer states are drawn on top. Each panel's title counts the agents per state. The
    layout is a spring layout seeded with ``layout_seed`` (the same for every panel).
    ``node_size`` is the marker area in points squared; by default it follows the
    number of agents (:func:`network_node_size`), and the ring's width follows the node
    (:func:`carrier_ring_width`), so nodes and rings show on 8 agents as on 500.
    """
    meme_id = meme_id or run.meme_ids[0]
    if not steps:
        raise ValueError("steps: give at least one step to draw")
    n = run.n_agents
    size = network_node_size(n) if node_size is None else node_size
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(run.graph.select("source", "target").iter_rows())
    pos = nx.spring_layout(graph, seed=layout_seed)
    xy = np.array([pos[i] for i in range(n)])
    edges = run.graph.select("source", "target").to_numpy()
    segments = edge_segments(xy, edges)
    fig = Figure(figsize=(4.2 * len(steps), 4.9), layout="constrained")
    axes = fig.subplots(1, len(steps), squeeze=False)[0]
    expressed = run.agents.filter(pl.col("state") == "expressed").height > 0
    node_states = [s for s in STATE_ORDER if s != "infected" and (s != "expressed" or expressed)]
    for ax, step in zip(axes, steps, strict=True):
        flags = states_at(run.agents, n, step, meme_id)
        states = np.array(flags["state"].to_list())
        carrier = flags["carrier"].to_numpy()
        draw_network_states(ax, xy, segments, states, carrier, node_states, node_size=size)
        counts = [f"{state} {int((states == state).sum())}" for state in node_states]
        rings = f"ring (carrier) {int(carrier.sum())}"
        ax.set_title(f"step {step}\n" + ", ".join(counts) + f"\n{rings}", fontsize="small")
        ax.set_axis_off()
        ax.margins(0.08)
        ax.autoscale_view()
    handles = state_legend(node_states, "ring: carrier (has written the meme)")
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize="small")
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

    Points sit at the parameter's values in sorted order (evenly spaced, so numbers and
    labels alike); one line per combination of the ``group`` columns (e.g. the other
    swept parameters, the meme), each with its own colour, dash pattern and marker,
    drawn slightly apart so the error bars do not hide each other. Points are joined by
    lines only when the parameter is numeric: categories (e.g. defense arms) have no
    order for a line to follow. Where only ``k`` of
    ``n`` seeds have a value (e.g. ``t50`` when 50 % was not always reached) the point
    is labelled ``k/n``; where none has one, ``never`` is written at the axis bottom.
    Where the interval reached beyond the runs' last step (``<metric>_high_censored``,
    e.g. ``t50`` of :func:`sim.analysis.aggregate.aggregate_metrics`), its bar stops at
    that step and ends in an upward arrow (:data:`CENSORED_MARKER`, unlike any line's
    marker), and a note under the axes says so.

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
    xs = sorted(agg[x].unique().to_list())
    groups = list(group)
    parts = _parts(agg, groups)
    parts.sort(key=lambda kp: tuple((v is None, v) for v in kp[0]))
    fig = Figure(figsize=(max(5.5, 1.3 * len(xs) + 3), 4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.25 / max(len(parts), 1)
    values = agg.select(cols[:3]).to_numpy().astype(float)
    finite = values[np.isfinite(values)]
    # Numbers have an order a line may follow; labels (e.g. defense arms) do not.
    ordered = agg.schema[x].is_numeric()
    if share is None:
        share = bool(len(finite) == 0 or (finite.min() >= 0 and finite.max() <= 1))
    any_censored = False
    for index, (key, part) in enumerate(parts):
        part = part.sort(x)
        offset = (index - (len(parts) - 1) / 2) * width
        pos = np.array([xs.index(v) for v in part[x].to_list()], dtype=float) + offset
        mean = part[cols[0]].cast(pl.Float64).to_numpy()
        low = part[cols[1]].fill_null(part[cols[0]]).cast(pl.Float64).to_numpy()
        high = part[cols[2]].fill_null(part[cols[0]]).cast(pl.Float64).to_numpy()
        style = group_style(index)
        ax.errorbar(
            pos,
            mean,
            yerr=np.vstack([mean - low, high - mean]),
            color=style["color"],
            linestyle=style["linestyle"] if ordered else "none",
            marker=style["marker"],
            capsize=3,
            clip_on=False,  # a share of exactly 0 or 1 sits on the axis, fully drawn
            label=_label(key) if groups else None,
        )
        censored_col = f"{metric}_high_censored"
        if censored_col in part.columns:
            beyond = part[censored_col].fill_null(False).to_numpy().astype(bool)
            any_censored = any_censored or bool(beyond.any())
            ax.plot(
                pos[beyond],
                high[beyond],
                linestyle="none",
                marker=CENSORED_MARKER,
                markersize=14,
                color=style["color"],
                clip_on=False,
            )
        n = part[cols[3]].to_list()
        rows = part[f"{metric}_rows"].to_list() if f"{metric}_rows" in part.columns else n
        for px, m, k, total in zip(pos, mean, n, rows, strict=True):
            if k == 0:
                ax.annotate(
                    "never",
                    (px, 0),
                    xycoords=("data", "axes fraction"),
                    xytext=(0, 3 + 9 * index),  # stacked: one row per line
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color=style["color"],
                )
            elif total is not None and k < total:
                ax.annotate(
                    f"{k}/{total}",
                    (px, m),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize=7,
                    color=style["color"],
                )
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_xlabel(x)
    rows_col = f"{metric}_rows" if f"{metric}_rows" in agg.columns else cols[3]
    ax.set_ylabel(f"{metric} (mean, {level:.0%} CI over {_counts(agg, rows_col)} seeds)")
    if share:
        ax.set_ylim(0.0, 1.0)
    else:
        ax.set_ylim(bottom=min(0.0, float(finite.min())) if len(finite) else 0.0)
    ax.set_title(title or metric)
    if groups:
        ax.legend(title=", ".join(groups), fontsize="small")
    if any_censored:
        fig.supxlabel(
            "\u2191: the interval reaches beyond the runs' last step; its bar stops there "
            "(the upper bound is censored)",
            fontsize=7,
        )
    return fig


def _counts(agg: pl.DataFrame, column: str) -> str:
    """The distinct counts of a column, e.g. ``"3"`` or ``"2/3"``."""
    return "/".join(str(v) for v in sorted({int(v) for v in agg[column].drop_nulls()})) or "0"


def heatmap(
    frame: pl.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    title: str | None = None,
    fmt: str = ".2f",
    vrange: tuple[float, float] | None = None,
    never: str = "never",
    panel: str | None = None,
    averaged: Sequence[str] = (),
) -> Figure:
    """A heat map of ``value`` over two parameters: the mean over the rows of each cell.

    Cells are annotated with the mean and, when some rows of the cell have a null value
    (e.g. ``t50`` where 50 % was never reached), with how many rows have a value
    ("2/3"); the mean is over those. A cell whose every row is null is hatched and
    labelled ``never``, and a note under the figure says so. The title states how many
    rows each cell averages and over what, so rows of one run per cell are not mistaken
    for means, nor a mean over other parameters for a mean over seeds:

    * rows that differ only in ``seed``: "mean over 3 seeds per cell";
    * with ``averaged`` (e.g. the swept parameters on no axis and no panel): "mean over
      6 runs per cell, pooling seeds and graph.k";
    * rows of one seed sharing a cell without ``averaged`` naming what else differs:
      "mean over 6 rows per cell", and a note under the figure says that cells pool
      more than seeds.

    With ``panel``, one heat map per value of that column (e.g. a third swept
    parameter), side by side with one colour scale, instead of averaging over it.

    Args:
        frame: Long table with columns ``x``, ``y`` and ``value``.
        x: Column along the horizontal axis.
        y: Column along the vertical axis.
        value: Column to colour by.
        title: Figure title (default: the value column); what a cell averages is appended.
        fmt: Format of the annotated cell values.
        vrange: Colour scale limits. Default: ``(0, 1)`` when every value lies in
            [0, 1] (shares), else the values' range; either way fixed and stated in
            the colour bar label.
        never: Label of the cells where every row is null.
        panel: Column with one panel per value (None: one heat map).
        averaged: Columns besides ``seed`` that vary within a cell and are averaged
            over, named in the title.
    """
    keys = [x, y] + ([panel] if panel is not None else [])
    missing = [c for c in (*keys, value, *averaged) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {frame.columns}")
    if "meme_id" in frame.columns and "meme_id" not in keys and frame["meme_id"].n_unique() > 1:
        raise ValueError(
            f"the frame holds {frame['meme_id'].n_unique()} memes: a cell would average "
            "over memes; filter one meme first (pl.col('meme_id') == ...)"
        )
    seeded = "seed" in frame.columns and "seed" not in keys
    cells = frame.group_by(keys).agg(
        pl.col(value).cast(pl.Float64).mean().alias("mean"),
        pl.col(value).is_not_null().sum().alias("valid"),
        pl.len().alias("rows"),
        (pl.col("seed").n_unique() if seeded else pl.len()).alias("seeds"),
    )
    xs = sorted(cells[x].unique().to_list())
    ys = sorted(cells[y].unique().to_list())
    panels = sorted(cells[panel].unique().to_list()) if panel is not None else [None]
    finite = cells["mean"].drop_nulls().drop_nans().to_numpy()
    if vrange is None:
        if len(finite) == 0 or (finite.min() >= 0 and finite.max() <= 1):
            vrange = (0.0, 1.0)
        elif finite.min() >= 0:
            vrange = (0.0, float(finite.max()))
        else:
            vrange = (float(finite.min()), float(max(finite.max(), finite.min() + 1)))
    width = (1.25 * len(xs) + 1.2) * len(panels) + 1.6
    fig = Figure(figsize=(width, 0.8 * len(ys) + 2.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    any_never = False
    for ax, value_of_panel in zip(axes, panels, strict=True):
        part = cells if panel is None else cells.filter(pl.col(panel) == value_of_panel)
        image, never_here = _heat_panel(ax, part, x, y, xs, ys, vrange, fmt, never)
        any_never = any_never or never_here
        if panel is not None:
            ax.set_title(f"{panel} = {value_of_panel}", fontsize="medium")
    fig.colorbar(image, ax=list(axes), label=f"{value} (scale {vrange[0]:.3g} to {vrange[1]:.3g})")
    per_cell = "/".join(str(k) for k in sorted(set(cells["rows"].to_list())))
    pools_more = seeded and bool((cells["rows"] > cells["seeds"]).any())
    if averaged:
        pooled = ", ".join((["seeds"] if seeded else []) + list(averaged))
        word = "runs"
        what = f"mean over {per_cell} runs per cell, pooling {pooled}"
    elif per_cell == "1":
        word, what = "rows", "one row per cell, no averaging"
    else:
        word = "seeds" if seeded and not pools_more else "rows"
        what = f"mean over {per_cell} {word} per cell"
    heading = f"{title or value}\n({what})"
    if panel is None:
        axes[0].set_title(heading, fontsize="medium")
    else:
        fig.suptitle(heading, fontsize="medium")
    notes = []
    if any_never:
        notes.append(f"hatched '{never}': {value} is null in every {word[:-1]} of the cell")
    if ((cells["valid"] > 0) & (cells["valid"] < cells["rows"])).any():
        notes.append(f"k/n: mean over the k of n {word} with a value")
    if pools_more and not averaged:
        notes.append("cells pool rows of the same seed: something besides the seed differs")
    if notes:
        fig.supxlabel("; ".join(notes), fontsize=7)
    return fig


def _heat_panel(
    ax: Axes,
    cells: pl.DataFrame,
    x: str,
    y: str,
    xs: list[Any],
    ys: list[Any],
    vrange: tuple[float, float],
    fmt: str,
    never: str,
) -> tuple[Any, bool]:
    """Draw one heat map of ``cells`` (x, y, mean, valid, rows) on ``ax``.

    Returns:
        The image (for the colour bar) and whether a cell was hatched as ``never``.
    """
    grid = np.full((len(ys), len(xs)), np.nan)
    valid = np.zeros((len(ys), len(xs)), dtype=int)
    rows = np.zeros((len(ys), len(xs)), dtype=int)
    for xv, yv, mean, k, m in cells.select(x, y, "mean", "valid", "rows").iter_rows():
        r, c = ys.index(yv), xs.index(xv)
        grid[r, c] = np.nan if mean is None else mean
        valid[r, c], rows[r, c] = k, m
    image = ax.imshow(
        grid, cmap="magma", aspect="auto", origin="lower", vmin=vrange[0], vmax=vrange[1]
    )
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    middle = (vrange[0] + vrange[1]) / 2
    any_never = False
    for (r, c), v in np.ndenumerate(grid):
        if rows[r, c] == 0:
            continue
        if np.isfinite(v):
            text = format(v, fmt)
            if valid[r, c] < rows[r, c]:
                text += f"\n{valid[r, c]}/{rows[r, c]}"
            colour = "black" if v > middle else "white"
            ax.text(c, r, text, ha="center", va="center", color=colour, fontsize=8)
        else:
            any_never = True
            ax.add_patch(_hatched_cell(c, r))
            ax.text(c, r, never, ha="center", va="center", color="black", fontsize=8)
    return image, any_never


def _hatched_cell(column: int, row: int) -> Rectangle:
    """A grey hatched square over one heat-map cell (a cell without any value)."""
    return Rectangle(
        (column - 0.5, row - 0.5),
        1,
        1,
        facecolor="#eeeeee",
        edgecolor="#999999",
        hatch="//",
        linewidth=0,
    )


def fitted_curve(fit: FitResult, *, title: str | None = None) -> Figure:
    """Observed prevalence and the fitted model curve, with the fitted parameters.

    The share axis runs from 0 to 1 as in every share plot, so a fit to a curve that
    hardly moved (a run where almost no agent adopted) does not fill the figure.
    """
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("fraction of agents")
    _share_axis(ax)
    ax.legend(fontsize="small")
    return fig


def side_by_side_curves(curves: pl.DataFrame, *, title: str = "Spread by run") -> Figure:
    """Prevalence curves of several runs (columns ``label, meme_id, step, prevalence``)."""
    renamed = curves.rename({"prevalence": "mean"})
    return spread_curves(renamed, group="label", title=title)


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
    a shape no other arm has). An arm without a utility or attack value is left out
    (with none left, a note says why). Every point carries its
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
        _frontier_plane(ax, ordered, arm, styles, chance, attack_chance, suffix_pareto=True)
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
    for index, value in enumerate(values):
        ax = axes[index // columns][index % columns]
        part = frontier.filter(pl.col(panel) == value).sort("attack_mean", maintain_order=True)
        _frontier_plane(ax, part, arm, styles, chance, attack_chance, suffix_pareto=False)
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
    palette = _GROUP_COLOURS[:-1]
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
    return fig


def _frontier_plane(
    ax: Any,
    frame: pl.DataFrame,
    arm: str,
    styles: dict[str, int],
    chance: float | None,
    attack_chance: float | None,
    *,
    suffix_pareto: bool,
) -> None:
    """Draw one attack/utility plane of :func:`defense_frontier_plot` on ``ax``.

    ``styles`` gives each arm's style index (colour and marker); ``suffix_pareto`` adds
    " (Pareto)" to the legend labels of arms on the frontier (one plane only: with
    panels an arm's label must be the same in every panel).
    """
    front_x, front_y = [], []
    points: list[tuple[float, float, str, str]] = []
    palette = _GROUP_COLOURS[:-1]  # black marks the undefended arm
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
    if not points:
        ax.text(
            0.5,
            0.5,
            "no arm has both an attack and a utility value\n(utility needs a benign meme "
            "or tasks with known answers)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="#555555",
        )
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
