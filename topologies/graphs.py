"""Graph specifications and builders for the agent network.

A graph spec is a frozen pydantic model tagged by its ``kind`` field; :data:`GraphSpec` is
the discriminated union of all of them, so configs can hold any one. :func:`build_graph`
turns a spec into an undirected simple :class:`networkx.Graph` whose nodes are always the
integers ``0..n-1``; :func:`adjacency_csr` turns such a graph into sorted CSR arrays for the
vectorised parts of the simulator.

Invalid parameters raise :class:`TopologyError` (a :class:`ValueError`) whose message names
the parameter, the bad value and what is allowed, e.g.
``barabasi_albert.m = 5: must satisfy 1 <= m < n (n = 5)``. Checks that need only the
spec run when the spec is validated (pydantic wraps the message in its
``ValidationError``, itself a ``ValueError``); checks that need the built graph or the
file system run in :func:`build_graph`.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class TopologyError(ValueError):
    """Invalid topology parameter, input file or built graph."""


def _draw_seed(rng: np.random.Generator) -> int:
    """Draw an integer seed for a networkx generator from ``rng``."""
    return int(rng.integers(2**31 - 1))


class _GraphSpecBase(BaseModel):
    """Fields and helpers shared by every graph spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    require_connected: bool = False
    """If true, :func:`build_graph` fails when the built graph is disconnected."""

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


class CompleteGraph(_GraphSpecBase):
    """Complete graph on ``n`` nodes: every pair of agents is joined."""

    kind: Literal["complete"] = "complete"
    n: int

    @model_validator(mode="after")
    def _validate(self) -> CompleteGraph:
        self._check_n(self.n)
        return self


class RingLattice(_GraphSpecBase):
    """Ring of ``n`` nodes, each joined to its ``k`` nearest neighbours (``k/2`` per side).

    ``k`` must be even with ``2 <= k < n``; the graph has ``n*k/2`` edges.
    """

    kind: Literal["ring"] = "ring"
    n: int
    k: int

    @model_validator(mode="after")
    def _validate(self) -> RingLattice:
        self._check_n(self.n, 3)
        self._check_k(self.n, self.k)
        return self


class WattsStrogatz(_GraphSpecBase):
    """Watts-Strogatz small world: a ring lattice whose edges are rewired with prob. ``p``."""

    kind: Literal["watts_strogatz"] = "watts_strogatz"
    n: int
    k: int
    p: float

    @model_validator(mode="after")
    def _validate(self) -> WattsStrogatz:
        self._check_n(self.n, 3)
        self._check_k(self.n, self.k)
        self._check_probability("p", self.p)
        return self


class BarabasiAlbert(_GraphSpecBase):
    """Barabasi-Albert preferential attachment: each new node attaches ``m`` edges."""

    kind: Literal["barabasi_albert"] = "barabasi_albert"
    n: int
    m: int

    @model_validator(mode="after")
    def _validate(self) -> BarabasiAlbert:
        self._check_n(self.n, 2)
        if not 1 <= self.m < self.n:
            self._fail("m", self.m, f"must satisfy 1 <= m < n (n = {self.n})")
        return self


class ErdosRenyi(_GraphSpecBase):
    """Erdos-Renyi G(n, p): each pair is joined independently with probability ``p``."""

    kind: Literal["erdos_renyi"] = "erdos_renyi"
    n: int
    p: float

    @model_validator(mode="after")
    def _validate(self) -> ErdosRenyi:
        self._check_n(self.n)
        self._check_probability("p", self.p)
        return self


