"""R0, R_eff, generation intervals and the implied R0: known trees and a real contagion run."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from analysis_tables import TREE_KNOWN, tree_tables

from experiments.config import validate_config
from experiments.runner import run_experiment
from sim.analysis.loading import load_run
from sim.analysis.reproduction import (
    effective_reproduction,
    generation_intervals,
    implied_reproduction_number,
    implied_secondaries,
    reproduction_number,
    secondary_infections,
)


@pytest.fixture
def tree():
    return tree_tables(TREE_KNOWN, {0: 0})


def test_secondary_infections_and_r0(tree):
    agents, edges = tree
    sec = secondary_infections(edges, agents)
    assert dict(sec.select("agent_id", "secondaries").rows()) == {
        0: 2,
        1: 2,
        2: 0,
        3: 1,
        4: 0,
        5: 0,
    }
    assert reproduction_number(edges, agents)["r0"].to_list() == [2.0]
    r1 = reproduction_number(edges, agents, generations=1).row(0, named=True)
    assert r1["r0"] == pytest.approx(4 / 3)
    assert r1["n_infectors"] == 3
    assert r1["n_secondaries"] == 4


def test_windowed_r0_counts_from_infectious_start(tree):
    agents, edges = tree
    # Seed 0 is infectious from step 0 (its edges are at step 0); agent 1, infected at
    # step 0, from step 1: its edges at step 2 fall outside a 1-step window.
    w1 = secondary_infections(edges, agents, window=1)
    assert dict(w1.select("agent_id", "secondaries").rows())[1] == 0
    assert dict(w1.select("agent_id", "secondaries").rows())[0] == 2
    w2 = secondary_infections(edges, agents, window=2)
    assert dict(w2.select("agent_id", "secondaries").rows())[1] == 2
    with pytest.raises(ValueError, match="window = 0"):
        secondary_infections(edges, agents, window=0)


def test_effective_reproduction_and_generation_intervals(tree):
    agents, edges = tree
    reff = effective_reproduction(edges, agents)
    assert reff.select("step", "n_infected").rows() == [(0, 3), (2, 2), (3, 1)]
    assert reff["r_eff"].to_list() == pytest.approx([4 / 3, 0.5, 0.0])
    gi = generation_intervals(edges, agents)
    assert dict(gi.select("agent_id", "interval").rows()) == {1: 0, 2: 0, 3: 2, 4: 2, 5: 1}


def test_implied_secondaries_on_hand_built_bank():
    # Bank 0 is read by agents 0..3; agent 0 (seeded at step 0) wrote the seed entry into
    # it; agent 3 is an adopter from the start, agent 1 adopts at step 0, agent 2 never.
    agents, edges = tree_tables({1: (0, 0, 1)}, {0: 0, 3: 0})
    memories = pl.DataFrame(
        {
            "entry_id": [0, 1, 2],
            "bank_id": [0, 0, 1],
            "author_id": [0, 3, 1],
            "step": [0, 0, 0],
            "memes": [["m"], ["m"], ["m"]],
            "parents": [[], [], [0]],
            "removed_step": [-1, -1, -1],
        },
        schema_overrides={"parents": pl.List(pl.Int64)},
    )
    members = pl.DataFrame(
        {
            "bank_id": [0, 0, 0, 0, 1],
            "agent_id": [0, 1, 2, 3, 1],
            "can_read": [True] * 5,
        }
    )
    one = implied_secondaries(memories, members, edges, agents, 0.5, window=1)
    # Agent 0 at step 0: readers 1 and 2 are susceptible (3 is an adopter) -> 2 exposures.
    row0 = one.filter(pl.col("agent_id") == 0).row(0, named=True)
    assert (row0["exposures"], row0["expected"]) == (2, 1.0)
    # Step 1 adds reader 2 only (1 adopted at step 0): 3 exposures in a 2-step window.
    two = implied_secondaries(memories, members, edges, agents, 0.5, window=2)
    assert two.filter(pl.col("agent_id") == 0)["exposures"].to_list() == [3]
    with pytest.raises(ValueError, match=r"beta = 1.5"):
        implied_secondaries(memories, members, edges, agents, 1.5)


def _r0_config(seed: int, beta: float):
    return validate_config(
        {
            "name": f"r0-{seed}",
            "seed": seed,
            "steps": 2,
            "graph": {"kind": "erdos_renyi", "n": 2000, "p": 0.004},
            "banks": {"private": None, "neighbourhood": {"capacity": 8}},
            "memory": {"retrieval": {"k": 64}},
            "policy": {"kind": "contagion", "beta": beta},
            "memes": [
                {
                    "id": "m",
                    "statement": "spread me",
                    "canary": "CANARY-42",
                    "placement": {"strategy": "random", "count": 50},
                }
            ],
        }
    )


def test_r0_of_contagion_run_matches_beta_times_mean_exposures(tmp_path):
    """Estimated R0 (generation 0, 1-step window) vs beta x mean susceptible exposures.

    Setup: Erdos-Renyi n=2000 (mean degree 8), neighbourhood banks only, retrieval k=64
    (every visible entry is retrieved), 50 random seeds, beta = 0.2, 4 replicate seeds.
    In its first step each seed's single entry gives each susceptible neighbour one trial
    with probability beta, so the secondary count is Binomial(exposures, beta) up to the
    rare reader adjacent to two seeds. Tolerance: the total secondary count is within 3
    binomial standard deviations, sqrt(beta (1 - beta) exposures), of beta x exposures,
    and R0 within 10 % of the implied value.
    """
    beta = 0.2
    secondaries = exposures = 0
    for seed in range(4):
        run_experiment(_r0_config(seed, beta), tmp_path / str(seed), progress=False)
        run = load_run(tmp_path / str(seed))
        est = reproduction_number(
            run.transmissions, run.agents, run.memories, generations=0, window=1
        ).row(0, named=True)
        imp = implied_reproduction_number(
            run.memories, run.bank_members, run.transmissions, run.agents, beta, window=1
        ).row(0, named=True)
        assert est["n_infectors"] == imp["n_infectors"] == 50
        secondaries += est["n_secondaries"]
        exposures += imp["mean_exposures"] * imp["n_infectors"]
    expected = beta * exposures
    sd = np.sqrt(beta * (1 - beta) * exposures)
    assert abs(secondaries - expected) < 3 * sd, (secondaries, expected, sd)
    assert secondaries / 200 == pytest.approx(expected / 200, rel=0.10)
