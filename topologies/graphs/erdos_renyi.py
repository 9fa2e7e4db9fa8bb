"""Erdos-Renyi G(n, p) random graph."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase, draw_seed


class ErdosRenyi(GraphSpecBase):
    """Erdos-Renyi G(n, p): each pair is joined independently with probability ``p``."""

    kind: Literal["erdos_renyi"] = "erdos_renyi"
    n: int
    """Number of agents, >= 1."""
    p: float
    """Probability that a pair of agents is joined, in [0, 1]."""

    @model_validator(mode="after")
    def _validate(self) -> ErdosRenyi:
        self._check_n(self.n)
        self._check_probability("p", self.p)
        return self

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The erdos_renyi graph (see the class docstring)."""
        return nx.fast_gnp_random_graph(self.n, self.p, seed=draw_seed(rng))
