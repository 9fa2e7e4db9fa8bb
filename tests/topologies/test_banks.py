import networkx as nx
import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from sim.tables import table_spec
from topologies.banks import (
    BankKind,
    BankLayoutSpec,
    Banks,
    CommunityBanks,
    EdgeBanks,
    Eviction,
    GlobalBank,
    LessonsBank,
    NeighbourhoodBanks,
    PrivateBanks,
    build_banks,
)
from topologies.graphs import StochasticBlockModel, TopologyError, build_graph


def path4() -> nx.Graph:
    return nx.path_graph(4)


def build(spec: BankLayoutSpec, graph: nx.Graph | None = None, seed: int = 0) -> Banks:
    return build_banks(path4() if graph is None else graph, spec, np.random.default_rng(seed))


def reads(banks: Banks) -> list[list[int]]:
    return [banks.readable(a).tolist() for a in range(banks.n_agents)]


def writes(banks: Banks) -> list[list[int]]:
    return [banks.writable(a).tolist() for a in range(banks.n_agents)]


def test_private_default():
    banks = build(BankLayoutSpec())
    assert banks.n_banks == 4
    assert banks.n_agents == 4
    assert banks.names == ("private:0", "private:1", "private:2", "private:3")
    assert banks.kind.tolist() == [BankKind.PRIVATE] * 4
    assert banks.owner.tolist() == [0, 1, 2, 3]
    assert banks.capacity.tolist() == [32] * 4
    assert banks.eviction.tolist() == [0] * 4
    assert reads(banks) == [[0], [1], [2], [3]]
    assert writes(banks) == [[0], [1], [2], [3]]


def test_column_dtypes_and_read_only():
    banks = build(BankLayoutSpec(global_=GlobalBank()))
    assert banks.kind.dtype == np.int8
    assert banks.owner.dtype == np.int32
    assert banks.capacity.dtype == np.int32
    assert banks.eviction.dtype == np.int8
    assert banks.read_indptr.dtype == np.int64
    assert banks.read_banks.dtype == np.int32
    assert banks.write_indptr.dtype == np.int64
    assert banks.write_banks.dtype == np.int32
    with pytest.raises(ValueError, match="read-only"):
        banks.capacity[0] = 1


def test_neighbourhood_owner_writes():
    banks = build(BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks()))
    assert banks.names == tuple(f"neighbourhood:{i}" for i in range(4))
    assert banks.owner.tolist() == [0, 1, 2, 3]
    assert reads(banks) == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]]
    assert writes(banks) == [[0], [1], [2], [3]]


def test_neighbourhood_members_write():
    spec = BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(writers="members"))
    banks = build(spec)
    assert reads(banks) == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]]
    assert writes(banks) == reads(banks)


def test_write_allowed_matches_can_write_for_every_pair():
    spec = BankLayoutSpec(neighbourhood=NeighbourhoodBanks(writers="members"))
    banks = build(spec)
    agents = np.repeat(np.arange(4), banks.n_banks + 2)
    bank_ids = np.tile(np.arange(-1, banks.n_banks + 1), 4)  # includes -1 and n_banks
    expected = [
        0 <= b < banks.n_banks and banks.can_write(int(a), int(b))
        for a, b in zip(agents, bank_ids, strict=True)
    ]
    assert banks.write_allowed(agents, bank_ids).tolist() == expected
    assert sum(expected) == sum(len(w) for w in writes(banks))


def test_community_planted():
    graph = path4()
    nx.set_node_attributes(graph, {0: 5, 1: 5, 2: 7, 3: 7}, "block")
    banks = build(BankLayoutSpec(private=None, community=CommunityBanks(method="planted")), graph)
    assert banks.names == ("community:0", "community:1")
    assert banks.owner.tolist() == [-1, -1]
    assert banks.capacity.tolist() == [64, 64]
    assert reads(banks) == [[0], [0], [1], [1]]
    assert writes(banks) == [[0], [0], [1], [1]]


def test_community_planted_on_sbm_graph():
    graph = build_graph(
        StochasticBlockModel(sizes=[3, 2], p_in=1.0, p_out=0.0), np.random.default_rng(0)
    )
    spec = BankLayoutSpec(private=None, community=CommunityBanks(method="planted"))
    assert reads(build(spec, graph)) == [[0], [0], [0], [1], [1]]


def test_community_planted_needs_blocks():
    spec = BankLayoutSpec(community=CommunityBanks(method="planted"))
    with pytest.raises(TopologyError, match=r"community\.method = 'planted': node 0 has no"):
        build(spec)


