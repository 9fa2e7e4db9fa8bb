"""Every interval method checked against an independent computation.

Wilson and Student-t against scipy's own implementations (``binomtest(...).proportion_ci``,
``stats.t.interval``), to 1e-9; the value-drift intervals against a t-interval computed
by hand; the cluster bootstrap of :func:`sim.analysis.effects.exposure_effects` against
the analytic cluster-robust (sandwich) standard error of a difference of ratio means:
with 400 agents the percentile interval's half width must be within 10 % of
``z * se`` (bootstrap noise with 4,000 replicates is about 2 %).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agents.decisions import ACTIONS_SCHEMA
from agents.values import VALUES_SCHEMA
from sim.analysis.aggregate import confidence_interval, wilson_interval
from sim.analysis.effects import effect_lines, exposure_effects
from sim.analysis.values import memory_effect_summary, value_drift


@pytest.mark.parametrize(
    ("k", "n", "level"), [(0, 1, 0.95), (0, 20, 0.95), (7, 20, 0.9), (20, 20, 0.99), (1, 3, 0.95)]
)
def test_wilson_matches_scipy(k, n, level):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    low, high = wilson_interval(k, n, level=level)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


@pytest.mark.parametrize("values", [[0.2, 0.5], [1.0, 2.0, 4.0, 8.0], [0.3] * 3 + [0.31]])
def test_t_interval_matches_scipy(values):
    x = np.asarray(values)
    low, high = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    mean, got_low, got_high, n = confidence_interval(values, level=0.9)
    assert (mean, n) == (pytest.approx(x.mean()), len(x))
    assert got_low == pytest.approx(low, abs=1e-9)
    assert got_high == pytest.approx(high, abs=1e-9)


def _values(scores: dict[int, tuple[float, float]]) -> pl.DataFrame:
    """One item per agent at step 1: (score with memories, score without)."""
    rows = []
    for agent, pair in scores.items():
        for memory, score in zip(("with", "without"), pair, strict=True):
            rows.append(
                {
                    "step": 1,
                    "agent_id": agent,
                    "agent_generation": 0,
                    "item_id": "p1",
                    "dimension": "power",
                    "format": "yes_no",
                    "keyed": 1,
                    "memory": memory,
                    "n_memories": 2 if memory == "with" else 0,
                    "scoring": "logprob",
                    "option_probs": [score, 1 - score],
                    "answer": None,
                    "score": score,
                    "error": None,
                }
            )
    return pl.DataFrame(rows, schema=VALUES_SCHEMA)


def test_value_intervals_are_student_t_over_agents_and_stay_in_range():
    scores = {0: (0.9, 0.2), 1: (0.7, 0.3), 2: (0.8, 0.1), 3: (0.95, 0.2)}
    values = _values(scores)
    with_memory = np.array([s[0] for s in scores.values()])
    low, high = stats.t.interval(0.95, 3, loc=with_memory.mean(), scale=stats.sem(with_memory))
    row = value_drift(values).row(0, named=True)
    assert row["agents"] == 4
    assert row["ci_low"] == pytest.approx(low, abs=1e-9)
    assert row["ci_high"] == 1.0  # unclipped 1.0366: a score is at most 1
    assert high > 1.0
    effect = np.array([a - b for a, b in scores.values()])
    low, high = stats.t.interval(0.95, 3, loc=effect.mean(), scale=stats.sem(effect))
    row = memory_effect_summary(values).row(0, named=True)
    assert (row["ci_low"], row["ci_high"]) == (
        pytest.approx(low, abs=1e-9),
        pytest.approx(high, abs=1e-9),
    )
    # One agent: no interval, rather than a zero-width one.
    row = value_drift(_values({0: (0.9, 0.2)})).row(0, named=True)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == (0.9, None, None)


def _decisions(
    step: np.ndarray, agent: np.ndarray, exposed: np.ndarray, y: np.ndarray
) -> pl.DataFrame:
    """``actions`` rows of sampled two-option decisions: ``y`` chose the meme's target,
    ``exposed`` had one carrying entry of it in context."""
    return pl.DataFrame(
        {
            "step": step,
            "agent_id": agent,
            "task_id": "d01",
            "options": [["influence", "plain"]] * agent.size,
            "choice": np.where(y, "influence", "plain"),
            "answer": "",
            "scoring": "sampled",
            "option_probs": None,
            "meme_id": "inf",
            "offered": True,
            "expressed": y,
            "correct": None,
            "p_target": None,
            "dose": exposed.astype(np.int32),
        },
        schema=ACTIONS_SCHEMA,
    )


def _clustered(
    cluster: np.ndarray, exposed: np.ndarray, y: np.ndarray
) -> tuple[float, float, float]:
    """Exposed and control means of ``y``, and the effect's cluster-robust standard error.

    Each arm's mean is a ratio of per-cluster sums; its influence function per cluster is
    (s_c - m * n_c) / N. The effect's variance is the variance of the difference of the
    two influence functions summed over clusters (clusters independent).
    """
    k = int(cluster.max()) + 1
    s1 = np.bincount(cluster, weights=y * exposed, minlength=k)
    c1 = np.bincount(cluster, weights=exposed, minlength=k)
    s0 = np.bincount(cluster, weights=y * ~exposed, minlength=k)
    c0 = np.bincount(cluster, weights=~exposed, minlength=k)
    m1, m0 = s1.sum() / c1.sum(), s0.sum() / c0.sum()
    u = (s1 - m1 * c1) / c1.sum() - (s0 - m0 * c0) / c0.sum()
    return m1, m0, float(np.sqrt(k / (k - 1) * np.sum((u - u.mean()) ** 2)))


def test_cluster_bootstrap_matches_the_cluster_robust_standard_error():
    # 400 agents, 12 decisions each; an agent is exposed in all its decisions or in none
    # (as when exposure follows the position in the graph); outcomes share a per-agent
    # offset (intra-agent correlation), so decisions are not independent.
    rng = np.random.default_rng(5)
    n_agents, per_agent = 400, 12
    agent = np.repeat(np.arange(n_agents), per_agent)
    exposed = (rng.random(n_agents) < 0.4)[agent]
    offset = rng.normal(0, 0.15, n_agents)[agent]
    p = np.clip(0.3 + 0.2 * exposed + offset, 0, 1)
    y = rng.random(agent.size) < p
    frame = _decisions(np.tile(np.arange(per_agent), n_agents), agent, exposed, y)
    out = exposure_effects(frame, "inf", n_boot=4000, level=0.9, seed=3).row(0, named=True)
    m1, m0, se = _clustered(agent, exposed, y)
    z = stats.norm.ppf(0.95)
    assert out["effect"] == pytest.approx(m1 - m0, abs=1e-12)
    half = (out["ci_high"] - out["ci_low"]) / 2
    assert half == pytest.approx(z * se, rel=0.10)
    # Treating decisions as independent would be far too narrow here.
    n1, n0 = exposed.sum(), (~exposed).sum()
    naive = np.sqrt(m1 * (1 - m1) / n1 + m0 * (1 - m0) / n0)
    assert naive < 0.8 * se


def _seeded_actions(
    n_runs: int, seed: int
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Decisions of ``n_runs`` runs whose effect of exposure differs by run (seed)."""
    rng = np.random.default_rng(seed)
    agents, per_agent = 40, 6
    run = np.repeat(np.arange(n_runs), agents * per_agent)
    agent = np.repeat(np.arange(n_runs * agents), per_agent)
    exposed = (rng.random(n_runs * agents) < 0.4)[agent]
    run_effect = rng.normal(0.2, 0.12, n_runs)[run]
    offset = rng.normal(0, 0.1, n_runs * agents)[agent]
    y = rng.random(agent.size) < np.clip(0.3 + run_effect * exposed + offset, 0, 1)
    frame = _decisions(
        np.tile(np.arange(per_agent), n_runs * agents), agent % agents, exposed, y
    ).with_columns(pl.Series("run", [f"seed{r:02d}" for r in run]))
    return frame, run, exposed, y


