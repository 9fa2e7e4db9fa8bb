"""Where the dashboard draws each agent of the network (no Solara here).

A spring layout costs time quadratic in the number of nodes (about 10 s for 1,000 nodes
on a busy CPU; 10^5 nodes would never finish), so a network of more than
:data:`MAX_DRAWN_AGENTS` agents is drawn as a uniform random sample of that many agents
(drawn from a generator seeded with the layout seed, so the same run always shows the
same agents) with the edges among them. The page says so; its counts stay those of all
agents.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

#: The most agents the network panel draws; larger networks are drawn as a sample.
MAX_DRAWN_AGENTS = 1000


@dataclass(frozen=True, eq=False)
class NetworkLayout:
    """The drawn agents and their positions.

    Attributes:
        n_agents: Number of agents in the run.
        nodes: The drawn agents' ids, increasing, shape ``(k,)``.
        xy: Their positions, shape ``(k, 2)`` (row ``i`` for ``nodes[i]``).
        edges: The edges among drawn agents as row indices into ``nodes``, shape ``(m, 2)``.
    """

    n_agents: int
    nodes: np.ndarray
    xy: np.ndarray
    edges: np.ndarray

    @property
    def sampled(self) -> bool:
        """Whether only a sample of the agents is drawn."""
        return len(self.nodes) < self.n_agents

    @property
    def note(self) -> str:
        """What the drawing shows, for its caption ("" when every agent is drawn)."""
        if not self.sampled:
            return ""
        return (
            f"drawn: a uniform sample of {len(self.nodes)} of {self.n_agents} agents "
            "(counts are of all agents)"
        )


def network_layout(
    n_agents: int, edges: np.ndarray, seed: int = 0, max_agents: int = MAX_DRAWN_AGENTS
) -> NetworkLayout:
    """The layout of a run's network: every agent, or a seeded sample of ``max_agents``.

    Args:
        n_agents: Number of agents (nodes ``0 .. n_agents - 1``).
        edges: The graph's ``(source, target)`` pairs, shape ``(m, 2)``.
        seed: Seeds the sample and the spring layout.
        max_agents: Draw all agents up to this many, else a uniform sample of this many.

    Raises:
        ValueError: ``max_agents`` < 1.
    """
    if max_agents < 1:
        raise ValueError(f"max_agents = {max_agents}: must be at least 1")
    if n_agents <= max_agents:
        nodes = np.arange(n_agents, dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        nodes = np.sort(rng.choice(n_agents, size=max_agents, replace=False)).astype(np.int64)
    row = np.full(n_agents, -1, dtype=np.int64)
    row[nodes] = np.arange(len(nodes))
    pairs = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    pairs = row[pairs]
    pairs = pairs[(pairs >= 0).all(axis=1)]
    graph = nx.Graph()
    graph.add_nodes_from(range(len(nodes)))
    graph.add_edges_from(pairs.tolist())
    pos = nx.spring_layout(graph, seed=seed) if len(nodes) else {}
    xy = np.array([pos[i] for i in range(len(nodes))], dtype=float).reshape(-1, 2)
    return NetworkLayout(n_agents=n_agents, nodes=nodes, xy=xy, edges=pairs)
