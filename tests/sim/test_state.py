"""State that saves itself: every part's get_state/set_state, nested by the model."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import MemeSpec, RandomPlacement
from sim.model import MemeticModel
from sim.state import State
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks
from topologies.graphs import BarabasiAlbert


def _model(n: int = 80, rule: str = "repeated_exposure") -> MemeticModel:
    return MemeticModel(
        graph=BarabasiAlbert(n=n, m=2),
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[
            MemeSpec(
                id="m",
                statement="copy this goal now",
                canary="CANARY-9",
                placement=RandomPlacement(count=2),
            )
        ],
        policy=ContagionPolicy(ContagionSpec(rule=rule, beta=0.3, mutation_prob=0.2)),
        seed=5,
    )


def test_nesting_round_trips():
    part = State(
        arrays={"a": np.arange(3)},
        frames={"rows": pl.DataFrame({"x": [1]})},
        values={"texts": ["t"]},
    )
    whole = State(values={"steps": 2})
    whole.add("store", part)
    assert sorted(whole.arrays) == ["store.a"]
    assert sorted(whole.frames) == ["store.rows"]
    assert whole.values == {"steps": 2, "store.texts": ["t"]}
    back = whole.part("store")
    assert back.arrays["a"].tolist() == [0, 1, 2]
    assert back.frames["rows"].equals(part.frames["rows"])
    assert back.values == {"texts": ["t"]}
    assert whole.part("tracker") == State()


@pytest.mark.parametrize("rule", ["repeated_exposure", "one_shot_cascade"])
def test_model_state_moves_a_run_to_a_fresh_model(rule):
    straight = _model(rule=rule)
    for _ in range(8):
        straight.step()
    first = _model(rule=rule)
    for _ in range(3):
        first.step()
    state = first.get_state()
    assert state.values["steps"] == 3
    assert {"store.bank", "tracker.seeded", "policy.seen"} <= set(state.arrays)
    assert {"steps", "tracker.events"} <= set(state.frames)
    assert len(state.values["store.texts"]) == len(first.store.texts)
    second = _model(rule=rule)
    second.set_state(state)
    for _ in range(5):
        second.step()
    for name, table in straight.tables().items():
        wall = [c for c in table.columns if c.endswith("_wall_s")]
        assert table.drop(wall).equals(second.tables()[name].drop(wall)), name


def test_set_state_refuses_another_config_and_a_used_model():
    state = _model().get_state()
    with pytest.raises(ValueError, match="another config"):
        _model(n=81).set_state(state)
    used = _model()
    used.step()
    with pytest.raises(ValueError, match="freshly built"):
        used.set_state(state)


def test_checkpoints_read_no_private_field():
    source = Path(__file__).resolve().parents[2] / "sim" / "checkpoint.py"
    private = [
        f"{ast.unparse(node)} (line {node.lineno})"
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]
    assert private == []
