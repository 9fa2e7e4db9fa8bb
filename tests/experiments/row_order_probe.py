"""Write a contagion run, an LLM-like run, sweeps, their reports and analysis frames.

Run as a script by ``test_row_order.py``: ``python row_order_probe.py OUT_DIR``, once with
``POLARS_MAX_THREADS=1`` and once with polars' default thread count. Everything a user
gets (Parquet tables, index.parquet, report CSVs, analysis frames exported from
``sim.analysis``, the CLI's printed summaries) lands under OUT_DIR, so two runs can be
compared file by file: their rows must come in the same order.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SMALL_TOML
from scripted_server import scripted_server
from test_report_llm_sweep import TASKS, _persuaded, llm_sweep_document

from experiments.cli import main
from experiments.report import report
from experiments.sweep import expand_sweep, run_sweep
from sim import analysis
from sim.analysis.defenses import defense_frontier
from sim.analysis.effects import exposure_effects, load_actions
from sim.analysis.loading import load_run, load_sweep

_DURATION = re.compile(r" in [0-9.]+ ?(ms|s|min|h)\b|[0-9.]+ ?(ms|s)/step")


def _cli(out: Path, name: str, argv: list[str]) -> None:
    """Run the CLI and keep what it prints (durations and the temp path blanked)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    text = _DURATION.sub(" <time>", printed.getvalue()).replace(str(out), "OUT")
    (out / f"{name}.txt").write_text(f"exit {code}\n{text}")


def _analyses(run_dir: Path, out: Path) -> None:
    """Every analysis frame of one run that sim.analysis exports, as Parquet."""
    run = load_run(run_dir)
    tr, ag, mem = run.transmissions, run.agents, run.memories
    frames = {
        "run_metrics": analysis.run_metrics(run),
        "prevalence": analysis.prevalence(run.steps, run.n_agents),
        "infection_times": analysis.infection_times(tr, ag, mem),
        "secondary_infections": analysis.secondary_infections(tr, ag, mem),
        "reproduction_number": analysis.reproduction_number(tr, ag, mem, window=2, last_step=3),
        "effective_reproduction": analysis.effective_reproduction(tr, ag, mem, by_generation=True),
        "generation_intervals": analysis.generation_intervals(tr, ag, mem),
        "cascades": analysis.cascades(tr, ag, mem),
        "cascade_summary": analysis.cascade_summary(tr, ag, mem),
        "entry_drift": analysis.entry_drift(mem, tr, ag),
        "drift_by_hop": analysis.drift_by_hop(analysis.entry_drift(mem, tr, ag)),
        "compare_runs": analysis.compare_runs({"a": run, "b": run}),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.write_parquet(out / f"{name}.parquet")


def main_probe(out: Path) -> None:
    """Write everything under ``out`` (an empty directory)."""
    small = out / "small.toml"
    small.write_text(SMALL_TOML.replace("n = 60", "n = 120").replace("steps = 6", "steps = 10"))
    _cli(out, "run", ["run", str(small), "--run-dir", str(out / "contagion"), "--quiet"])
    _cli(out, "run_summary", ["run", str(small), "--run-dir", str(out / "contagion2")])
    _analyses(out / "contagion", out / "analysis" / "contagion")
    _cli(out, "report", ["report", str(out / "contagion")])

    # A defenses sweep: the frontier CSV, the summary CSV and index.parquet.
    _cli(
        out,
        "defenses",
        [
            "sweep",
            "defenses",
            "--sweep-dir",
            str(out / "defenses"),
            "--set",
            "steps=5",
            "--set",
            "sweep.replicates=2",
        ],
    )
    _cli(out, "defenses_report", ["report", str(out / "defenses")])
    defense_frontier(load_sweep(out / "defenses")).write_parquet(out / "frontier.parquet")

    # An LLM sweep answered by the scripted stand-in server: actions, contexts, effects.
    tasks = out / "tasks.json"
    tasks.write_text(json.dumps(TASKS))
    with scripted_server(_persuaded) as server:
        document = llm_sweep_document(tasks, server.url, name="llm", probe_every=2)
        result = run_sweep(expand_sweep(document), out / "llm", progress=False)
    assert not result.failed, result.failed
    report(out / "llm")
    runs = sorted((out / "llm" / "runs").glob("*/*"))
    _analyses(runs[0], out / "analysis" / "llm")
    actions = load_actions(runs)
    actions.write_parquet(out / "analysis" / "llm_actions.parquet")
    exposure_effects(actions, "influence", placebo_id="placebo", n_boot=200).write_parquet(
        out / "analysis" / "llm_effects.parquet"
    )


if __name__ == "__main__":
    pl.Config.set_tbl_rows(-1)
    main_probe(Path(sys.argv[1]))
