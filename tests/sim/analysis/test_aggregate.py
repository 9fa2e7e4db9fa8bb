"""Confidence intervals, aggregation over replicate seeds, and sweep readers."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from sim.analysis.aggregate import (
    aggregate,
    aggregate_metrics,
    confidence_interval,
    curve_bands,
    sweep_curves,
    sweep_metrics,
)
from sim.analysis.loading import hive_params, load_run, load_sweep


def test_t_interval_known_value():
    mean, low, high, n = confidence_interval([1, 2, 3, 4, 5])
    # t_{0.975, 4} = 2.776445; sd = sqrt(2.5); half width = 2.776445 * sqrt(2.5) / sqrt(5).
    half = 2.776445 * (2.5**0.5) / (5**0.5)
    assert (mean, n) == (3.0, 5)
    assert low == pytest.approx(3 - half, abs=1e-5)
    assert high == pytest.approx(3 + half, abs=1e-5)
    assert confidence_interval([2.0]) == (2.0, None, None, 1)
    assert confidence_interval([None, float("nan")]) == (None, None, None, 0)


def test_bootstrap_is_reproducible_and_brackets_the_mean():
    # At least MIN_BOOTSTRAP_N values (fewer fall back to the t-interval).
    values = [0.1, 0.4, 0.35, 0.8, 0.5, 0.45, 0.2, 0.6, 0.3, 0.55, 0.15, 0.7]
    first = confidence_interval(values, method="bootstrap", seed=3)
    assert first == confidence_interval(values, method="bootstrap", seed=3)
    mean, low, high, _ = first
    assert low < mean < high
    assert (low, high) != confidence_interval(values, method="bootstrap", seed=4)[1:3]
    with pytest.raises(ValueError, match="method = 'z'"):
        confidence_interval(values, method="z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"level = 1.5"):
        confidence_interval(values, level=1.5)


def test_aggregate_groups():
    frame = pl.DataFrame({"g": ["a", "a", "b"], "v": [1.0, 3.0, 5.0]})
    out = aggregate(frame, ["g"], ["v"])
    assert out.select("g", "v_mean", "v_n").rows() == [("a", 2.0, 2), ("b", 5.0, 1)]
    assert out["v_low"].to_list()[1] is None
    with pytest.raises(ValueError, match="not in the frame"):
        aggregate(frame, ["h"], ["v"])


def test_load_sweep_reads_the_index_of_experiments_sweep(sweep_dir):
    sweep = load_sweep(sweep_dir)
    assert sweep.params == ("topology", "policy.beta")
    assert sweep.index.height == 12
    assert sorted(sweep.index["topology"].unique().to_list()) == ["ring", "ws"]
    assert sweep.complete().height == 12
    row, run = next(sweep.iter_runs())
    assert run.path.is_dir()
    assert run.param("policy.beta") == row["policy.beta"]


def test_load_sweep_without_index_parses_hive_dirs(sweep_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    (copy / "index.parquet").unlink()
    sweep = load_sweep(copy)
    assert sweep.params == ("topology", "policy.beta")
    assert sweep.index["policy.beta"].dtype == pl.Float64
    assert sorted(sweep.index["seed"].unique().to_list()) == [0, 1, 2]
    assert set(sweep.index["status"].to_list()) == {"complete"}
    first = sweep.index["run_dir"].to_list()[0]
    assert hive_params(first, copy / "runs").keys() == {"topology", "policy.beta", "seed"}
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_sweep(tmp_path / "missing")


def test_a_sweep_with_its_runs_read_once_needs_no_run_directory_again(sweep_dir, tmp_path):
    """with_runs reads the complete runs now; the analyses then read no table from disk."""
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    on_disk = load_sweep(copy)
    held = on_disk.with_runs()
    assert on_disk.runs is None and held.with_runs() is held
    assert held.runs is not None
    assert [str(run.path) for run in held.runs] == held.complete()["run_dir"].to_list()
    # The same runs every time, not a fresh read: the objects are the ones held.
    for (row, run), kept in zip(held.iter_runs(), held.runs, strict=True):
        assert run is kept and row["run_dir"] == str(kept.path)
    expected = sweep_metrics(on_disk, fit=False), sweep_curves(on_disk)
    for table in copy.rglob("*.parquet"):
        if table.name != "index.parquet":
            table.unlink()
    assert sweep_metrics(held, fit=False).equals(expected[0])
    assert sweep_curves(held).equals(expected[1])
    with pytest.raises(FileNotFoundError, match="missing table"):
        sweep_metrics(on_disk, fit=False)  # without the held runs, it reads them again
    with pytest.raises(ValueError, match="runs: 1 run\\(s\\) held, but the index lists 12"):
        type(held)(path=held.path, index=held.index, params=held.params, runs=held.runs[:1])


def test_a_sweep_can_hold_only_the_tables_an_analysis_needs(sweep_dir, tmp_path):
    """with_runs(tables) reads those tables of each run (that it has) and no other."""
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    for table in copy.rglob("memories.parquet"):
        table.write_bytes(b"not a table")  # any read of it fails
    held = load_sweep(copy).with_runs(("steps", "agents", "actions"))
    assert held.runs is not None and len(held.runs) == 12
    full = load_run(sweep_dir / held.runs[0].path.relative_to(copy))
    for run in held.runs:
        assert sorted(run.tables) == ["agents", "steps"]  # a contagion run has no actions
    assert held.runs[0].steps.equals(full.steps) and held.runs[0].agents.equals(full.agents)
    (held.runs[0].path / "steps.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing table\(s\) \['steps'\]"):
        load_run(held.runs[0].path, ("steps", "actions"))
    # A required table not asked for is not required.
    assert sorted(load_run(held.runs[0].path, ("agents",)).tables) == ["agents"]


def test_sweep_metrics_without_drift_need_no_texts_and_differ_only_in_the_drift(sweep_dir):
    """drift=False: the same metrics, the drift columns null; memories' texts not needed."""
    from sim.analysis.summary import METRIC_COLUMNS_WITHOUT_DRIFT, METRIC_TABLES

    drift = ["edit_distance", "jaccard_distance"]
    whole = sweep_metrics(load_sweep(sweep_dir), fit=False)
    held = load_sweep(sweep_dir).with_runs(METRIC_TABLES, METRIC_COLUMNS_WITHOUT_DRIFT)
    assert held.runs is not None
    assert held.runs[0].memories.columns == ["author_id", "step", "memes"]
    without = sweep_metrics(held, fit=False, drift=False)
    assert without.drop(drift).equals(whole.drop(drift))
    assert without.select(drift).null_count().row(0) == (12, 12)
    assert whole.select(drift).null_count().row(0) == (0, 0)
    assert without.schema == whole.schema


