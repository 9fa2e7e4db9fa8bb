"""Prevalence, incidence, times to 10/50/90 % and final size on hand-built tables."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_tables import agents_table

from sim.analysis.prevalence import final_size, prevalence, states_at, time_to_fraction

N = 10


def _steps() -> pl.DataFrame:
    adopters = [1, 2, 5, 9, 10]
    infected = [1, 2, 5, 9, 10]
    return pl.DataFrame(
        {
            "step": [0, 1, 2, 3, 4],
            "meme_id": ["m"] * 5,
            "exposed": [3, 6, 8, 10, 10],
            "carriers": infected,
            "adopters": adopters,
            "infected": infected,
            "new_exposed": [3, 3, 2, 2, 0],
            "new_carriers": [1, 1, 3, 4, 1],
            "new_adopters": [1, 1, 3, 4, 1],
        }
    )


def test_prevalence_and_incidence():
    prev = prevalence(_steps(), N)
    adopter = prev.filter(pl.col("state") == "adopter")
    assert adopter["prevalence"].to_list() == pytest.approx([0.1, 0.2, 0.5, 0.9, 1.0])
    assert adopter["incidence"].to_list() == [1, 1, 3, 4, 1]
    infected = prev.filter(pl.col("state") == "infected")
    assert infected["incidence"].to_list() == [1, 1, 3, 4, 1]  # increase of the count
    assert set(prev["state"].unique()) == {"exposed", "carrier", "adopter", "infected"}
    with pytest.raises(ValueError, match="n_agents = 0"):
        prevalence(_steps(), 0)


def test_time_to_fraction_and_final_size():
    prev = prevalence(_steps(), N)
    times = time_to_fraction(prev).row(0, named=True)
    assert times == {"meme_id": "m", "t10": 0, "t50": 2, "t90": 3}
    exposed = time_to_fraction(prev, (0.25, 1.0), state="exposed").row(0, named=True)
    assert exposed == {"meme_id": "m", "t25": 0, "t100": 3}
    never = time_to_fraction(prevalence(_steps().head(2), N)).row(0, named=True)
    assert never == {"meme_id": "m", "t10": 0, "t50": None, "t90": None}
    size = final_size(prev, "adopter").row(0, named=True)
    assert size == {"meme_id": "m", "final_count": 10, "final_size": 1.0}
    with pytest.raises(ValueError, match="state = 'sick'"):
        final_size(prev, "sick")
    with pytest.raises(ValueError, match=r"1.5"):
        time_to_fraction(prev, (1.5,))


def test_states_at_uses_the_last_event_up_to_the_step():
    agents = agents_table(
        [
            (0, 0, "m", "seeded", True),
            (0, 0, "m", "carrier", True),
            (0, 0, "m", "adopter", True),
            (0, 1, "m", "exposed", True),
            (2, 1, "m", "adopter", True),
            (3, 1, "m", "adopter", False),  # an LLM probe revised adoption
        ]
    )

    def states(step: int, turnover: pl.DataFrame | None = None) -> list[str]:
        return states_at(agents, 3, step, "m", turnover=turnover)["state"].to_list()

    assert states(0) == ["adopter", "exposed", "susceptible"]
    assert states(2) == ["adopter", "adopter", "susceptible"]
    # Agent 1 held the meme and holds it no longer: recovered, not back to exposed.
    assert states(3) == ["adopter", "recovered", "susceptible"]
    assert states_at(agents, 3, 3, "m", turnover=None)["recovered"].to_list() == [
        False, True, False,
    ]  # fmt: skip
    # A new agent on node 1 (replaced at the start of step 3) held nothing: it lost the
    # meme with its predecessor and is not recovered; its exposed flag is the node's.
    turnover = pl.DataFrame({"step": [3], "agent_id": [1], "agent_generation": [1]})
    assert states(3, turnover) == ["adopter", "exposed", "susceptible"]
    # Replaced before it adopted (step 1), the agent that adopted at step 2 recovered.
    turnover = pl.DataFrame({"step": [1], "agent_id": [1], "agent_generation": [1]})
    assert states(3, turnover) == ["adopter", "recovered", "susceptible"]


def test_states_at_ranks_expressed_between_carrier_and_adopter():
    agents = pl.DataFrame(
        {
            "step": [0, 0, 1, 1],
            "agent_id": [0, 1, 1, 2],
            "meme_id": ["m"] * 4,
            "state": ["carrier", "carrier", "expressed", "expressed"],
            "value": [True, True, True, True],
        }
    )
    out = states_at(agents, 4, 1, "m", turnover=None)
    assert out["state"].to_list() == ["carrier", "expressed", "expressed", "susceptible"]
    assert out["expressed"].to_list() == [False, True, True, False]
