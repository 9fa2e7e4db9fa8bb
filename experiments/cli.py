"""The ``memespread`` command line: run, sweep, validate, resume, fork, report, list.

Exit codes: 0 success; 1 a run failed (or a sweep had failed runs) or an I/O error (a
read-only or full filesystem, a file where a directory should be, a name too long);
2 invalid configuration, arguments or target directory; 130 interrupted (Ctrl-C or
SIGTERM). Every error is reported in one line (``--verbose`` adds the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.metadata
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl

from agents.contagion import ContagionPolicy
from experiments.catalog import list_configs
from experiments.config import ConfigError
from experiments.messages import counted, first_line
from experiments.report import report
from experiments.request_failures import FailedRequestsError
from experiments.resume import resume_run
from experiments.rundirs import RunDirError, first_run, is_run_dir, is_sweep_dir
from experiments.runlog import LOG_FILE, LOG_FORMAT, attached
from experiments.runner import INTERRUPTED, default_run_dir, run_experiment
from experiments.sweep import SweepResult, run_sweep
from experiments.sweep_backends import SweepBackendError
from experiments.validation import Validated, validate
from sim.columns import int_max
from sim.manifest import ManifestError, read_manifest_if_any
from sim.run import Run

_SET_HELP = (
    "override a config key (repeatable), e.g. --set steps=5 --set graph.n=200 "
    "--set memes.0.placement.count=3 --set 'policy={ kind = \"llm\" }'. Values are TOML "
    '(numbers, true/false, "strings", [lists], { tables }), one per --set; an unquoted '
    "word (graph.kind=ring) is a string, other text is an error. List indices pick items "
    "(one past the end appends); missing tables are created."
)


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help=_SET_HELP,
    )  # fmt: skip


_VERBOSE_HELP = "log progress to stderr and print the traceback of an unexpected error"


def version() -> str:
    """The installed memespread version ("unknown" when run from a tree not installed)."""
    try:
        return importlib.metadata.version("memespread")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _port(text: str) -> int:
    """A TCP port given on the command line: an integer in 1..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not an integer") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port}: must be a TCP port, 1..65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``memespread`` command."""
    parser = argparse.ArgumentParser(
        prog="memespread",
        description="Simulate memetic spread through shared memory banks among many agents. "
        "Configs are TOML files (see docs/config-reference.md); a shipped config can be "
        "named without its path (see `memespread list`).",
    )
    parser.add_argument("--version", action="version", version=f"memespread {version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    # -v also after the command; SUPPRESS keeps the top-level value when it is absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run one experiment from a run config",
        description="Run one experiment and write its run directory (manifest.json and "
        "Parquet tables). The run is checkpointed every checkpoint_every steps; if it is "
        "killed, `memespread resume RUN_DIR` finishes it with identical tables.",
    )
    run.add_argument("config", metavar="CONFIG", help="run config: a TOML file or shipped name")
    _add_set(run)
    run.add_argument(
        "--run-dir", help="write the run here (default: OUTPUT_DIR/NAME from the config)"
    )
    run.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing run directory of memespread, once the new run has "
        "succeeded (a directory that is not a memespread run is never replaced)",
    )  # fmt: skip
    run.add_argument("--quiet", action="store_true", help="no progress bar, warnings or summary")

    sweep = sub.add_parser(
        "sweep",
        parents=[common],
        help="run a sweep: a grid over config keys times replicate seeds",
        description="Run every run of a sweep config that is not complete yet: complete "
        "runs are skipped, interrupted ones resumed. Writes SWEEP_DIR/runs/<axis>=<label>/"
        ".../seed=<seed>/ run directories, SWEEP_DIR/index.parquet and SWEEP_DIR/sweep.json.",
    )
    sweep.add_argument(
        "config", metavar="SWEEP_CONFIG", help="sweep config: a TOML file or shipped name"
    )
    _add_set(sweep)
    sweep.add_argument(
        "--sweep-dir", help="write the sweep here (default: sweep.output_dir/sweep.name)"
    )
    sweep.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="run N runs at once in worker processes (default 1: one at a time, in-process)",
    )  # fmt: skip
    sweep.add_argument(
        "--overwrite", action="store_true",
        help="restart runs whose directory holds a run of a different config",
    )  # fmt: skip
    sweep.add_argument(
        "--backend", choices=("local", "ray"), default="local",
        help="where runs execute: local (this machine, see --jobs) or ray (one Ray task "
        "per run; needs the ray extra and a sweep directory every node can reach)",
    )  # fmt: skip
    sweep.add_argument(
        "--address", metavar="HOST:PORT",
        help="the Ray cluster for --backend ray (default: a local Ray)",
    )  # fmt: skip
    sweep.add_argument(
        "--shared-server", action=argparse.BooleanOptionalAction, default=None,
        help="with --jobs N > 1 or a local Ray, LLM runs on llama.cpp share one managed "
        "local server instead of loading the model per worker (default: the sweep's "
        "shared_server, true)",
    )  # fmt: skip
    sweep.add_argument("--quiet", action="store_true", help="no progress bars or summary")

    check = sub.add_parser(
        "validate",
        parents=[common],
        help="check run or sweep configs without running them",
        description="Validate each config (schema and cross-field checks; sweeps are "
        "expanded and every run validated). Nothing heavy is loaded: no graph, no model. "
        "Prints every error with its key path, and warnings about likely mistakes.",
    )
    check.add_argument(
        "configs", nargs="+", metavar="CONFIG", help="run or sweep configs (files or names)"
    )
    _add_set(check)

    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="finish an interrupted run from its last checkpoint",
        description="Rebuild the run from its manifest's config, restore the latest "
        "checkpoint in RUN_DIR/checkpoints and run the remaining steps (from step 0 if there "
        "is none). The tables equal those of an uninterrupted run; LLM runs replay repeated "
        "completions from RUN_DIR/completions.jsonl. A complete run is left as it is.",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    resume.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    fork = sub.add_parser(
        "fork",
        parents=[common],
        help="continue a run from a step with an intervention, as a new run",
        description="Take RUN_DIR's state after STEP steps (its checkpoint, or the complete "
        "run re-simulated), delete entries and/or change the config with --set, and run the "
        "remaining steps into a new run directory whose manifest names its parent and step.",
    )
    fork.add_argument("run_dir_parent", metavar="RUN_DIR", help="the parent run directory")
    fork.add_argument("--at", type=int, required=True, metavar="STEP", help="steps kept")
    fork.add_argument(
        "--delete-entry", dest="delete_entries", type=int, action="append", default=[],
        metavar="ID", help="remove this memory entry at the fork (repeatable)",
    )  # fmt: skip
    fork.add_argument(
        "--with-descendants", action="store_true",
        help="also remove the deleted entries' descendants (through the parents column)",
    )  # fmt: skip
    _add_set(fork)
    fork.add_argument("--name", help="the fork's name (default: PARENT-forkSTEP)")
    fork.add_argument("--run-dir", help="write the fork here (default: beside the parent)")
    fork.add_argument(
        "--overwrite", action="store_true", help="replace an existing fork run directory"
    )
    fork.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    rep = sub.add_parser(
        "report",
        parents=[common],
        help="summarise a run or a sweep and plot it",
        description="Print a per-meme summary of a finished run and write "
        "RUN_DIR/report/: summary.csv, prevalence.png, transmissions.png, funnel.png and, "
        "for LLM runs with scored decisions, effects.csv. Given a sweep directory, "
        "summarise its complete runs across the swept parameters and write "
        "SWEEP_DIR/report/.",
    )
    rep.add_argument(
        "run_dir",
        metavar="RUN_DIR|SWEEP_DIR",
        help="a finished run directory, or a sweep directory",
    )

    dash = sub.add_parser(
        "dashboard",
        parents=[common],
        help="watch a run in the browser (needs the dashboard extra)",
        description="Serve a page (Mesa's SolaraViz) showing the network coloured by each "
        "meme's state, prevalence curves, the transmission tree and a memory inspector. "
        "Given a RUN_DIR it replays the finished run with a step slider (an interrupted or "
        "failed run up to its last checkpoint); given a CONFIG it runs it live, one step "
        "per click (nothing is written to disk).",
    )
    dash.add_argument("target", metavar="RUN_DIR|CONFIG", help="a run directory or a run config")
    dash.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    dash.add_argument("--port", type=_port, default=8765, help="port (default 8765)")

    sub.add_parser(
        "list",
        parents=[common],
        help="list the shipped configs",
        description="List the configs shipped in experiments/configs with their kind and "
        "one-line documentation; pass a NAME to run, sweep or validate.",
    )
    return parser


