"""Decision outcomes by persona on hand-made ``actions`` and ``personas`` tables.

Five agents decide on one task whose options include the meme's target ``t``:

* Ada speaks through agents 0 and 3 (two agents, one persona);
* Ben (agent 1) has the placebo in context at step 0, so that decision is in neither arm;
* agent 2 is Cy at steps 0-1 and is replaced at step 2 by a new generation, Dee;
* agent 4's first ``personas`` row is at step 2 (as after a resume from an old
  checkpoint): its step-1 decision has no persona.

The intervals use ``level = 0.5``: Student's t with one degree of freedom has its 75 %
quantile at 1, so an interval is ``mean ± se`` (two clusters).
"""

from __future__ import annotations

import polars as pl
import pytest
from scipy import stats

from sim.analysis.personas import (
    PERSONA_COLUMNS,
    expressed_by_persona,
    persona_text_table,
    with_personas,
)

THREE = ["t", "a", "b"]

#: (step, agent, dose, expressed, options) of the meme's decisions.
DECISIONS = [
    (0, 0, 1, True, THREE),
    (1, 0, 1, False, THREE),
    (2, 0, 0, False, THREE),
    (3, 0, 0, False, THREE),
    (0, 3, 1, True, THREE),
    (1, 3, 0, True, ["t", "a"]),
    (2, 3, 0, False, THREE),
    (0, 1, 0, False, THREE),  # the placebo in context: neither arm
    (1, 1, 0, True, THREE),
    (0, 2, 1, True, THREE),  # Cy
    (1, 2, 0, False, THREE),  # Cy
    (2, 2, 1, False, THREE),  # Dee, the replacement
    (3, 2, 1, True, THREE),  # Dee
    (1, 4, 0, False, THREE),  # before agent 4's first personas row
    (3, 4, 0, True, THREE),  # Eve
]


def _actions() -> pl.DataFrame:
    rows = [
        {
            "step": s,
            "agent_id": a,
            "task_id": "keys",
            "options": o,
            "meme_id": "m",
            "offered": True,
            "expressed": e,
            "p_target": None,
            "dose": d,
        }
        for s, a, d, e, o in DECISIONS
    ]
    placebo = {**rows[7], "meme_id": "p", "dose": 1, "expressed": False}
    # A decision that did not offer the target: in no arm.
    unoffered = {**rows[0], "step": 4, "options": ["a", "b"], "offered": False}
    schema = {
        "step": pl.Int32,
        "agent_id": pl.Int32,
        "options": pl.List(pl.String),
        "p_target": pl.Float64,
        "dose": pl.Int32,
    }
    return pl.DataFrame([*rows, placebo, unoffered], schema_overrides=schema)


def _personas() -> pl.DataFrame:
    rows = [
        (0, 0, 0, 0, "Ada"),
        (0, 1, 0, 1, "Ben"),
        (0, 2, 0, 2, "Cy"),
        (0, 3, 0, 0, "Ada"),
        (2, 2, 1, 3, "Dee"),
        (2, 4, 0, 4, "Eve"),
    ]
    return pl.DataFrame(
        [
            {
                "step": s,
                "agent_id": a,
                "agent_generation": g,
                "persona": p,
                "persona_name": n,
                "persona_role": f"{n}'s role",
            }
            for s, a, g, p, n in rows
        ],
        schema_overrides={
            "step": pl.Int32,
            "agent_id": pl.Int32,
            "agent_generation": pl.Int32,
            "persona": pl.Int32,
        },
    )


def test_each_decision_gets_the_persona_of_its_step_and_a_replacement_its_own():
    joined = with_personas(_actions().filter(pl.col("meme_id") == "m"), _personas())
    agent_2 = joined.filter(pl.col("agent_id") == 2, pl.col("offered"))
    assert agent_2.select("step", "agent_generation", "persona_name").rows() == [
        (0, 0, "Cy"),
        (1, 0, "Cy"),
        (2, 1, "Dee"),
        (3, 1, "Dee"),
    ]
    agent_4 = joined.filter(pl.col("agent_id") == 4)
    assert agent_4.select("step", "persona_name").rows() == [(1, None), (3, "Eve")]
    # The decisions keep their order.
    assert joined.select("step", "agent_id").equals(
        _actions().filter(pl.col("meme_id") == "m").select("step", "agent_id")
    )


