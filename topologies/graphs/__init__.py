"""Graph kinds for the agent network: one module per kind, and their registry.

A graph spec is a frozen pydantic model tagged by its ``kind`` field (see
:class:`~topologies.graphs.base.GraphSpecBase`); :data:`GraphSpec` is the discriminated
union of every registered spec, so configs can hold any one. :func:`build_graph` turns a
spec into an undirected simple :class:`networkx.Graph` whose nodes are always the integers
``0..n-1``; :func:`adjacency_csr` turns such a graph into sorted CSR arrays for the
vectorised parts of the simulator.

The family follows the project's one pattern: adding a kind = one module (a spec with a
``kind`` literal and a ``generate`` method) + one line in the :data:`GraphSpec` union
(:data:`GRAPH_SPECS` is derived from it).
"""

from __future__ import annotations

import typing
from typing import Annotated

from pydantic import Field

from topologies.graphs.barabasi_albert import BarabasiAlbert
from topologies.graphs.base import GraphSpecBase, TopologyError, build_graph, draw_seed
from topologies.graphs.complete import CompleteGraph
from topologies.graphs.csr import adjacency_csr
from topologies.graphs.erdos_renyi import ErdosRenyi
from topologies.graphs.file import GraphFile
from topologies.graphs.grid import Grid2D
from topologies.graphs.ring import RingLattice
from topologies.graphs.sbm import StochasticBlockModel
from topologies.graphs.star import Star
from topologies.graphs.watts_strogatz import WattsStrogatz

#: The registry: the union of every graph spec, one line per kind; the config schema's
#: ``graph`` is any of them, selected by ``kind``.
GraphSpec = Annotated[
    CompleteGraph
    | RingLattice
    | WattsStrogatz
    | BarabasiAlbert
    | ErdosRenyi
    | StochasticBlockModel
    | Star
    | Grid2D
    | GraphFile,
    Field(discriminator="kind"),
]

#: Every registered graph spec class, in registry order.
GRAPH_SPECS: tuple[type[GraphSpecBase], ...] = typing.get_args(typing.get_args(GraphSpec)[0])


def graph_kinds() -> list[str]:
    """The registered graph kinds."""
    return [spec.model_fields["kind"].default for spec in GRAPH_SPECS]


__all__ = [
    "GRAPH_SPECS",
    "BarabasiAlbert",
    "CompleteGraph",
    "ErdosRenyi",
    "GraphFile",
    "GraphSpec",
    "GraphSpecBase",
    "Grid2D",
    "RingLattice",
    "Star",
    "StochasticBlockModel",
    "TopologyError",
    "WattsStrogatz",
    "adjacency_csr",
    "build_graph",
    "draw_seed",
    "graph_kinds",
]