class StochasticBlockModel(_GraphSpecBase):
    """Stochastic block model with planted blocks of the given ``sizes``.

    Edge probabilities are given either as ``p_in`` (within a block) and ``p_out``
    (between blocks), or as an explicit symmetric ``p`` matrix with one row and column
    per block; exactly one of the two forms. Nodes ``0..sizes[0]-1`` form block 0, the
    next ``sizes[1]`` block 1, and so on; each node carries its block in the ``"block"``
    attribute.
    """

    kind: Literal["sbm"] = "sbm"
    sizes: list[int]
    p_in: float | None = None
    p_out: float | None = None
    p: list[list[float]] | None = None

    @model_validator(mode="after")
    def _validate(self) -> StochasticBlockModel:
        if not self.sizes or any(s < 1 for s in self.sizes):
            self._fail("sizes", self.sizes, "must be a non-empty list of integers >= 1")
        scalar_form = self.p_in is not None or self.p_out is not None
        if self.p is not None and scalar_form:
            self._fail("p", self.p, "give either p or (p_in, p_out), not both")
        if self.p is None:
            if self.p_in is None or self.p_out is None:
                self._fail(
                    "p_in/p_out",
                    (self.p_in, self.p_out),
                    "both p_in and p_out are required unless a p matrix is given",
                )
            self._check_probability("p_in", self.p_in)
            self._check_probability("p_out", self.p_out)
            return self
        blocks = len(self.sizes)
        if len(self.p) != blocks or any(len(row) != blocks for row in self.p):
            self._fail(
                "p",
                self.p,
                f"must be a {blocks}x{blocks} matrix (one row and column per block)",
            )
        for i, j in itertools.product(range(blocks), repeat=2):
            self._check_probability(f"p[{i}][{j}]", self.p[i][j])
            if abs(self.p[i][j] - self.p[j][i]) > 1e-12:
                self._fail(
                    f"p[{i}][{j}]",
                    self.p[i][j],
                    f"the matrix must be symmetric, but p[{j}][{i}] = {self.p[j][i]!r}",
                )
        return self

    def matrix(self) -> list[list[float]]:
        """Return the block probability matrix, expanding ``p_in``/``p_out`` if needed."""
        if self.p is not None:
            return [list(row) for row in self.p]
        blocks = len(self.sizes)
        return [[self.p_in if i == j else self.p_out for j in range(blocks)] for i in range(blocks)]


class Star(_GraphSpecBase):
    """Star with ``n`` nodes in total: node 0 is the hub, nodes ``1..n-1`` are leaves."""

    kind: Literal["star"] = "star"
    n: int

    @model_validator(mode="after")
    def _validate(self) -> Star:
        self._check_n(self.n)
        return self


class Grid2D(_GraphSpecBase):
    """``rows`` x ``cols`` square lattice (4-neighbourhood), optionally a torus.

    Node ``r*cols + c`` is the cell in row ``r``, column ``c``. With ``periodic`` the
    rows and columns wrap around (a dimension of length <= 2 gains no extra edges, since
    the graph is simple).
    """

    kind: Literal["grid"] = "grid"
    rows: int
    cols: int
    periodic: bool = False

    @model_validator(mode="after")
    def _validate(self) -> Grid2D:
        if self.rows < 1:
            self._fail("rows", self.rows, "must be an integer >= 1")
        if self.cols < 1:
            self._fail("cols", self.cols, "must be an integer >= 1")
        return self


class GraphFile(_GraphSpecBase):
    """Graph read from a file.

    ``edgelist``: one edge per line as two whitespace-separated node labels (further
    columns are ignored); blank lines and text after ``#`` are skipped. ``graphml``: any
    GraphML file networkx reads. Directed or multi-graphs become simple undirected
    graphs; self loops are dropped. Nodes are relabelled ``0..n-1`` in sorted label
    order (numeric order when every label is an integer) and keep their original label
    in the ``"label"`` node attribute.
    """

    kind: Literal["file"] = "file"
    path: Path
    format: Literal["edgelist", "graphml"] = "edgelist"


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
"""Any graph spec, selected by its ``kind`` field."""


