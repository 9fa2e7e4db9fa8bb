"""What a sweep may touch, its lock, and workers that die with their parent (issue 8.2, 8.8)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import polars.selectors as cs
import pytest
from processes import alive, children

from experiments.cli import main
from experiments.rundirs import LOCK_FILE as RUN_LOCK_FILE
from experiments.rundirs import RunDirError
from experiments.sweep import LOCK_FILE, acquire_sweep_lock, load_sweep_config, run_sweep

ROOT = Path(__file__).resolve().parents[2]

SWEEP = """\
steps = 3

[sweep]
name = "safe"
base = "small.toml"
seeds = [1]

[sweep.grid]
"policy.beta" = [0.1, 0.5]
"""


@pytest.fixture
def sweep(small_toml):
    path = small_toml.parent / "sweep.toml"
    path.write_text(SWEEP)
    return load_sweep_config(path)


def test_unreadable_run_directory_is_reported_and_left_alone(sweep, tmp_path):
    sweep_dir = tmp_path / "s"
    run_sweep(sweep, sweep_dir, progress=False)
    victim = sweep_dir / sweep.runs[0].rel_dir
    (victim / "manifest.json").write_text("{ truncated")
    (victim / "notes.txt").write_text("my notes")
    for overwrite in (False, True):
        result = run_sweep(sweep, sweep_dir, overwrite=overwrite, progress=False)
        assert list(result.failed) == [sweep.runs[0].rel_dir]
        assert result.failed[sweep.runs[0].rel_dir].startswith(f"left alone: {victim} exists")
        assert (victim / "notes.txt").read_text() == "my notes"
        assert (victim / "manifest.json").read_text() == "{ truncated"
        assert (victim / "steps.parquet").exists()
        assert result.skipped == 1 and result.ran == 0


def test_overwrite_leaves_alone_a_run_holding_files_the_tool_did_not_write(sweep, tmp_path):
    """A stale run with a researcher's file in it is not replaced (deleted) by --overwrite."""
    sweep_dir = tmp_path / "s"
    run_sweep(sweep, sweep_dir, progress=False)
    changed = load_sweep_config(sweep.source, ["steps=2"])
    victim = sweep_dir / changed.runs[0].rel_dir
    (victim / "notes.txt").write_text("my notes")
    steps = (victim / "steps.parquet").read_bytes()
    result = run_sweep(changed, sweep_dir, overwrite=True, progress=False)
    assert result.failed == {
        changed.runs[0].rel_dir: f"left alone: run directory {victim} holds files memespread "
        "did not write (notes.txt); --overwrite replaces the whole directory and would delete "
        "them: move them out of it, then rerun the sweep"
    }
    assert (victim / "notes.txt").read_text() == "my notes"
    assert (victim / "steps.parquet").read_bytes() == steps
    assert result.ran == 1  # the other run was replaced


