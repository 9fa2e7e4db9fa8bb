"""The look every figure shares: state colours and line styles, group styles, markers.

One palette, :data:`STATE_COLOURS`, maps each agent state to its colour; legends list
states in :data:`STATE_ORDER`. Lines that may coincide stay distinguishable: each state
has its own dash pattern, marker and width (:data:`STATE_STYLES`), and other lines cycle
through colours, dash patterns and markers (:func:`group_style`).
"""

from __future__ import annotations

from typing import Any

from matplotlib.path import Path

#: Agent states in legend order: the node states from the least to the most advanced,
#: then ``infected`` (seeds plus agents with an infection edge).
STATE_ORDER = ("susceptible", "exposed", "carrier", "expressed", "adopter", "infected")

#: The states a network figure fills a node with, in drawing and legend order: the most
#: advanced state of an agent, a recovered agent (it held the meme and lost it,
#: :mod:`sim.analysis.recovery`) just below the adopters
#: (:func:`sim.analysis.prevalence.states_at`; the network of :mod:`sim.plots` and the
#: dashboard's).
NODE_STATES = ("susceptible", "exposed", "carrier", "expressed", "recovered", "adopter")

#: The colour of each state, the same in every figure (Okabe-Ito, colour-blind safe).
#: ``recovered`` (held a meme, holds it no longer) is a node state of SIS/SIR runs
#: (:mod:`sim.analysis.recovery`); it has no place in :data:`STATE_ORDER`, whose states
#: every run's ``steps`` table counts, and legends of curves put it last.
STATE_COLOURS = {
    "susceptible": "#bdbdbd",
    "exposed": "#E69F00",
    "carrier": "#D55E00",
    "expressed": "#CC79A7",
    "adopter": "#0072B2",
    "infected": "#009E73",
    "recovered": "#56B4E9",
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
    "recovered": {
        "linestyle": (0, (3, 1, 1, 1, 1, 1)),
        "linewidth": 2.0,
        "alpha": 1.0,
        "marker": "D",
    },
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

#: The marker ending an interval bar whose upper bound lay beyond the runs' last step (or
#: standing where a median lies beyond it): an upward arrow, a shaft and a filled head
#: drawn as a path. Not a glyph: the mathtext arrow (``$\\uparrow$``) made matplotlib
#: look for STIX and Computer Modern fonts and print a warning for each one missing.
#: Draw it with a marker edge width of :data:`CENSORED_MARKER_WIDTH`.
CENSORED_MARKER = Path(
    [(0.0, -1.0), (0.0, 0.9), (-0.5, 0.25), (0.0, 1.0), (0.5, 0.25), (0.0, 0.9)],
    [Path.MOVETO, Path.LINETO, Path.MOVETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY],
    readonly=True,
)

#: The marker edge width (points) of :data:`CENSORED_MARKER`: its shaft's width.
CENSORED_MARKER_WIDTH = 1.8

#: Most lines whose legend goes inside the axes; with more it goes beside them.
MAX_LEGEND_INSIDE = 6

#: The colours :func:`group_style` cycles through (Okabe-Ito); the last is black.
GROUP_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
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
        "color": GROUP_COLOURS[index % len(GROUP_COLOURS)],
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


def state_rank(state: object) -> int:
    """A state's place in :data:`STATE_ORDER` (legend order); after all of them if unknown."""
    return STATE_ORDER.index(str(state)) if str(state) in STATE_ORDER else len(STATE_ORDER)