def _summary(result: Run) -> str:
    steps = result.steps
    last = steps.filter(steps["step"] == steps["step"].max())
    elapsed = result.manifest.get("elapsed_s")
    took = f" in {_duration(float(elapsed))}" if elapsed is not None else ""
    lines = [f"run directory: {result.run_dir} ({result.manifest['status']}{took})"]
    # Contagion agents make no choices, so nobody can express a meme: no "expressed 0".
    chooses = (result.manifest.get("policy") or {}).get("policy") != ContagionPolicy.name
    for row in last.iter_rows(named=True):
        expressed = ""
        if chooses and "expressed" in row:
            expressed = f"expressed {row['expressed']}{_chance_level(result, row['meme_id'])}, "
        lines.append(
            f"  meme {row['meme_id']}: after step {row['step']}: exposed {row['exposed']}, "
            f"carriers {row['carriers']}, {expressed}"
            f"adopters {row['adopters']} of {result.manifest['n_agents']} agents"
        )
        edges = result.transmissions.filter(result.transmissions["meme_id"] == row["meme_id"])
        if edges.height:
            infected, hops = int(edges["is_infection"].sum()), int_max(edges["hop"])
            lines.append(
                f"    {counted(edges.height, 'transmission')}, {counted(infected, 'agent')} "
                f"infected, up to {counted(hops, 'generation')} from the seed"
            )
    lines += _guard_lines(steps)
    from sim.analysis.effects import effect_lines, run_effects

    lines += effect_lines(run_effects(result.run_dir))
    lines.append(f"  plots: memespread report {result.run_dir}")
    return "\n".join(lines)


