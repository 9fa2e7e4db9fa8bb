"""Sweeps: expansion, validation, idempotent reruns, the index and the Hive layout."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from experiments.config import ConfigError
from experiments.rundirs import RunDirError
from experiments.sweep import load_sweep_config as load_sweep
from experiments.sweep import run_sweep

SWEEP_TOML = """\
# A test sweep.
steps = 4

[sweep]
name = "grid"
output_dir = "out"
base = "small.toml"
seeds = [1, 2]

[sweep.grid]
"policy.beta" = [0.1, 0.5]

[sweep.grid.graph]
name = "topology"
labels = ["ring", "ba"]
values = [
  { kind = "ring", n = 30, k = 4 },
  { kind = "barabasi_albert", n = 30, m = 2 },
]
"""


@pytest.fixture
def sweep_toml(small_toml):
    path = small_toml.parent / "sweep.toml"
    path.write_text(SWEEP_TOML)
    return path


def test_expansion(sweep_toml):
    sweep = load_sweep(sweep_toml)
    assert [a.column for a in sweep.axes] == ["policy.beta", "topology"]
    assert [r.rel_dir for r in sweep.runs] == [
        f"runs/policy.beta={b}/topology={t}/seed={s}"
        for b in ("0.1", "0.5")
        for t in ("ring", "ba")
        for s in (1, 2)
    ]
    first = sweep.runs[0]
    assert first.params == {"policy.beta": 0.1, "topology": "ring", "seed": 1}
    assert first.config.seed == 1 and first.config.steps == 4
    assert first.config.graph.kind == "ring" and first.config.policy.beta == 0.1
    assert first.config.policy.mutation_prob == 0.1  # from the base file
    assert first.config.name == "grid__policy.beta-0.1__topology-ring__seed-1"


def test_replicates_and_overrides(sweep_toml):
    sweep = load_sweep(
        sweep_toml,
        ["sweep.seeds=[7]", 'sweep.grid."policy.beta"=[0.2]', "sweep.grid.graph.values.1.n=40"],
    )
    assert [r.params for r in sweep.runs] == [
        {"policy.beta": 0.2, "topology": "ring", "seed": 7},
        {"policy.beta": 0.2, "topology": "ba", "seed": 7},
    ]
    assert sweep.runs[1].config.graph.n == 40
    data_sweep = load_sweep(sweep_toml, ['sweep={ base = "small.toml", replicates = 3 }'])
    assert [r.config.seed for r in data_sweep.runs] == [5, 6, 7]  # base seed 5 + 0..2


def test_sweep_errors_are_reported_together(sweep_toml):
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, ["sweep.replicates=0", "sweep.bogus=1"])
    assert info.value.errors == [
        "sweep.replicates = 0: input should be greater than or equal to 1",
        "sweep.bogus = 1: unknown key (allowed: base, grid, name, output_dir, replicates, "
        "seeds, shared_server; see docs/config-reference.md)",
    ]
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, ["sweep.replicates=2"])
    assert info.value.errors == ["sweep: give either seeds or replicates, not both"]
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, ["sweep.grid.graph.labels=['a']"])
    assert info.value.errors == [
        "sweep.grid.graph.labels: 1 label(s) for 2 value(s); give one label per value"
    ]


def test_run_errors_are_listed_once_with_their_runs(sweep_toml):
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, ["sweep.grid.graph.values.0.k=3", "steps=0"])
    assert info.value.errors == [
        "steps = 0: input should be greater than or equal to 1 (in 8 run(s), e.g. "
        "runs/policy.beta=0.1/topology=ring/seed=1)",
        "graph.k = 3: must be an even integer with 2 <= k < n (n = 30) (in 4 run(s), e.g. "
        "runs/policy.beta=0.1/topology=ring/seed=1)",
    ]


def test_a_misspelt_grid_key_is_one_error_for_its_axis(sweep_toml):
    """The key is wrong whatever the value: one line per axis, not one per value."""
    grid = "sweep.grid={ 'policy.betaa' = [0.1, 0.5, 0.9], stesp = [3, 4] }"
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, [grid, "sweep.seeds=[1]"])
    assert info.value.errors == [
        "sweep.grid.\"policy.betaa\": unknown key (did you mean 'beta'? see "
        "docs/config-reference.md) (in 6 run(s), e.g. runs/policy.betaa=0.1/stesp=3/seed=1)",
        "sweep.grid.stesp: unknown key (did you mean 'steps'? see docs/config-reference.md) "
        "(in 6 run(s), e.g. runs/policy.betaa=0.1/stesp=3/seed=1)",
    ]


def test_invalid_values_of_an_axis_are_one_error_naming_them_and_the_range(sweep_toml):
    """One line per axis, not one per value: the key, the failing values, what is allowed."""
    grid = "sweep.grid={ 'policy.beta' = [2, 0.5, 3, 4], steps = [0, 4, -1] }"
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, [grid])
    # In the order the first run reports them (steps before policy: the schema's order).
    assert info.value.errors == [
        "sweep.grid.steps = [0, -1]: must be >= 1 (in 16 run(s), e.g. "
        "runs/policy.beta=2/steps=0/seed=1)",
        'sweep.grid."policy.beta" = [2, 3, 4]: must be >= 0 and <= 1 (in 18 run(s), e.g. '
        "runs/policy.beta=2/steps=0/seed=1)",
    ]


def test_values_below_and_above_the_range_and_of_another_type_share_the_axis_line(sweep_toml):
    grid = "sweep.grid={ 'policy.beta' = [-1, 'high', 2, 0.5] }"
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, [grid, "sweep.seeds=[1]"])
    assert info.value.errors == [
        "sweep.grid.\"policy.beta\" = [-1, 'high', 2]: -1, 2: must be >= 0 and <= 1; "
        "'high': input should be a valid number (in 3 run(s), e.g. runs/policy.beta=-1/seed=1)"
    ]


def test_a_misspelt_choice_is_one_error_naming_the_values_and_the_choices(sweep_toml):
    grid = "sweep.grid={ 'policy.rule' = ['si', 'threshold', 'cascade'] }"
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, [grid])
    assert info.value.errors == [
        "sweep.grid.\"policy.rule\" = ['si', 'cascade']: must be one of 'repeated_exposure', "
        "'one_shot_cascade', 'threshold' or 'independent_cascade' (in 4 run(s), e.g. "
        "runs/policy.rule=si/seed=1)"
    ]


def test_a_value_that_fails_only_with_another_axis_value_says_why_for_each(sweep_toml):
    """graph.m must be below graph.n: the reason names n, so each n is its own reason."""
    grid = "sweep.grid={ 'graph.m' = [0, 2, 10], 'graph.n' = [60, 10] }"
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, [grid, "sweep.seeds=[1]"])
    assert info.value.errors == [
        'sweep.grid."graph.m" = [0, 10]: 0: must satisfy 1 <= m < n (n = 60); '
        "0, 10: must satisfy 1 <= m < n (n = 10) (in 3 run(s), e.g. "
        "runs/graph.m=0/graph.n=60/seed=1)"
    ]


def test_table_values_without_distinct_labels(sweep_toml):
    with pytest.raises(ConfigError) as info:
        load_sweep(
            sweep_toml,
            [
                "sweep.grid.graph={ values = [{ kind = 'ring', n = 30, k = 4 }, "
                "{ kind = 'ring', n = 30, k = 6 }] }"
            ],
        )
    assert info.value.errors == [
        "sweep.grid.graph: labels ['ring', 'ring'] are not distinct; give labels = [...]"
    ]


def test_list_values_that_cannot_label_a_directory_say_how_to_label_them(sweep_toml):
    """A list axis takes labels only as a table: the error says so, not 'table values'."""
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_toml, ["sweep.grid={ 'memes.0.statement' = ['a/b', 'a b'] }"])
    assert info.value.errors == [
        "sweep.grid.\"memes.0.statement\": label(s) ['a/b', 'a b'] cannot name a directory; "
        "labels 1-100 characters from letters, digits, '_', '.', '+', '-', not starting "
        "with '.' (write the axis as a table, \"memes.0.statement\" = { values = [...], "
        "labels = [...] })"
    ]


def test_sweep_is_idempotent_and_hive_readable(sweep_toml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(sweep_toml)
    first = run_sweep(sweep, progress=False)
    assert (first.ran, first.skipped, first.failed) == (8, 0, {})
    assert first.sweep_dir.resolve() == tmp_path / "out" / "grid"  # relative to the cwd

    index = pl.read_parquet(first.sweep_dir / "index.parquet")
    assert index.columns == [
        "run_dir",
        "name",
        "policy.beta",
        "topology",
        "seed",
        "status",
        "steps_completed",
        "steps",
    ]
    assert index.height == 8 and set(index["status"]) == {"complete"}
    assert index["steps_completed"].to_list() == [4] * 8
    assert index.filter(pl.col("topology") == "ba")["policy.beta"].to_list() == [
        0.1,
        0.1,
        0.5,
        0.5,
    ]

    scanned = pl.scan_parquet(
        f"{first.sweep_dir}/runs/**/steps.parquet", hive_partitioning=True
    ).collect()
    assert scanned.height == 8 * 4
    assert scanned.schema["policy.beta"] == pl.Float64
    assert scanned.schema["topology"] == pl.String
    assert scanned.schema["seed"] == pl.Int64
    assert sorted(set(scanned.select("policy.beta", "topology", "seed").iter_rows())) == sorted(
        (b, t, s) for b in (0.1, 0.5) for t in ("ba", "ring") for s in (1, 2)
    )
    one = scanned.filter(
        (pl.col("topology") == "ba") & (pl.col("seed") == 2) & (pl.col("policy.beta") == 0.5)
    )
    direct = pl.read_parquet(
        first.sweep_dir / "runs/policy.beta=0.5/topology=ba/seed=2/steps.parquet"
    )
    assert one.drop("policy.beta", "topology", "seed").equals(direct)
    assert first.scan().collect().height == 32

    mtimes = {p: p.stat().st_mtime_ns for p in first.sweep_dir.rglob("steps.parquet")}
    second = run_sweep(sweep, progress=False)
    assert (second.ran, second.skipped) == (0, 8)
    assert {p: p.stat().st_mtime_ns for p in first.sweep_dir.rglob("steps.parquet")} == mtimes
    assert second.index.equals(index)


def test_rerun_finishes_incomplete_runs_and_refuses_other_configs(sweep_toml, tmp_path):
    sweep = load_sweep(sweep_toml)
    sweep_dir = tmp_path / "s"
    run_sweep(sweep, sweep_dir, progress=False)
    # One run removed, one interrupted (manifest says running, no tables).
    shutil.rmtree(sweep_dir / sweep.runs[0].rel_dir)
    interrupted = sweep_dir / sweep.runs[1].rel_dir
    manifest = json.loads((interrupted / "manifest.json").read_text())
    manifest.update(status="running", steps_completed=0)
    (interrupted / "manifest.json").write_text(json.dumps(manifest))
    (interrupted / "steps.parquet").unlink()
    third = run_sweep(sweep, sweep_dir, progress=False)
    assert (third.ran, third.skipped) == (2, 6)
    assert set(third.index["status"]) == {"complete"}
    resumed = json.loads((interrupted / "manifest.json").read_text())
    assert resumed["resumes"][0]["from_step"] == 0

    changed = load_sweep(sweep_toml, ["steps=5"])
    with pytest.raises(RunDirError) as info:
        run_sweep(changed, sweep_dir, progress=False)
    # One line for all the conflicting runs, not one per run.
    assert str(info.value).startswith(
        f"{sweep_dir}: 8 run directories hold runs of a different config (e.g. "
        "runs/policy.beta=0.1/topology=ring/seed=1); pass overwrite"
    )
    assert "\n" not in str(info.value)
    redone = run_sweep(changed, sweep_dir, overwrite=True, progress=False)
    assert redone.ran == 8 and redone.index["steps_completed"].to_list() == [5] * 8


def test_parallel_jobs(sweep_toml, tmp_path):
    sweep = load_sweep(sweep_toml, ["sweep.seeds=[1]"])
    serial = run_sweep(sweep, tmp_path / "serial", progress=False)
    parallel = run_sweep(sweep, tmp_path / "parallel", jobs=2, progress=False)
    assert parallel.failed == {} and parallel.ran == 4
    for run in sweep.runs:
        a = pl.read_parquet(serial.sweep_dir / run.rel_dir / "transmissions.parquet")
        b = pl.read_parquet(parallel.sweep_dir / run.rel_dir / "transmissions.parquet")
        assert a.equals(b)


def test_documented_example_is_a_valid_sweep(tmp_path):
    import experiments.sweep
    from experiments.catalog import configs_dir

    doc = experiments.sweep.__doc__
    block = doc.split("belong to that table)::\n\n", 1)[1].split("\n\n", 1)[0]
    example = "\n".join(line[4:] for line in block.splitlines()) + "\n"
    # The example's grid table spans a blank-line-free block; keep the whole listing.
    rest = doc.split(block, 1)[1].split("The run document", 1)[0]
    example += "\n".join(line[4:] for line in rest.splitlines())
    (tmp_path / "example.toml").write_text(example)
    shutil.copy(configs_dir() / "contagion_small.toml", tmp_path)
    sweep = load_sweep(tmp_path / "example.toml")
    assert [a.column for a in sweep.axes] == ["policy.beta", "topology"]
    assert len(sweep.runs) == 3 * 2 * 3
    assert {r.config.steps for r in sweep.runs} == {40}


def test_bad_grid_axes(sweep_toml):
    with pytest.raises(ConfigError) as info:
        load_sweep(
            sweep_toml,
            ['sweep.grid."policy.beta"=0.1', "sweep.grid.graph={ kind = 'ring', n = 10 }"],
        )
    assert info.value.errors == [
        'sweep.grid."policy.beta" = 0.1: must be a non-empty list of values, or a table with '
        "values = [...] (and optional labels = [...], name = ...)",
        "sweep.grid.graph.values: required key is missing",
        "sweep.grid.graph.kind = 'ring': unknown key (allowed: labels, name, values; see "
        "docs/config-reference.md)",
        "sweep.grid.graph.n = 10: unknown key (allowed: labels, name, values; see "
        "docs/config-reference.md)",
    ]