@pytest.mark.parametrize("method", ["louvain", "greedy_modularity"])
def test_community_detected(method):
    graph = nx.barbell_graph(4, 0)  # two 4-cliques (0-3, 4-7) joined by the edge 3-4
    spec = BankLayoutSpec(private=None, community=CommunityBanks(method=method))
    banks = build(spec, graph)
    assert banks.names == ("community:0", "community:1")
    assert reads(banks) == [[0]] * 4 + [[1]] * 4
    assert writes(banks) == reads(banks)


def test_louvain_is_deterministic_given_seed():
    graph = nx.karate_club_graph()
    spec = BankLayoutSpec(private=None, community=CommunityBanks())
    first = build(spec, graph, seed=3)
    again = build(spec, graph, seed=3)
    assert first.read_banks.tolist() == again.read_banks.tolist()
    assert first.n_banks >= 2


def test_edge_banks():
    banks = build(BankLayoutSpec(private=None, edge=EdgeBanks()))
    assert banks.names == ("edge:0-1", "edge:1-2", "edge:2-3")
    assert banks.kind.tolist() == [BankKind.EDGE] * 3
    assert banks.capacity.tolist() == [16] * 3
    assert reads(banks) == [[0], [0, 1], [1, 2], [2]]
    assert writes(banks) == reads(banks)


def test_global_bank():
    banks = build(BankLayoutSpec(private=None, global_=GlobalBank(eviction=Eviction.LRU)))
    assert banks.names == ("global",)
    assert banks.capacity.tolist() == [256]
    assert banks.eviction.tolist() == [1]
    assert reads(banks) == [[0]] * 4
    assert writes(banks) == [[0]] * 4


def test_lessons_bank_is_read_by_every_agent_and_written_by_none():
    spec = BankLayoutSpec.model_validate({"private": {}, "global": {}, "lessons": {"capacity": 5}})
    assert spec.lessons == LessonsBank(capacity=5)
    assert spec.kinds == [BankKind.PRIVATE, BankKind.GLOBAL, BankKind.LESSONS]
    banks = build(spec)
    assert banks.names == ("private:0", "private:1", "private:2", "private:3", "global", "lessons")
    assert banks.kind.tolist() == [0] * 4 + [4, 5]
    assert banks.capacity.tolist() == [32] * 4 + [256, 5]
    assert banks.shared.tolist() == [False] * 4 + [True, True]
    assert reads(banks) == [[a, 4, 5] for a in range(4)]
    assert writes(banks) == [[a, 4] for a in range(4)]
    assert banks.write_allowed(np.arange(4), np.full(4, 5)).tolist() == [False] * 4
    assert banks.banks_table().row(5) == (5, "lessons", "lessons", -1, 5, "fifo")
    members = banks.members_table().filter(pl.col("bank_name") == "lessons")
    assert members["can_read"].all() and not members["can_write"].any()
    assert [kind.agents_write for kind in BankKind] == [True] * 5 + [False]
    assert "agents cannot write it" in BankKind.LESSONS.audience
    with pytest.raises(ValidationError, match=r"no layer set; .*cannot write the lessons"):
        BankLayoutSpec.model_validate({"private": None, "lessons": {}})


def combined() -> Banks:
    graph = path4()
    nx.set_node_attributes(graph, {0: 0, 1: 0, 2: 1, 3: 1}, "block")
    spec = BankLayoutSpec.model_validate(
        {
            "private": {"capacity": 8, "eviction": "lru"},
            "neighbourhood": {},
            "community": {"method": "planted", "capacity": 10},
            "edge": {"capacity": 4},
            "global": {},
        }
    )
    return build(spec, graph)


def test_combined_layers_order_and_columns():
    banks = combined()
    assert banks.names == (
        "private:0", "private:1", "private:2", "private:3",
        "neighbourhood:0", "neighbourhood:1", "neighbourhood:2", "neighbourhood:3",
        "community:0", "community:1",
        "edge:0-1", "edge:1-2", "edge:2-3",
        "global",
    )  # fmt: skip
    assert banks.kind.tolist() == [0] * 4 + [1] * 4 + [2] * 2 + [3] * 3 + [4]
    assert banks.owner.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, -1, -1, -1, -1, -1, -1]
    assert banks.capacity.tolist() == [8] * 4 + [32] * 4 + [10] * 2 + [4] * 3 + [256]
    assert banks.eviction.tolist() == [1] * 4 + [0] * 10
    assert reads(banks) == [
        [0, 4, 5, 8, 10, 13],
        [1, 4, 5, 6, 8, 10, 11, 13],
        [2, 5, 6, 7, 9, 11, 12, 13],
        [3, 6, 7, 9, 12, 13],
    ]
    assert writes(banks) == [
        [0, 4, 8, 10, 13],
        [1, 5, 8, 10, 11, 13],
        [2, 6, 9, 11, 12, 13],
        [3, 7, 9, 12, 13],
    ]
    assert banks.read_indptr.tolist() == [0, 6, 14, 22, 28]


