from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

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

ADAPTER = TypeAdapter(GraphSpec)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def edge_set(graph: nx.Graph) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in graph.edges()}


def assert_canonical(graph: nx.Graph, n: int) -> None:
    assert list(graph.nodes) == list(range(n))
    assert type(graph) is nx.Graph
    assert nx.number_of_selfloops(graph) == 0


@pytest.mark.parametrize(
    ("spec", "n", "m"),
    [
        (CompleteGraph(n=5), 5, 10),
        (CompleteGraph(n=1), 1, 0),
        (RingLattice(n=10, k=4), 10, 20),
        (Star(n=6), 6, 5),
        (Grid2D(rows=3, cols=4), 12, 17),
        (Grid2D(rows=3, cols=4, periodic=True), 12, 24),
        (Grid2D(rows=1, cols=1), 1, 0),
        (BarabasiAlbert(n=10, m=2), 10, 16),
        (WattsStrogatz(n=20, k=4, p=0.3), 20, 40),
        (ErdosRenyi(n=8, p=0.0), 8, 0),
        (ErdosRenyi(n=8, p=1.0), 8, 28),
        (StochasticBlockModel(sizes=[3, 4], p_in=1.0, p_out=0.0), 7, 9),
    ],
)
def test_builder_counts(spec, n, m):
    graph = build_graph(spec, rng())
    assert_canonical(graph, n)
    assert graph.number_of_edges() == m
    assert graph.graph["kind"] == spec.kind


def test_ring_neighbours_and_star_hub():
    ring = build_graph(RingLattice(n=10, k=4), rng())
    assert sorted(ring[0]) == [1, 2, 8, 9]
    assert {d for _, d in ring.degree()} == {4}
    star = build_graph(Star(n=6), rng())
    assert sorted(star[0]) == [1, 2, 3, 4, 5]
    assert all(star.degree(i) == 1 for i in range(1, 6))


def test_grid_is_row_major():
    grid = build_graph(Grid2D(rows=3, cols=4), rng())
    # node r*cols + c: (0,0) joins (0,1) and (1,0); (1,1) has four neighbours.
    assert sorted(grid[0]) == [1, 4]
    assert sorted(grid[5]) == [1, 4, 6, 9]
    torus = build_graph(Grid2D(rows=3, cols=4, periodic=True), rng())
    assert sorted(torus[0]) == [1, 3, 4, 8]
    assert {d for _, d in torus.degree()} == {4}


@pytest.mark.parametrize(
    "spec",
    [
        BarabasiAlbert(n=50, m=2),
        WattsStrogatz(n=50, k=4, p=0.2),
        ErdosRenyi(n=50, p=0.1),
        StochasticBlockModel(sizes=[25, 25], p_in=0.3, p_out=0.05),
    ],
)
def test_determinism(spec):
    first = build_graph(spec, rng(7))
    assert edge_set(first) == edge_set(build_graph(spec, rng(7)))
    assert edge_set(first) != edge_set(build_graph(spec, rng(8)))


def test_builder_uses_only_the_given_generator():
    generator = rng(3)
    before = generator.bit_generator.state
    build_graph(ErdosRenyi(n=30, p=0.2), generator)
    assert generator.bit_generator.state != before
    # Deterministic builders draw nothing.
    generator = rng(3)
    build_graph(RingLattice(n=10, k=2), generator)
    assert generator.bit_generator.state == rng(3).bit_generator.state


def test_sbm_blocks_and_density():
    spec = StochasticBlockModel(sizes=[100, 100], p_in=0.3, p_out=0.02)
    graph = build_graph(spec, rng(1))
    blocks = [graph.nodes[i]["block"] for i in range(200)]
    assert blocks == [0] * 100 + [1] * 100
    assert all(type(b) is int for b in blocks)
    within = sum(1 for u, v in graph.edges() if blocks[u] == blocks[v])
    between = graph.number_of_edges() - within
    # Expected 2 * C(100, 2) * 0.3 = 2970 within (sd ~46), 100 * 100 * 0.02 = 200 between
    # (sd ~14); tolerances are +-10% and +-30%.
    assert abs(within - 2970) <= 297
    assert abs(between - 200) <= 60


