"""The ``random`` placement: agents drawn uniformly without replacement."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from topologies.placements.base import CountedPlacement


class RandomPlacement(CountedPlacement):
    """``count`` agents drawn uniformly without replacement from the model's generator."""

    strategy: Literal["random"] = "random"

    def choose(self, graph: nx.Graph, count: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``count`` distinct agents from ``rng``."""
        return rng.choice(graph.number_of_nodes(), size=count, replace=False)