def _chance_level(result: Run, meme_id: str) -> str:
    """`` (chance level 6.4)``: the agents random choices would have made express the meme.

    The run summary's ``expressed_chance`` (:func:`sim.analysis.defenses.attack_chance`)
    times the number of agents, to read the ``expressed`` count against (a placebo is
    scored against its pair's targets); "" for a run without scored choices or a meme
    without targets.
    """
    from experiments.report import meme_targets
    from sim.analysis.defenses import attack_chance

    targets = meme_targets(result.config).get(meme_id)
    if "actions" not in result.tables or not targets:
        return ""
    n_agents = int(result.manifest["n_agents"])
    share = attack_chance(result.table("actions"), meme_id, targets, n_agents)
    return f" (chance level {share * n_agents:.1f})"


def _guard_lines(steps: pl.DataFrame) -> list[str]:
    """What the run's guards did, totalled over the run: ``guards: quarantine_rolled_back 9``.

    Guard counts are the step's, repeated on every meme's row, so one meme's rows are
    summed. No line for a run without guards; "nothing flagged" when they did nothing.
    """
    columns = [c for c in steps.columns if c.startswith("guard_")]
    if not columns or steps.is_empty():
        return []
    one = steps.filter(pl.col("meme_id") == steps["meme_id"][0])
    totals = {c.removeprefix("guard_"): int(one[c].fill_null(0).sum()) for c in columns}
    done = [f"{name} {total}" for name, total in totals.items() if total]
    return [f"  guards (totals over the run): {', '.join(done) if done else 'nothing flagged'}"]


def _duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def _warn(validated: Validated) -> None:
    for warning in validated.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _os_error(err: OSError) -> str:
    """An OSError as one line: what failed, on which path."""
    reason = err.strerror or first_line(err)
    if err.errno == errno.ENAMETOOLONG:
        reason += " (a path component is longer than the filesystem allows, 255 bytes)"
    where = f"{err.filename}" if err.filename is not None else ""
    if err.filename2 is not None:
        where += f" -> {err.filename2}"
    return f"{where}: {reason}" if where else reason


def _run_failure(err: BaseException, run_dir: Path) -> str:
    """One line about a run that failed, with where to look and how to go on."""
    if isinstance(err, FileNotFoundError):
        what = _os_error(err)
    elif isinstance(err, OSError):
        what = f"I/O error: {_os_error(err)}"
    else:
        what = first_line(err)
    manifest = read_manifest_if_any(run_dir) or {}
    if manifest.get("status") == "failed":
        log = run_dir / LOG_FILE
        return (
            f"run failed: {what} (details: {log}; after fixing the cause, "
            f"`memespread resume {run_dir}` continues from the last checkpoint with the "
            "run's stored config; if the config is the cause, fix it and run again with "
            "--overwrite)"
        )
    if is_run_dir(run_dir) and manifest.get("status") == "complete":
        return f"run failed: {what} (the previous run in {run_dir} is unchanged)"
    return what  # it failed before the run directory was set up


