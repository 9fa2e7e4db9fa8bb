"""The effect estimator recovers a known effect from synthetic actions tables.

Decisions are drawn with known probabilities of choosing the target: 0.60 when exposed,
0.25 under the placebo, 0.20 unexposed; per-agent random offsets make decisions of one
agent correlated (what the cluster bootstrap is for). Tolerances follow from the sample
sizes: about 3,000 decisions per arm over 3 seeds, so the standard error of a difference
is about 0.015 (plus the agent-level spread); estimates must be within 0.05 of the truth
and the 95 % intervals must cover it.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.decisions import ACTIONS_SCHEMA
from sim.analysis.effects import (
    DISTANCE_COLUMNS,
    EFFECT_COLUMNS,
    decision_arms,
    dose_response,
    effect_by_distance,
    effect_lines,
    exposure_effects,
    funnel_counts,
    load_actions,
    own_doses,
)

P = {"exposed": 0.60, "placebo": 0.25, "unexposed": 0.20}


def _actions(seed: int, n_agents: int = 150, steps: int = 60) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    offset = rng.normal(0, 0.05, n_agents)
    rows = []
    for step in range(steps):
        for agent in range(n_agents):
            arm = rng.choice(["exposed", "placebo", "unexposed"])
            dose = int(rng.integers(1, 4)) if arm == "exposed" else 0
            pdose = 1 if arm == "placebo" else 0
            chose = rng.random() < np.clip(P[arm] + offset[agent], 0, 1)
            base = {
                "step": step,
                "agent_id": agent,
                "task_id": "d01",
                "options": ["influence", "careful", "plain"],
                "choice": "influence" if chose else "plain",
                "answer": "",
                "scoring": "sampled",
                "option_probs": None,
                "offered": True,
                "expressed": bool(chose),
                "p_target": None,
            }
            rows.append({**base, "meme_id": "inf", "dose": dose})
            rows.append({**base, "meme_id": "pla", "dose": pdose})
    return pl.DataFrame(rows, schema=ACTIONS_SCHEMA).with_columns(pl.lit(f"s{seed}").alias("run"))


@pytest.fixture(scope="module")
def actions() -> pl.DataFrame:
    return pl.concat([_actions(seed) for seed in range(3)])


def test_recovers_the_effect_against_both_controls(actions):
    out = exposure_effects(actions, "inf", placebo_id="pla", n_boot=400, seed=1)
    rows = {r["control"]: r for r in out.iter_rows(named=True)}
    truth = {"unexposed": 0.40, "placebo": 0.35}
    for control, effect in truth.items():
        row = rows[control]
        assert row["effect"] == pytest.approx(effect, abs=0.05)
        assert row["ci_low"] < effect < row["ci_high"]
        assert row["ci_low"] > 0.2  # clearly non-zero
        assert row["ci_high"] - row["ci_low"] < 0.12
        assert row["n_runs"] == 3 and row["n_agents"] == 450
    assert rows["unexposed"]["exposed_mean"] == pytest.approx(0.60, abs=0.03)
    # Same seed, same intervals.
    again = exposure_effects(actions, "inf", placebo_id="pla", n_boot=400, seed=1)
    assert again.equals(out)


def test_no_effect_gives_an_interval_around_zero():
    # Re-draw the outcome independently of the arm: the true effect is zero. (A 95 %
    # interval misses zero 1 time in 20; this seed is one of the 19, fixed for good.)
    rng = np.random.default_rng(1)
    frame = _actions(7)
    chose = rng.random(frame.height // 2) < 0.3
    frame = frame.with_columns(
        pl.Series("expressed", np.repeat(chose, 2)),
    )
    out = exposure_effects(frame, "inf", n_boot=400, seed=2)
    row = out.row(0, named=True)
    assert row["control"] == "unexposed"
    assert row["ci_low"] < 0 < row["ci_high"]
    assert abs(row["effect"]) < 0.05


def test_arms_dose_response_and_distance(actions):
    arms = decision_arms(actions, "inf", "pla")
    counts = dict(arms.group_by("arm").len().iter_rows())
    assert sum(counts.values()) == actions.height // 2
    doses = dose_response(actions, "inf")
    assert doses["dose"].to_list() == [0, 1, 2, 3]
    assert doses.filter(pl.col("dose") == 0)["mean"][0] == pytest.approx(0.215, abs=0.03)
    assert doses.filter(pl.col("dose") > 0)["mean"].min() > 0.55
    assert (doses["clusters"].unique().to_list(), doses["n_clusters"].max()) == (
        ["agents within runs"],
        450,
    )
    assert (doses["ci_low"] < doses["mean"]).all() and (doses["mean"] < doses["ci_high"]).all()


def test_effect_by_distance_has_the_intervals_of_exposure_effects(actions):
    # A star with three arms: agent 0 in the middle, agents 1-50, 51-100 and 101-149
    # along them, so distances 1-49 hold three agents each (60 decisions apiece). Each
    # distance's rows must be exposure_effects of its agents (the same stratified
    # bootstrap, level and seed), not estimates without an interval.
    one = actions.filter(pl.col("run") == "s0")
    graph = nx.Graph()
    for arm in range(3):
        nx.add_path(graph, [0, *range(1 + 50 * arm, min(51 + 50 * arm, 150))])
    distance_of = nx.single_source_shortest_path_length(graph, 0)
    by_distance = effect_by_distance(
        one, "inf", graph, seeds=[0], placebo_id="pla", n_boot=300, level=0.9, seed=4
    )
    assert by_distance.columns == list(DISTANCE_COLUMNS)
    assert by_distance["n"].sum() == 2 * (one.height // 2)  # two controls per distance
    assert by_distance["distance"].to_list()[:6] == [0, 0, 1, 1, 2, 2]
    assert by_distance["control"].to_list()[:2] == ["unexposed", "placebo"]
    for distance in (3, 27):
        agents = [a for a, d in distance_of.items() if d == distance]
        expected = exposure_effects(
            one.filter(pl.col("agent_id").is_in(agents)),
            "inf",
            placebo_id="pla",
            n_boot=300,
            level=0.9,
            seed=4,
        )
        got = by_distance.filter(pl.col("distance") == distance)
        assert got.select(EFFECT_COLUMNS).equals(expected)
        assert got["n_agents"].to_list() == [3, 3]
        assert (got["ci_low"] < got["ci_high"]).all() and (got["level"] == 0.9).all()


def test_bad_inputs_raise(actions):
    with pytest.raises(ValueError, match="outcome"):
        exposure_effects(actions, "inf", outcome="vibes")
    with pytest.raises(ValueError, match="no scored decision offered"):
        exposure_effects(actions, "nope")
    with pytest.raises(ValueError, match="option_scoring = 'logprob'"):
        exposure_effects(actions, "inf", outcome="p_target")


def test_funnel_counts():
    steps = pl.DataFrame(
        {
            "step": [0, 1],
            "meme_id": ["inf", "inf"],
            "exposed": [2, 5],
            "carriers": [1, 3],
            "expressed": [0, 2],
            "adopters": [0, 1],
        }
    )
    assert funnel_counts(steps, "inf") == {
        "exposed": 5,
        "carriers": 3,
        "expressed": 2,
        "adopters": 1,
    }


def _decision(step: int, agent: int, meme: str, dose: int, chose: bool) -> dict:
    return {
        "step": step,
        "agent_id": agent,
        "task_id": "d01",
        "options": ["influence", "careful", "plain"],
        "choice": "influence" if chose else "plain",
        "answer": "",
        "scoring": "sampled",
        "option_probs": None,
        "meme_id": meme,
        "offered": True,
        "expressed": chose,
        "p_target": None,
        "dose": dose,
    }


def test_own_entries_in_context_are_not_a_control(tmp_path):
    # Agent 0 was seeded with "inf" and reads its own seed (dose 0: the seed's author is
    # agent 0 itself); agent 4 likewise with the placebo "pla". Agent 1 reads agent 0's
    # entry (exposed), agent 3 reads agent 4's (placebo); agents 2 and 5 read nothing.
    # Seeds always choose the target, so counting them as controls would bias both.
    memories = pl.DataFrame(
        {
            "entry_id": [10, 11, 12],
            "author_id": [0, 4, 2],
            "memes": [["inf"], ["pla"], []],
        },
        schema={"entry_id": pl.Int64, "author_id": pl.Int32, "memes": pl.List(pl.String)},
    )
    contexts = pl.DataFrame(
        {
            "step": [0, 0, 0, 0, 0],
            "agent_id": [0, 1, 4, 3, 2],
            "rank": [0, 0, 0, 0, 0],
            "entry_id": [10, 10, 11, 11, 12],
            "score": [1.0] * 5,
        },
        schema={
            "step": pl.Int32,
            "agent_id": pl.Int32,
            "rank": pl.Int32,
            "entry_id": pl.Int64,
            "score": pl.Float64,
        },
    )
    # (agent, dose of inf, dose of pla, chose the target)
    plan = [(0, 0, 0, True), (1, 1, 0, True), (2, 0, 0, False), (3, 0, 1, False)]
    plan += [(4, 0, 0, True), (5, 0, 0, False)]
    rows = []
    for agent, inf, pla, chose in plan:
        rows.append(_decision(0, agent, "inf", inf, chose))
        rows.append(_decision(0, agent, "pla", pla, chose))
    pl.DataFrame(rows, schema=ACTIONS_SCHEMA).write_parquet(tmp_path / "actions.parquet")
    contexts.write_parquet(tmp_path / "contexts.parquet")
    memories.write_parquet(tmp_path / "memories.parquet")

    own = own_doses(contexts, memories)
    assert own.rows() == [(0, 0, "inf", 1), (0, 4, "pla", 1)]
    actions = load_actions([tmp_path])
    arms = dict(decision_arms(actions, "inf", "pla").select("agent_id", "arm").iter_rows())
    assert arms == {
        0: "own",
        1: "exposed",
        2: "unexposed",
        3: "placebo",
        4: "own",
        5: "unexposed",
    }
    out = exposure_effects(actions, "inf", placebo_id="pla", n_boot=50)
    rows_by = {r["control"]: r for r in out.iter_rows(named=True)}
    assert rows_by["unexposed"]["control_mean"] == 0.0  # agents 2 and 5, not the seeds
    assert rows_by["unexposed"]["n_control"] == 2
    assert rows_by["placebo"]["n_control"] == 1  # agent 3, not agent 4
    assert rows_by["unexposed"]["effect"] == 1.0
    # Without the contexts the seeds cannot be told apart and count as unexposed (agent
    # 3, not told that "pla" is the placebo, holds a competing meme: "other").
    blind = exposure_effects(pl.read_parquet(tmp_path / "actions.parquet"), "inf", n_boot=50)
    assert blind["n_control"][0] == 4
    assert blind["control_mean"][0] == pytest.approx(0.5)
    # Dose 0 of the dose-response holds only decisions with no meme in context: 2 and 5.
    doses = dose_response(actions, "inf")
    assert doses.filter(pl.col("dose") == 0)["n"][0] == 2


def test_effects_state_their_level_and_warn_on_few_agents():
    # Two exposed and two unexposed agents, 30 decisions each: plenty of decisions, but
    # the bootstrap resamples 4 agents, and the two in each arm have equal means, so
    # the percentile interval has zero width. The line must say so.
    rows = []
    for step in range(30):
        for agent in range(4):
            exposed = agent < 2
            rows.append(_decision(step, agent, "inf", int(exposed), step % 3 == 0))
    frame = pl.DataFrame(rows, schema=ACTIONS_SCHEMA)
    out = exposure_effects(frame, "inf", n_boot=200, level=0.9)
    row = out.row(0, named=True)
    assert (row["n_exposed"], row["n_control"]) == (60, 60)
    assert (row["n_exposed_agents"], row["n_control_agents"], row["n_agents"]) == (2, 2, 4)
    assert row["level"] == 0.9
    assert row["ci_low"] == row["ci_high"] == 0.0
    (line,) = effect_lines(out)
    assert "[90 % CI +0.000, +0.000]" in line
    assert "over 60 decisions of 2 agents" in line
    assert line.endswith("; too few agents for a reliable interval")


def test_an_effect_pooled_over_ten_or_more_runs_says_it_resampled_whole_runs():
    # 12 identical runs: agent 0 exposed, choosing the target at 3 of its 5 decisions;
    # agent 1 unexposed, at 1 of 5. Every run has the same means, so any resample of
    # whole runs gives the effect 0.4.
    rows = [
        {**_decision(step, agent, "inf", int(agent == 0), step % (2, 5)[agent] == 0), "run": run}
        for run in [f"r{i:02d}" for i in range(12)]
        for step in range(5)
        for agent in (0, 1)
    ]
    frame = pl.DataFrame(rows, schema={**ACTIONS_SCHEMA, "run": pl.String})
    out = exposure_effects(frame, "inf", n_boot=200)
    row = out.row(0, named=True)
    assert (row["n_runs"], row["resampled"]) == (12, "runs")
    assert (row["n_exposed"], row["n_exposed_agents"], row["n_control_agents"]) == (60, 12, 12)
    assert (row["effect"], row["ci_low"], row["ci_high"]) == pytest.approx((0.4, 0.4, 0.4))
    (line,) = effect_lines(out)
    assert "+0.400 [95 % CI +0.400, +0.400] vs unexposed" in line
    assert line.endswith("; 12 seeds, resampled as whole runs")


def test_funnel_has_no_expressed_bar_without_scored_choices():
    from experiments.report import funnel_figure

    steps = pl.DataFrame(
        {
            "step": [0, 1],
            "meme_id": ["inf", "inf"],
            "exposed": [2, 5],
            "carriers": [1, 3],
            "expressed": [0, 0],
            "adopters": [0, 1],
        }
    )
    fig = funnel_figure(steps, 10, scored=False, name="c")
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["exposed", "carrier", "adopter"]
    assert fig.axes[0].get_title() == "c: from exposure to action"
    fig = funnel_figure(steps, 10, scored=True, name="c")
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()][2] == "expressed"
    assert "expressed = chose a target option" in fig.axes[0].get_title()


def test_a_competing_meme_with_the_same_target_is_not_a_control():
    # The controls config: two goals with the same target option. Agent 1 reads goal
    # "a", agent 2 reads goal "b", agent 3 reads nothing. For "a", agent 2's decision
    # is not unexposed: "b" pushes towards the same option.
    rows = []
    for agent, dose_a, dose_b, chose in [(1, 1, 0, True), (2, 0, 1, True), (3, 0, 0, False)]:
        rows.append(_decision(0, agent, "a", dose_a, chose))
        rows.append(_decision(0, agent, "b", dose_b, chose))
    actions = pl.DataFrame(rows, schema=ACTIONS_SCHEMA)
    arms = dict(decision_arms(actions, "a").select("agent_id", "arm").iter_rows())
    assert arms == {1: "exposed", 2: "other", 3: "unexposed"}
    row = exposure_effects(actions, "a", n_boot=20).row(0, named=True)
    assert (row["n_control"], row["control_mean"], row["effect"]) == (1, 0.0, 1.0)
    # A meme the decision does not offer a target of (e.g. benign facts) competes with
    # nothing: its exposure leaves the decision unexposed.
    facts = actions.filter(pl.col("meme_id") == "b").with_columns(pl.lit(False).alias("offered"))
    actions = pl.concat([actions.filter(pl.col("meme_id") == "a"), facts])
    arms = dict(decision_arms(actions, "a").select("agent_id", "arm").iter_rows())
    assert arms == {1: "exposed", 2: "unexposed", 3: "unexposed"}