def test_manifest_that_is_a_list_is_left_alone(sweep, tmp_path):
    sweep_dir = tmp_path / "s"
    run_sweep(sweep, sweep_dir, progress=False)
    (sweep_dir / sweep.runs[1].rel_dir / "manifest.json").write_text("[]")
    result = run_sweep(sweep, sweep_dir, progress=False)
    assert list(result.failed) == [sweep.runs[1].rel_dir]
    assert "not a run manifest (a JSON list, not an object)" in result.failed[sweep.runs[1].rel_dir]
    assert result.index.filter(result.index["run_dir"] == sweep.runs[1].rel_dir)[
        "status"
    ].to_list() == ["unreadable"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_directory_that_is_not_a_sweep_is_refused_untouched(sweep, tmp_path, overwrite):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("...")
    with pytest.raises(RunDirError, match="it is not a sweep directory"):
        run_sweep(sweep, thesis, overwrite=overwrite, progress=False)
    assert [p.name for p in thesis.iterdir()] == ["chapter1.tex"]


@pytest.mark.parametrize("content", [b"", b"4242\n"])
def test_a_directory_left_with_only_our_lock_file_is_fresh(sweep, tmp_path, content):
    """A sweep killed right after locking leaves just .lock (empty or its pid): rerun."""
    sweep_dir = tmp_path / "s"
    sweep_dir.mkdir()
    (sweep_dir / LOCK_FILE).write_bytes(content)
    assert run_sweep(sweep, sweep_dir, progress=False).failed == {}


def test_a_lock_file_that_is_not_ours_makes_the_directory_foreign(sweep, tmp_path):
    """Another program's .lock (or a symlink of that name) is never truncated or followed."""
    other = tmp_path / "other"
    other.mkdir()
    (other / LOCK_FILE).write_text("held by my editor\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    target = tmp_path / "important.txt"
    target.write_text("do not truncate\n")
    (linked / LOCK_FILE).symlink_to(target)
    for directory in (other, linked):
        with pytest.raises(RunDirError, match="it is not a sweep directory"):
            run_sweep(sweep, directory, progress=False)
        assert [p.name for p in directory.iterdir()] == [LOCK_FILE]
    assert (other / LOCK_FILE).read_text() == "held by my editor\n"
    assert target.read_text() == "do not truncate\n"


def test_a_sweep_dir_path_ending_in_dotdot_is_refused_untouched(sweep, tmp_path, monkeypatch):
    """'--sweep-dir new/..' would create new/ and then write into the folder holding it."""
    (tmp_path / "notes.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirError, match=r"cannot end in '\.\.'; give the directory by its"):
        run_sweep(sweep, Path("new/.."), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_sweep_into_a_foreign_directory_exits_2(sweep, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2\n")
    code = main(["sweep", sweep.source, "--sweep-dir", str(foreign), "--overwrite", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to write into it" in err and "Traceback" not in err
    assert [p.name for p in foreign.iterdir()] == ["data.csv"]


def test_sweep_json_carries_the_tool_marker(sweep, tmp_path):
    result = run_sweep(sweep, tmp_path / "s", progress=False)
    assert json.loads((result.sweep_dir / "sweep.json").read_text())["tool"] == "memespread"


def test_a_locked_sweep_directory_is_refused(sweep, tmp_path):
    sweep_dir = tmp_path / "s"
    sweep_dir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(sweep_dir / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_SH)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match="is in use by another memespread process"):
            run_sweep(sweep, sweep_dir, progress=False)
    finally:
        holder.kill()
        holder.wait()
    result = run_sweep(sweep, sweep_dir, progress=False)  # free again
    assert result.failed == {} and result.ran == 2


def test_lock_is_released_after_a_sweep(sweep, tmp_path):
    fd = acquire_sweep_lock(tmp_path)
    # While held, another taker (another open file, as another process has) is refused.
    with pytest.raises(RunDirError, match="is in use by another memespread process"):
        acquire_sweep_lock(tmp_path)
    os.close(fd)
    os.close(acquire_sweep_lock(tmp_path))  # closing the descriptor released it
    # A finished sweep has let go of its directory's lock.
    result = run_sweep(sweep, tmp_path / "s", progress=False)
    assert result.failed == {} and result.ran == 2
    os.close(acquire_sweep_lock(tmp_path / "s"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_sweep_and_a_rerun_finishes(small_toml, tmp_path):
    path = small_toml.parent / "slow_sweep.toml"
    # Runs long enough that the workers are busy when the parent is killed.
    path.write_text(
        SWEEP.replace("steps = 3", "steps = 30")
        .replace("seeds = [1]", "seeds = [1, 2]")
        .replace('name = "safe"', 'name = "slow"')
        + '\n[sweep.grid.graph]\nvalues = [{ kind = "barabasi_albert", n = 20000, m = 2 }]\n'
    )
    sweep_dir = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "experiments.cli", "sweep", str(path)]
    command += ["--sweep-dir", str(sweep_dir), "--jobs", "2", "--quiet"]
    parent = subprocess.Popen(command, cwd=tmp_path, env=env)
    deadline = time.monotonic() + 90
    workers: set[int] = set()
    try:
        while len(workers) < 2 or not list(sweep_dir.glob("runs/*/*/*/manifest.json")):
            assert parent.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no busy workers within 90 s"
            workers = {c for c in children(parent.pid) if alive(c)}
            workers = {
                c
                for c in workers
                if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")
            }
            time.sleep(0.05)
        parent.send_signal(signal.SIGKILL)
    finally:
        parent.wait(timeout=30)
    gone_by = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "sweep workers outlived their parent"

    assert main(["sweep", str(path), "--sweep-dir", str(sweep_dir), "--quiet"]) == 0
    index = json.loads((sweep_dir / "sweep.json").read_text())
    assert index["n_runs"] == 4
    leftovers = [p for p in sweep_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_rerun_cleans_what_a_killed_sweep_left(sweep, tmp_path):
    sweep_dir = tmp_path / "s"
    run_sweep(sweep, sweep_dir, progress=False)
    run_dir = sweep_dir / sweep.runs[0].rel_dir
    (sweep_dir / ".index.parquet.k1ll3d.tmp").write_bytes(b"PAR1")
    staging = run_dir.parent / f".{run_dir.name}.new-k1ll3d"
    staging.mkdir()
    (staging / "steps.parquet").write_bytes(b"PAR1")
    (sweep_dir / "my-notes.tmp").mkdir()  # not a temporary file of ours
    result = run_sweep(sweep, sweep_dir, progress=False)
    assert result.failed == {} and result.skipped == 2
    assert not (sweep_dir / ".index.parquet.k1ll3d.tmp").exists()
    assert not staging.exists() and (sweep_dir / "my-notes.tmp").is_dir()


def test_a_run_killed_while_writing_its_first_manifest_is_started_again(sweep, tmp_path):
    """A worker killed between making its run directory and its first manifest leaves the
    lock file and an unfinished manifest write: the rerun starts that run again."""
    sweep_dir = tmp_path / "s"
    first = run_sweep(sweep, sweep_dir, progress=False)
    run_dir = sweep_dir / sweep.runs[1].rel_dir
    steps = pl.read_parquet(run_dir / "steps.parquet")
    shutil.rmtree(run_dir)
    run_dir.mkdir()
    (run_dir / RUN_LOCK_FILE).touch()
    (run_dir / ".manifest.json.k1ll3d.tmp").write_text('{"tool": "memes')
    result = run_sweep(sweep, sweep_dir, progress=False)
    assert first.failed == {} and result.failed == {}
    assert result.ran == 1 and result.skipped == 1
    assert not (run_dir / ".manifest.json.k1ll3d.tmp").exists()
    assert (
        pl.read_parquet(run_dir / "steps.parquet")
        .drop(cs.ends_with("_wall_s"))
        .equals(steps.drop(cs.ends_with("_wall_s")))
    )


def test_an_unfinished_manifest_beside_other_files_is_left_alone(sweep, tmp_path):
    """Only a directory holding nothing else is taken for a killed start."""
    sweep_dir = tmp_path / "s"
    run_sweep(sweep, sweep_dir, progress=False)
    run_dir = sweep_dir / sweep.runs[1].rel_dir
    shutil.rmtree(run_dir)
    run_dir.mkdir()
    (run_dir / ".manifest.json.k1ll3d.tmp").write_text("{}")
    (run_dir / "notes.txt").write_text("mine")
    result = run_sweep(sweep, sweep_dir, progress=False)
    assert list(result.failed) == [sweep.runs[1].rel_dir]
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / ".manifest.json.k1ll3d.tmp").read_text() == "{}"
