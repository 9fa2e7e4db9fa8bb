"""Complete graph: every pair of agents is joined."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase


class CompleteGraph(GraphSpecBase):
    """Complete graph on ``n`` nodes: every pair of agents is joined."""

    kind: Literal["complete"] = "complete"
    n: int
    """Number of agents, >= 1."""

    @model_validator(mode="after")
    def _validate(self) -> CompleteGraph:
        self._check_n(self.n)
        return self

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The complete graph (see the class docstring)."""
        return nx.complete_graph(self.n)
