"""The ``periphery`` placement: the lowest-degree agents."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from topologies.placements.base import CountedPlacement, degrees, ranked


class PeripheryPlacement(CountedPlacement):
    """The ``count`` lowest-degree agents; ties go to the lowest agent id."""

    strategy: Literal["periphery"] = "periphery"

    def choose(self, graph: nx.Graph, count: int, rng: np.random.Generator) -> np.ndarray:
        """The ``count`` agents of lowest degree."""
        return ranked(degrees(graph), count, highest=False)