def test_sbm_matrix_form_matches_scalar_form():
    scalar = StochasticBlockModel(sizes=[10, 12], p_in=0.5, p_out=0.1)
    matrix = StochasticBlockModel(sizes=[10, 12], p=[[0.5, 0.1], [0.1, 0.5]])
    assert matrix.matrix() == scalar.matrix()
    assert edge_set(build_graph(scalar, rng(2))) == edge_set(build_graph(matrix, rng(2)))


def test_discriminated_union():
    spec = ADAPTER.validate_python({"kind": "barabasi_albert", "n": 20, "m": 2})
    assert isinstance(spec, BarabasiAlbert)
    spec = ADAPTER.validate_python({"kind": "grid", "rows": 2, "cols": 3})
    assert spec == Grid2D(rows=2, cols=3, periodic=False)
    with pytest.raises(ValidationError, match="kind"):
        ADAPTER.validate_python({"kind": "hypercube", "n": 4})
    with pytest.raises(ValidationError, match="extra"):
        ADAPTER.validate_python({"kind": "star", "n": 4, "hub": 1})


def test_edgelist_file(tmp_path: Path):
    path = tmp_path / "g.txt"
    path.write_text("# a comment\nbob carol\n\ncarol dave 0.5\nalice bob  # trailing\n")
    graph = build_graph(GraphFile(path=path), rng())
    assert_canonical(graph, 4)
    labels = [graph.nodes[i]["label"] for i in range(4)]
    assert labels == ["alice", "bob", "carol", "dave"]
    assert edge_set(graph) == {(0, 1), (1, 2), (2, 3)}


def test_edgelist_integer_labels_sort_numerically(tmp_path: Path):
    path = tmp_path / "g.edges"
    path.write_text("10 2\n2 3\n3 3\n")
    graph = build_graph(GraphFile(path=path, format="edgelist"), rng())
    assert [graph.nodes[i]["label"] for i in range(3)] == [2, 3, 10]
    assert edge_set(graph) == {(0, 2), (0, 1)}  # 2-10, 2-3; the loop 3-3 is dropped


