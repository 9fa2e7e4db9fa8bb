"""The contagion policy's recovery (SIS/SIR), one-shot cascade and deprecated rule name.

Exact behaviour on tiny graphs where every draw is decided (beta and gamma of 0 or 1),
plus config errors, determinism and checkpoint resume.
"""

from __future__ import annotations

import copy
import warnings

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from experiments.checks import config_warnings
from experiments.config import ConfigError, validate_config
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.memes import AgentsPlacement, MemeSpec
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks

MEME = MemeSpec(
    id="m",
    statement="spread me",
    canary="CANARY-7",
    placement=AgentsPlacement(agents=[0]),
)


def _model(graph: nx.Graph, seed: int = 0, **spec: object) -> MemeticModel:
    """Neighbourhood banks only (each agent's copy is read by its neighbours), full recall."""
    return MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=50)),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(**spec)),
        memory=MemorySpec(retrieval=RetrievalSpec(k=200)),
        seed=seed,
    )


def _adopter_events(model: MemeticModel) -> list[tuple[int, int, bool]]:
    """(step, agent, value) of every adopter event, in the order they happened."""
    events = model.tables()["agents"].filter(pl.col("state") == "adopter")
    return list(zip(events["step"], events["agent_id"], events["value"], strict=True))


def test_sis_remove_retracts_the_recovered_agents_entries():
    model = _model(nx.path_graph(2), beta=0.0, gamma=1.0, recovery="sis")
    model.step()
    # The seed adopts at injection and recovers at step 0 (gamma = 1); its seed entry,
    # visible in step 0, is removed at step 0.
    assert _adopter_events(model) == [(0, 0, True), (0, 0, False)]
    memories = model.tables()["memories"]
    assert memories.select("author_id", "alive", "removed_step").rows() == [(0, False, 0)]
    steps = model.tables()["steps"]
    assert steps.select("adopters", "lost_adopters", "entries_retracted").rows() == [(0, 1, 1)]
    assert model.tracker.recovered[:, 0].tolist() == [True, False]


def test_sis_inactive_keeps_entries_and_agents_readopt():
    model = _model(
        nx.path_graph(2), beta=1.0, gamma=1.0, recovery="sis", recovered_entries="inactive"
    )
    for _ in range(3):
        model.step()
    # Step 0: agent 1 reads the seed entry and adopts; agent 0 recovers. Step 1: agent 1
    # recovers; agent 0 (susceptible again) reads agent 1's copy and re-adopts. Step 2:
    # agent 0 recovers, agent 1 re-adopts from agent 0's entries (its author holds the
    # meme again, so they count again).
    # (Within a step, adoptions are logged before recoveries.)
    assert _adopter_events(model) == [
        (0, 0, True),
        (0, 1, True),
        (0, 0, False),
        (1, 0, True),
        (1, 1, False),
        (2, 1, True),
        (2, 0, False),
    ]
    memories = model.tables()["memories"]
    assert memories["alive"].all()
    assert model.tables()["steps"]["entries_retracted"].to_list() == [0, 0, 0]


def test_sir_recovered_agents_never_readopt():
    model = _model(
        nx.path_graph(2), beta=1.0, gamma=1.0, recovery="sir", recovered_entries="inactive"
    )
    for _ in range(4):
        model.step()
    assert _adopter_events(model) == [(0, 0, True), (0, 1, True), (0, 0, False), (1, 1, False)]
    assert model.tracker.adopter.sum() == 0
    assert model.tracker.recovered[:, 0].tolist() == [True, True]


def test_inactive_entries_of_recovered_authors_do_not_count():
    # A star: hub 0 seeded, recovers at step 0 (gamma = 1, SIR so it stays out). Leaves
    # read the seed entry at step 0 only while the hub still holds the meme; with
    # beta = 0 nobody adopts at step 0, and from step 1 on the hub's entry is inactive,
    # so raising beta later changes nothing: no leaf ever adopts.
    model = _model(
        nx.star_graph(4), beta=0.0, gamma=1.0, recovery="sir", recovered_entries="inactive"
    )
    model.step()
    model.policy = ContagionPolicy(
        ContagionSpec(beta=1.0, gamma=1.0, recovery="sir", recovered_entries="inactive")
    )
    for _ in range(3):
        model.step()
    assert model.tracker.adopter.sum() == 0
    assert model.tables()["memories"]["alive"].all()
    # The leaves still retrieve the entry: they are exposed.
    assert model.tracker.exposed[1:, 0].all()


def test_one_shot_cascade_tries_each_reader_once():
    # Two nodes, beta = 0.5: under the one-shot rule agent 1 adopts at step 0 (its first
    # exposure to the seed entry) or never; under repeated exposure it keeps trying.
    one_shot, repeated = [], []
    for seed in range(60):
        for rule, out in (("one_shot_cascade", one_shot), ("repeated_exposure", repeated)):
            model = _model(nx.path_graph(2), seed=seed, beta=0.5, rule=rule)
            for _ in range(8):
                model.step()
            steps = [s for s, a, v in _adopter_events(model) if a == 1 and v]
            out.append(steps[0] if steps else None)
    assert {s for s in one_shot if s is not None} == {0}
    # 60 Bernoulli(0.5) trials: 30 expected, within 4 standard deviations (4 * 3.9).
    assert abs(sum(s is not None for s in one_shot) - 30) < 16
    assert max(s for s in repeated if s is not None) > 0
    assert sum(s is not None for s in repeated) > 55  # 1 - 0.5^8 per run