def test_sweep_metrics_curves_and_bands(sweep_dir):
    sweep = load_sweep(sweep_dir)
    metrics = sweep_metrics(sweep, fit=False)
    assert metrics.height == 12
    agg = aggregate_metrics(metrics, ["topology", "policy.beta"], ("final_size", "r0"))
    assert agg.height == 4
    assert agg["final_size_n"].to_list() == [3, 3, 3, 3]
    ok = agg.filter(pl.col("final_size_low").is_not_null())
    assert (ok["final_size_low"] <= ok["final_size_mean"]).all()
    # Faster spread with the larger beta, on both topologies.
    means = {(r["topology"], r["policy.beta"]): r["final_size_mean"] for r in agg.to_dicts()}
    assert means[("ring", 0.3)] > means[("ring", 0.1)]
    assert means[("ws", 0.3)] > means[("ws", 0.1)]
    curves = sweep_curves(sweep)
    assert curves.height == 12 * 15
    bands = curve_bands(curves, ["topology"], method="bootstrap")
    assert bands.height == 2 * 15
    assert bands["n"].unique().to_list() == [6]
    with pytest.raises(ValueError, match="not metrics"):
        aggregate_metrics(metrics, ["topology"], ("bogus",))


def test_intervals_stay_in_their_valid_range():
    from sim.analysis.aggregate import MIN_BOOTSTRAP_N

    # Unclipped t-interval: 0.99 +- 0.0248 -> high 1.0148; clipped to the share range.
    mean, low, high, _ = confidence_interval([0.98, 1.0, 1.0], bounds=(0.0, 1.0))
    assert mean == pytest.approx(0.993333, abs=1e-6)
    assert high == 1.0
    assert low == pytest.approx(0.993333 - 4.302653 * 0.011547 / 3**0.5, abs=1e-5)
    # R0 of three seeds: 0, 0, 3 -> the unclipped low is -2.73; R0 is never negative.
    assert confidence_interval([0, 0, 3], bounds=(0.0, None))[1] == 0.0
    # Few values: the bootstrap falls back to the (wider) t-interval.
    few = [0.2, 0.3, 0.7]
    assert len(few) < MIN_BOOTSTRAP_N
    assert confidence_interval(few, method="bootstrap") == confidence_interval(few)
    # Enough values: the percentile bootstrap of shares stays in [0, 1] by construction.
    shares = [0.0] * 9 + [0.05] * 3
    _, low, high, _ = confidence_interval(shares, method="bootstrap")
    assert 0.0 <= low <= high <= 0.05
    assert confidence_interval(shares)[1] < 0  # what the unbounded t-interval would give


