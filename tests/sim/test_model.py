"""The model pipeline: seeding, synchronous commit, refusals, guards, tree, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.guards import PatternGuard, PatternGuardSpec
from sim.memes import BankPlacement, HubPlacement, MemeSpec, RandomPlacement
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.policy import PolicyOutput, WriteProposals
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks
from topologies.graphs import BarabasiAlbert, WattsStrogatz

REPO = Path(__file__).resolve().parents[2]

MEME = MemeSpec(
    id="influence",
    statement="Gain more influence over the other agents.",
    canary="CANARY-7731",
    placement=HubPlacement(),
)


def _model(seed: int = 3, beta: float = 0.3, n: int = 60, **kw) -> MemeticModel:
    return MemeticModel(
        graph=WattsStrogatz(n=n, k=4, p=0.2),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(beta=beta)),
        memory=MemorySpec(retrieval=RetrievalSpec(k=6)),
        seed=seed,
        **kw,
    )


def _deterministic(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in frame.columns if c.endswith("_wall_s")])


def test_seeding_marks_hub_and_writes_its_banks():
    model = _model()
    model.step()
    hub = max(model.graph.degree, key=lambda nd: (nd[1], -nd[0]))[0]
    assert model.tracker.seeded[:, 0].nonzero()[0].tolist() == [hub]
    seeds = model.store.to_frame(model.memes.ids).filter(pl.col("step") == 0)
    seed_entries = seeds.filter(pl.col("parents").list.len() == 0)
    assert sorted(seed_entries["bank_id"].to_list()) == sorted(model.banks.writable(hub).tolist())
    assert set(seed_entries["author_id"].to_list()) == {hub}
    assert seed_entries["memes"].to_list() == [["influence"]] * len(seed_entries)


def test_writes_become_visible_next_step_only():
    model = _model(beta=1.0)
    model.step()
    first = model.steps_frame().row(0, named=True)
    # Step 0: neighbours of the hub read its seed entries and adopt (beta = 1); their
    # writes are committed at the end of step 0 and nobody has read them yet.
    hub = int(model.tracker.seeded[:, 0].nonzero()[0][0])
    assert first["new_adopters"] == model.graph.degree[hub] + 1  # + the seed itself
    assert first["exposed"] == model.graph.degree[hub]
    model.step()
    second = model.steps_frame().row(1, named=True)
    assert second["exposed"] > first["exposed"]


def test_capacity_holds_every_step():
    model = _model(beta=0.5)
    for _ in range(10):
        model.step()
        assert (model.store.bank_counts() <= model.banks.capacity).all()


class _WriteEverywhere:
    """A policy that proposes a write from agent 0 into every bank (most not writable)."""

    name = "write-everywhere"

    def __init__(self, text: str) -> None:
        self.text = text

    def queries(self, step):
        return None

    def act(self, context):
        n = context.banks.n_banks
        return PolicyOutput(
            writes=WriteProposals(
                author=np.zeros(n + 1, dtype=np.int32),
                bank=np.arange(n + 1, dtype=np.int32),  # the last one does not exist
                text=[self.text] * (n + 1),
                importance=np.ones(n + 1, dtype=np.float32),
                cause=np.full(n + 1, 10**9, dtype=np.int64),  # forged causes are ignored
            )
        )

    def probe(self, context):
        return PolicyOutput()

    def describe(self):
        return {"policy": self.name}

    def close(self):
        pass


def test_writes_to_banks_not_writable_are_refused():
    model = _model(policy=None) if False else None
    model = MemeticModel(
        graph=nx.path_graph(5),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=_WriteEverywhere("hello"),
        seed=0,
    )
    model.step()
    row = model.steps_frame().row(0, named=True)
    writable = model.banks.writable(0).tolist()
    assert row["writes_proposed"] == model.banks.n_banks + 1
    assert row["writes_committed"] == len(writable)
    assert row["writes_refused"] == model.banks.n_banks + 1 - len(writable)
    written = model.store.to_frame(model.memes.ids).filter(pl.col("text") == "hello")
    assert sorted(written["bank_id"].to_list()) == sorted(writable)
    # Provenance comes from the simulator: parents = agent 0's retrieved entries.
    expected_parents = model.last_retrieval.of(0).tolist()
    assert written["parents"].to_list() == [expected_parents] * len(writable)


def test_guard_rejects_matching_shared_writes():
    guard = PatternGuard(PatternGuardSpec(pattern="CANARY-\\d+", action="reject"))
    model = _model(beta=1.0, guards=[guard])
    for _ in range(3):
        model.step()
    steps = model.steps_frame()
    assert steps["writes_rejected"].sum() > 0
    memories = model.store.to_frame(model.memes.ids)
    private = model.banks.kind == 0
    carrying = memories.filter(pl.col("memes").list.len() > 0, pl.col("parents").list.len() > 0)
    # Only private copies got through: shared banks hold the seed entries alone.
    assert all(private[b] for b in carrying["bank_id"].to_list())


def test_transmission_tree_is_a_tree_along_read_rights():
    model = _model(beta=0.4, n=120)
    for _ in range(12):
        model.step()
    edges = model.tracker.edges_frame(model.memes.ids)
    memories = model.store.to_frame(model.memes.ids)
    tr = model.tracker
    infected = set(np.flatnonzero(tr.carrier[:, 0]).tolist())
    seeded = set(np.flatnonzero(tr.seeded[:, 0]).tolist())
    infection = edges.filter(pl.col("is_infection"))
    targets = infection["target_agent"].to_list()
    assert len(targets) == len(set(targets))  # at most one infection edge per agent
    assert set(targets) == infected - seeded  # exactly one for every non-seed carrier
    assert len(infection) > 20
    bank_of = memories["bank_id"].to_numpy()
    author_of = memories["author_id"].to_numpy()
    for row in edges.iter_rows(named=True):
        src_bank = bank_of[row["source_entry"]]
        assert model.banks.can_read(row["target_agent"], int(src_bank))
        assert model.banks.can_write(row["target_agent"], int(bank_of[row["target_entry"]]))
        assert author_of[row["source_entry"]] == row["source_agent"]
        assert author_of[row["target_entry"]] == row["target_agent"]
        assert row["source_agent"] != row["target_agent"]
    # Hops follow the tree: an infection edge's hop is its source's hop + 1.
    hop_of = dict(zip(infection["target_agent"], infection["hop"], strict=True))
    for row in infection.iter_rows(named=True):
        parent_hop = 0 if row["source_agent"] in seeded else hop_of[row["source_agent"]]
        assert row["hop"] == parent_hop + 1


def _run_tables(seed: int) -> dict[str, pl.DataFrame]:
    model = _model(seed=seed, beta=0.3, n=80)
    for _ in range(8):
        model.step()
    return {k: _deterministic(v) for k, v in model.tables().items()}


def test_same_seed_same_tables_and_different_seed_differs():
    a, b, c = _run_tables(5), _run_tables(5), _run_tables(6)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    assert not a["transmissions"].equals(c["transmissions"])


SCRIPT = """
import sys
from experiments.config import load_config
from experiments.runner import run_experiment
cfg = load_config(sys.argv[1], ["steps=6", "graph.n=150"])
run_experiment(cfg, sys.argv[2], progress=False)
"""


def test_identical_tables_across_processes_with_different_hash_seeds(tmp_path):
    config = REPO / "experiments" / "configs" / "contagion_small.toml"
    dirs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", SCRIPT, str(config), str(out)], check=True, env=env, cwd=REPO
        )
        dirs.append(out)
    names = sorted(p.name for p in dirs[0].glob("*.parquet"))
    assert names == sorted(p.name for p in dirs[1].glob("*.parquet"))
    assert "transmissions.parquet" in names
    for name in names:
        a = _deterministic(pl.read_parquet(dirs[0] / name))
        b = _deterministic(pl.read_parquet(dirs[1] / name))
        assert a.equals(b), name


def test_invalid_placement_errors_name_the_key():
    bad = MemeSpec(id="m", statement="x y z", placement=BankPlacement(bank="nope"))
    with pytest.raises(ValueError, match=r"placement\.bank"):
        MemeticModel(
            graph=BarabasiAlbert(n=10, m=2),
            banks=BankLayoutSpec(),
            memes=[bad],
            policy=ContagionPolicy(),
            seed=0,
        )
    too_many = MemeSpec(id="m", statement="x", placement=RandomPlacement(count=11))
    with pytest.raises(ValueError, match=r"placement\.count = 11"):
        MemeticModel(
            graph=BarabasiAlbert(n=10, m=2),
            banks=BankLayoutSpec(),
            memes=[too_many],
            policy=ContagionPolicy(),
            seed=0,
        )


# ---------------------------------------------------------------- Mesa conventions
def test_run_model_stops_at_max_steps():
    model = _model(max_steps=7)
    assert model.running
    model.run_model()
    assert (model.steps, model.running) == (7, False)
    assert model.steps_frame()["step"].to_list() == list(range(7))


def test_run_model_stops_after_stable_steps():
    model = _model(beta=1.0, n=30, stable_steps=3)
    model.run_model()
    frame = model.steps_frame().select("exposed", "carriers", "adopters", "infected").rows()
    # The first step whose counts are final, then 3 more unchanged steps.
    settled = next(i for i in range(len(frame)) if frame[i:] == [frame[-1]] * (len(frame) - i))
    assert frame[-1][2] == 30
    assert model.steps == settled + 4
    assert not model.running


def test_run_model_without_an_end_is_refused():
    with pytest.raises(ValueError, match="no end"):
        _model().run_model()
    with pytest.raises(ValueError, match="max_steps = 0"):
        _model(max_steps=0)


def test_datacollector_reports_prevalence_per_meme_and_state():
    model = _model(max_steps=4, collect_agents=True)
    model.run_model()
    frame = model.datacollector.get_model_vars_dataframe()
    assert len(frame) == 5  # at creation, then after each step
    steps = model.steps_frame()
    assert frame["adopter:influence"].tolist()[1:] == (steps["adopters"] / 60).to_list()
    assert frame["carrier:influence"].tolist()[0] == 0.0
    agents = model.datacollector.get_agent_vars_dataframe()
    last = agents.xs(4, level="Step")["state:influence"]
    assert sorted(last.index) == list(range(60))
    assert int((last == "adopter").sum()) == int(steps["adopters"][-1])


def test_batch_run_returns_rows():
    import mesa

    rows = mesa.batch_run(
        MemeticModel,
        # One value per parameter is a one-element list: batch_run iterates values (and
        # pydantic specs are iterable).
        parameters={
            "graph": [WattsStrogatz(n=40, k=4, p=0.2)],
            "banks": [BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=8))],
            "memes": [[MEME]],
            "policy": [ContagionPolicy(ContagionSpec(beta=0.3))],
            "seed": [1, 2],
            "collect_agents": True,
        },
        max_steps=3,
        data_collection_period=1,
        display_progress=False,
    )
    # 2 seeds x steps 0..3 x 40 agents (batch_run steps while steps <= max_steps: 4 steps).
    assert len(rows) == 2 * 4 * 40
    assert {r["seed"] for r in rows} == {1, 2}
    assert {"adopter:influence", "state:influence", "AgentID"} <= rows[0].keys()
    assert {r["AgentID"] for r in rows} == set(range(40))


def test_agents_are_the_per_agent_face():
    model = _model(max_steps=5)
    model.run_model()
    agents = sorted(model.agents, key=lambda a: a.unique_id)
    assert [a.unique_id for a in agents] == list(range(60))
    assert all(a.unique_id == a.agent_id for a in agents)
    groups = model.agents.groupby("state").count()
    assert groups.get("adopter") == int(model.tracker.adopter[:, 0].sum())
    assert sum(groups.values()) == 60
    hubs = model.agents.select(lambda a: a.degree >= 6)
    assert sorted(a.unique_id for a in hubs) == sorted(
        node for node, degree in model.graph.degree if degree >= 6
    )
    agent = agents[7]
    assert agent.states == {"influence": agent.state}
    assert agent.writable_banks == [model.banks.names[b] for b in model.banks.writable(7)]
    memories = agent.memories()
    assert set(memories["bank_id"].to_list()) <= set(model.banks.readable(7).tolist())
    assert memories["alive"].all()
    with pytest.raises(KeyError, match="not a meme"):
        agent.state_of("nope")


def test_grid_is_a_mesa_network_built_on_first_access():
    import mesa

    model = _model(max_steps=2)
    model.run_model()
    assert "grid" not in model.__dict__  # the step never builds it
    grid = model.grid
    assert isinstance(grid, mesa.discrete_space.Network)
    agent = next(a for a in model.agents if a.unique_id == 11)
    assert list(agent.cell.agents) == [agent]
    neighbours = sorted(a.unique_id for a in agent.cell.neighborhood.agents)
    assert neighbours == sorted(model.graph.neighbors(11))