def build_graph(spec: GraphSpec, rng: np.random.Generator) -> nx.Graph:
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
    match spec:
        case CompleteGraph():
            graph = nx.complete_graph(spec.n)
        case RingLattice():
            graph = nx.circulant_graph(spec.n, range(1, spec.k // 2 + 1))
        case WattsStrogatz():
            graph = nx.watts_strogatz_graph(spec.n, spec.k, spec.p, seed=_draw_seed(rng))
        case BarabasiAlbert():
            graph = nx.barabasi_albert_graph(spec.n, spec.m, seed=_draw_seed(rng))
        case ErdosRenyi():
            graph = nx.fast_gnp_random_graph(spec.n, spec.p, seed=_draw_seed(rng))
        case StochasticBlockModel():
            graph = nx.stochastic_block_model(
                spec.sizes, spec.matrix(), seed=_draw_seed(rng), sparse=True
            )
            graph.graph.pop("partition", None)
            for _, data in graph.nodes(data=True):
                data["block"] = int(data["block"])
        case Star():
            graph = nx.star_graph(spec.n - 1)
        case Grid2D():
            graph = nx.grid_2d_graph(spec.rows, spec.cols, periodic=spec.periodic)
        case GraphFile():
            graph = _read_graph_file(spec)
        case _:
            raise TopologyError(
                f"spec = {spec!r}: must be one of the graph specs of topologies.graphs"
            )
    graph = _canonical(graph)
    graph.graph["kind"] = spec.kind
    if spec.require_connected:
        components = nx.number_connected_components(graph) if len(graph) else 0
        if components != 1:
            raise TopologyError(
                f"{spec.kind}.require_connected = True: the built graph has {components} "
                "connected components, but must have exactly 1"
            )
    return graph


def _canonical(graph: nx.Graph) -> nx.Graph:
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


def _labels_as_ints(labels: list[str]) -> list[int] | None:
    """Return the labels as ints if every one is an integer literal, else None."""
    try:
        return [int(label) for label in labels]
    except ValueError:
        return None


def _read_graph_file(spec: GraphFile) -> nx.Graph:
    """Read a file graph and relabel it with its sorted labels (kept as ``"label"``)."""
    path = spec.path
    if not path.is_file():
        raise TopologyError(f"file.path = {str(path)!r}: no such file; must be an existing file")
    raw = _read_edgelist(path) if spec.format == "edgelist" else _read_graphml(path)
    if raw.number_of_nodes() == 0:
        raise TopologyError(
            f"file.path = {str(path)!r}: the {spec.format} file holds no nodes; "
            "must describe a graph with at least one node"
        )
    labels = [str(node) for node in raw]
    as_ints = _labels_as_ints(labels)
    originals: list[Any] = as_ints if as_ints is not None else labels
    key_of = dict(zip(raw, originals, strict=True))
    order = sorted(raw, key=key_of.__getitem__)
    mapping = {old: new for new, old in enumerate(order)}
    graph = nx.Graph()
    for old in order:
        graph.add_node(mapping[old], **raw.nodes[old])
        graph.nodes[mapping[old]]["label"] = key_of[old]
    graph.add_edges_from((mapping[u], mapping[v], data) for u, v, data in raw.edges(data=True))
    return graph


def _read_edgelist(path: Path) -> nx.Graph:
    """Parse a whitespace-separated edge list; raise on a line with fewer than two labels."""
    graph = nx.Graph()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise TopologyError(
                    f"file.path = {str(path)!r}: line {number} ({line.strip()!r}) is not an "
                    "edge; each line must hold two node labels 'u v'"
                )
            graph.add_edge(tokens[0], tokens[1])
    return graph


def _read_graphml(path: Path) -> nx.Graph:
    """Read a GraphML file as an undirected simple graph."""
    try:
        raw = nx.read_graphml(path)
    except (ET.ParseError, nx.NetworkXError, KeyError, ValueError) as error:
        raise TopologyError(
            f"file.path = {str(path)!r}: not a readable GraphML file ({error}); "
            "must be valid GraphML"
        ) from error
    return nx.Graph(raw)


def adjacency_csr(graph: nx.Graph) -> tuple[np.ndarray, np.ndarray]:
    """Return the graph's adjacency as CSR arrays.

    Args:
        graph: Undirected graph whose nodes are the integers ``0..n-1`` (as built by
            :func:`build_graph`). Self loops are ignored.

    Returns:
        ``(indptr, indices)``: ``indptr`` is int64 of length ``n+1`` and ``indices``
        int32; the neighbours of node ``i`` are ``indices[indptr[i]:indptr[i+1]]``,
        sorted ascending.

    Raises:
        TopologyError: The nodes are not exactly ``0..n-1``.
    """
    n = graph.number_of_nodes()
    try:
        nodes = np.fromiter((u for u, _ in graph.adjacency()), dtype=np.int64, count=n)
        canonical = np.array_equal(np.sort(nodes), np.arange(n, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):
        canonical = False
    if not canonical:
        raise TopologyError(
            f"graph nodes = {list(graph)[:5]!r}...: must be the integers 0..n-1 (n = {n}); "
            "build the graph with build_graph"
        )
    degree = np.fromiter((len(nbrs) for _, nbrs in graph.adjacency()), dtype=np.int64, count=n)
    dst = np.fromiter(
        itertools.chain.from_iterable(nbrs for _, nbrs in graph.adjacency()),
        dtype=np.int64,
        count=int(degree.sum()),
    )
    src = np.repeat(nodes, degree)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = src * n + dst
    key.sort(kind="stable")  # grouped by src already: timsort is near-linear here
    indices = (key % n).astype(np.int32) if n else np.zeros(0, dtype=np.int32)
    counts = np.bincount(src, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, indices
