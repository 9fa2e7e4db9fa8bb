"""The network coloured by state: node sizes, carrier rings, the drawing and its legend.

:func:`network_states` draws a run; :func:`draw_network_states` and
:func:`state_legend` draw any positions and states the same way (the dashboard uses them).
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
from matplotlib.patches import Patch

from sim.analysis.loading import Run
from sim.analysis.prevalence import states_at
from sim.plots.styles import NODE_STATES, STATE_COLOURS


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


def network_states(
    run: Run,
    steps: Sequence[int],
    *,
    meme_id: str | None = None,
    layout_seed: int = 0,
    node_size: float | None = None,
) -> Figure:
    """The network coloured by each agent's state at the end of each chosen step.

    A node's fill is its state (:func:`sim.analysis.prevalence.states_at`): the most
    advanced of susceptible < exposed < carrier < expressed < adopter, or recovered
    (it held the meme since its node's last replacement and holds it no longer: SIS/SIR
    recovery, a probe no longer endorsing it), as the dashboard draws it. Expressed is
    listed only in runs where some agent expressed the meme, recovered only when some
    drawn panel has a recovered agent. Carriers keep a ring in the carrier colour
    whatever their fill, so carriers that also adopted (or recovered) stay visible.
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
    turnover = run.tables.get("turnover")
    panels = [states_at(run.agents, n, step, meme_id, turnover=turnover) for step in steps]
    expressed = run.agents.filter(pl.col("state") == "expressed").height > 0
    recovered = any(flags["recovered"].any() for flags in panels)
    node_states = [
        s
        for s in NODE_STATES
        if (s != "expressed" or expressed) and (s != "recovered" or recovered)
    ]
    for ax, step, flags in zip(axes, steps, panels, strict=True):
        states = np.array(flags["state"].to_list())
        carrier = flags["carrier"].to_numpy()
        draw_network_states(ax, xy, segments, states, carrier, node_states, node_size=size)
        counts = [f"{state} {int((states == state).sum())}" for state in node_states]
        # Six states do not fit on one line of the panel's width: three a line then.
        per_line = 3 if len(counts) > 5 else len(counts)
        lines = [", ".join(counts[i : i + per_line]) for i in range(0, len(counts), per_line)]
        rings = f"ring (carrier) {int(carrier.sum())}"
        ax.set_title("\n".join([f"step {step}", *lines, rings]), fontsize="small")
        ax.set_axis_off()
        ax.margins(0.08)
        ax.autoscale_view()
    handles = state_legend(node_states, "ring: carrier (has written the meme)")
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize="small")
    fig.suptitle(f"{run.name}: meme {meme_id!r}")
    return fig