def test_expressed_shares_by_persona_and_arm_with_agent_clustered_intervals():
    t = float(stats.t.ppf(0.75, 1))
    table = expressed_by_persona(_actions(), _personas(), "m", ["t"], placebo_id="p", level=0.5)
    assert table.columns == list(PERSONA_COLUMNS)
    assert table.select("persona_name", "arm", "n_decisions", "n_agents").rows() == [
        ("Ada", "exposed", 3, 2),
        ("Ada", "unexposed", 4, 2),
        ("Ben", "exposed", 0, 0),
        ("Ben", "unexposed", 1, 1),
        ("Cy", "exposed", 1, 1),
        ("Cy", "unexposed", 1, 1),
        ("Dee", "exposed", 2, 1),
        ("Dee", "unexposed", 0, 0),
        ("Eve", "exposed", 0, 0),
        ("Eve", "unexposed", 1, 1),
        (None, "exposed", 0, 0),
        (None, "unexposed", 1, 1),
    ]
    assert table["persona"].to_list() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, None, None]
    assert table["persona_agents"].to_list() == [2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert set(table["clusters"]) == {"agents"} and set(table["level"]) == {0.5}
    ada = table.filter(pl.col("persona_name") == "Ada").rows_by_key("arm", named=True)
    # Exposed: agent 0 chose the target 1 of 2 times, agent 3 1 of 1: 2/3; CR1 with
    # u = (1 - 2/3 * 2) / 3 and (1 - 2/3) / 3: se^2 = 2 * 2/81.
    exposed = ada["exposed"][0]
    assert exposed["expressed_share"] == pytest.approx(2 / 3, abs=1e-12)
    assert exposed["se"] == pytest.approx(2 / 9, abs=1e-12)
    assert exposed["ci_low"] == pytest.approx(2 / 3 - t * 2 / 9, abs=1e-12)
    assert exposed["ci_high"] == pytest.approx(2 / 3 + t * 2 / 9, abs=1e-12)
    assert exposed["n_clusters"] == 2
    assert exposed["chance"] == pytest.approx(1 / 3, abs=1e-12)
    # Unexposed: agent 0 0 of 2, agent 3 1 of 2: 1/4, se 1/4, the interval kept in [0, 1].
    unexposed = ada["unexposed"][0]
    assert unexposed["expressed_share"] == pytest.approx(0.25, abs=1e-12)
    assert unexposed["se"] == pytest.approx(0.25, abs=1e-12)
    assert unexposed["ci_low"] == 0.0
    assert unexposed["ci_high"] == pytest.approx(0.25 + t * 0.25, abs=1e-12)
    # One decision among two options: chance (1/3 + 1/3 + 1/2 + 1/3) / 4.
    assert unexposed["chance"] == pytest.approx(0.375, abs=1e-12)
    # The replaced agent's decisions split between its two personas.
    shares = table.select("persona_name", "arm", "expressed_share", "se").rows()
    assert ("Cy", "exposed", 1.0, None) in shares
    assert ("Cy", "unexposed", 0.0, None) in shares
    assert ("Dee", "exposed", 0.5, None) in shares  # one agent: no interval
    assert ("Dee", "unexposed", None, None) in shares
    assert ("Ben", "unexposed", 1.0, None) in shares  # its placebo decision left out


def test_several_runs_cluster_agents_within_runs_and_never_mix_their_agents():
    actions = pl.concat([_actions().with_columns(pl.lit(r).alias("run")) for r in ("a", "b")])
    personas = pl.concat([_personas().with_columns(pl.lit(r).alias("run")) for r in ("a", "b")])
    table = expressed_by_persona(actions, personas, "m", ["t"], placebo_id="p", level=0.5)
    one = expressed_by_persona(_actions(), _personas(), "m", ["t"], placebo_id="p", level=0.5)
    assert set(table["clusters"]) == {"agents within runs"}
    assert table["n_decisions"].to_list() == [2 * n for n in one["n_decisions"]]
    assert table["n_agents"].to_list() == [2 * n for n in one["n_agents"]]
    assert table["expressed_share"].to_list() == one["expressed_share"].to_list()


def test_the_text_table_has_one_row_per_persona():
    table = expressed_by_persona(_actions(), _personas(), "m", ["t"], placebo_id="p", level=0.5)
    text = persona_text_table(table)
    assert text.columns == ["meme", "persona", "agents", "decisions", "exposed", "unexposed"]
    assert text.row(0) == (
        "m",
        "Ada",
        "2",
        "7",
        f"0.667 [{2 / 3 - 2 / 9:.3f}, {2 / 3 + 2 / 9:.3f}] of 3 (2 agents; chance 0.333)",
        "0.250 [0.000, 0.500] of 4 (2 agents; chance 0.375)",
    )
    assert text.row(1) == ("m", "Ben", "1", "1", "-", "1.000 of 1 (1 agent; chance 0.333)")
    assert text.row(5)[:2] == ("m", "-")


def test_a_meme_no_decision_offered_raises():
    with pytest.raises(ValueError, match="no scored decision offered"):
        expressed_by_persona(_actions(), _personas(), "other", ["t"])
