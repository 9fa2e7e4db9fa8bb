"""Watts-Strogatz small world."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase, draw_seed


class WattsStrogatz(GraphSpecBase):
    """Watts-Strogatz small world: a ring lattice whose edges are rewired with prob. ``p``."""

    kind: Literal["watts_strogatz"] = "watts_strogatz"
    n: int
    """Number of agents, >= 3."""
    k: int
    """Neighbours per agent in the ring before rewiring: an even integer with 2 <= k < n."""
    p: float
    """Probability that an edge is rewired, in [0, 1]."""

    @model_validator(mode="after")
    def _validate(self) -> WattsStrogatz:
        self._check_n(self.n, 3)
        self._check_k(self.n, self.k)
        self._check_probability("p", self.p)
        return self

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The watts_strogatz graph (see the class docstring)."""
        return nx.watts_strogatz_graph(self.n, self.k, self.p, seed=draw_seed(rng))
