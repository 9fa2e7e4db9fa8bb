"""The memespread command line: help, list, validate, run, sweep, resume, report."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.catalog import list_configs
from experiments.cli import build_parser, main, version
from experiments.messages import counted
from sim.run import load_run

ROOT = Path(__file__).resolve().parents[2]

OPTIONS = {
    "run": ["CONFIG", "--set", "--run-dir", "--overwrite", "--quiet", "--verbose"],
    "sweep": [
        "SWEEP_CONFIG",
        "--set",
        "--sweep-dir",
        "--jobs",
        "--overwrite",
        "--quiet",
        "--verbose",
    ],
    "validate": ["CONFIG", "--set", "--verbose"],
    "resume": ["RUN_DIR", "--quiet", "--verbose"],
    "report": ["RUN_DIR", "--verbose"],
    "list": ["--verbose"],
}


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_help_documents_every_option(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: memespread {command}")
    for option in OPTIONS[command]:
        assert option in text, option
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        assert action.help, f"{command}: {action.dest} has no help"


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in OPTIONS:
        assert command in text
    assert "--version" in text and "--verbose" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memespread {version()}"
    assert version() == importlib.metadata.version("memespread")


def test_console_entry_point_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "topology_sweep" in done.stdout


def test_list_shows_every_shipped_config(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shipped = list_configs()
    names = {c.name for c in shipped}
    assert {
        "demo",
        "topology_sweep",
        "race",
        "global_vs_neighbourhood",
        "large_contagion_sweep",
    } <= names
    assert len(lines) == len(shipped)
    for line, config in zip(lines, shipped, strict=True):
        assert line.split()[0] == config.name
        assert config.doc and line.endswith(config.doc)
        assert config.kind in line


def test_validate_reports_errors_and_exit_codes(small_toml, tmp_path, capsys):
    assert main(["validate", str(small_toml), "topology_sweep"]) == 0
    out = capsys.readouterr().out
    assert f"{small_toml}: valid run config: 6 steps, 1 meme(s), policy contagion" in out
    assert "topology_sweep: valid sweep config: 25 runs; axes: topology (5)" in out
    assert main(["validate", str(small_toml), "--set", "policy.beta=2", "--set", "stepz=1"]) == 2
    err = capsys.readouterr().err
    assert "(2 error(s))" in err
    assert "policy.beta = 2: input should be less than or equal to 1" in err
    assert "stepz = 1: unknown key" in err
    assert main(["validate", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_run_report_resume_from_the_cli(small_toml, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert main(["run", str(small_toml), "--run-dir", str(run_dir), "--set", "steps=3"]) == 0
    out = capsys.readouterr().out
    assert f"run directory: {run_dir} (complete in " in out
    assert "meme goal: after step 2:" in out
    # Contagion agents make no choices: the summary has no (always 0) expressed count.
    assert "expressed" not in out
    # The transmissions line counts the run's own rows, each noun in the right number.
    edges = load_run(run_dir).transmissions
    infected = int(edges["is_infection"].sum())
    assert edges.height > 0
    assert f" {infected} agent{'' if infected == 1 else 's'} infected, up to " in out
    assert main(["run", str(small_toml), "--run-dir", str(run_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["resume", str(run_dir), "--quiet"]) == 0  # complete: nothing to do
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["meme_id", "steps", "exposed"]
    assert (run_dir / "report" / "prevalence.png").is_file()
    assert main(["run", "topology_sweep"]) == 2
    assert "is a sweep config" in capsys.readouterr().err


def test_sweep_from_the_cli(small_toml, tmp_path, capsys):
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[sweep]\nbase = "small.toml"\nreplicates = 2\n[sweep.grid]\n"policy.beta" = [0.1, 0.2]\n'
    )
    args = ["sweep", str(sweep), "--sweep-dir", str(tmp_path / "sd"), "--set", "steps=2"]
    assert main([*args, "--quiet"]) == 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 runs; 0 run now, 4 already complete, 0 failed" in out
    # The sweep ends with its results: one line per grid point and meme.
    results = out.split("final shares of agents (mean over the complete runs of each point):")
    lines = results[1].strip().splitlines()
    assert [line.split(" meme ")[0].strip() for line in lines[:2]] == [
        "policy.beta=0.1",
        "policy.beta=0.2",
    ]
    assert lines[0].endswith("(2 run(s))") and "adopters 0." in lines[0]
    # Contagion agents make no scored choices: no expressed share, no note about it.
    assert "expressed" not in results[1]
    index = json.loads((tmp_path / "sd" / "sweep.json").read_text())
    assert index["n_runs"] == 4
    # `report` on a sweep directory summarises the sweep across its swept parameters.
    assert main(["report", str(tmp_path / "sd")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{tmp_path / 'sd'}: 4 of 4 runs complete"
    assert out.splitlines()[1] == "per grid point and meme: mean [95 % CI] over seeds"
    written = [
        line.removeprefix("wrote ") for line in out.splitlines() if line.startswith("wrote ")
    ]
    assert written and all(Path(p).is_file() and p.endswith(".png") for p in written)
    assert all(Path(p).parent == tmp_path / "sd" / "report" for p in written)
    assert main(["sweep", str(small_toml)]) == 2
    assert "is a run config" in capsys.readouterr().err


def test_progress_bar_stays_and_verbose_logs_progress(small_toml, tmp_path, capsys):
    run_dir = tmp_path / "r"
    args = ["run", str(small_toml), "--run-dir", str(run_dir), "--set", "steps=2"]
    assert main([*args, "-v"]) == 0
    err = capsys.readouterr().err
    # The bar's last state is left on screen (tqdm's leave=True): not cleared to blanks.
    assert "2/2 [" in err.rsplit("\r", 1)[-1]
    assert f"INFO experiments.runner: run small: started, steps 0 to 1 of 2, in {run_dir}" in err
    assert "INFO experiments.runner: run small complete in " in err
    assert main(["run", str(small_toml), "--run-dir", str(tmp_path / "q"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_the_run_summary_says_what_the_guards_did(small_toml, tmp_path, capsys):
    """A run with a defense says what it flagged, totalled once (not once per meme row)."""
    guard = 'guards=[{ kind = "quarantine", meme = "goal", delay = 1 }]'
    run_dir = tmp_path / "guarded"
    assert main(["run", str(small_toml), "--run-dir", str(run_dir), "--set", guard]) == 0
    out = capsys.readouterr().out
    steps = load_run(run_dir).steps
    totals = {c: int(steps[c].sum()) for c in steps.columns if c.startswith("guard_")}
    assert totals["guard_quarantine_rolled_back"] > 0  # one meme: its rows are the table
    done = ", ".join(f"{c.removeprefix('guard_')} {n}" for c, n in totals.items() if n)
    assert f"  guards (totals over the run): {done}" in out.splitlines()
    assert main(["run", str(small_toml), "--run-dir", str(tmp_path / "plain")]) == 0
    assert "guards" not in capsys.readouterr().out


def test_report_help_names_both_targets(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: memespread report [-h] [-v] RUN_DIR|SWEEP_DIR\n")
    assert "funnel.png" in out


def test_counts_in_the_summary_agree_in_number():
    assert [counted(n, "agent") for n in (0, 1, 2)] == ["0 agents", "1 agent", "2 agents"]


def test_readme_synopsis_lists_every_command_and_option():
    """README's command-line block names every subcommand with all its arguments."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## The command line", 1)[1].split("```text\n", 1)[1].split("```")[0]
    lines = {
        line.split()[1]: line.replace("--[no-]", "--").replace(" ", "")
        for line in block.splitlines()
        if line.startswith("memespread ") and not line.startswith("memespread --")
    }
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert sorted(lines) == sorted(commands)
    missing = []
    for command, sub in commands.items():
        for action in sub._actions:
            if action.dest in ("help", "verbose"):  # documented once for every command
                continue
            names = action.option_strings or [str(action.metavar).replace(" ", "")]
            if not any(name in lines[command] for name in names):
                missing.append(f"{command} {names[0]}")
    assert missing == []
    assert "`-v`/`--verbose`" in readme
