"""The ``hub`` placement: the highest-degree agents."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from topologies.placements.base import CountedPlacement, degrees, ranked


class HubPlacement(CountedPlacement):
    """The ``count`` highest-degree agents; ties go to the lowest agent id."""

    strategy: Literal["hub"] = "hub"

    def choose(self, graph: nx.Graph, count: int, rng: np.random.Generator) -> np.ndarray:
        """The ``count`` agents of highest degree."""
        return ranked(degrees(graph), count, highest=True)