def _not_a_run(err: Exception, target: Path) -> str:
    """Why ``target`` is not a run directory; for a sweep directory, which run to give.

    ``resume`` and ``fork`` take one run of a sweep, and an unfinished sweep is finished
    by rerunning it, not by resuming its directory.
    """
    if not is_sweep_dir(target):
        return str(err)
    example = first_run(target) or f"{target}/runs/.../seed=N"
    return (
        f"{target} is a sweep directory, not a run; give one of its runs, e.g. {example} "
        f"(all in {target}/index.parquet); rerunning the sweep finishes an unfinished one"
    )


def _interrupted(run_dir: Path) -> str:
    manifest = read_manifest_if_any(run_dir) or {}
    if manifest.get("status") == INTERRUPTED:
        return f"interrupted; `memespread resume {run_dir}` finishes the run"
    if manifest.get("status") == "complete":
        return f"interrupted; the previous run in {run_dir} is unchanged"
    return "interrupted"


def _cmd_run(args: argparse.Namespace) -> int:
    validated = validate(args.config, args.overrides)
    if validated.kind != "run":
        _error(f"{args.config} is a sweep config; use `memespread sweep {args.config}`")
        return 2
    if not args.quiet:
        _warn(validated)
    config = validated.configs[0]
    run_dir = Path(args.run_dir) if args.run_dir is not None else default_run_dir(config)
    try:
        result = run_experiment(config, run_dir, overwrite=args.overwrite, progress=not args.quiet)
    except KeyboardInterrupt:
        _error(_interrupted(run_dir))
        return 130
    except (ConfigError, RunDirError):
        raise
    except Exception as err:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        _error(_run_failure(err, run_dir))
        return 1
    if not args.quiet:
        print(_summary(result))
    return 0


def _sweep_results(result: SweepResult, axes: Sequence[str]) -> list[str]:
    """Lines of the sweep's results: per grid point and meme, the mean final state.

    When the runs scored choices (LLM runs with tasks), each line also gives the share
    of agents that expressed the meme, mean [95 % t-interval] over seeds, and its
    chance level (:func:`experiments.report.sweep_choice_summary`, as ``memespread
    report`` gives them), and a last line says what they are.

    Args:
        result: The finished sweep.
        axes: The index columns of the swept parameters (the seed is averaged over).
    """
    import polars as pl

    complete = result.index.filter(pl.col("status") == "complete")
    frames = []
    for row in complete.iter_rows(named=True):
        run_dir = result.sweep_dir / row["run_dir"]
        manifest = read_manifest_if_any(run_dir) or {}
        try:
            steps = pl.read_parquet(run_dir / "steps.parquet")
        except Exception:  # an unreadable table: the summary skips that run
            continue
        last = steps.filter(pl.col("step") == pl.col("step").max())
        frames.append(
            last.select("meme_id", "carriers", "adopters").with_columns(
                *(pl.lit(row[a]).alias(a) for a in axes),
                pl.lit(int(manifest.get("n_agents") or 0)).alias("n_agents"),
            )
        )
    if not frames:
        return []
    table = (
        pl.concat(frames, how="diagonal_relaxed")
        .group_by([*axes, "meme_id"], maintain_order=True)
        .agg(
            pl.len().alias("runs"),
            (pl.col("adopters") / pl.col("n_agents")).mean().alias("adopters"),
            (pl.col("carriers") / pl.col("n_agents")).mean().alias("carriers"),
        )
    )
    expressed = _sweep_expressed(result, complete, axes)
    lines = ["  final shares of agents (mean over the complete runs of each point):"]
    for row in table.iter_rows(named=True):
        point = " ".join(f"{a}={row[a]}" for a in axes) or "(no grid)"
        key = (*(str(row[a]) for a in axes), str(row["meme_id"]))
        lines.append(
            f"    {point}  meme {row['meme_id']}: adopters {row['adopters']:.3f}, "
            f"carriers {row['carriers']:.3f}{expressed.get(key, '')} ({row['runs']} run(s))"
        )
    if expressed:
        lines.append(
            "    (expressed: agents whose scored choice was the meme's target, mean "
            "[95 % CI] over seeds; chance: what random choices would give)"
        )
    return lines


