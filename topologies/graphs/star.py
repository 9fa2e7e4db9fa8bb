"""Star: one hub joined to every leaf."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase


class Star(GraphSpecBase):
    """Star with ``n`` nodes in total: node 0 is the hub, nodes ``1..n-1`` are leaves."""

    kind: Literal["star"] = "star"
    n: int
    """Number of agents (hub and leaves), >= 1."""

    @model_validator(mode="after")
    def _validate(self) -> Star:
        self._check_n(self.n)
        return self

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The star graph (see the class docstring)."""
        return nx.star_graph(self.n - 1)
