"""What every placement shares: the spec's base class, and the base of counted strategies.

A placement says where a meme is seeded at the start of a run: into the writable banks of
some agents (:meth:`PlacementBase.select` chooses them), or straight into one named bank
(:attr:`PlacementBase.target_bank`). Each strategy is one module of this package holding
its spec; the registry is :data:`topologies.placements.PlacementSpec`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from topologies.banks import BankKind
from topologies.graphs import TopologyError


@dataclass(frozen=True)
class SeedingLayout:
    """What a placement is checked against: the facts of a run's layout it may need.

    Attributes:
        n_agents: The number of agents (None: not known before the graph file is read).
        kinds: The kinds of the layout's bank layers.
        n_communities: The number of communities, when known.
        graph_file: The number of agents is the nodes of a graph file (messages say so).
    """

    n_agents: int | None
    kinds: Collection[BankKind]
    n_communities: int | None = None
    graph_file: bool = False

    @property
    def agents_source(self) -> str:
        """Where the number of agents comes from, for messages (``"5, the nodes of ..."``)."""
        if self.graph_file:
            return f"{self.n_agents}, the nodes of the graph file"
        return f"{self.n_agents}"


class PlacementBase(BaseModel):
    """Where and how a meme is seeded (fields every strategy has).

    Attributes:
        strategy: Selects the strategy (this variant); a placement without it is
            ``random``.
        into: Which of a seeded agent's writable banks receive the seed entry: "private",
            "shared", or "all".
        adopt: Whether seeded agents start as adopters. None (the default) follows the
            policy's convention: the contagion policy starts them as adopters (they are
            the initially infected of SI/SIR), LLM agents do not (they adopt only when
            their own probe answers endorse the meme). LLM probes may later revise it.
        importance: Importance of the seed entries, in [0, 1]. None (the default) gives
            them the importance of an agent's own note (``sim.memes.NOTE_IMPORTANCE``), so
            a seed is not favoured by retrieval over what agents write.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str
    into: Literal["private", "shared", "all"] = "all"
    adopt: bool | None = None
    importance: float | None = Field(None, ge=0, le=1)

    @property
    def target_bank(self) -> str | None:
        """The bank the seed entry goes into directly, or None (the seeded agents' banks)."""
        return None

    def select(self, graph: nx.Graph, rng: np.random.Generator) -> np.ndarray:
        """The seeded agents: a sorted int32 array of distinct ids (empty for a bank).

        Args:
            graph: Undirected graph on nodes ``0..n-1``.
            rng: The model's generator (the only source of randomness).

        Raises:
            TopologyError: The strategy cannot choose on this graph.
        """
        return np.zeros(0, dtype=np.int32)

    def target_errors(self, layout: SeedingLayout) -> list[str]:
        """Problems of the strategy's own fields in a layout (see ``placement_errors``).

        Each message starts with the field's key (``"count = 61: ..."``).
        """
        return []


def check_count(count: object, n: int) -> int:
    """``count`` as an int, if it is an integer with ``1 <= count <= n``.

    Raises:
        TopologyError: Otherwise.
    """
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or not 1 <= count <= n:
        raise TopologyError(
            f"placement.count = {count!r}: must be an integer with 1 <= count <= n (n = {n})"
        )
    return int(count)


def ranked(score: np.ndarray, count: int, *, highest: bool) -> np.ndarray:
    """The ``count`` agents with the highest (or lowest) score, ties to lower ids."""
    ids = np.arange(score.shape[0])
    order = np.lexsort((ids, -score if highest else score))
    return order[:count]


def degrees(graph: nx.Graph) -> np.ndarray:
    """Each agent's degree, as an int64 array indexed by agent id."""
    degree = np.zeros(graph.number_of_nodes(), dtype=np.int64)
    for node, d in graph.degree():
        degree[node] = d
    return degree


class CountedPlacement(PlacementBase):
    """A strategy that chooses ``count`` agents of the graph.

    Subclasses implement :meth:`choose`; :meth:`select` checks the count and sorts.

    Attributes:
        count: Number of agents to seed.
    """

    count: int = Field(1, ge=1)

    def choose(self, graph: nx.Graph, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` distinct agent ids (any order), ``1 <= count <= n``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement choose()")

    def select(self, graph: nx.Graph, rng: np.random.Generator) -> np.ndarray:
        """The ``count`` agents :meth:`choose` picks, sorted, as int32.

        Raises:
            TopologyError: ``count`` is not in ``1..n``.
        """
        count = check_count(self.count, graph.number_of_nodes())
        return np.sort(np.asarray(self.choose(graph, count, rng), dtype=np.int32))

    def target_errors(self, layout: SeedingLayout) -> list[str]:
        """``count`` must be at most the number of agents, when known."""
        if layout.n_agents is None or self.count <= layout.n_agents:
            return []
        return [
            f"count = {self.count}: must be at most the number of agents ({layout.agents_source})"
        ]
