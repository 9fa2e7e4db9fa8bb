"""The ``agents`` placement: the agents named by id."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import Field

from topologies.placements.base import PlacementBase, SeedingLayout


class AgentsPlacement(PlacementBase):
    """The named agents.

    Attributes:
        agents: Agent ids (at least one; repeats count once).
    """

    strategy: Literal["agents"] = "agents"
    agents: list[int] = Field(min_length=1)

    def select(self, graph: nx.Graph, rng: np.random.Generator) -> np.ndarray:
        """The named agents, sorted and distinct."""
        return np.array(sorted(set(self.agents)), dtype=np.int32)

    def target_errors(self, layout: SeedingLayout) -> list[str]:
        """Agent ids must be in ``0..n-1`` (only ``>= 0`` while ``n`` is unknown)."""
        n = layout.n_agents
        if n is None:
            bad = sorted(a for a in self.agents if a < 0)
            return [f"agents = {bad}: agent ids must be >= 0"] if bad else []
        bad = sorted(a for a in self.agents if not 0 <= a < n)
        source = (
            f"the graph file has {n} nodes" if layout.graph_file else f"the graph has {n} agents"
        )
        return [f"agents = {bad}: agent ids must be in 0..{n - 1} ({source})"] if bad else []
