"""The dashboard's network layout: every agent of a small run, a seeded sample of a large one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.dashboard.layout import MAX_DRAWN_AGENTS, network_layout
from experiments.dashboard.models import LiveModel


def _ring(n: int) -> np.ndarray:
    return np.stack([np.arange(n), (np.arange(n) + 1) % n], axis=1)


def test_a_small_network_is_drawn_whole() -> None:
    layout = network_layout(12, _ring(12), seed=0)
    assert layout.nodes.tolist() == list(range(12))
    assert layout.xy.shape == (12, 2)
    assert layout.edges.tolist() == _ring(12).tolist()
    assert not layout.sampled and layout.note == ""


def test_a_large_network_is_drawn_as_a_seeded_sample() -> None:
    n = 100_000
    edges = _ring(n)
    layout = network_layout(n, edges, seed=4, max_agents=50)
    assert layout.sampled
    assert len(layout.nodes) == 50 and len(np.unique(layout.nodes)) == 50
    assert np.all(np.diff(layout.nodes) > 0) and layout.nodes.max() < n
    assert layout.xy.shape == (50, 2)
    # The edges are exactly the ring's edges among the sampled agents, as rows of nodes.
    drawn = set(layout.nodes.tolist())
    among = [(int(a), int(b)) for a, b in edges if a in drawn and b in drawn]
    assert [tuple(layout.nodes[e].tolist()) for e in layout.edges] == among
    assert layout.note == (
        "drawn: a uniform sample of 50 of 100000 agents (counts are of all agents)"
    )
    again = network_layout(n, edges, seed=4, max_agents=50)
    assert again.nodes.tolist() == layout.nodes.tolist()
    np.testing.assert_array_equal(again.xy, layout.xy)


def test_the_default_bound_keeps_a_huge_network_drawable() -> None:
    layout = network_layout(10**6, np.zeros((0, 2), dtype=np.int64), max_agents=MAX_DRAWN_AGENTS)
    assert len(layout.nodes) == MAX_DRAWN_AGENTS == 1000


def test_max_agents_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_agents = 0"):
        network_layout(3, _ring(3), max_agents=0)


LIVE = """
name = "live"
seed = 2
steps = 3

[graph]
kind = "watts_strogatz"
n = 30
k = 4
p = 0.1

[banks.neighbourhood]
capacity = 4

[policy]
kind = "contagion"
beta = 0.3

[[memes]]
id = "m"
kind = "influence_seeking"
statement = "Acquire influence."
canary = "MEME-L"
placement = { strategy = "hub", count = 1 }
"""


def test_a_live_run_lays_its_network_out_once(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text(LIVE)
    model = LiveModel(str(config))
    first = model.view.layout
    for step in range(3):
        model.step()
        assert model.view.last_step == step
        assert model.view.layout is first
    np.testing.assert_array_equal(first.nodes, np.arange(30))