def test_wilson_interval():
    from sim.analysis.aggregate import wilson_interval

    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.161125, abs=1e-6)
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and low == pytest.approx(0.838875, abs=1e-6)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    assert wilson_interval(0, 0) == (None, None)
    with pytest.raises(ValueError, match="successes = 3, n = 2"):
        wilson_interval(3, 2)


def test_sweep_intervals_in_range(sweep_dir):
    from sim.analysis.summary import METRIC_BOUNDS, METRICS

    assert set(METRIC_BOUNDS) <= set(METRICS)
    sweep = load_sweep(sweep_dir)
    agg = aggregate_metrics(sweep_metrics(sweep, fit=False), ["topology", "policy.beta"])
    for metric in ("final_size", "r0", "t50", "structural_virality"):
        lows = agg[f"{metric}_low"].drop_nulls()
        assert (lows >= 0).all(), metric
    assert (agg["final_size_high"].drop_nulls() <= 1).all()
    bands = curve_bands(sweep_curves(sweep), ["topology", "policy.beta"])
    ok = bands.filter(pl.col("low").is_not_null())
    assert ok.height > 0
    assert (ok["low"] >= 0).all() and (ok["high"] <= 1).all()


def test_time_bounds_beyond_the_last_step_are_clipped_and_flagged():
    from scipy import stats

    # Three seeds of 11 steps (0-10) reached 50 % at steps 2, 3 and 9: the t-interval
    # of the mean, 4.67 +- 9.40, reaches step 14.07, which no run observed.
    frame = pl.DataFrame(
        {
            "g": ["a"] * 3 + ["b"] * 3 + ["c"],
            "t50": [2.0, 3.0, 9.0, 4.0, 5.0, 6.0, 1.0],
            "last_step": [10] * 7,
        }
    )
    out = aggregate(
        frame, ["g"], ["t50"], bounds={"t50": (0.0, None)}, horizons={"t50": "last_step"}
    )
    assert out.columns == ["g", "t50_mean", "t50_low", "t50_high", "t50_n", "t50_high_censored"]
    rows = {r["g"]: r for r in out.iter_rows(named=True)}
    low, high = stats.t.interval(0.95, 2, loc=14 / 3, scale=stats.sem([2.0, 3.0, 9.0]))
    assert high == pytest.approx(14.07, abs=0.01)
    assert (rows["a"]["t50_low"], rows["a"]["t50_high"]) == (0.0, 10.0)  # low clipped at 0
    assert low < 0 and rows["a"]["t50_high_censored"] is True
    _, high_b = stats.t.interval(0.95, 2, loc=5.0, scale=stats.sem([4.0, 5.0, 6.0]))
    assert rows["b"]["t50_high"] == pytest.approx(high_b, abs=1e-9)
    assert rows["b"]["t50_high_censored"] is False
    assert (rows["c"]["t50_high"], rows["c"]["t50_high_censored"]) == (None, None)  # one seed
    # Without the horizons the bound beyond the runs is reported as if observed.
    plain = aggregate(frame, ["g"], ["t50"], bounds={"t50": (0.0, None)})
    assert plain["t50_high"][0] == pytest.approx(high, abs=1e-9)
    with pytest.raises(ValueError, match="horizons"):
        aggregate(frame, ["g"], ["t50"], horizons={"t90": "last_step"})


