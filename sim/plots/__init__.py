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

Modules, one concept each:

* :mod:`sim.plots.styles` — state colours and line styles, group styles, markers;
* :mod:`sim.plots.axes` — drawing helpers the figures share: lines that stay visible
  (:func:`draw_line`), censored arrows and notes at the axis floor
  (:func:`draw_censored`, :func:`note_at_floor`), a legend of what each line draws
  (:func:`line_legend`: a line drawn only as notes has its text in its colour), share
  and count axes, a frame split into one part per group and the group's label
  (:func:`split_by`, :func:`group_label`), a swept parameter along the x axis
  (:class:`ParameterAxis`; categories in :func:`category_order`), notes moved apart
  once the figure is laid out (:func:`stack_apart`);
* :mod:`sim.plots.curves` — prevalence and spread curves, memes compared, counts per
  step, a metric against a swept parameter;
* :mod:`sim.plots.networks` — the network coloured by state, node sizes, carrier rings;
* :mod:`sim.plots.trees` — transmission trees, drift from the seed by hop;
* :mod:`sim.plots.heatmaps` — heat maps over two swept parameters;
* :mod:`sim.plots.fits` — observed prevalence against a fitted curve;
* :mod:`sim.plots.funnel` — from exposure to action, per meme;
* :mod:`sim.plots.frontier` — defenses on the attack/utility plane;
* :mod:`sim.plots.times` — a time to a fraction (its Kaplan-Meier median over seeds)
  against a swept parameter;
* :mod:`sim.plots.personas` — the share of decisions choosing a meme's target per
  persona, exposed and unexposed, against chance.

Every public name is re-exported here: ``from sim import plots; plots.spread_curves(...)``.
"""

from __future__ import annotations

from sim.plots.axes import (
    LABEL_GAP,
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
    stack_apart,
)
from sim.plots.curves import (
    counts_per_step,
    default_states,
    memes_compared,
    metric_by_parameter,
    prevalence_curves,
    side_by_side_curves,
    spread_curves,
)
from sim.plots.fits import fitted_curve
from sim.plots.frontier import defense_frontier_plot
from sim.plots.funnel import FUNNEL_STAGES, funnel
from sim.plots.heatmaps import heatmap
from sim.plots.networks import (
    carrier_ring_width,
    draw_network_states,
    edge_segments,
    network_node_size,
    network_states,
    state_legend,
)
from sim.plots.personas import CHANCE_COLOUR, PERSONA_PLOT_ARMS, persona_shares
from sim.plots.styles import (
    CENSORED_MARKER,
    CENSORED_MARKER_WIDTH,
    COUNT_STATES,
    GROUP_COLOURS,
    MAX_LEGEND_INSIDE,
    NODE_STATES,
    STATE_COLOURS,
    STATE_ORDER,
    STATE_STYLES,
    UNDEFENDED_MARKER,
    group_style,
    state_rank,
    state_style,
)
from sim.plots.times import time_by_parameter
from sim.plots.trees import mutation_by_hop, transmission_tree

__all__ = [
    "CENSORED_MARKER",
    "CENSORED_MARKER_WIDTH",
    "CHANCE_COLOUR",
    "COUNT_STATES",
    "FUNNEL_STAGES",
    "GROUP_COLOURS",
    "LABEL_GAP",
    "MAX_LEGEND_INSIDE",
    "NODE_STATES",
    "PERSONA_PLOT_ARMS",
    "STATE_COLOURS",
    "STATE_ORDER",
    "STATE_STYLES",
    "UNDEFENDED_MARKER",
    "LineEntry",
    "ParameterAxis",
    "carrier_ring_width",
    "category_order",
    "count_axis",
    "counts_per_step",
    "default_states",
    "defense_frontier_plot",
    "draw_censored",
    "draw_line",
    "draw_network_states",
    "edge_segments",
    "fitted_curve",
    "funnel",
    "group_label",
    "group_style",
    "heatmap",
    "line_legend",
    "memes_compared",
    "metric_by_parameter",
    "mutation_by_hop",
    "network_node_size",
    "network_states",
    "note_at_floor",
    "persona_shares",
    "prevalence_curves",
    "share_axis",
    "side_by_side_curves",
    "split_by",
    "spread_curves",
    "stack_apart",
    "state_legend",
    "state_rank",
    "state_style",
    "time_by_parameter",
    "transmission_tree",
]
