"""Cascade metrics on hand-built trees with known answers."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_tables import TREE_KNOWN, agents_table, edges_table, tree_tables

from sim.analysis.cascades import cascade_summary, cascades, structural_virality, tree_metrics
from sim.analysis.infections import infection_times
from sim.tables import table_spec

MEMORIES = table_spec("memories").schema()


def test_structural_virality_of_chain_star_and_tree():
    chain = [(i, i + 1) for i in range(4)]  # 5 nodes
    assert structural_virality(chain) == pytest.approx((5 + 1) / 3)
    star = [(0, i) for i in range(1, 6)]  # 6 nodes
    assert structural_virality(star) == pytest.approx(2 * 5 / 6)
    tree = [(p, c) for c, (p, _, _) in TREE_KNOWN.items()]
    # Wiener index 4*2 + 1*5 + 2*4 + 1*5 + 1*5 = 31 over 15 pairs.
    assert structural_virality(tree) == pytest.approx(31 / 15)
    assert structural_virality([]) is None


def test_tree_metrics_rejects_two_roots_and_cycles():
    with pytest.raises(ValueError, match="exactly one root"):
        tree_metrics({0: None, 1: None})
    with pytest.raises(ValueError, match="cycle"):
        tree_metrics({0: None, 1: 2, 2: 1})


def test_cascades_of_known_tree():
    agents, edges = tree_tables(TREE_KNOWN, {0: 0})
    per = cascades(edges, agents)
    assert per.to_dicts() == [
        {
            "meme_id": "m",
            "root": 0,
            "root_origin": "seeded",
            "size": 6,
            "agents": 6,
            "depth": 3,
            "max_breadth": 2,
            "structural_virality": pytest.approx(31 / 15),
        }
    ]
    summary = cascade_summary(edges, agents).row(0, named=True)
    assert summary["n_cascades"] == 1
    assert summary["n_infected"] == 6
    assert summary["depth"] == 3
    assert summary["max_breadth"] == 2
    assert summary["structural_virality"] == pytest.approx(31 / 15)


def test_chain_and_star_in_one_run_are_two_cascades():
    chain = {i + 1: (i, i, i + 1) for i in range(4)}  # 0 -> 1 -> 2 -> 3 -> 4
    star = {10 + i: (10, 1, 1) for i in range(1, 6)}  # 10 -> 11..15
    agents, edges = tree_tables({**chain, **star}, {0: 0, 10: 0})
    per = cascades(edges, agents).sort("root")
    assert per["root"].to_list() == [0, 10]
    assert per["depth"].to_list() == [4, 1]
    assert per["max_breadth"].to_list() == [1, 5]
    assert per["structural_virality"].to_list() == pytest.approx([2.0, 10 / 6])
    summary = cascade_summary(edges, agents).row(0, named=True)
    assert summary["n_cascades"] == 2
    assert summary["depth"] == 4
    assert summary["max_breadth"] == 6  # generation 1: agent 1 and agents 11..15
    assert summary["structural_virality"] == pytest.approx(10 / 6)  # the largest cascade
    assert summary["mean_structural_virality"] == pytest.approx((2.0 + 10 / 6) / 2)


def test_environment_root_and_spontaneous_carrier():
    agents = agents_table(
        [
            (1, 1, "m", "carrier", True),
            (1, 2, "m", "carrier", True),
            (2, 7, "m", "carrier", True),  # no infection edge: spontaneous
        ]
    )
    edges = edges_table([("m", 1, -1, 1, 99, 101, 1, True), ("m", 1, -1, 2, 99, 102, 1, True)])
    memories = pl.DataFrame(
        {"entry_id": [99], "author_id": [-1], "step": [0], "memes": [["m"]]},
        schema={c: MEMORIES[c] for c in ("entry_id", "author_id", "step", "memes")},
    )
    nodes = infection_times(edges, agents, memories)
    assert nodes.select("agent_id", "step", "origin", "infectious_from").rows() == [
        (-1, 0, "environment", 0),
        (1, 1, "transmission", 2),
        (2, 1, "transmission", 2),
        (7, 2, "spontaneous", 3),
    ]
    per = cascades(edges, agents, memories).sort("root")
    assert per.select("root", "root_origin", "size", "agents").rows() == [
        (-1, "environment", 3, 2),
        (7, "spontaneous", 1, 1),
    ]
    assert per["structural_virality"].to_list()[0] == pytest.approx(4 / 3)
    assert per["structural_virality"].to_list()[1] is None
