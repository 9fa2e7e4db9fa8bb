"""Ring lattice: each agent joined to its k nearest neighbours."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase


class RingLattice(GraphSpecBase):
    """Ring of ``n`` nodes, each joined to its ``k`` nearest neighbours (``k/2`` per side).

    ``k`` must be even with ``2 <= k < n``; the graph has ``n*k/2`` edges.
    """

    kind: Literal["ring"] = "ring"
    n: int
    """Number of agents, >= 3."""
    k: int
    """Neighbours per agent: an even integer with 2 <= k < n."""

    @model_validator(mode="after")
    def _validate(self) -> RingLattice:
        self._check_n(self.n, 3)
        self._check_k(self.n, self.k)
        return self

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The ring graph (see the class docstring)."""
        return nx.circulant_graph(self.n, range(1, self.k // 2 + 1))
