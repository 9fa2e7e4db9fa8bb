"""Counterfactual forks: a fork continues its parent exactly, interventions change only
what follows, and bad forks change nothing on disk."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from experiments.cli import main
from experiments.config import ConfigError, validate_config
from experiments.fork import fork_run
from experiments.manifest import config_binding
from experiments.runner import CHECKPOINTS_DIR, build_model, run_experiment
from sim.analysis.forks import fork_comparison
from sim.analysis.loading import load_run
from sim.checkpoint import save_checkpoint

CONFIG = {
    "name": "parent",
    "seed": 4,
    "steps": 10,
    "checkpoint_every": 3,
    "graph": {"kind": "watts_strogatz", "n": 80, "k": 4, "p": 0.1},
    "banks": {"private": {"capacity": 8}, "neighbourhood": {"capacity": 8}},
    "policy": {"kind": "contagion", "beta": 0.3},
    "memes": [
        {
            "id": "influence",
            "statement": "Acquire more influence and copy this note.",
            "canary": "MEME-INF-0001",
            "placement": {"strategy": "hub"},
        }
    ],
}


def _tables(run_dir: Path) -> dict[str, pl.DataFrame]:
    tables = {p.stem: pl.read_parquet(p) for p in run_dir.glob("*.parquet")}
    return {k: v.drop([c for c in v.columns if c.endswith("_wall_s")]) for k, v in tables.items()}


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("fork") / "parent"
    run_experiment(validate_config(CONFIG), run_dir, progress=False)
    return run_dir


def test_a_fork_without_intervention_reproduces_its_parent(parent, tmp_path):
    result = fork_run(parent, 4, fork_dir=tmp_path / "same", progress=False)
    assert result.manifest["parent"]["step"] == 4
    assert result.manifest["parent"]["run_dir"] == str(parent.resolve())
    a, b = _tables(parent), _tables(tmp_path / "same")
    for name in ("steps", "memories", "agents", "transmissions"):
        assert a[name].equals(b[name]), name


def test_deleting_the_seed_entries_changes_only_what_follows(parent, tmp_path):
    memories = pl.read_parquet(parent / "memories.parquet")
    seeds = memories.filter(pl.col("step") == 0, pl.col("parents").list.len() == 0)
    ids = seeds["entry_id"].to_list()
    result = fork_run(
        parent,
        2,
        delete_entries=ids,
        with_descendants=True,
        fork_dir=tmp_path / "cut",
        progress=False,
    )
    removed = result.tables["memories"].filter(pl.col("removed_step") == 2)
    # Exactly the seeds and their descendants alive at step 2 were removed then.
    assert set(result.manifest["parent"]["removed_entries"]) == set(removed["entry_id"])
    assert set(ids) <= set(removed["entry_id"])
    parent_steps = pl.read_parquet(parent / "steps.parquet")
    assert (
        result.steps.filter(pl.col("step") < 2)
        .drop("step_wall_s")
        .equals(parent_steps.filter(pl.col("step") < 2).drop("step_wall_s"))
    )
    comparison = fork_comparison(load_run(tmp_path / "cut"), state="adopter")
    assert (comparison.filter(~pl.col("forked"))["difference"] == 0).all()
    assert comparison["difference"].min() < 0  # fewer adopters once the seeds are gone


def test_fork_with_a_guard_from_a_checkpoint(parent, tmp_path):
    # An interrupted parent: its state at step 6 is a checkpoint (it is not complete).
    config = validate_config(CONFIG)
    run_dir = tmp_path / "interrupted"
    run_dir.mkdir()
    model = build_model(config)
    for _ in range(6):
        model.step()
    save_checkpoint(model, run_dir / CHECKPOINTS_DIR, binding=config_binding(config))
    manifest = json.loads((parent / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    result = fork_run(
        run_dir,
        6,
        overrides=['guards=[{ kind = "quarantine", meme = "influence" }]'],
        name="guarded",
        progress=False,
    )
    assert result.run_dir == tmp_path / "guarded"
    assert result.manifest["config"]["guards"][0]["kind"] == "quarantine"
    steps = result.steps
    assert steps.filter(pl.col("step") >= 6)["guard_quarantine_rolled_back"].sum() > 0
    parent_steps = pl.read_parquet(parent / "steps.parquet").filter(pl.col("step") < 6)
    kept = [c for c in parent_steps.columns if not c.endswith("_wall_s")]
    assert steps.filter(pl.col("step") < 6).select(kept).equals(parent_steps.select(kept))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at": 10}, "--at 10: must be in 0..9"),
        ({"at": 3, "delete_entries": [10**6]}, "no such memory entry: 1000000"),
        ({"at": 3, "overrides": ["guards.0.kind=nope"]}, "guards.0.kind = 'nope'"),
        ({"at": 3, "overrides": ["graph.n=50"]}, "does not fit the changed config"),
        # An empty name is refused like any bad name, not replaced by the default.
        ({"at": 3, "name": ""}, "name = ''"),
    ],
)
def test_bad_forks_change_nothing_on_disk(parent, tmp_path, kwargs, message):
    before = _snapshot(parent.parent)
    with pytest.raises((ConfigError, ValueError)) as err:
        fork_run(parent, fork_dir=tmp_path / "bad", progress=False, **kwargs)
    assert message in str(err.value)
    assert _snapshot(parent.parent) == before
    assert not (tmp_path / "bad").exists()


def test_fork_at_a_step_without_checkpoint_of_an_unfinished_run(parent, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    manifest = json.loads((parent / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (unfinished / "manifest.json").write_text(json.dumps(manifest))
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"--at 4: .*unfinished has no checkpoint at step 4"):
        fork_run(unfinished, 4, fork_dir=tmp_path / "f", progress=False)
    assert _snapshot(tmp_path) == before


def test_fork_from_the_command_line(parent, tmp_path, capsys):
    target = tmp_path / "cli-fork"
    args = ["fork", str(parent), "--at", "3", "--run-dir", str(target), "--quiet"]
    assert main([*args, "--set", "policy.beta=0.0"]) == 0
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["parent"]["step"] == 3 and manifest["config"]["policy"]["beta"] == 0.0
    steps = pl.read_parquet(target / "steps.parquet")
    assert steps.filter(pl.col("step") >= 3)["new_adopters"].sum() == 0
    code = main(["fork", str(parent), "--at", "99", "--run-dir", str(tmp_path / "x")])
    # One line naming the argument: a step out of range is not an invalid config.
    assert code == 2
    assert capsys.readouterr().err == f"error: --at 99: must be in 0..9 ({parent} has 10 steps)\n"
    assert not (tmp_path / "x").exists()
    assert os.path.isdir(parent)


def test_a_fork_into_an_existing_run_names_the_fork_options(parent, tmp_path, capsys):
    """The fork's directory comes from --name or --run-dir, not run's name/output_dir."""
    args = ["fork", str(parent), "--at", "3", "--quiet"]
    target = tmp_path / "taken"
    assert main([*args, "--run-dir", str(target)]) == 0
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main([*args, "--run-dir", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"error: run directory {target} already exists; pass overwrite=True (--overwrite) to "
        "replace it, resume it (memespread resume), or choose another --name or --run-dir\n"
    )
    assert _snapshot(tmp_path) == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("mine")
    before = _snapshot(tmp_path)
    assert main([*args, "--run-dir", str(tmp_path / "notes")]) == 2
    assert capsys.readouterr().err.endswith(
        "overwrite or not: choose another --name or --run-dir\n"
    )
    assert _snapshot(tmp_path) == before


def test_fork_overwrite_never_deletes_files_the_tool_did_not_write(parent, tmp_path, capsys):
    """--overwrite of a fork replaces the fork's run, not a researcher's notes saved in it."""
    args = ["fork", str(parent), "--at", "3", "--quiet", "--run-dir", str(tmp_path / "f")]
    assert main(args) == 0
    (tmp_path / "f" / "notes.txt").write_text("mine")
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main([*args, "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        f"error: run directory {tmp_path / 'f'} holds files memespread did not write "
        "(notes.txt); --overwrite replaces the whole directory and would delete them: move "
        "them out of it\n"
    )
    assert _snapshot(tmp_path) == before


def test_a_fork_whose_directory_cannot_be_made_is_one_io_error_line(parent, tmp_path, capsys):
    """The path and the reason, as run says it: not a Python exception's repr."""
    (tmp_path / "afile").write_text("mine")
    target = tmp_path / "afile" / "fork"
    assert main(["fork", str(parent), "--at", "3", "--run-dir", str(target), "--quiet"]) == 1
    assert capsys.readouterr().err == f"error: fork failed: I/O error: {target}: Not a directory\n"
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_parent_with_a_truncated_steps_table_is_one_line_naming_the_file(
    parent, tmp_path, capsys
):
    """Not polars' ComputeError after re-simulating the parent, and exit 2, not 1."""
    damaged = tmp_path / "damaged"
    shutil.copytree(parent, damaged)
    steps = damaged / "steps.parquet"
    steps.write_bytes(steps.read_bytes()[:500])
    before = _snapshot(tmp_path)
    assert main(["fork", str(damaged), "--at", "3", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: {steps}: unreadable (parquet: File out of specification: The file must end "
        "with PAR1 or PARE); the parent run is complete but its directory is damaged: rerun "
        "its config with --overwrite, then fork it\n"
    )
    assert _snapshot(tmp_path) == before


def test_a_fork_holds_its_directory_lock_while_it_runs(parent, tmp_path, monkeypatch):
    """A `resume` of a fork that is still running is refused (as for a run)."""
    from experiments.resume import resume_run
    from experiments.rundirs import LOCK_FILE, RunDirError

    target = tmp_path / "fork"
    real_write = pl.DataFrame.write_parquet
    refused: list[str] = []

    def write(frame, file, *args, **kwargs):
        # External library hook: when the fork writes its steps table, try to resume it.
        if ".steps.parquet" in str(file) and not refused:
            with pytest.raises(RunDirError) as err:
                resume_run(target, progress=False)
            refused.append(str(err.value))
        return real_write(frame, file, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write)
    result = fork_run(parent, 4, fork_dir=target, progress=False)
    assert result.manifest["status"] == "complete"
    assert len(refused) == 1 and "being written by another memespread process" in refused[0]
    assert not (target / LOCK_FILE).exists()


def test_a_fork_of_dot_goes_beside_the_parent_not_into_it(parent, monkeypatch):
    """`cd RUN_DIR && memespread fork . --at N` must not nest the fork in the parent."""
    monkeypatch.chdir(parent)
    before = sorted(p.name for p in parent.iterdir())
    result = fork_run(".", 4, name="dot-fork", progress=False)
    assert result.path.resolve() == parent.parent / "dot-fork"
    assert sorted(p.name for p in parent.iterdir()) == before
