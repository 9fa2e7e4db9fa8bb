"""Curve fits: exact recovery on noiseless curves, and beta on a complete-graph contagion run."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from experiments.config import validate_config
from experiments.runner import run_experiment
from sim.analysis.fits import (
    MIN_LEVELS,
    MODELS,
    NotIdentifiableError,
    fit_prevalence,
    fit_si,
    fit_si_discrete,
    fit_sir,
    fit_sis,
    si_curve,
    si_discrete_curve,
    sir_curves,
    sis_curve,
)
from sim.analysis.loading import load_run
from sim.analysis.prevalence import prevalence

T = np.arange(0, 40, dtype=float)


def test_noiseless_curves_are_recovered():
    n = 200
    fit = fit_si_discrete(T, si_discrete_curve(T, 0.004, 0.005, n), n)
    assert fit.params["beta"] == pytest.approx(0.004, rel=1e-4)
    assert fit.params["i0"] == pytest.approx(0.005, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.rmse < 1e-6
    fit = fit_si(T, si_curve(T, 0.002, 0.01, n), n)
    assert fit.params["beta"] == pytest.approx(0.002, rel=1e-4)
    assert fit.params["rate"] == pytest.approx(0.4, rel=1e-4)
    fit = fit_sis(T, sis_curve(T, 0.003, 0.2, 0.01, n), n)
    assert fit.params["beta"] == pytest.approx(0.003, rel=1e-3)
    assert fit.params["gamma"] == pytest.approx(0.2, rel=1e-3)
    assert fit.params["endemic"] == pytest.approx(1 - 0.2 / 0.6, rel=1e-3)
    i, r = sir_curves(T, 0.004, 0.25, 0.01, n)
    fit = fit_sir(T, i, n, removed=r)
    assert fit.params["beta"] == pytest.approx(0.004, rel=1e-3)
    assert fit.params["gamma"] == pytest.approx(0.25, rel=1e-3)
    assert fit.params["r0"] == pytest.approx(0.8 / 0.25, rel=1e-3)
    assert fit.r2 > 0.99999


def test_fit_input_errors():
    with pytest.raises(ValueError, match="at least 3"):
        fit_si(T[:2], np.array([0.1, 0.2]), 10)
    with pytest.raises(ValueError, match="fractions"):
        fit_si(T[:3], np.array([0.1, 2.0, 0.3]), 10)


def _prevalence_table(adopters: np.ndarray, infected: np.ndarray) -> pl.DataFrame:
    """A long prevalence table of one meme (the shape of ``prevalence()``)."""
    frames = [
        pl.DataFrame({"meme_id": "m", "state": state, "step": np.arange(len(v)), "prevalence": v})
        for state, v in (("adopter", adopters), ("infected", infected))
    ]
    return pl.concat(frames)


def test_a_curve_that_never_moved_is_not_fitted():
    """A flat zero curve (no adopter) or a flat seed level identifies no rate: no fit."""
    zero = np.zeros(len(T))
    seeds = np.full(len(T), 0.005)
    for flat in (zero, seeds):
        for fitter in (fit_si_discrete, fit_si, fit_sis, fit_sir):
            with pytest.raises(NotIdentifiableError, match="not identifiable"):
                fitter(T, flat, 200)
        for model in MODELS:
            with pytest.raises(NotIdentifiableError, match=r"1 distinct|0 distinct"):
                fit_prevalence(_prevalence_table(flat, flat), 200, model=model)
    # The error is a ValueError: callers that skip unfittable curves (run_metrics) still do.
    assert issubclass(NotIdentifiableError, ValueError)
    assert MIN_LEVELS == 3


def test_a_curve_with_one_jump_is_not_fitted():
    """Seeds at 1 %, one jump to 6 % at step 10, flat after: two levels, no fit."""
    jump = np.where(T < 10, 0.01, 0.06)
    two_levels = r"2 distinct non-zero value\(s\) \(0\.01, 0\.06\)"
    with pytest.raises(NotIdentifiableError, match=two_levels):
        fit_si_discrete(T, jump, 100)
    for model in MODELS:
        with pytest.raises(NotIdentifiableError):
            fit_prevalence(_prevalence_table(jump, jump), 100, model=model)
    # A second jump makes three levels: the curve is fitted (however poorly).
    twice = np.where(T < 10, 0.01, np.where(T < 20, 0.06, 0.2))
    fit = fit_si_discrete(T, twice, 100)
    assert set(fit.params) == {"beta", "i0"}


def test_a_logistic_curve_with_a_zero_lead_in_still_fits_with_its_parameters():
    """No adopter for 5 steps, then the logistic SI curve: the fit starts at the first
    adopter and recovers beta and i0 within 0.1 %."""
    n = 200
    curve = si_curve(T, 0.002, 0.01, n)
    lead = np.concatenate([np.zeros(5), curve])
    fit = fit_prevalence(_prevalence_table(lead, lead), n, model="si")
    assert fit.params["beta"] == pytest.approx(0.002, rel=1e-3)
    assert fit.params["i0"] == pytest.approx(0.01, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-6)
    assert len(fit.t) == len(T)


def _si_config(seed: int):
    n = 200
    return validate_config(
        {
            "name": f"si-{seed}",
            "seed": seed,
            "steps": 30,
            "graph": {"kind": "complete", "n": n},
            "banks": {"private": None, "neighbourhood": {"capacity": 4}},
            "memory": {"retrieval": {"k": n + 1}},
            "policy": {"kind": "contagion", "beta": 0.004},
            "memes": [
                {
                    "id": "m",
                    "statement": "spread me",
                    "canary": "CANARY-42",
                    "placement": {"strategy": "agents", "agents": [0]},
                }
            ],
        }
    )


def test_si_fit_recovers_beta_on_complete_graph_runs(tmp_path):
    """Complete graph n=200, neighbourhood banks, k >= n: network SI with beta = 0.004.

    The discrete (chain-binomial) SI fit of each run's adopter prevalence recovers beta
    within 25 % (single runs vary by about 10 %: the early phase is stochastic), and the
    mean of 8 replicate estimates within 10 %; every fit has R^2 > 0.99.
    """
    estimates = []
    for seed in range(8):
        run_experiment(_si_config(seed), tmp_path / str(seed), progress=False)
        run = load_run(tmp_path / str(seed))
        fit = fit_prevalence(prevalence(run.steps, run.n_agents), run.n_agents)
        assert fit.r2 > 0.99
        assert fit.params["beta"] == pytest.approx(0.004, rel=0.25)
        estimates.append(fit.params["beta"])
    assert np.mean(estimates) == pytest.approx(0.004, rel=0.10)


def test_fit_prevalence_on_run_for_every_model(contagion_run):
    prev = prevalence(contagion_run.steps, contagion_run.n_agents)
    for model in ("si_discrete", "si", "sis", "sir"):
        fit = fit_prevalence(prev, contagion_run.n_agents, model=model)
        assert fit.r2 is not None and fit.r2 > 0.9, (model, fit.r2)
        assert fit.rmse < 0.1
    with pytest.raises(ValueError, match="model = 'seir'"):
        fit_prevalence(prev, contagion_run.n_agents, model="seir")
    with pytest.raises(ValueError, match="meme_id = 'nope'"):
        fit_prevalence(prev, contagion_run.n_agents, meme_id="nope")
