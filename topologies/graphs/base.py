"""What every graph kind shares: its spec's base class, the error type and the builder.

A graph kind is one module holding a spec: a frozen pydantic model derived from
:class:`GraphSpecBase`, with a ``kind`` literal and a :meth:`~GraphSpecBase.generate`
method that returns the raw networkx graph. :func:`build_graph` turns any spec into an
undirected simple graph on nodes ``0..n-1`` (the form the simulator needs) and checks
``require_connected``.

Invalid parameters raise :class:`TopologyError` (a :class:`ValueError`) whose message names
the parameter, the bad value and what is allowed, e.g.
``barabasi_albert.m = 5: must satisfy 1 <= m < n (n = 5)``. Checks that need only the
spec run when the spec is validated (pydantic wraps the message in its
``ValidationError``, itself a ``ValueError``); checks that need the built graph or the
file system run in :func:`build_graph`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict


class TopologyError(ValueError):
    """Invalid topology parameter, input file or built graph."""


def draw_seed(rng: np.random.Generator) -> int:
    """Draw an integer seed for a networkx generator from ``rng``."""
    return int(rng.integers(2**31 - 1))


class GraphSpecBase(BaseModel):
    """Fields and helpers shared by every graph spec.

    A kind sets ``kind`` (a ``Literal``), implements :meth:`generate`, and overrides
    :attr:`n_agents` when its parameters do not hold a field ``n``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    if TYPE_CHECKING:  # each kind sets it as a Literal field (pydantic sees only those)
        kind: str

    require_connected: bool = False
    """If true, :func:`build_graph` fails when the built graph is disconnected."""

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The graph this spec describes, before :func:`build_graph` makes it canonical.

        Args:
            rng: Source of randomness: draw networkx seeds with :func:`draw_seed`.
        """
        raise NotImplementedError(f"graph kind {getattr(self, 'kind', '?')!r} has no generate")

    @property
    def n_agents(self) -> int | None:
        """The number of agents the spec fixes, or None when only building tells it."""
        n = getattr(self, "n", None)
        return None if n is None else int(n)

    def _fail(self, param: str, value: Any, allowed: str) -> NoReturn:
        kind = getattr(self, "kind", type(self).__name__)
        raise TopologyError(f"{kind}.{param} = {value!r}: {allowed}")

    def _check_n(self, n: int, minimum: int = 1) -> None:
        if n < minimum:
            self._fail("n", n, f"must be an integer >= {minimum}")

    def _check_probability(self, param: str, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            self._fail(param, p, "must be a probability in [0, 1]")

    def _check_k(self, n: int, k: int) -> None:
        if k < 2 or k % 2 != 0 or k >= n:
            self._fail("k", k, f"must be an even integer with 2 <= k < n (n = {n})")


def build_graph(spec: GraphSpecBase, rng: np.random.Generator) -> nx.Graph:
    """Build the graph a spec describes.

    Args:
        spec: Any graph spec.
        rng: Source of randomness; random generators get an integer seed drawn from it,
            so the same spec and generator state give the identical edge set.

    Returns:
        An undirected simple graph (no self loops, no multi-edges) whose nodes are the
        integers ``0..n-1``, iterated in ascending order. SBM nodes carry an int
        ``"block"`` attribute; file graphs carry their original ``"label"``.

    Raises:
        TopologyError: The file is missing, malformed or empty, or ``require_connected``
            is set and the graph has more than one connected component.
    """
    if not isinstance(spec, GraphSpecBase):
        raise TopologyError(f"spec = {spec!r}: must be one of the graph specs of topologies.graphs")
    graph = canonical(spec.generate(rng))
    graph.graph["kind"] = spec.kind
    if spec.require_connected:
        components = nx.number_connected_components(graph) if len(graph) else 0
        if components != 1:
            raise TopologyError(
                f"{spec.kind}.require_connected = True: the built graph has {components} "
                "connected components, but must have exactly 1"
            )
    return graph


def canonical(graph: nx.Graph) -> nx.Graph:
    """Return ``graph`` as a simple undirected graph on nodes ``0..n-1`` in order."""
    if graph.is_directed() or graph.is_multigraph():
        graph = nx.Graph(graph)
    loops = list(nx.selfloop_edges(graph))
    if loops:
        graph.remove_edges_from(loops)
    nodes = list(graph)
    if nodes == list(range(len(nodes))):
        return graph
    order = sorted(nodes)
    mapping = {old: new for new, old in enumerate(order)}
    result = nx.Graph()
    result.graph.update(graph.graph)
    result.add_nodes_from((mapping[old], graph.nodes[old]) for old in order)
    result.add_edges_from((mapping[u], mapping[v], data) for u, v, data in graph.edges(data=True))
    return result
