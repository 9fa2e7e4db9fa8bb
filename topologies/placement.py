"""Seed placement: which agents receive a meme at the start of a run.

:func:`placement_errors` is the one check of a placement against a layout: config
validation calls it with what the specs tell, the model with what it built.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal, Protocol, get_args

import networkx as nx
import numpy as np

from topologies.banks import BankKind, bank_name_error
from topologies.graphs import TopologyError

PlacementStrategy = Literal["random", "hub", "periphery", "bridge"]
"""How seed agents are chosen (see :func:`select_agents`)."""

EXACT_BETWEENNESS_MAX_NODES = 2000
"""Largest graph whose betweenness centrality is computed exactly; larger ones sample."""

BETWEENNESS_SAMPLES = 256
"""Number of source nodes sampled for betweenness on graphs above the exact limit."""


def _ranked(score: np.ndarray, count: int, *, highest: bool) -> np.ndarray:
    """Return the ``count`` agents with the highest (or lowest) score, ties to lower ids."""
    ids = np.arange(score.shape[0])
    order = np.lexsort((ids, -score if highest else score))
    return order[:count]


def _betweenness(graph: nx.Graph, rng: np.random.Generator) -> np.ndarray:
    """Betweenness centrality per agent: exact up to the limit, else sampled from rng."""
    n = graph.number_of_nodes()
    if n <= EXACT_BETWEENNESS_MAX_NODES:
        centrality = nx.betweenness_centrality(graph)
    else:
        centrality = nx.betweenness_centrality(
            graph, k=BETWEENNESS_SAMPLES, seed=int(rng.integers(2**31 - 1))
        )
    score = np.zeros(n, dtype=np.float64)
    for node, value in centrality.items():
        score[node] = value
    # Equal centralities may differ in the last bits from summation order: round them
    # so that such ties fall to the lower id, as for the other strategies.
    return np.round(score, 12)


def select_agents(
    graph: nx.Graph, strategy: PlacementStrategy, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Choose ``count`` distinct agents to seed.

    Args:
        graph: Undirected graph on nodes ``0..n-1``.
        strategy: ``"random"`` draws uniformly without replacement from ``rng``;
            ``"hub"`` takes the highest-degree agents, ``"periphery"`` the lowest-degree
            ones, ``"bridge"`` the highest betweenness centrality (exact for
            ``n <= 2000``, else estimated from 256 sampled sources seeded from ``rng``).
            Ties go to the lowest agent id.
        count: Number of agents, ``1 <= count <= n``.
        rng: Source of randomness.

    Returns:
        Sorted int32 array of ``count`` distinct agent ids.

    Raises:
        TopologyError: ``count`` is out of range or ``strategy`` is unknown.
    """
    n = graph.number_of_nodes()
    if strategy not in get_args(PlacementStrategy):
        raise TopologyError(
            f"placement.strategy = {strategy!r}: must be one of "
            f"{', '.join(repr(s) for s in get_args(PlacementStrategy))}"
        )
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or not 1 <= count <= n:
        raise TopologyError(
            f"placement.count = {count!r}: must be an integer with 1 <= count <= n (n = {n})"
        )
    if strategy == "random":
        chosen = rng.choice(n, size=int(count), replace=False)
    elif strategy == "bridge":
        chosen = _ranked(_betweenness(graph, rng), int(count), highest=True)
    else:
        degree = np.zeros(n, dtype=np.int64)
        for node, d in graph.degree():
            degree[node] = d
        chosen = _ranked(degree, int(count), highest=strategy == "hub")
    return np.sort(np.asarray(chosen, dtype=np.int32))


#: Strategies that choose ``count`` agents.
COUNTED_STRATEGIES = ("random", "hub", "periphery", "bridge")


class Placement(Protocol):
    """What :func:`placement_errors` reads of a placement (``sim.memes.PlacementSpec``)."""

    @property
    def strategy(self) -> str:
        """How seed agents are chosen ("agents", "bank" or a counted strategy)."""

    @property
    def count(self) -> int:
        """Number of agents of a counted strategy."""

    @property
    def agents(self) -> list[int] | None:
        """Agent ids of strategy "agents"."""

    @property
    def bank(self) -> str | None:
        """Bank name of strategy "bank"."""

    @property
    def into(self) -> str:
        """Which writable banks of a seeded agent get the seed: private, shared or all."""


def placement_errors(
    placement: Placement,
    n_agents: int | None,
    kinds: Collection[BankKind],
    n_communities: int | None = None,
    *,
    graph_file: bool = False,
) -> list[str]:
    """Why a placement cannot be carried out in a layout, one message per problem.

    Each message starts with the placement's key (``"count = 61: ..."``), for the caller
    to put the meme's key in front.

    Args:
        placement: The placement.
        n_agents: The number of agents (None: not known before the graph file is read;
            only the signs of agent ids are checked).
        kinds: The kinds of the layout's layers.
        n_communities: The number of communities, when known.
        graph_file: The number of agents is the nodes of a graph file (said so).
    """
    errors = []
    n = n_agents
    if placement.strategy == "agents":
        ids = placement.agents or []
        if n is None:
            bad = sorted(a for a in ids if a < 0)
            if bad:
                errors.append(f"agents = {bad}: agent ids must be >= 0")
        else:
            bad = sorted(a for a in ids if not 0 <= a < n)
            source = f"the graph file has {n} nodes" if graph_file else f"the graph has {n} agents"
            if bad:
                errors.append(f"agents = {bad}: agent ids must be in 0..{n - 1} ({source})")
    if placement.strategy in COUNTED_STRATEGIES and n is not None and placement.count > n:
        source = f"{n}, the nodes of the graph file" if graph_file else f"{n}"
        errors.append(f"count = {placement.count}: must be at most the number of agents ({source})")
    if placement.strategy == "bank":
        problem = bank_name_error(placement.bank or "", kinds, n, n_communities)
        if problem:
            errors.append(f"bank = {placement.bank!r}: {problem}")
        return errors
    if placement.into == "shared" and not any(kind.shared and kind.agents_write for kind in kinds):
        has = (
            "no shared bank agents may write (no agent writes the lessons bank)"
            if any(kind.shared for kind in kinds)
            else "only private banks"
        )
        errors.append(
            f"into = 'shared': the layout has {has}; add a shared layer or use "
            "into = 'private' or 'all'"
        )
    if placement.into == "private" and BankKind.PRIVATE not in kinds:
        errors.append(
            "into = 'private': the layout has no private layer; add [banks.private] or use "
            "into = 'shared' or 'all'"
        )
    return errors