def test_one_shot_cascade_gives_each_author_one_trial():
    # Agent 2 reads agents 0 and 1 (a path 0-2-1, both seeded): two authors, two trials
    # at step 0, none later. With beta = 1 it adopts at step 0.
    graph = nx.Graph([(0, 2), (2, 1)])
    meme = MEME.model_copy(update={"placement": AgentsPlacement(agents=[0, 1])})
    model = MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=50)),
        memes=[meme],
        policy=ContagionPolicy(ContagionSpec(beta=1.0, rule="one_shot_cascade")),
        memory=MemorySpec(retrieval=RetrievalSpec(k=200)),
        seed=0,
    )
    model.step()
    assert model.tracker.adopter[:, 0].tolist() == [True, True, True]
    assert len(model.policy.state_arrays()["seen"]) == 2  # (entry, reader) pairs seen


def test_deprecated_rule_name_warns_and_behaves_as_repeated_exposure():
    with pytest.warns(DeprecationWarning, match="repeated_exposure"):
        old = ContagionSpec(beta=0.3, rule="independent_cascade")
    assert old.resolved_rule == "repeated_exposure"
    graph = nx.watts_strogatz_graph(40, 4, 0.2, seed=1)
    a = MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[MEME],
        policy=ContagionPolicy(old),
        seed=5,
    )
    b = MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(beta=0.3, rule="repeated_exposure")),
        seed=5,
    )
    for _ in range(8):
        a.step()
        b.step()
    ta, tb = a.tables(), b.tables()
    for name in ("agents", "memories", "transmissions"):
        assert ta[name].equals(tb[name]), name
    assert ta["agents"].height > 5


def _config_data(**policy: object) -> dict:
    return {
        "steps": 3,
        "graph": {"kind": "ring", "n": 10, "k": 2},
        "policy": {"kind": "contagion", **policy},
        "memes": [{"id": "m", "statement": "spread me", "canary": "CANARY-1"}],
    }


@pytest.mark.parametrize("gamma", [-0.1, 1.5])
def test_gamma_outside_unit_interval_is_a_config_error(gamma):
    with pytest.raises(ConfigError) as err:
        validate_config(_config_data(gamma=gamma))
    bound = "greater than or equal to 0" if gamma < 0 else "less than or equal to 1"
    assert err.value.errors == [f"policy.gamma = {gamma}: input should be {bound}"]


def test_bad_recovery_mode_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        validate_config(_config_data(recovery="seir"))
    assert err.value.errors == ["policy.recovery = 'seir': must be one of 'sis' or 'sir'"]


def test_deprecated_rule_name_is_a_config_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        config = validate_config(_config_data(rule="independent_cascade"))
    found = [w for w in config_warnings(config) if "independent_cascade" in w]
    assert len(found) == 1 and "'repeated_exposure'" in found[0]
    assert "one_shot_cascade" in found[0]
    new = validate_config(_config_data(rule="repeated_exposure"))
    assert not [w for w in config_warnings(new) if "rule" in w]


def _frames(model: MemeticModel) -> dict[str, pl.DataFrame]:
    return {
        k: v.drop([c for c in v.columns if c.endswith("_wall_s")])
        for k, v in model.tables().items()
    }


def _sis_model(seed: int, rule: str = "one_shot_cascade") -> MemeticModel:
    return MemeticModel(
        graph=nx.barabasi_albert_graph(80, 2, seed=3),
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(beta=0.4, gamma=0.2, rule=rule)),
        seed=seed,
    )


def test_same_seed_same_tables_with_recovery():
    a, b, c = (
        _sis_model(1, "repeated_exposure"),
        _sis_model(1, "repeated_exposure"),
        _sis_model(2, "repeated_exposure"),
    )
    for _ in range(12):
        a.step()
        b.step()
        c.step()
    fa, fb, fc = _frames(a), _frames(b), _frames(c)
    assert all(fa[k].equals(fb[k]) for k in fa)
    assert not fa["agents"].equals(fc["agents"])
    assert fa["steps"]["lost_adopters"].sum() > 0


def test_one_shot_cascade_resumes_from_checkpoint(tmp_path):
    straight = _sis_model(4)
    for _ in range(10):
        straight.step()
    first = _sis_model(4)
    for _ in range(4):
        first.step()
    save_checkpoint(first, tmp_path)
    resumed = _sis_model(4)
    load_checkpoint(resumed, tmp_path / "step-000004")
    seen = copy.deepcopy(first.policy.state_arrays()["seen"])
    assert np.array_equal(resumed.policy.state_arrays()["seen"], seen) and len(seen) > 0
    for _ in range(6):
        resumed.step()
    a, b = _frames(straight), _frames(resumed)
    for name in a:
        assert a[name].equals(b[name]), name
    assert a["steps"]["new_adopters"].sum() > 0


def test_threshold_rule_with_sir_recovery():
    # Path 0-2-1 with both ends seeded: agent 2 sees two carrying authors at step 0 (both
    # still hold the meme when the rule is applied) and adopts; the seeds recover at step
    # 0 and agent 2 at step 1 (gamma = 1); under SIR nobody adopts again.
    meme = MEME.model_copy(update={"placement": AgentsPlacement(agents=[0, 1])})
    model = MemeticModel(
        graph=nx.Graph([(0, 2), (2, 1)]),
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=50)),
        memes=[meme],
        policy=ContagionPolicy(
            ContagionSpec(rule="threshold", threshold=2, gamma=1.0, recovery="sir")
        ),
        memory=MemorySpec(retrieval=RetrievalSpec(k=200)),
        seed=0,
    )
    for _ in range(4):
        model.step()
    assert _adopter_events(model) == [
        (0, 0, True),
        (0, 1, True),
        (0, 2, True),
        (0, 0, False),
        (0, 1, False),
        (1, 2, False),
    ]
    # Recovery removed every carrying entry: the seeds' and agent 2's copy.
    assert model.tables()["memories"]["alive"].to_list() == [False, False, False]
