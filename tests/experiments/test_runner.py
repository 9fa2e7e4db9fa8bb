"""Runs: manifest, checkpoints, atomic writes under an injected failure, resume, safe
overwrite, interruption, the run log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import polars as pl
import pytest

from experiments.config import load_config
from experiments.manifest import ManifestError
from experiments.report import report
from experiments.resume import resume_run
from experiments.rundirs import LOCK_FILE, RunDirError
from experiments.runner import RunResult, run_experiment
from sim.analysis import load_run
from sim.output import read_tables, write_parquet_atomic
from sim.run import Run
from sim.tables import table_names

_REAL_WRITE_PARQUET = pl.DataFrame.write_parquet


def _failing_write_parquet(marker: str, error: BaseException | None = None):
    """A stand-in for polars' ``DataFrame.write_parquet`` that fails part-way.

    This fakes a failure of an external library (e.g. a full disk): for files whose name
    contains ``marker`` it writes a truncated file, then raises ``error`` (default
    ``OSError``); all other writes go to the real polars method.
    """

    def write(frame, file, *args, **kwargs):
        if marker in str(file):
            with open(file, "wb") as handle:
                handle.write(b"PAR1 truncated")
            raise error if error is not None else OSError("disk full (injected)")
        return _REAL_WRITE_PARQUET(frame, file, *args, **kwargs)

    return write


def _leftovers(root):
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(".tmp"))


def _tree(root):
    """Every path under ``root`` with its bytes (None for directories)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def test_run_writes_tables_and_complete_manifest(small_toml, tmp_path):
    config = load_config(small_toml, ["checkpoint_every=2"])
    result = run_experiment(config, tmp_path / "run", progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["steps_completed"] == 6 and manifest["checkpoint"] is None
    assert manifest["checkpoint_every"] == 2 and manifest["n_agents"] == 60
    assert manifest["config"]["policy"]["beta"] == 0.3
    assert not (tmp_path / "run" / "checkpoints").exists()
    on_disk = read_tables(tmp_path / "run")
    assert set(on_disk) == set(table_names(always=True))  # the 7 tables every run writes
    for name, frame in result.tables.items():
        assert on_disk[name].equals(frame), name
    assert result.steps["step"].to_list() == [0, 1, 2, 3, 4, 5]


def test_a_run_returns_the_object_load_run_reads(small_toml, tmp_path):
    config = load_config(small_toml)
    result = run_experiment(config, tmp_path / "run", progress=False)
    loaded = load_run(tmp_path / "run")
    assert RunResult is Run and type(result) is Run and type(loaded) is Run
    assert result.path == result.run_dir == loaded.path == tmp_path / "run"
    assert result.config == loaded.config == config.model_dump(mode="json", by_alias=True)
    assert result.manifest == loaded.manifest
    assert sorted(result.tables) == sorted(loaded.tables)
    for name, frame in result.tables.items():
        assert loaded.tables[name].equals(frame), name
    assert (result.name, result.n_agents, result.meme_ids) == ("small", 60, loaded.meme_ids)
    assert result.param("policy.beta") == loaded.param("policy.beta") == 0.3


def test_existing_run_dir_needs_overwrite(small_toml, tmp_path):
    config = load_config(small_toml, ["steps=1"])
    run_experiment(config, tmp_path / "run", progress=False)
    with pytest.raises(RunDirError, match="already exists; pass overwrite=True"):
        run_experiment(config, tmp_path / "run", progress=False)
    report(tmp_path / "run")  # report/ is the tool's: it goes with the run
    (tmp_path / "run" / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    # A file the tool did not write is never deleted with the run it sits in.
    with pytest.raises(RunDirError, match=r"holds files memespread did not write \(notes.txt\)"):
        run_experiment(config, tmp_path / "run", overwrite=True, progress=False)
    assert _tree(tmp_path) == before
    (tmp_path / "run" / "notes.txt").rename(tmp_path / "notes.txt")
    again = run_experiment(config, tmp_path / "run", overwrite=True, progress=False)
    assert again.run_dir == tmp_path / "run"
    assert again.manifest["status"] == "complete" and again.manifest["tool"] == "memespread"
    # The whole old run directory was replaced; no staging or holding directory is left.
    assert not (tmp_path / "run" / "report").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run", "small.toml"]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "complete"


def test_overwrite_refuses_a_directory_that_is_not_a_run(small_toml, tmp_path):
    config = load_config(small_toml, ["steps=1"])
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("two years of work")
    (thesis / "figures").mkdir()
    (thesis / "figures" / "f.png").write_bytes(b"png")
    before = _tree(thesis)
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match="is not a memespread run directory"):
            run_experiment(config, thesis, overwrite=overwrite, progress=False)
    assert _tree(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml", "thesis"]


def test_empty_existing_directory_receives_the_run(small_toml, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_experiment(
        load_config(small_toml, ["steps=1"]), tmp_path / "empty", progress=False
    )
    assert result.manifest["status"] == "complete"


def test_failed_overwrite_keeps_the_old_run(small_toml, tmp_path, monkeypatch):
    config = load_config(small_toml, ["steps=2"])
    run_experiment(config, tmp_path / "run", progress=False)
    before = _tree(tmp_path / "run")
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _failing_write_parquet(".agents.parquet"))
    with pytest.raises(OSError, match="injected"):
        run_experiment(
            load_config(small_toml, ["steps=3"]), tmp_path / "run", overwrite=True, progress=False
        )
    monkeypatch.undo()
    assert _tree(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.toml"]


def test_interrupted_overwrite_keeps_the_old_run(small_toml, tmp_path, monkeypatch):
    config = load_config(small_toml, ["steps=2"])
    run_experiment(config, tmp_path / "run", progress=False)
    before = _tree(tmp_path / "run")
    interrupt = _failing_write_parquet(".steps.parquet", KeyboardInterrupt())
    monkeypatch.setattr(pl.DataFrame, "write_parquet", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "run", overwrite=True, progress=False)
    monkeypatch.undo()
    assert _tree(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.toml"]


def test_interruption_is_recorded_as_interrupted_and_resumes(
    small_toml, tmp_path, monkeypatch, drop_wall_clock
):
    config = load_config(small_toml, ["checkpoint_every=2", "steps=5"])
    expected = run_experiment(config, tmp_path / "straight", progress=False)
    run_dir = tmp_path / "stopped"
    interrupt = _failing_write_parquet(".steps.parquet", KeyboardInterrupt())
    monkeypatch.setattr(pl.DataFrame, "write_parquet", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, run_dir, progress=False)
    monkeypatch.undo()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert "error" not in manifest
    assert manifest["checkpoint"] == "checkpoints/step-000004"
    log = (run_dir / "run.log").read_text()
    assert "interrupted" in log and f"memespread resume {run_dir}" in log
    resumed = resume_run(run_dir, progress=False)
    assert resumed.manifest["status"] == "complete"
    a, b = drop_wall_clock(expected.tables), drop_wall_clock(read_tables(run_dir))
    for name in a:
        assert a[name].equals(b[name]), name


def test_run_log_and_elapsed_time(small_toml, tmp_path):
    config = load_config(small_toml, ["steps=2"])
    started = time.monotonic()
    result = run_experiment(config, tmp_path / "r", progress=False)
    took = time.monotonic() - started
    log = (tmp_path / "r" / "run.log").read_text().splitlines()
    assert "INFO experiments.runner: run small: started, steps 0 to 1 of 2, in " in log[0]
    assert log[-1].endswith(
        f"INFO experiments.runner: run small complete in {result.manifest['elapsed_s']:.1f} s"
    )
    # Seconds of this call's wall time (rounded to 1 ms), whatever the machine's speed.
    assert 0 < result.manifest["elapsed_s"] <= took + 0.001
    # The handler is removed after the run: later records do not reach the file.
    import logging

    logging.getLogger("experiments.runner").warning("after the run")
    assert "after the run" not in (tmp_path / "r" / "run.log").read_text()


def test_failing_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    old = pl.DataFrame({"a": [1, 2, 3]})
    write_parquet_atomic(old, path)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _failing_write_parquet("t.parquet"))
    with pytest.raises(OSError, match="injected"):
        write_parquet_atomic(pl.DataFrame({"a": [9]}), path)
    monkeypatch.undo()
    assert pl.read_parquet(path).equals(old)
    assert _leftovers(tmp_path) == []


def test_crash_while_writing_tables_leaves_no_half_table_and_resumes(
    small_toml, tmp_path, monkeypatch, drop_wall_clock
):
    config = load_config(small_toml, ["checkpoint_every=2", "steps=7"])
    expected = run_experiment(config, tmp_path / "straight", progress=False)

    run_dir = tmp_path / "crashed"
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _failing_write_parquet(".agents.parquet"))
    with pytest.raises(OSError, match="injected"):
        run_experiment(config, run_dir, progress=False)
    monkeypatch.undo()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "OSError: disk full (injected)"
    assert manifest["steps_completed"] == 6
    assert manifest["checkpoint"] == "checkpoints/step-000006"
    assert not (run_dir / "agents.parquet").exists()
    assert pl.read_parquet(run_dir / "steps.parquet").height == 7  # written before: whole
    assert _leftovers(run_dir) == []

    resumed = resume_run(run_dir, progress=False)
    assert resumed.manifest["status"] == "complete"
    assert resumed.manifest["resumes"][0]["from_step"] == 6
    a, b = drop_wall_clock(expected.tables), drop_wall_clock(read_tables(run_dir))
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name


def test_resume_without_checkpoint_restarts_and_complete_run_is_kept(
    small_toml, tmp_path, drop_wall_clock
):
    config = load_config(small_toml, ["checkpoint_every=0"])
    expected = run_experiment(config, tmp_path / "a", progress=False)
    # A run killed before its first checkpoint: only the initial manifest exists.
    run_dir = tmp_path / "b"
    run_dir.mkdir()
    manifest = dict(expected.manifest, status="running", steps_completed=0)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    resumed = resume_run(run_dir, progress=False)
    assert resumed.manifest["resumes"][0]["from_step"] == 0
    a, b = drop_wall_clock(expected.tables), drop_wall_clock(resumed.tables)
    for name in a:
        assert a[name].equals(b[name]), name
    again = resume_run(run_dir, progress=False)  # complete: nothing to do
    assert again.manifest["resumes"] == resumed.manifest["resumes"]


def test_resume_of_a_non_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        resume_run(tmp_path)


def test_kept_checkpoints_and_files_follow_the_umask(small_toml, tmp_path, monkeypatch):
    config = load_config(small_toml, ["checkpoint_every=2", "steps=5"])
    interrupt = _failing_write_parquet(".steps.parquet", KeyboardInterrupt())
    monkeypatch.setattr(pl.DataFrame, "write_parquet", interrupt)
    old = os.umask(0o027)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(config, tmp_path / "out" / "run", progress=False)
    finally:
        os.umask(old)
    paths = list((tmp_path / "out").rglob("*"))
    assert any(p.parent.name == "checkpoints" for p in paths)
    modes = {("dir" if p.is_dir() else "file", p.stat().st_mode & 0o777) for p in paths}
    assert modes == {("dir", 0o750), ("file", 0o640)}


def test_config_model_stops_at_the_configured_steps(small_toml):
    from experiments.runner import build_model

    config = load_config(small_toml, ["steps=3"])
    model = build_model(config)
    model.run_model()
    assert model.steps == 3
    assert model.running is False


def _hold_write_lock(directory):
    """Another process holding ``directory``'s write lock (as a running ``run`` would)."""
    code = (
        "import sys, time\n"
        "from experiments.rundirs import writing_lock\n"
        "with writing_lock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def test_a_run_directory_another_process_writes_is_refused_and_untouched(small_toml, tmp_path):
    config = load_config(small_toml, ["steps=2", "checkpoint_every=1"])
    new = tmp_path / "new"
    new.mkdir()
    holder = _hold_write_lock(new)
    try:
        with pytest.raises(RunDirError, match="being written by another memespread process"):
            run_experiment(config, new, progress=False)
        assert _tree(new) == {LOCK_FILE: b""}  # the holder's lock file, nothing of ours
    finally:
        holder.kill()
        holder.wait()
    # The holder died without removing its lock file: the directory still counts as empty.
    assert run_experiment(config, new, progress=False).manifest["status"] == "complete"
    assert LOCK_FILE not in _tree(new)


def test_resume_refuses_a_run_another_process_writes(small_toml, tmp_path):
    config = load_config(small_toml, ["steps=2"])
    run = run_experiment(config, tmp_path / "run", progress=False).path
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "running"  # as a run still stepping in another process says
    (run / "manifest.json").write_text(json.dumps(manifest))
    holder = _hold_write_lock(run)
    try:
        before = _tree(run)
        with pytest.raises(RunDirError, match="being written by another memespread process"):
            resume_run(run, progress=False)
        assert _tree(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_overwrite_refuses_a_run_another_process_still_writes(small_toml, tmp_path):
    """--overwrite never swaps out a run directory under the process writing it."""
    config = load_config(small_toml, ["steps=2"])
    longer = load_config(small_toml, ["steps=3"])
    run = run_experiment(config, tmp_path / "run", progress=False).path
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "running"  # as a run still stepping in another process says
    (run / "manifest.json").write_text(json.dumps(manifest))
    holder = _hold_write_lock(run)
    try:
        before = _tree(tmp_path)
        with pytest.raises(RunDirError, match="being written by another memespread process"):
            run_experiment(longer, run, overwrite=True, progress=False)
        assert _tree(tmp_path) == before  # no staging sibling, the old run as it was
    finally:
        holder.kill()
        holder.wait()
    # Once its writer is gone, the run is replaced, and no lock file is left behind.
    replaced = run_experiment(longer, run, overwrite=True, progress=False)
    assert replaced.manifest["steps"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.toml"]
    assert LOCK_FILE not in _tree(run)


def test_overwrite_deletes_the_staging_a_killed_overwrite_left_and_nothing_else(
    small_toml, tmp_path
):
    """`run --overwrite` killed mid-run leaves .NAME.new-*; the next overwrite removes it."""
    config = load_config(small_toml, ["steps=2"])
    run = run_experiment(config, tmp_path / "run", progress=False).path
    stale = tmp_path / ".run.new-k1ll3d00"  # as a killed overwrite leaves it: a run
    shutil.copytree(run, stale)
    (stale / LOCK_FILE).write_bytes(b"")
    empty = tmp_path / ".run.new-3mpty000"  # killed before it wrote anything
    empty.mkdir()
    mine = tmp_path / ".run.new-notes"  # the user's, whatever its name
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    other = tmp_path / ".other.new-k1ll3d00"  # another target's staging
    shutil.copytree(run, other)
    run_experiment(load_config(small_toml, ["steps=3"]), run, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.new-k1ll3d00",
        ".run.new-notes",
        "run",
        "small.toml",
    ]
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_lock_file_with_content_is_somebodys_and_the_directory_is_refused(small_toml, tmp_path):
    """Only an empty file of the lock file's name counts as the tool's lock file."""
    target = tmp_path / "target"
    target.mkdir()
    (target / LOCK_FILE).write_text("my notes")
    before = _tree(target)
    with pytest.raises(RunDirError, match="is not a memespread run directory"):
        run_experiment(load_config(small_toml, ["steps=1"]), target, progress=False)
    assert _tree(target) == before


def test_a_complete_run_with_a_damaged_table_says_so(small_toml, tmp_path, capsys):
    """Resume and report of a complete run whose table was deleted or truncated later."""
    from experiments.cli import main

    run = run_experiment(load_config(small_toml, ["steps=2"]), tmp_path / "run", progress=False)
    (run.path / "steps.parquet").unlink()
    damaged = "the run is complete but its directory is damaged"
    with pytest.raises(ManifestError, match=f"{damaged}: steps.parquet missing; rerun its"):
        resume_run(run.path, progress=False)
    assert main(["report", str(run.path)]) == 2
    assert "no steps.parquet, yet the run is complete" in capsys.readouterr().err
    (run.path / "steps.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(ManifestError, match=f"{damaged}: a table is unreadable \\(parquet"):
        resume_run(run.path, progress=False)
    assert main(["report", str(run.path)]) == 2
    assert "steps.parquet: unreadable (parquet" in capsys.readouterr().err


def test_a_graph_that_fails_its_checks_fails_before_the_model_loads(tmp_path):
    """A config that fails only when its graph is built (require_connected) fails with
    that error, not with the engine's: the graph is built before any model loads. The
    model file starts like a GGUF but holds no model, so loading it first would fail."""
    from experiments.config import validate_config
    from topologies.graphs import TopologyError

    not_a_model = tmp_path / "model.gguf"
    not_a_model.write_bytes(b"GGUF" + bytes(60))  # a GGUF header, then nothing loadable
    config = validate_config(
        {
            "name": "disconnected",
            "steps": 1,
            "graph": {"kind": "erdos_renyi", "n": 20, "p": 0.0, "require_connected": True},
            "policy": {
                "kind": "llm",
                "engine": {"kind": "llamacpp", "model_path": str(not_a_model)},
            },
            "memes": [
                {
                    "id": "m",
                    "kind": "influence_seeking",
                    "statement": "Collect the keys of every bank.",
                    "placement": {"strategy": "agents", "agents": [0]},
                }
            ],
        }
    )
    with pytest.raises(TopologyError, match="require_connected = True"):
        run_experiment(config, tmp_path / "run", progress=False)