def _sweep_expressed(
    result: SweepResult, complete: pl.DataFrame, axes: Sequence[str]
) -> dict[tuple[str, ...], str]:
    """Per (grid point values as text, meme): ", expressed M [L, H], chance C".

    Empty when no complete run scored choices (no ``actions`` table: contagion runs).
    """
    from experiments.report import CHOICE_TABLES, sweep_choice_summary
    from sim.analysis.loading import load_sweep

    dirs = [result.sweep_dir / d for d in complete["run_dir"]]
    if not any((d / "actions.parquet").is_file() for d in dirs):
        return {}
    # Only the tables the summary needs: a run's other tables (memories, contexts,
    # prompts of an LLM run) can be large, and nothing here shows them.
    summary = sweep_choice_summary(load_sweep(result.sweep_dir).with_runs(CHOICE_TABLES))
    if summary is None:
        return {}
    shown: dict[tuple[str, ...], str] = {}
    for row in summary.iter_rows(named=True):
        mean, low, high = (row[f"expressed_share_{s}"] for s in ("mean", "low", "high"))
        if mean is None or mean != mean:  # None or NaN: no seed scored it
            continue
        bounded = low is not None and high is not None and low == low and high == high
        interval = f" [{low:.3f}, {high:.3f}]" if bounded else ""  # none from one seed
        chance = row["expressed_chance_mean"]
        chance_text = f", chance {chance:.3f}" if chance is not None and chance == chance else ""
        key = (*(str(row.get(a)) for a in axes), str(row["meme_id"]))
        shown[key] = f", expressed {mean:.3f}{interval}{chance_text}"
    return shown


def _cmd_sweep(args: argparse.Namespace) -> int:
    validated = validate(args.config, args.overrides)
    if validated.sweep is None:
        _error(f"{args.config} is a run config; use `memespread run {args.config}`")
        return 2
    if args.jobs < 1:
        _error(f"--jobs = {args.jobs}: must be >= 1")
        return 2
    if args.address is not None and args.backend != "ray":
        _error("--address is the Ray cluster's address: give it with --backend ray")
        return 2
    if not args.quiet:
        _warn(validated)
    sweep_dir = Path(args.sweep_dir) if args.sweep_dir else validated.sweep.sweep_dir
    try:
        result = run_sweep(
            validated.sweep,
            sweep_dir,
            jobs=args.jobs,
            overwrite=args.overwrite,
            progress=not args.quiet,
            backend=args.backend,
            address=args.address,
            shared_server=args.shared_server,
        )
    except SweepBackendError as err:
        _error(err)
        return 2
    except KeyboardInterrupt:
        _error(
            f"interrupted; rerun `memespread sweep {args.config}` (same options) to finish "
            f"the sweep in {sweep_dir}: complete runs are kept, interrupted ones resumed"
        )
        return 130
    for rel_dir, error in result.failed.items():
        _error(f"{rel_dir}: {error}")
    if not args.quiet:
        print(
            f"sweep directory: {result.sweep_dir}: {len(result.index)} runs; "
            f"{result.ran} run now, {result.skipped} already complete, "
            f"{len(result.failed)} failed"
        )
        print(f"  index: {result.sweep_dir / 'index.parquet'}")
        if result.servers_started:
            print(f"  shared servers: {result.servers_started} (see sweep.json)")
        for line in _sweep_results(result, [axis.column for axis in validated.sweep.axes]):
            print(line)
        print(f"  plots: memespread report {result.sweep_dir}")
    return 1 if result.failed else 0


def _cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.configs:
        try:
            validated = validate(path, args.overrides)
        except ConfigError as err:
            _error(err)
            status = 2
            continue
        print(f"{path}: {validated.describe()}")
        for warning in validated.warnings:
            print(f"  warning: {warning}")
    return status