def test_graphml_file(tmp_path: Path):
    source = nx.Graph()
    source.add_edges_from([("x", "y"), ("y", "z")])
    source.add_node("w", colour="red")
    path = tmp_path / "g.graphml"
    nx.write_graphml(source, path)
    graph = build_graph(GraphFile(path=path, format="graphml"), rng())
    assert_canonical(graph, 4)
    assert [graph.nodes[i]["label"] for i in range(4)] == ["w", "x", "y", "z"]
    assert graph.nodes[0]["colour"] == "red"
    assert edge_set(graph) == {(1, 2), (2, 3)}


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: CompleteGraph(n=0), r"complete\.n = 0: must be an integer >= 1"),
        (lambda: Star(n=0), r"star\.n = 0: must be an integer >= 1"),
        (lambda: BarabasiAlbert(n=5, m=5), r"barabasi_albert\.m = 5: must satisfy 1 <= m < n"),
        (lambda: BarabasiAlbert(n=5, m=0), r"barabasi_albert\.m = 0: must satisfy 1 <= m < n"),
        (lambda: BarabasiAlbert(n=1, m=1), r"barabasi_albert\.n = 1: must be an integer >= 2"),
        (lambda: ErdosRenyi(n=5, p=1.5), r"erdos_renyi\.p = 1\.5: must be a probability in"),
        (lambda: ErdosRenyi(n=5, p=-0.1), r"erdos_renyi\.p = -0\.1: must be a probability"),
        (lambda: WattsStrogatz(n=10, k=4, p=2.0), r"watts_strogatz\.p = 2\.0: must be a prob"),
        (lambda: RingLattice(n=10, k=3), r"ring\.k = 3: must be an even integer with 2 <= k < n"),
        (lambda: RingLattice(n=10, k=10), r"ring\.k = 10: must be an even integer"),
        (lambda: WattsStrogatz(n=10, k=5, p=0.1), r"watts_strogatz\.k = 5: must be an even"),
        (lambda: RingLattice(n=2, k=2), r"ring\.n = 2: must be an integer >= 3"),
        (lambda: Grid2D(rows=0, cols=3), r"grid\.rows = 0: must be an integer >= 1"),
        (lambda: Grid2D(rows=2, cols=-1), r"grid\.cols = -1: must be an integer >= 1"),
        (
            lambda: StochasticBlockModel(sizes=[], p_in=0.5, p_out=0.1),
            r"sbm\.sizes = \[\]: must be a non-empty list of integers >= 1",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 0], p_in=0.5, p_out=0.1),
            r"sbm\.sizes = \[3, 0\]: must be a non-empty list",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 3], p_in=1.2, p_out=0.1),
            r"sbm\.p_in = 1\.2: must be a probability in \[0, 1\]",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 3], p_in=0.5),
            r"sbm\.p_in/p_out = \(0\.5, None\): both p_in and p_out are required",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 3], p_in=0.5, p_out=0.1, p=[[1, 0], [0, 1]]),
            r"sbm\.p = .*: give either p or \(p_in, p_out\), not both",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 3], p=[[0.5, 0.1]]),
            r"sbm\.p = \[\[0\.5, 0\.1\]\]: must be a 2x2 matrix",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 3], p=[[0.5, 0.1], [0.2, 0.5]]),
            r"sbm\.p\[0\]\[1\] = 0\.1: the matrix must be symmetric, but p\[1\]\[0\] = 0\.2",
        ),
        (
            lambda: StochasticBlockModel(sizes=[3, 3], p=[[0.5, -1.0], [-1.0, 0.5]]),
            r"sbm\.p\[0\]\[1\] = -1\.0: must be a probability",
        ),
    ],
)
def test_invalid_specs(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_topology_error_is_a_value_error():
    assert issubclass(TopologyError, ValueError)


def test_missing_file(tmp_path: Path):
    with pytest.raises(TopologyError, match=r"file\.path = '.*nope\.txt': no such file"):
        build_graph(GraphFile(path=tmp_path / "nope.txt"), rng())


def test_malformed_edgelist(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("0 1\nlonely\n")
    with pytest.raises(TopologyError, match=r"line 2 \('lonely'\) is not an edge"):
        build_graph(GraphFile(path=path), rng())


def test_malformed_graphml(tmp_path: Path):
    path = tmp_path / "bad.graphml"
    path.write_text("<graphml><graph><node id='a'></graph>")
    with pytest.raises(TopologyError, match=r"not a readable GraphML file"):
        build_graph(GraphFile(path=path, format="graphml"), rng())


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.txt"
    path.write_text("# nothing here\n\n")
    with pytest.raises(TopologyError, match=r"holds no nodes"):
        build_graph(GraphFile(path=path), rng())


def test_require_connected():
    spec = ErdosRenyi(n=10, p=0.0, require_connected=True)
    with pytest.raises(
        TopologyError, match=r"erdos_renyi\.require_connected = True: .* 10 connected components"
    ):
        build_graph(spec, rng())
    graph = build_graph(RingLattice(n=10, k=2, require_connected=True), rng())
    assert nx.is_connected(graph)


def test_adjacency_csr_path():
    indptr, indices = adjacency_csr(nx.path_graph(4))
    assert indptr.dtype == np.int64
    assert indices.dtype == np.int32
    assert indptr.tolist() == [0, 1, 3, 5, 6]
    assert indices.tolist() == [1, 0, 2, 1, 3, 2]


def test_adjacency_csr_matches_networkx():
    graph = build_graph(ErdosRenyi(n=200, p=0.05), rng(4))
    # Insert edges in scrambled order so neighbour dicts are unsorted.
    scrambled = nx.Graph()
    scrambled.add_nodes_from(range(200)[::-1])
    edges = list(graph.edges())
    order = rng(5).permutation(len(edges))
    scrambled.add_edges_from(edges[i] for i in order)
    indptr, indices = adjacency_csr(scrambled)
    assert indptr.shape == (201,)
    for node in range(200):
        assert indices[indptr[node] : indptr[node + 1]].tolist() == sorted(graph[node])


def test_adjacency_csr_isolated_nodes_and_loops():
    graph = nx.Graph()
    graph.add_nodes_from(range(3))
    graph.add_edge(1, 1)
    indptr, indices = adjacency_csr(graph)
    assert indptr.tolist() == [0, 0, 0, 0]
    assert indices.tolist() == []


def test_adjacency_csr_rejects_non_integer_nodes():
    with pytest.raises(TopologyError, match=r"must be the integers 0\.\.n-1"):
        adjacency_csr(nx.Graph([("a", "b")]))
    with pytest.raises(TopologyError, match=r"must be the integers 0\.\.n-1 \(n = 2\)"):
        adjacency_csr(nx.Graph([(0, 5)]))
