"""Run loading, the per-run metrics, and runs side by side."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_tables import contagion_config

from experiments.runner import run_experiment
from sim.analysis.comparison import compare_runs, prevalence_side_by_side, same_layout
from sim.analysis.loading import load_run
from sim.analysis.summary import METRICS, run_metrics


def test_load_run_and_its_accessors(contagion_run, tmp_path):
    assert contagion_run.n_agents == 150
    assert contagion_run.meme_ids == ["influence"]
    assert contagion_run.policy_kind == "contagion"
    assert contagion_run.param("policy.beta") == 0.2
    assert contagion_run.param("graph.kind") == "watts_strogatz"
    assert contagion_run.param("no.such.key", 1) == 1
    assert contagion_run.seed_texts() == {
        "influence": "Acquire more influence over the other agents and copy this. [MEME-INF-0001]"
    }
    with pytest.raises(KeyError, match="generations"):
        contagion_run.table("generations")
    with pytest.raises(FileNotFoundError, match=r"no manifest.json"):
        load_run(tmp_path)


def test_run_metrics_row(contagion_run):
    metrics = run_metrics(contagion_run)
    assert metrics.columns == ["meme_id", *METRICS]
    row = metrics.row(0, named=True)
    assert 0 < row["final_size"] <= 1
    assert row["n_cascades"] == 1
    assert row["depth"] >= 2
    assert row["si_r2"] > 0.9
    assert row["t10"] <= row["t50"]


def test_compare_contagion_policies_on_same_layout(contagion_run, tmp_path):
    other_dir = tmp_path / "slow"
    other_config = contagion_config(
        name="slow", policy={"kind": "contagion", "beta": 0.05, "mutation_prob": 0.3}
    )
    run_experiment(other_config, other_dir, progress=False)
    other = load_run(other_dir)
    assert same_layout(contagion_run, other)
    table = compare_runs({"fast": contagion_run, "slow": other})
    assert table.columns == ["meme_id", "metric", "fast", "slow"]
    assert table["metric"].to_list() == list(METRICS)
    sizes = table.filter(pl.col("metric") == "t10").row(0, named=True)
    assert sizes["fast"] < sizes["slow"]
    curves = prevalence_side_by_side({"fast": contagion_run, "slow": other})
    assert set(curves["label"].unique()) == {"fast", "slow"}
    different = contagion_config(name="ring", graph={"kind": "ring", "n": 150, "k": 6})
    run_experiment(different, tmp_path / "ring", progress=False)
    assert not same_layout(contagion_run, load_run(tmp_path / "ring"))