def _cmd_resume(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    try:
        result = resume_run(run_dir, progress=not args.quiet)
    except FileNotFoundError as err:
        _error(_not_a_run(err, run_dir))
        return 2
    except KeyboardInterrupt:
        _error(_interrupted(run_dir))
        return 130
    except (ConfigError, RunDirError, ValueError) as err:
        _error(err)
        return 2
    except Exception as err:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        _error(_run_failure(err, run_dir))
        return 1
    if not args.quiet:
        print(_summary(result))
    return 0


def _cmd_fork(args: argparse.Namespace) -> int:
    from experiments.fork import fork_run

    target = Path(args.run_dir) if args.run_dir else None
    try:
        result = fork_run(
            args.run_dir_parent,
            args.at,
            delete_entries=args.delete_entries,
            with_descendants=args.with_descendants,
            overrides=args.overrides,
            name=args.name,
            fork_dir=target,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except FileNotFoundError as err:
        _error(_not_a_run(err, Path(args.run_dir_parent)))
        return 2
    except KeyboardInterrupt:
        _error("fork interrupted")
        return 130
    except (ConfigError, RunDirError, ValueError) as err:
        _error(err)
        return 2
    except Exception as err:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        # An OSError in the words of run's (path and reason, not its Python repr).
        what = f"I/O error: {_os_error(err)}" if isinstance(err, OSError) else None
        _error(f"fork failed: {what or f'{type(err).__name__}: {err}'}")
        return 1
    if not args.quiet:
        print(_summary(result))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        made = report(args.run_dir)
    except FileNotFoundError as err:
        _error(err)
        return 2
    print(made.text())
    for figure in made.figures:
        print(f"wrote {figure}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from experiments.dashboard.server import (
        DashboardAddressError,
        DashboardUnavailableError,
        serve,
    )
    from experiments.dashboard.view import NotARunError

    try:
        return serve(args.target, host=args.host, port=args.port)
    except (NotARunError, DashboardUnavailableError, DashboardAddressError) as err:
        _error(err)
        return 2


def _cmd_list(args: argparse.Namespace) -> int:
    shipped = list_configs()
    width = max((len(c.name) for c in shipped), default=4)
    for config in shipped:
        print(f"{config.name.ljust(width)}  {config.kind:<5}  {config.doc}")
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "validate": _cmd_validate,
    "resume": _cmd_resume,
    "fork": _cmd_fork,
    "report": _cmd_report,
    "dashboard": _cmd_dashboard,
    "list": _cmd_list,
}


def describe_error(err: Exception) -> tuple[int, str]:
    """The exit code and one-line message of an error that reached the top level.

    2 for invalid input (configs, arguments, a target directory the tool refuses, a
    missing file); 1 for I/O errors and failed runs; 1 with a hint to use ``--verbose``
    for anything unexpected.
    """
    if isinstance(err, ConfigError | RunDirError | ManifestError):
        return 2, str(err)
    if isinstance(err, FileNotFoundError):
        return 2, _os_error(err) if err.filename is not None else first_line(err)
    if isinstance(err, OSError):
        return 1, f"I/O error: {_os_error(err)}"
    if isinstance(err, FailedRequestsError):
        return 1, f"run failed: {err}"
    if isinstance(err, MemoryError):
        return 1, "out of memory"
    return 1, (
        f"unexpected {type(err).__name__}: {first_line(err)} "
        "(rerun with --verbose for the traceback)"
    )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the block runs (main thread only).

    A terminated run is then recorded as ``interrupted`` and can be resumed, as after
    Ctrl-C. The previous handler is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _console_filter(verbose: bool) -> Callable[[logging.LogRecord], bool]:
    """Which records go to the console: the runner's own only with ``verbose``.

    The runner logs a run's start, steps and outcome; the CLI reports the outcome itself
    (one line, and the traceback with ``--verbose``), so the runner's records with a
    traceback never go to the console and the others only with ``--verbose``.
    """

    def keep(record: logging.LogRecord) -> bool:
        if record.name != "experiments.runner":
            return True
        return verbose and record.exc_info is None

    return keep


@contextlib.contextmanager
def _console_log(verbose: bool) -> Iterator[None]:
    """Log the packages' records to stderr: warnings, or progress too with ``verbose``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT if verbose else "%(levelname)s: %(message)s"))
    handler.addFilter(_console_filter(verbose))
    level = logging.INFO if verbose else logging.WARNING
    handler.setLevel(level)
    with attached(handler, level):
        yield


def _thread_lock_for_progress_bars() -> None:
    """Give tqdm a thread lock instead of its default multiprocessing one.

    tqdm's default lock holds a POSIX semaphore, which a killed process cannot release:
    Python's resource tracker then warns about a leaked semaphore. The CLI draws bars in
    one process only (sweep workers are spawned without bars), so a thread lock suffices.
    """
    from tqdm.auto import tqdm

    tqdm.set_lock(threading.RLock())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _thread_lock_for_progress_bars()
    with _console_log(verbose), _sigterm_as_interrupt():
        try:
            return _COMMANDS[args.command](args)
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except Exception as err:
            code, message = describe_error(err)
            if verbose:
                traceback.print_exc()
            _error(message)
            return code


if __name__ == "__main__":
    raise SystemExit(main())
