"""The CLI's failure paths: refusals, I/O errors, failed requests, interruption, file modes.

Each error must be one line on stderr (no traceback) with the documented exit code:
2 for invalid input, 1 for I/O errors and failed runs, 130 for an interruption.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.cli import describe_error, main
from experiments.config import ConfigError
from experiments.request_failures import FailedRequestsError
from experiments.rundirs import RunDirError

ROOT = Path(__file__).resolve().parents[2]
_MAIN = "import sys\nfrom experiments.cli import main\nraise SystemExit(main(sys.argv[1:]))"


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def _cli(args: list[str], cwd: Path, umask: int | None = None, **kwargs) -> subprocess.Popen:
    """Start ``memespread ARGS`` in a subprocess (optionally under a umask)."""
    code = _MAIN
    if umask is not None:
        code = f"import os\nos.umask({umask:#o})\n{code}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_run_into_a_foreign_directory_is_refused_and_left_intact(small_toml, tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "notes.md").write_text("do not delete")
    before = _tree(thesis)
    for extra in ([], ["--overwrite"]):
        code = main(["run", str(small_toml), "--quiet", "--run-dir", str(thesis), *extra])
        assert code == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"{thesis} exists and it is not a memespread run directory" in line
    assert _tree(thesis) == before


def test_output_dir_that_is_a_file_is_an_io_error(small_toml, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = main(["run", str(small_toml), "--quiet", "--set", f'output_dir="{tmp_path / "afile"}"'])
    assert code == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "I/O error" in line and str(tmp_path / "afile") in line
    code = main(["run", str(small_toml), "--quiet", "--run-dir", str(tmp_path / "afile")])
    assert code == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"error: I/O error: {tmp_path / 'afile'}: exists and is not a directory"


def test_name_too_long_is_an_io_error(small_toml, tmp_path, capsys):
    run_dir = tmp_path / ("x" * 300)
    assert main(["run", str(small_toml), "--quiet", "--run-dir", str(run_dir)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "File name too long" in line and "255 bytes" in line


def test_read_only_filesystem_is_an_io_error(small_toml, tmp_path):
    """A run into a read-only mount: a private mount namespace keeps the mount local."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    ro = tmp_path / "ro"
    ro.mkdir()
    run_dir = ro / "runs" / "r"
    script = 'mount -t tmpfs -o ro,size=1m tmpfs "$1" 2>/dev/null || exit 99; shift; exec "$@"'
    done = subprocess.run(
        [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"),
            str(ro),
            *(sys.executable, "-c", _MAIN, "run", str(small_toml), "--quiet"),
            *("--run-dir", str(run_dir)),
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 99 or done.stderr.startswith("unshare:"):
        pytest.skip(f"cannot mount a read-only filesystem here: {done.stderr.strip()}")
    assert done.returncode == 1
    line = _one_error_line(done.stderr)
    assert line == f"error: I/O error: {ro / 'runs'}: Read-only file system"


_FULL_DISK_SCRIPT = """\
import hashlib, json, subprocess, sys
from pathlib import Path

disk, config = Path(sys.argv[1]), sys.argv[2]
main = "import sys\\nfrom experiments.cli import main\\nraise SystemExit(main(sys.argv[1:]))"


def cli(*args):
    done = subprocess.run([sys.executable, "-c", main, *args], capture_output=True, text=True)
    return done.returncode, done.stderr


def tree():
    return {
        str(p.relative_to(disk)): p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(disk.rglob("*"))
    }


run_dir = str(disk / "run")
first = cli("run", config, "--quiet", "--run-dir", run_dir, "--set", "steps=1")
before = tree()
second = cli(
    "run", config, "--quiet", "--run-dir", run_dir, "--overwrite",
    "--set", "graph.n=4000", "--set", "steps=60",
)
after = tree()
third = cli(
    "run", config, "--quiet", "--run-dir", str(disk / "fresh"),
    "--set", "graph.n=4000", "--set", "steps=60",
)
print(json.dumps({"first": first, "second": second, "third": third, "before": before,
                  "after": after}))
"""


def test_full_disk_is_one_line_and_keeps_the_old_run(small_toml, tmp_path):
    """Runs on a 160 KiB tmpfs (in a private mount namespace): a full disk is an I/O
    error in one line, and a failed --overwrite leaves the old run as it was."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(_FULL_DISK_SCRIPT)
    shell = 'mount -t tmpfs -o size=160k tmpfs "$1" 2>/dev/null || exit 99; exec "${@:2}"'
    done = subprocess.run(
        [
            *("unshare", "--mount", "--propagation", "private", "bash", "-c", shell, "bash"),
            str(disk),
            *(sys.executable, str(script), str(disk), str(small_toml)),
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode == 99 or done.stderr.startswith("unshare:"):
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    assert result["first"] == [0, ""]
    code, err = result["second"]
    assert code == 1
    line = _one_error_line(err)
    assert "No space left on device" in line and "I/O error" in line
    assert f"the previous run in {disk / 'run'} is unchanged" in line
    assert result["after"] == result["before"]  # the old run, and no staging left over
    code, err = result["third"]
    assert code == 1
    line = _one_error_line(err)
    assert "No space left on device" in line


def test_describe_error_maps_known_and_unexpected_errors():
    assert describe_error(ConfigError("c.toml", ["steps: bad"]))[0] == 2
    assert describe_error(RunDirError("refused")) == (2, "refused")
    assert describe_error(FileNotFoundError(2, "No such file or directory", "/x/y")) == (
        2,
        "/x/y: No such file or directory",
    )
    assert describe_error(OSError(28, "No space left on device", "/runs/r/steps.parquet")) == (
        1,
        "I/O error: /runs/r/steps.parquet: No space left on device",
    )
    assert describe_error(FailedRequestsError("3 of 3 failed")) == (
        1,
        "run failed: 3 of 3 failed",
    )
    assert describe_error(RuntimeError("boom\nsecond line")) == (
        1,
        "unexpected RuntimeError: boom (rerun with --verbose for the traceback)",
    )


def test_verbose_prints_the_traceback(small_toml, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    args = ["run", str(small_toml), "--quiet", "--run-dir", str(tmp_path / "afile")]
    assert main([*args, "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_llm_toml(tmp_path: Path) -> Path:
    """An LLM run whose OpenAI-compatible server does not exist (connection refused)."""
    pytest.importorskip("httpx")
    path = tmp_path / "llm.toml"
    path.write_text(
        f"""\
name = "unreachable"
steps = 3
[graph]
kind = "ring"
n = 4
k = 2
[policy]
kind = "llm"
[policy.engine]
kind = "openai"
base_urls = ["http://127.0.0.1:{_closed_port()}/v1"]
model = "none"
max_retries = 0
timeout_s = 5
[[memes]]
id = "goal"
kind = "influence_seeking"
statement = "Gain influence."
placement = {{ strategy = "hub", count = 1 }}
"""
    )
    return path


def test_a_run_whose_requests_all_fail_ends_failed(unreachable_llm_toml, tmp_path, capsys):
    run_dir = tmp_path / "r"
    args = ["run", str(unreachable_llm_toml), "--quiet", "--run-dir", str(run_dir)]
    assert main(args) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "run failed: 4 of 4 LLM requests failed in step 0" in line
    assert "failed_request_share_limit = 1" in line
    assert line.endswith(
        f"`memespread resume {run_dir}` continues from the last checkpoint with the run's "
        "stored config; if the config is the cause, fix it and run again with --overwrite)"
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith("FailedRequestsError: 4 of 4 LLM requests failed")
    assert not (run_dir / "steps.parquet").exists()
    assert "FailedRequestsError" in (run_dir / "run.log").read_text()


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_sigterm_is_recorded_as_interrupted(small_toml, tmp_path):
    run_dir = tmp_path / "long"
    args = ["run", str(small_toml), "--run-dir", str(run_dir), "--quiet"]
    args += ["--set", "steps=1000000", "--set", "checkpoint_every=20"]
    process = _cli(args, tmp_path)
    _wait_for(lambda: (run_dir / "checkpoints").is_dir())
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    line = _one_error_line(err)
    assert line == f"error: interrupted; `memespread resume {run_dir}` finishes the run"
    assert "leaked" not in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "error" not in manifest


def test_sigkill_leaves_no_leaked_semaphore_warning(small_toml, tmp_path):
    run_dir = tmp_path / "killed"
    args = ["run", str(small_toml), "--run-dir", str(run_dir)]  # with its progress bar
    args += ["--set", "steps=1000000", "--set", "checkpoint_every=20"]
    process = _cli(args, tmp_path)
    _wait_for(lambda: (run_dir / "checkpoints").is_dir())
    process.kill()
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert "step/s" in err  # the bar was drawn
    assert "leaked semaphore" not in err


def _modes(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", p.stat().st_mode & 0o777) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o007, 0o660, 0o770)]
)
def test_output_modes_follow_the_umask(small_toml, tmp_path, umask, file_mode, dir_mode):
    out = tmp_path / "out"
    run = _cli(
        ["run", str(small_toml), "--quiet", "--run-dir", str(out / "run"), "--set", "steps=2"],
        tmp_path,
        umask,
    )
    assert run.wait(timeout=120) == 0, run.stderr.read()
    again = _cli(
        [
            "run",
            str(small_toml),
            "--quiet",
            "--run-dir",
            str(out / "run"),
            "--overwrite",
            "--set",
            "steps=2",
        ],
        tmp_path,
        umask,
    )
    assert again.wait(timeout=120) == 0, again.stderr.read()
    report = _cli(["report", str(out / "run")], tmp_path, umask)
    assert report.wait(timeout=120) == 0, report.stderr.read()
    assert (out / "run" / "report" / "summary.csv").is_file()
    assert (out / "run" / "steps.parquet").is_file()
    assert _modes(out) == {("file", file_mode), ("dir", dir_mode)}


@pytest.mark.parametrize(
    ("port", "reason"),
    [("-1", "-1: must be a TCP port, 1..65535"), ("70000", "70000: must be a TCP port"),
     ("http", "'http': not an integer")],
)  # fmt: skip
def test_dashboard_port_out_of_range_is_an_argument_error(tmp_path, capsys, port, reason):
    """A bad --port is refused by the command itself, before any server starts."""
    with pytest.raises(SystemExit) as exit_info:
        main(["dashboard", str(tmp_path), "--port", port])
    assert exit_info.value.code == 2
    assert f"argument --port: {reason}" in capsys.readouterr().err
