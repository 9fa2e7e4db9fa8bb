"""Sweeps on Ray (issue 14.2): same results, skip and resume as the local backend.

The tests start a local Ray (``ray.init(num_cpus=2)``) and point the sweep at it.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from experiments.cli import main
from experiments.manifest import read_manifest_if_any
from experiments.rundirs import RunDirError
from experiments.sweep import load_sweep_config, run_sweep
from experiments.sweep_backends import _unreachable
from sim.output import read_tables

SWEEP = """\
steps = {steps}

[sweep]
name = "raysweep"
output_dir = "out"
base = "small.toml"
seeds = [1, 2]

[sweep.grid]
"policy.beta" = [0.1, 0.5]

[sweep.grid.graph]
name = "topology"
labels = ["ring"]
values = [{{ kind = "ring", n = {n}, k = 4 }}]
"""


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield str(context.address_info["address"])
    finally:
        ray.shutdown()


def _sweep_file(small_toml: Path, steps: int = 4, n: int = 30) -> Path:
    path = small_toml.parent / "sweep.toml"
    path.write_text(SWEEP.format(steps=steps, n=n))
    return path


def test_ray_backend_equals_local(ray_address, small_toml, tmp_path, drop_wall_clock):
    sweep = load_sweep_config(_sweep_file(small_toml))
    local = run_sweep(sweep, tmp_path / "local", progress=False)
    remote = run_sweep(sweep, tmp_path / "ray", progress=False, backend="ray", address=ray_address)
    assert remote.failed == {} and remote.ran == 4 and remote.skipped == 0
    assert remote.index.equals(local.index)
    assert pl.read_parquet(tmp_path / "ray" / "index.parquet").equals(local.index)
    for rel_dir in local.index["run_dir"]:
        ours = drop_wall_clock(read_tables(tmp_path / "ray" / rel_dir))
        theirs = drop_wall_clock(read_tables(tmp_path / "local" / rel_dir))
        assert sorted(ours) == sorted(theirs)
        for name, frame in theirs.items():
            assert ours[name].equals(frame), (rel_dir, name)
    again = run_sweep(sweep, tmp_path / "ray", progress=False, backend="ray", address=ray_address)
    assert again.ran == 0 and again.skipped == 4 and again.index.equals(local.index)


def _complete(sweep_dir: Path) -> dict[str, bytes]:
    done = {}
    for manifest in sorted(sweep_dir.glob("runs/**/manifest.json")):
        data = read_manifest_if_any(manifest.parent) or {}
        if data.get("status") == "complete":
            done[str(manifest.parent.relative_to(sweep_dir))] = manifest.read_bytes()
    return done


def test_killed_ray_sweep_finishes_without_redoing_runs(ray_address, small_toml, tmp_path):
    path = _sweep_file(small_toml, steps=60, n=3000)
    sweep_dir = tmp_path / "killed"
    cmd = [
        sys.executable, "-m", "experiments.cli", "sweep", str(path), "--sweep-dir",
        str(sweep_dir), "--backend", "ray", "--address", ray_address, "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 600
    while not _complete(sweep_dir) and time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.2)
    assert _complete(sweep_dir), "no run completed in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Ray kills the dead driver's tasks; until they are gone the sweep stays locked.
    sweep = load_sweep_config(path)
    deadline = time.monotonic() + 120
    while True:
        before = _complete(sweep_dir)
        try:
            result = run_sweep(sweep, sweep_dir, progress=False, backend="ray", address=ray_address)
            break
        except RunDirError as err:
            assert "in use" in str(err)
            assert time.monotonic() < deadline, "the killed sweep's tasks kept the lock"
            time.sleep(1.0)
    assert 1 <= len(before) < 4
    assert result.failed == {}
    assert result.skipped == len(before) and result.ran == 4 - len(before)
    assert result.index["status"].to_list() == ["complete"] * 4
    after = _complete(sweep_dir)
    for rel_dir, manifest in before.items():
        assert after[rel_dir] == manifest  # finished runs were not redone


def test_bad_ray_address_is_a_clear_error(small_toml, tmp_path):
    pytest.importorskip("ray")
    path = _sweep_file(small_toml)
    out = subprocess.run(
        [
            sys.executable, "-m", "experiments.cli", "sweep", str(path), "--sweep-dir",
            str(tmp_path / "bad"), "--backend", "ray", "--address", "127.0.0.1:9",
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot connect to a Ray cluster" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "bad").exists()  # nothing written


def test_address_needs_the_ray_backend(small_toml, capsys):
    path = _sweep_file(small_toml)
    assert main(["sweep", str(path), "--address", "127.0.0.1:6379"]) == 2
    assert "--backend ray" in capsys.readouterr().err


@pytest.fixture
def web_server_address() -> Iterator[str]:
    """A real HTTP/1 server on 127.0.0.1: a port that answers, but not as Ray."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_address_of_another_server_is_a_clear_error(small_toml, tmp_path, web_server_address):
    """A port that answers but is not Ray's: one error line, before Ray starts retrying."""
    pytest.importorskip("ray")
    path = _sweep_file(small_toml)
    out = subprocess.run(
        [
            sys.executable, "-m", "experiments.cli", "sweep", str(path), "--sweep-dir",
            str(tmp_path / "bad"), "--backend", "ray", "--address", web_server_address,
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: --address {web_server_address!r}: cannot connect to a Ray cluster (the port "
        "answers, but not as Ray's gRPC server); give the head node's address as HOST:6379 "
        "(or ray://HOST:10001), or omit --address for a local Ray"
    ]  # Ray's own warnings (about 20 s of them) never start
    assert not (tmp_path / "bad").exists()


def test_a_running_ray_head_passes_the_address_check(ray_address):
    """The gRPC greeting check accepts the GCS address of a real local Ray."""
    assert _unreachable(ray_address) is None
