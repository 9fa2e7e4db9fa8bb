"""Mutation: distances with known values, hops of entries, and drift on a real run."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from analysis_tables import tree_tables

from sim.analysis.mutation import (
    drift_by_hop,
    entry_drift,
    entry_hops,
    levenshtein,
    normalized_edit_distance,
    token_jaccard_distance,
)


def _naive_levenshtein(a: str, b: str) -> int:
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return d[-1][-1]


def test_distances_known_values():
    assert levenshtein("kitten", "sitting") == 3
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("abc", "") == 1.0
    assert token_jaccard_distance("a b c", "B C d") == pytest.approx(0.5)
    assert token_jaccard_distance("", "...") == 0.0
    assert token_jaccard_distance("same words", "Same, words!") == 0.0


def test_levenshtein_matches_naive_dynamic_programme():
    rng = np.random.default_rng(7)
    for _ in range(200):
        a = "".join(rng.choice(list("abcé "), size=int(rng.integers(0, 12))))
        b = "".join(rng.choice(list("abcé "), size=int(rng.integers(0, 12))))
        assert levenshtein(a, b) == _naive_levenshtein(a, b), (a, b)


def test_entry_hops_and_drift_by_hop():
    # 0 seeded at step 0 (entry 100, no parents); 0 -> 1 (entry 101, hop 1) -> 2 (entry
    # 102, hop 2); agent 0 re-writes at step 3 (entry 103) with no foreign source: hop 0.
    agents, edges = tree_tables({1: (0, 1, 1), 2: (1, 2, 2)}, {0: 0})
    memories = pl.DataFrame(
        {
            "entry_id": [100, 101, 102, 103, 104],
            "author_id": [0, 1, 2, 0, 5],
            "step": [0, 1, 2, 3, 3],
            "text": ["spread this now", "spread this now", "spread now", "spread this now!", "x"],
            "memes": [["m"], ["m"], ["m"], ["m"], []],
            "parents": [[], [100], [101], [102], [100]],
        },
        schema_overrides={"parents": pl.List(pl.Int64), "memes": pl.List(pl.String)},
    )
    hops = entry_hops(memories, edges, agents)
    assert hops.select("entry_id", "hop").rows() == [(100, 0), (101, 1), (102, 2), (103, 0)]
    drift = entry_drift(memories, edges, agents)
    assert drift["edit_distance"].to_list() == pytest.approx([0, 0, 5 / 15, 1 / 16])
    assert drift["jaccard_distance"].to_list() == pytest.approx([0, 0, 1 / 3, 0])
    by_hop = drift_by_hop(drift)
    assert by_hop.select("hop", "n_entries").rows() == [(0, 2), (1, 1), (2, 1)]
    assert by_hop["edit_mean"].to_list() == pytest.approx([1 / 32, 0, 1 / 3])
    assert by_hop["changed"].to_list() == pytest.approx([0.5, 0.0, 1.0])
    custom = entry_drift(memories, edges, agents, {"m": "spread now"})
    assert custom["edit_distance"].to_list()[2] == 0.0


def test_drift_on_contagion_run_grows_from_zero(contagion_run):
    drift = entry_drift(
        contagion_run.memories,
        contagion_run.transmissions,
        contagion_run.agents,
        contagion_run.seed_texts(),
    )
    by_hop = drift_by_hop(drift)
    assert by_hop["hop"].to_list()[0] == 0
    assert by_hop["edit_mean"].to_list()[0] == 0.0  # seed entries are the statement
    assert drift["hop"].null_count() == 0
    # Mutation 0.3 per copy: later hops carry more edits than the first.
    assert by_hop["edit_mean"].to_list()[-1] > by_hop["edit_mean"].to_list()[1]
    assert drift["edit_distance"].is_between(0, 1).all()
