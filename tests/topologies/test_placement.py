import networkx as nx
import numpy as np
import pytest

from topologies.graphs import Star, TopologyError, build_graph
from topologies.placements import select_agents


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def star6() -> nx.Graph:
    return build_graph(Star(n=6), rng())


@pytest.mark.parametrize(
    ("graph", "strategy", "count", "expected"),
    [
        (star6(), "hub", 1, [0]),
        (star6(), "hub", 3, [0, 1, 2]),
        (star6(), "periphery", 2, [1, 2]),
        (star6(), "bridge", 1, [0]),
        (nx.path_graph(5), "hub", 2, [1, 2]),
        (nx.path_graph(5), "periphery", 2, [0, 4]),
        (nx.path_graph(5), "periphery", 3, [0, 1, 4]),
        (nx.path_graph(5), "bridge", 1, [2]),
        (nx.path_graph(5), "bridge", 3, [1, 2, 3]),
        (nx.path_graph(4), "bridge", 1, [1]),  # 1 and 2 tie: lowest id wins
        (nx.complete_graph(5), "hub", 2, [0, 1]),
    ],
)
def test_known_answers(graph, strategy, count, expected):
    chosen = select_agents(graph, strategy, count, rng())
    assert chosen.dtype == np.int32
    assert chosen.tolist() == expected


def test_random_is_distinct_sorted_and_seeded():
    graph = nx.path_graph(50)
    chosen = select_agents(graph, "random", 10, rng(1))
    assert chosen.dtype == np.int32
    assert len(set(chosen.tolist())) == 10
    assert chosen.tolist() == sorted(chosen.tolist())
    assert chosen.tolist() == select_agents(graph, "random", 10, rng(1)).tolist()
    assert chosen.tolist() != select_agents(graph, "random", 10, rng(2)).tolist()
    assert select_agents(graph, "random", 50, rng(3)).tolist() == list(range(50))


def test_bridge_on_large_graph_samples_deterministically():
    # Above 2000 nodes betweenness is sampled from the generator. Two stars of 1200
    # leaves joined through node 2400: the hubs and the joint are the top bridges.
    graph = nx.Graph()
    graph.add_edges_from((0, i) for i in range(1, 1200))
    graph.add_edges_from((1200, i) for i in range(1201, 2400))
    graph.add_edges_from([(0, 2400), (2400, 1200)])
    first = select_agents(graph, "bridge", 3, rng(5))
    assert first.tolist() == [0, 1200, 2400]
    assert first.tolist() == select_agents(graph, "bridge", 3, rng(5)).tolist()


@pytest.mark.parametrize("count", [0, -1, 7])
def test_count_out_of_range(count):
    with pytest.raises(
        TopologyError, match=rf"placement\.count = {count}: must be an integer with 1 <= count"
    ):
        select_agents(star6(), "hub", count, rng())


def test_unknown_strategy():
    with pytest.raises(
        TopologyError, match=r"placement\.strategy = 'central': must be one of 'random', 'hub'"
    ):
        select_agents(star6(), "central", 1, rng())
