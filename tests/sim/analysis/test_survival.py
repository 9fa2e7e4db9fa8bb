"""Kaplan-Meier curves and medians of right-censored times, checked by hand.

lifelines and scikit-survival are not installed, so the expected values are worked out
in the comments from S(t) = prod_{t_i <= t} (1 - d_i / n_i).
"""

from __future__ import annotations

import polars as pl
import pytest

from sim.analysis.survival import kaplan_meier, km_median


def test_curve_with_ties_of_events_and_censorings_by_hand():
    # 8 runs; False = censored (not reached by that step).
    times = [2, 3, 3, 5, 6, 8, 8, 9]
    reached = [True, True, False, True, False, True, False, False]
    curve = kaplan_meier(times, reached)
    # t=2: 8 at risk, 1 event -> 7/8. t=3: 7 at risk (the one censored at 3 still
    # counts: events before censorings), 1 event -> 7/8 * 6/7 = 3/4. t=5: 5 at risk,
    # 1 event -> 3/4 * 4/5 = 3/5. t=6: only a censoring -> 3/5. t=8: 3 at risk,
    # 1 event -> 3/5 * 2/3 = 2/5. t=9: a censoring -> 2/5.
    assert curve["time"].to_list() == [2, 3, 5, 6, 8, 9]
    assert curve["at_risk"].to_list() == [8, 7, 5, 4, 3, 1]
    assert curve["reached"].to_list() == [1, 1, 1, 0, 1, 0]
    assert curve["censored"].to_list() == [0, 1, 0, 1, 1, 1]
    assert curve["survival"].to_list() == pytest.approx(
        [7 / 8, 3 / 4, 3 / 5, 3 / 5, 2 / 5, 2 / 5], abs=1e-15
    )
    # The first time S <= 0.5 is 8; the mean of the observed times, (2+3+5+8)/4 = 4.5,
    # leans early.
    assert km_median(times, reached) == 8


def test_runs_censored_early_leave_the_risk_set():
    # Reached at 5 and 7; one run ended at step 3 without, one at step 8 without.
    # t=3: S = 1 (a censoring). t=5: 3 at risk -> 2/3. t=7: 2 at risk -> 1/3.
    times, reached = [5, 3, 7, 8], [True, False, True, False]
    assert kaplan_meier(times, reached)["survival"].to_list() == pytest.approx(
        [1.0, 2 / 3, 1 / 3, 1 / 3], abs=1e-15
    )
    assert km_median(times, reached) == 7


def test_median_without_censoring_is_the_lower_middle_time():
    assert km_median([5, 1, 3], [True] * 3) == 3  # S: 2/3, 1/3
    # S(2) is exactly 0.5: the smallest time with S <= 0.5 (lifelines' convention).
    assert km_median([1, 2, 3, 4], [True] * 4) == 2


def test_an_exact_half_reached_through_rounding_still_counts():
    # 10 runs: 1 at step 1, 2 at step 2, 2 at step 3, 5 censored at 10. S(3) is
    # 9/10 * 7/9 * 5/7 = 1/2, which floating point gives as 0.5000000000000001.
    times = [1, 2, 2, 3, 3, *[10] * 5]
    reached = [True] * 5 + [False] * 5
    assert kaplan_meier(times, reached)["survival"][2] > 0.5
    assert km_median(times, reached) == 3


def test_median_is_none_when_fewer_than_half_reached():
    # 2 of 10 seeds reached 50 % at step 3, 8 ran to step 30 without: S(3) = 0.8.
    times, reached = [3, 3, *[30] * 8], [True, True, *[False] * 8]
    assert kaplan_meier(times, reached)["survival"].to_list() == pytest.approx([0.8, 0.8])
    assert km_median(times, reached) is None
    assert km_median([4, 4], [False, False]) is None
    assert km_median([], []) is None
    assert kaplan_meier([], []).schema == pl.Schema(
        {
            "time": pl.Int64,
            "at_risk": pl.Int64,
            "reached": pl.Int64,
            "censored": pl.Int64,
            "survival": pl.Float64,
        }
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one per run"):
        kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError, match="finite time"):
        kaplan_meier([1.0, float("nan")], [True, False])
    with pytest.raises(ValueError, match="not integer steps"):
        kaplan_meier([1.5], [True])
