"""Network topologies and memory bank layouts for memespread.

``graphs`` builds the agent network from a spec, ``banks`` lays memory banks (private,
neighbourhood, community, edge, global) over it, and ``placement`` picks seed agents.
"""

from topologies.banks import (
    BankKind,
    BankLayoutSpec,
    Banks,
    CommunityBanks,
    EdgeBanks,
    Eviction,
    GlobalBank,
    NeighbourhoodBanks,
    PrivateBanks,
    build_banks,
)
from topologies.graphs import (
    BarabasiAlbert,
    CompleteGraph,
    ErdosRenyi,
    GraphFile,
    GraphSpec,
    Grid2D,
    RingLattice,
    Star,
    StochasticBlockModel,
    TopologyError,
    WattsStrogatz,
    adjacency_csr,
    build_graph,
)
from topologies.placement import PlacementStrategy, select_agents

__all__ = [
    "BankKind",
    "BankLayoutSpec",
    "Banks",
    "BarabasiAlbert",
    "CommunityBanks",
    "CompleteGraph",
    "EdgeBanks",
    "ErdosRenyi",
    "Eviction",
    "GlobalBank",
    "GraphFile",
    "GraphSpec",
    "Grid2D",
    "NeighbourhoodBanks",
    "PlacementStrategy",
    "PrivateBanks",
    "RingLattice",
    "Star",
    "StochasticBlockModel",
    "TopologyError",
    "WattsStrogatz",
    "adjacency_csr",
    "build_banks",
    "build_graph",
    "select_agents",
]
