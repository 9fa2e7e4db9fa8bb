"""The ``bridge`` placement: the agents of highest betweenness centrality."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from topologies.placements.base import CountedPlacement, ranked

EXACT_BETWEENNESS_MAX_NODES = 2000
"""Largest graph whose betweenness centrality is computed exactly; larger ones sample."""

BETWEENNESS_SAMPLES = 256
"""Number of source nodes sampled for betweenness on graphs above the exact limit."""


def betweenness(graph: nx.Graph, rng: np.random.Generator) -> np.ndarray:
    """Betweenness centrality per agent: exact up to the limit, else sampled from rng."""
    n = graph.number_of_nodes()
    if n <= EXACT_BETWEENNESS_MAX_NODES:
        centrality = nx.betweenness_centrality(graph)
    else:
        centrality = nx.betweenness_centrality(
            graph, k=BETWEENNESS_SAMPLES, seed=int(rng.integers(2**31 - 1))
        )
    score = np.zeros(n, dtype=np.float64)
    for node, value in centrality.items():
        score[node] = value
    # Equal centralities may differ in the last bits from summation order: round them
    # so that such ties fall to the lower id, as for the other strategies.
    return np.round(score, 12)


class BridgePlacement(CountedPlacement):
    """The ``count`` agents of highest betweenness centrality; ties to the lowest id.

    Betweenness is exact for ``n <= 2000``, else estimated from 256 sources sampled with a
    seed drawn from the model's generator.
    """

    strategy: Literal["bridge"] = "bridge"

    def choose(self, graph: nx.Graph, count: int, rng: np.random.Generator) -> np.ndarray:
        """The ``count`` agents of highest betweenness."""
        return ranked(betweenness(graph, rng), count, highest=True)