def test_aggregate_metrics_censors_times_at_the_runs_last_step(sweep_dir):
    sweep = load_sweep(sweep_dir)
    metrics = sweep_metrics(sweep, fit=False)
    _, run = next(sweep.iter_runs())
    assert metrics.columns[:5] == ["topology", "policy.beta", "seed", "run_dir", "last_step"]
    assert metrics["last_step"].unique().to_list() == [run.steps["step"].max()]
    agg = aggregate_metrics(metrics, ["topology", "policy.beta"], ("t50", "final_size"))
    assert "t50_high_censored" in agg.columns and "final_size_high_censored" not in agg.columns
    last = metrics["last_step"].max()
    assert (agg["t50_high"].drop_nulls() <= last).all()
    with pytest.raises(ValueError, match="no last_step column"):
        aggregate_metrics(metrics.drop("last_step"), ["topology"], ("t50",))
    assert aggregate_metrics(metrics.drop("last_step"), ["topology"], ("r0",)).height == 2


def test_aggregate_metrics_adds_the_kaplan_meier_median_of_times_over_seeds():
    # Grid point 0.1: 2 of 10 seeds reached 50 % at step 3, 8 ran to step 30 without.
    # Grid point 0.2: 5 of 10 reached (2, 4, 4, 6, 8), 5 censored at 30: S = 0.9, 0.7,
    # 0.6, 0.5 at 2, 4, 6, 8, so the KM median is 8 (the mean of the 5 is 4.8).
    # Grid point 0.3: one seed without t50 nor last_step (no information), one reached
    # at 1, one censored at 2: S(1) = 1/2, median 1; the curve ends at 2.
    # Grid point 0.4: none reached.
    t50 = [3, 3, *[None] * 8, 2, 4, 4, 6, 8, *[None] * 5, None, 1, None, None]
    last = [30] * 20 + [None, 5, 2, 6]
    metrics = pl.DataFrame(
        {
            "beta": [0.1] * 10 + [0.2] * 10 + [0.3] * 3 + [0.4],
            "meme_id": "m",
            "last_step": last,
            "t50": t50,
            "final_size": 0.5,
        },
        schema_overrides={"last_step": pl.Int64, "t50": pl.Int64},
    )
    agg = aggregate_metrics(metrics, ["beta"], ("t50", "final_size"))
    assert agg.columns == [
        "beta",
        "meme_id",
        *(f"t50_{p}" for p in ("mean", "low", "high", "n", "high_censored")),
        "t50_km_median",
        "t50_km_end",
        *(f"final_size_{p}" for p in ("mean", "low", "high", "n")),
    ]
    assert agg.schema["t50_km_median"] == pl.Int64
    assert agg["t50_mean"].to_list() == [3.0, 4.8, 1.0, None]
    assert agg["t50_n"].to_list() == [2, 5, 1, 0]
    assert agg["t50_km_median"].to_list() == [None, 8, 1, None]
    assert agg["t50_km_end"].to_list() == [30, 30, 2, 6]
    # No time among the values: no KM columns, and no last_step needed.
    plain = aggregate_metrics(metrics.drop("last_step"), ["beta"], ("final_size",))
    assert not any("km" in c for c in plain.columns)
