"""Every interval method checked against an independent computation.

Wilson and Student-t against scipy's own implementations (``binomtest(...).proportion_ci``,
``stats.t.interval``), to 1e-9; the value-drift intervals against a t-interval computed
by hand; the cluster bootstrap of :func:`sim.analysis.effects.exposure_effects` against
the analytic cluster-robust (sandwich) standard error of a difference of ratio means:
with 400 agents the percentile interval's half width must be within 10 % of
``z * se`` (bootstrap noise with 4,000 replicates is about 2 %); the stratified
resampling against hand-computed replicate distributions; the cluster-robust standard
errors of :func:`sim.analysis.effects.dose_response` against the residual form of the
sandwich formula and, with equal cluster sizes, against the Student-t interval of the
cluster means.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agents.decisions import ACTIONS_SCHEMA
from agents.values import VALUES_SCHEMA
from sim.analysis.aggregate import confidence_interval, wilson_interval
from sim.analysis.clustered import stratified_weights
from sim.analysis.effects import DOSE_COLUMNS, dose_response, effect_lines, exposure_effects
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


def _dose_actions(
    agent: np.ndarray, dose: np.ndarray, y: np.ndarray, run: np.ndarray | None = None
) -> pl.DataFrame:
    """``actions`` rows of two-option decisions with the given doses (step = row index)."""
    frame = _decisions(np.arange(agent.size), agent, dose > 0, y).with_columns(
        pl.Series("dose", dose.astype(np.int32))
    )
    if run is not None:
        frame = frame.with_columns(pl.Series("run", [f"seed{r:02d}" for r in run]))
    return frame


def test_dose_response_interval_with_equal_clusters_is_the_t_interval_of_agent_means():
    # 8 agents, 3 decisions each at dose 0 and 2 each at dose 1 (agents 0-5): the mean
    # of a dose is the mean of the agents' means, and the cluster-robust interval must
    # be confidence_interval over those agent means (Student t, 7 and 5 degrees of
    # freedom), not the far narrower interval of 24 independent decisions.
    rng = np.random.default_rng(11)
    agents0 = np.repeat(np.arange(8), 3)
    agents1 = np.repeat(np.arange(6), 2)
    agent = np.concatenate([agents0, agents1])
    dose = np.concatenate([np.zeros(24, int), np.ones(12, int)])
    offset = rng.normal(0, 0.3, 8)[agent]
    y = rng.random(agent.size) < np.clip(0.3 + 0.3 * dose + offset, 0, 1)
    out = dose_response(_dose_actions(agent, dose, y), "inf", level=0.9)
    assert out.columns == list(DOSE_COLUMNS)
    for row in out.iter_rows(named=True):
        at = dose == row["dose"]
        means = (
            pl.DataFrame({"a": agent[at], "y": y[at].astype(float)})
            .group_by("a")
            .agg(pl.col("y").mean())["y"]
        )
        mean, low, high, g = confidence_interval(means.to_list(), level=0.9, bounds=(0, 1))
        assert (row["n"], row["n_clusters"], row["clusters"]) == (at.sum(), g, "agents")
        assert row["mean"] == pytest.approx(mean, abs=1e-12)
        assert row["se"] == pytest.approx(means.std() / np.sqrt(g), abs=1e-12)
        assert (row["ci_low"], row["ci_high"]) == (
            pytest.approx(low, abs=1e-12),
            pytest.approx(high, abs=1e-12),
        )
        assert row["level"] == 0.9


def test_dose_response_standard_error_is_clustered_by_agent_then_by_run():
    # Unequal numbers of decisions per agent; a per-agent offset correlates decisions.
    # The standard error is the sandwich formula written with residuals: with e_i the
    # decision's residual from the dose's mean, se^2 = G/(G-1) * sum_g (sum_i e_i)^2 / N^2.
    rng = np.random.default_rng(4)
    agent = rng.integers(0, 60, 1500)
    dose = rng.integers(0, 3, 1500)
    offset = rng.normal(0, 0.2, 60)[agent]
    y = rng.random(agent.size) < np.clip(0.25 + 0.15 * dose + offset, 0, 1)

    def by_hand(cluster: np.ndarray, at: np.ndarray) -> tuple[float, float, int]:
        yy = y[at].astype(float)
        e = yy - yy.mean()
        sums = pl.DataFrame({"c": cluster[at], "e": e}).group_by("c").agg(pl.col("e").sum())
        g = sums.height
        return yy.mean(), float(np.sqrt(g / (g - 1) * (sums["e"] ** 2).sum() / at.sum() ** 2)), g

    out = dose_response(_dose_actions(agent, dose, y), "inf")
    for row in out.iter_rows(named=True):
        at = dose == row["dose"]
        mean, se, g = by_hand(agent, at)
        assert (row["mean"], row["n_clusters"]) == (pytest.approx(mean, abs=1e-12), g)
        assert row["se"] == pytest.approx(se, rel=1e-9)
        half = stats.t.ppf(0.975, g - 1) * se
        assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * half, rel=1e-9)
        assert row["se"] > 1.3 * y[at].std(ddof=1) / np.sqrt(at.sum())  # iid: too narrow
    # Twelve seeds pooled: the runs are the clusters (as the effects resample runs).
    run = agent % 12
    out = dose_response(_dose_actions(agent, dose, y, run), "inf")
    for row in out.iter_rows(named=True):
        at = dose == row["dose"]
        _, se, g = by_hand(run, at)
        assert (row["clusters"], row["n_clusters"]) == ("runs", 12)
        assert row["se"] == pytest.approx(se, rel=1e-9)
    # One decision at a dose: no interval rather than a zero-width one.
    one = dose_response(_dose_actions(np.array([0, 1, 2]), np.array([0, 0, 5]), y[:3]), "inf")
    assert one.filter(pl.col("dose") == 3).select("se", "ci_low", "ci_high").row(0) == (
        None,
        None,
        None,
    )


def test_stratified_weights_keep_every_stratum_size_and_draw_uniformly():
    strata = np.array([2, 0, 0, 1, 2, 2, 0, 1, 2, 2])
    weights = stratified_weights(strata, 3000, np.random.default_rng(1))
    assert weights.shape == (3000, 10)
    for label in (0, 1, 2):
        members = strata == label
        assert (weights[:, members].sum(axis=1) == members.sum()).all()
    # Each unit is drawn once per replicate on average (binomial: sd of the mean < 0.02).
    assert weights.mean(axis=0) == pytest.approx(np.ones(10), abs=0.06)
    again = stratified_weights(strata, 3000, np.random.default_rng(1))
    assert (again == weights).all()


def test_bootstrap_never_empties_an_arm_of_few_agents():
    # Two exposed agents: A always chooses the target, B never; 40 unexposed agents
    # never do. Resampled within the exposed arm, a replicate draws two exposed agents,
    # so its exposed mean is 1 (AA, probability 1/4), 0.5 (AB, 1/2) or 0 (BB, 1/4), and
    # the unexposed mean is always 0: the 30 % and 70 % quantiles (level 0.4) are both
    # 0.5. A plain cluster bootstrap over all 42 agents draws no exposed agent in 13 % of
    # the replicates (dropped) and a single one in 27 % (mean 0 or 1): it gave
    # [0.33, 0.75].
    agent = np.tile(np.arange(42), 10)
    exposed = agent < 2
    y = agent == 0
    frame = _decisions(np.repeat(np.arange(10), 42), agent, exposed, y)
    row = exposure_effects(frame, "inf", n_boot=2000, level=0.4, seed=0).row(0, named=True)
    assert (row["effect"], row["ci_low"], row["ci_high"]) == (0.5, 0.5, 0.5)
    row = exposure_effects(frame, "inf", n_boot=2000, level=0.9, seed=0).row(0, named=True)
    assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)


def test_run_bootstrap_keeps_runs_without_exposure_apart():
    # Twelve seeds; the meme reached agents in two of them only (seed00: exposed agents
    # always chose the target, seed01: never). Resampling runs within strata (with
    # exposed decisions / without), every replicate draws two runs of the first kind:
    # the same 1/4, 1/2, 1/4 distribution of the exposed mean as above, so the level-0.4
    # interval is [0.5, 0.5]. A plain run bootstrap draws neither run in 11 % of the
    # replicates and would have to drop them.
    run = np.repeat(np.arange(12), 40)
    agent = np.tile(np.arange(40), 12)
    exposed = (run < 2) & (agent < 20)
    y = exposed & (run == 0)
    frame = _decisions(np.zeros(run.size, int), agent, exposed, y).with_columns(
        pl.Series("run", [f"seed{r:02d}" for r in run])
    )
    row = exposure_effects(frame, "inf", n_boot=2000, level=0.4, seed=0).row(0, named=True)
    assert (row["resampled"], row["n_runs"]) == ("runs", 12)
    assert (row["effect"], row["ci_low"], row["ci_high"]) == (0.5, 0.5, 0.5)