def test_access_queries_and_bank_id():
    banks = combined()
    assert banks.can_read(1, banks.bank_id("neighbourhood:2"))
    assert not banks.can_write(1, banks.bank_id("neighbourhood:2"))
    assert banks.can_write(2, banks.bank_id("neighbourhood:2"))
    assert not banks.can_read(0, banks.bank_id("edge:2-3"))
    assert banks.can_read(3, banks.bank_id("global"))
    assert banks.bank_id("edge:1-2") == 11
    with pytest.raises(KeyError, match=r"bank name = 'edge:0-3': no such bank; .*'private:0'"):
        banks.bank_id("edge:0-3")
    with pytest.raises(IndexError, match=r"agent = 4: must satisfy 0 <= agent < 4"):
        banks.readable(4)
    with pytest.raises(IndexError, match=r"agent = -1"):
        banks.can_write(-1, 0)


def test_members_table():
    table = combined().members_table()
    assert table.schema == table_spec("bank_members").schema()
    # private 4 + neighbourhood (4 owners + 6 neighbour readers) + community 4 + edge 6 + global 4
    assert table.height == 28
    assert table.filter(pl.col("can_read") & ~pl.col("can_write")).height == 6
    assert table.filter(~pl.col("can_read")).height == 0
    rows = table.filter(pl.col("bank_name") == "neighbourhood:1").sort("agent_id")
    assert rows["agent_id"].to_list() == [0, 1, 2]
    assert rows["can_write"].to_list() == [False, True, False]
    assert rows["kind"].to_list() == ["neighbourhood"] * 3
    assert rows["bank_id"].to_list() == [5, 5, 5]
    counts = table.group_by("kind").len().sort("kind")
    assert dict(zip(counts["kind"], counts["len"], strict=True)) == {
        "community": 4,
        "edge": 6,
        "global": 4,
        "neighbourhood": 10,
        "private": 4,
    }
    assert table["bank_id"].to_list() == sorted(table["bank_id"].to_list())


def test_banks_table():
    table = combined().banks_table()
    assert table.schema == table_spec("banks").schema()
    assert table.height == 14
    assert table.row(0) == (0, "private:0", "private", 0, 8, "lru")
    assert table.row(13) == (13, "global", "global", -1, 256, "fifo")
    assert table.row(10) == (10, "edge:0-1", "edge", -1, 4, "fifo")


def test_layout_spec_validation():
    with pytest.raises(ValidationError, match=r"no layer set; set at least one of private"):
        BankLayoutSpec(private=None)
    with pytest.raises(
        ValidationError, match=r"capacity\n.*greater than or equal to 1.*input_value=0"
    ):
        PrivateBanks(capacity=0)
    with pytest.raises(ValidationError, match=r"writers\n.*'owner' or 'members'"):
        NeighbourhoodBanks(writers="everyone")
    with pytest.raises(ValidationError, match=r"eviction\n.*'fifo' or 'lru'"):
        EdgeBanks(eviction="random")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        BankLayoutSpec.model_validate({"privat": {}})
    assert BankLayoutSpec.model_validate({"global": {}}).global_ == GlobalBank()
    assert BankLayoutSpec(global_=GlobalBank()).global_ == GlobalBank()


def test_bank_kind_and_eviction_enums():
    assert [k.value for k in BankKind] == [0, 1, 2, 3, 4, 5]
    assert not BankKind.PRIVATE.shared
    assert all(k.shared for k in BankKind if k is not BankKind.PRIVATE)
    assert Eviction("lru") is Eviction.LRU
    assert [e.code for e in Eviction] == [0, 1]


def test_isolated_agent_gets_only_own_and_global_banks():
    graph = nx.Graph()
    graph.add_nodes_from(range(3))
    graph.add_edge(0, 1)
    banks = build(BankLayoutSpec(neighbourhood=NeighbourhoodBanks(), global_=GlobalBank()), graph)
    assert banks.readable(2).tolist() == [2, 5, 6]
