"""Barabasi-Albert preferential attachment."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase, draw_seed


class BarabasiAlbert(GraphSpecBase):
    """Barabasi-Albert preferential attachment: each new node attaches ``m`` edges."""

    kind: Literal["barabasi_albert"] = "barabasi_albert"
    n: int
    """Number of agents, >= 2."""
    m: int
    """Edges each new agent attaches to existing ones, 1 <= m < n."""

    @model_validator(mode="after")
    def _validate(self) -> BarabasiAlbert:
        self._check_n(self.n, 2)
        if not 1 <= self.m < self.n:
            self._fail("m", self.m, f"must satisfy 1 <= m < n (n = {self.n})")
        return self

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The barabasi_albert graph (see the class docstring)."""
        return nx.barabasi_albert_graph(self.n, self.m, seed=draw_seed(rng))
