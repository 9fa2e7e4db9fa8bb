"""Agent turnover: new agents on the same nodes, private banks emptied, shared banks kept."""

from __future__ import annotations

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from agents.personas import load_personas, persona_of
from experiments.config import ConfigError, validate_config
from experiments.runner import run_experiment
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from sim.tables import table_spec
from sim.turnover import TurnoverSpec, agent_generation_at, carrying_entries_by_layer
from topologies.banks import BankKind, BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

MEME = MemeSpec(
    id="m",
    statement="spread me",
    canary="CANARY-5",
    placement=AgentsPlacement(agents=[0, 3]),
)


def _model(rate: float, seed: int = 0, beta: float = 0.0, n: int = 6, **spec) -> MemeticModel:
    return MemeticModel(
        graph=nx.cycle_graph(n),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(beta=beta, **spec)),
        seed=seed,
        turnover=TurnoverSpec(rate=rate),
    )


def test_turnover_empties_private_banks_and_keeps_shared_ones():
    model = _model(rate=1.0)
    model.step()  # step 0: seeds write into their private and neighbourhood banks
    memories = model.tables()["memories"]
    kinds = model.banks.kind[memories["bank_id"].to_numpy()]
    assert sorted(kinds.tolist()) == [int(BankKind.PRIVATE)] * 2 + [int(BankKind.NEIGHBOURHOOD)] * 2
    assert model.tracker.adopter[:, 0].sum() == 2
    model.step()  # step 1: every agent is replaced (rate 1) before anything else
    memories = model.tables()["memories"]
    private = model.banks.kind[memories["bank_id"].to_numpy()] == int(BankKind.PRIVATE)
    assert memories.filter(pl.Series(private))["removed_step"].to_list() == [1, 1]
    assert memories.filter(pl.Series(~private))["alive"].to_list() == [True, True]
    # The new agents hold no meme; their predecessors' adoptions are lost.
    assert model.tracker.adopter.sum() == 0
    assert model.tracker.lineage.tolist() == [1] * 6
    steps = model.tables()["steps"]
    assert steps.select("step", "agents_replaced", "lost_adopters").rows() == [
        (0, 0, 0),
        (1, 6, 2),
    ]
    turnover = model.tables()["turnover"]
    assert turnover.rows() == [(1, a, 1) for a in range(6)]
    # Per-node "ever" flags stay: the seeds' nodes are still carriers.
    assert model.tracker.carrier[[0, 3], 0].all()


def test_no_replacement_before_start_step_and_table_is_empty():
    model = _model(rate=1.0)
    model.turnover = TurnoverSpec(rate=1.0, start_step=5)
    for _ in range(3):
        model.step()
    assert model.tables()["turnover"].height == 0
    assert model.tables()["turnover"].schema == table_spec("turnover").schema()
    assert model.tracker.lineage.sum() == 0


def test_turnover_draws_are_reproducible_and_counted():
    def run(seed):
        model = _model(rate=0.3, seed=seed, beta=0.5, n=30, gamma=0.1)
        for _ in range(10):
            model.step()
        return model

    a, b, c = run(1), run(1), run(2)
    ta, tb = a.tables(), b.tables()
    for name in ("turnover", "agents", "memories", "transmissions"):
        assert ta[name].equals(tb[name]), name
    assert not ta["turnover"].equals(c.tables()["turnover"])
    steps = ta["steps"]
    assert steps["agents_replaced"].sum() == ta["turnover"].height > 20
    # 30 agents x 9 steps x 0.3 = 81 expected replacements; within 4 standard deviations.
    assert abs(ta["turnover"].height - 81) < 4 * np.sqrt(270 * 0.3 * 0.7)
    # agent_generation counts the agent's replacements so far.
    last = ta["turnover"].group_by("agent_id").agg(pl.col("agent_generation").max())
    assert dict(last.rows()) == {
        i: int(g) for i, g in enumerate(a.tracker.lineage.tolist()) if g > 0
    }


def test_agent_generation_at_marks_writers_of_entries():
    turnover = pl.DataFrame(
        {"step": [2, 4, 4], "agent_id": [1, 1, 0], "agent_generation": [1, 2, 1]}
    )
    memories = pl.DataFrame({"author_id": [1, 1, 1, 0, -1, 1], "step": [0, 2, 3, 4, 5, 9]})
    out = agent_generation_at(turnover, memories, agent="author_id")
    assert out["agent_generation"].to_list() == [0, 1, 1, 1, 0, 2]
    assert out.columns == ["author_id", "step", "agent_generation"]


def test_turnover_resumes_from_checkpoint(tmp_path):
    def fresh():
        return _model(rate=0.2, seed=3, beta=0.4, n=30, rule="one_shot_cascade")

    straight = fresh()
    for _ in range(9):
        straight.step()
    first = fresh()
    for _ in range(4):
        first.step()
    save_checkpoint(first, tmp_path)
    resumed = fresh()
    load_checkpoint(resumed, tmp_path / "step-000004")
    for _ in range(5):
        resumed.step()
    a, b = straight.tables(), resumed.tables()
    for name in ("turnover", "agents", "memories", "transmissions"):
        assert a[name].equals(b[name]), name
    assert np.array_equal(straight.tracker.lineage, resumed.tracker.lineage)
    assert a["turnover"].filter(pl.col("step") >= 4).height > 0


def test_new_generation_takes_the_next_persona():
    personas = load_personas(None)
    assert persona_of(personas, 2, 0) == persona_of(personas, 2)
    assert persona_of(personas, 2, 1) == personas[3 % len(personas)]
    assert persona_of(personas, 2, 1) != persona_of(personas, 2, 0)


def _data(**turnover) -> dict:
    return {
        "steps": 4,
        "graph": {"kind": "ring", "n": 12, "k": 2},
        "banks": {"private": {}, "neighbourhood": {}},
        "policy": {"kind": "contagion", "beta": 0.3},
        "memes": [{"id": "m", "statement": "spread me", "canary": "CANARY-1"}],
        "turnover": turnover,
    }


def test_turnover_config_errors_and_run_directory(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate_config(_data(rate=1.5))
    assert err.value.errors == ["turnover.rate = 1.5: input should be less than or equal to 1"]
    with pytest.raises(ConfigError) as err:
        validate_config(_data(rate=0.1, every=2))
    assert err.value.errors == [
        "turnover.every = 2: unknown key (allowed: rate, start_step; see docs/config-reference.md)"
    ]
    config = validate_config({**_data(rate=0.25), "name": "turnover", "output_dir": str(tmp_path)})
    run_experiment(config, tmp_path / "turnover", progress=False)
    table = pl.read_parquet(tmp_path / "turnover" / "turnover.parquet")
    steps = pl.read_parquet(tmp_path / "turnover" / "steps.parquet")
    assert table.height == steps["agents_replaced"].sum() > 0
    assert table["step"].min() >= 1


def test_carrying_entries_by_layer_shows_the_meme_surviving_in_shared_banks():
    model = _model(rate=1.0)  # beta = 0: only the two seeds' entries exist
    for _ in range(3):
        model.step()
    tables = model.tables()
    layers = carrying_entries_by_layer(tables["memories"], tables["banks"], last_step=2)
    # Private copies are removed at step 1 (still counted in step 1, when they were
    # retrievable); the shared copies outlive every agent that wrote them.
    assert layers.rows() == [("m", 0, 2, 2), ("m", 1, 2, 2), ("m", 2, 0, 2)]
    with pytest.raises(ValueError, match="last_step = -1"):
        carrying_entries_by_layer(tables["memories"], tables["banks"], last_step=-1)