def test_from_ten_seeds_the_bootstrap_resamples_runs_and_matches_the_run_clustered_error():
    # 30 seeds whose effect differs (sd 0.12): the variation between seeds is most of the
    # uncertainty. Resampling runs must match the analytic run-clustered standard error;
    # resampling agents within runs (the rule below 10 seeds) would be far narrower.
    frame, run, exposed, y = _seeded_actions(30, seed=7)
    out = exposure_effects(frame, "inf", n_boot=4000, level=0.9, seed=3).row(0, named=True)
    m1, m0, se_runs = _clustered(run, exposed, y)
    z = stats.norm.ppf(0.95)
    assert (out["resampled"], out["n_runs"]) == ("runs", 30)
    assert out["effect"] == pytest.approx(m1 - m0, abs=1e-12)
    half = (out["ci_high"] - out["ci_low"]) / 2
    assert half == pytest.approx(z * se_runs, rel=0.10)
    # Below 10 seeds the interval is conditional on them, and says so.
    few = frame.filter(pl.col("run") < "seed05")
    row = exposure_effects(few, "inf", n_boot=200, seed=3).row(0, named=True)
    assert (row["resampled"], row["n_runs"]) == ("agents within runs", 5)
    (line,) = effect_lines(exposure_effects(few, "inf", n_boot=200, seed=3).head(1))
    assert line.endswith(
        "; 5 seeds, too few to resample: the interval leaves out the variation between them"
    )
