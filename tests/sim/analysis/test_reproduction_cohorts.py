"""R_eff by generation cohort and censored windowed R0, on a known tree."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_tables import TREE_KNOWN, tree_tables

from sim.analysis.reproduction import effective_reproduction, reproduction_number


@pytest.fixture
def tree():
    # Seed 0 (step 0) infects 1 and 2 at step 0; 1 infects 3 and 4 at step 2; 3 infects 5
    # at step 3.
    return tree_tables(TREE_KNOWN, {0: 0})


def test_effective_reproduction_by_generation_keeps_seeds_apart(tree):
    agents, edges = tree
    pooled = effective_reproduction(edges, agents)
    # Step 0 pools the seed (2 offspring) with agents 1 and 2 (2 and 0 offspring).
    assert pooled.filter(pl.col("step") == 0)["r_eff"].to_list() == pytest.approx([4 / 3])
    cohorts = effective_reproduction(edges, agents, by_generation=True)
    assert cohorts.select("step", "generation", "r_eff", "n_infected").rows() == [
        (0, 0, 2.0, 1),
        (0, 1, 1.0, 2),
        (2, 2, 0.5, 2),
        (3, 3, 0.0, 1),
    ]


def test_windowed_r0_drops_censored_infectors_when_told_the_last_step(tree):
    agents, edges = tree
    # Generations 0..1 with a 2-step window: seed 0 infectious from step 0, agents 1 and 2
    # from step 1 (windows [0, 2) and [1, 3)).
    plain = reproduction_number(edges, agents, generations=1, window=2).row(0, named=True)
    assert (plain["r0"], plain["n_infectors"], plain["n_censored"]) == (
        pytest.approx(4 / 3),
        3,
        0,
    )
    # The run recorded steps 0..2: no window is cut.
    whole = reproduction_number(edges, agents, generations=1, window=2, last_step=2)
    assert whole.row(0, named=True)["n_censored"] == 0
    # Recorded only up to step 1: the windows of 1 and 2 (ending at step 2) are censored
    # and left out; the seed alone gives R0 = 2.
    cut = reproduction_number(edges, agents, generations=1, window=2, last_step=1)
    row = cut.row(0, named=True)
    assert (row["r0"], row["n_infectors"], row["n_censored"], row["n_secondaries"]) == (
        2.0,
        1,
        2,
        2,
    )
    # Without a window, last_step changes nothing (whole-run counts).
    assert reproduction_number(edges, agents, last_step=1)["r0"].to_list() == [2.0]
