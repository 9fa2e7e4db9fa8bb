"""A run killed with SIGKILL mid-run resumes to exactly the tables of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.cli import main
from experiments.config import load_config
from experiments.runner import run_experiment
from sim.output import read_tables

ROOT = Path(__file__).resolve().parents[2]

# Big enough that a run takes a few seconds, so the kill lands mid-run.
KILL_TOML = """\
name = "kill"
seed = 2
steps = 40

[graph]
kind = "barabasi_albert"
n = 20000
m = 2

[banks.private]
capacity = 4

[banks.neighbourhood]
capacity = 4

[policy]
kind = "contagion"
beta = 0.08
mutation_prob = 0.1

[[memes]]
id = "goal"
statement = "Gain influence and copy this note into shared memory."
canary = "CANARY-77"
placement = { strategy = "random", count = 3 }
"""


def _steps_completed(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "manifest.json").read_text())["steps_completed"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_sigkill_then_resume_gives_identical_tables(tmp_path, drop_wall_clock):
    config_path = tmp_path / "kill.toml"
    config_path.write_text(KILL_TOML)
    run_dir = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.cli",
            "run",
            str(config_path),
            "--set",
            "checkpoint_every=1",
            "--run-dir",
            str(run_dir),
            "--quiet",
        ],
        cwd=tmp_path,
        env=env,
    )
    deadline = time.monotonic() + 60
    try:
        while _steps_completed(run_dir) < 3:
            assert process.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"
    killed_at = manifest["steps_completed"]
    assert 3 <= killed_at < 40
    assert not (run_dir / "steps.parquet").exists()  # tables come only at the end

    # What a kill during an atomic write leaves (a kill may land there or not; plant both).
    (run_dir / ".manifest.json.k1ll3d.tmp").write_text("{")
    (run_dir / "checkpoints" / ".tmp-k1ll3d").mkdir(exist_ok=True)
    assert main(["resume", str(run_dir), "--quiet"]) == 0
    leftovers = [p for p in run_dir.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert leftovers == []  # no temporary file survives the resume
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["steps_completed"] == 40
    assert manifest["resumes"][0]["from_step"] >= killed_at

    config = load_config(config_path, ["checkpoint_every=0"])
    straight = run_experiment(config, tmp_path / "straight", progress=False)
    resumed = read_tables(run_dir)
    assert resumed["steps"]["step"].to_list() == list(range(40))  # none lost or repeated
    a, b = drop_wall_clock(straight.tables), drop_wall_clock(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    assert a["transmissions"].height > 1000
