"""The ``memespread`` command line: run, sweep, validate, resume, report, list.

Exit codes: 0 success; 1 a run failed (or a sweep had failed runs); 2 invalid
configuration or arguments; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from experiments.catalog import list_configs
from experiments.config import ConfigError
from experiments.report import report
from experiments.resume import resume_run
from experiments.runner import RunResult, run_experiment
from experiments.sweep import run_sweep
from experiments.validation import Validated, validate

_SET_HELP = (
    "override a config key (repeatable), e.g. --set steps=5 --set graph.n=200 "
    "--set memes.0.placement.count=3 --set 'policy={ kind = \"llm\" }'. Values are TOML "
    '(numbers, true/false, "strings", [lists], { tables }); other text is taken as a '
    "string. List indices pick items (one past the end appends); missing tables are created."
)


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help=_SET_HELP,
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``memespread`` command."""
    parser = argparse.ArgumentParser(
        prog="memespread",
        description="Simulate memetic spread through shared memory banks among many agents. "
        "Configs are TOML files (see docs/config-reference.md); a shipped config can be "
        "named without its path (see `memespread list`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
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
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no progress bar, warnings or summary")

    sweep = sub.add_parser(
        "sweep",
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
    sweep.add_argument("--quiet", action="store_true", help="no progress bars or summary")

    check = sub.add_parser(
        "validate",
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
        help="finish an interrupted run from its last checkpoint",
        description="Rebuild the run from its manifest's config, restore the latest "
        "checkpoint in RUN_DIR/checkpoints and run the remaining steps (from step 0 if there "
        "is none). The tables equal those of an uninterrupted run; LLM runs replay repeated "
        "completions from RUN_DIR/completions.jsonl. A complete run is left as it is.",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    resume.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    rep = sub.add_parser(
        "report",
        help="summarise a run and plot its spread",
        description="Print a per-meme summary of a finished run and write "
        "RUN_DIR/report/summary.csv, prevalence.png and transmissions.png.",
    )
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")

    sub.add_parser(
        "list",
        help="list the shipped configs",
        description="List the configs shipped in experiments/configs with their kind and "
        "one-line documentation; pass a NAME to run, sweep or validate.",
    )
    return parser


def _summary(result: RunResult) -> str:
    steps = result.steps
    last = steps.filter(steps["step"] == steps["step"].max())
    lines = [f"run directory: {result.run_dir} ({result.manifest['status']})"]
    for row in last.iter_rows(named=True):
        lines.append(
            f"  meme {row['meme_id']}: after step {row['step']}: exposed {row['exposed']}, "
            f"carriers {row['carriers']}, adopters {row['adopters']} "
            f"of {result.manifest['n_agents']} agents"
        )
    lines.append(f"  plots: memespread report {result.run_dir}")
    return "\n".join(lines)


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def _warn(validated: Validated) -> None:
    for warning in validated.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    validated = validate(args.config, args.overrides)
    if validated.kind != "run":
        _error(f"{args.config} is a sweep config; use `memespread sweep {args.config}`")
        return 2
    if not args.quiet:
        _warn(validated)
    config = validated.configs[0]
    try:
        result = run_experiment(
            config, args.run_dir, overwrite=args.overwrite, progress=not args.quiet
        )
    except FileExistsError as err:
        _error(err)
        return 2
    if not args.quiet:
        print(_summary(result))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    validated = validate(args.config, args.overrides)
    if validated.sweep is None:
        _error(f"{args.config} is a run config; use `memespread run {args.config}`")
        return 2
    if args.jobs < 1:
        _error(f"--jobs = {args.jobs}: must be >= 1")
        return 2
    if not args.quiet:
        _warn(validated)
    result = run_sweep(
        validated.sweep,
        args.sweep_dir,
        jobs=args.jobs,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    for rel_dir, error in result.failed.items():
        _error(f"{rel_dir}: {error}")
    if not args.quiet:
        print(
            f"sweep directory: {result.sweep_dir}: {len(result.index)} runs; "
            f"{result.ran} run now, {result.skipped} already complete, "
            f"{len(result.failed)} failed"
        )
        print(f"  index: {result.sweep_dir / 'index.parquet'}")
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
    try:
        result = resume_run(args.run_dir, progress=not args.quiet)
    except FileNotFoundError as err:
        _error(err)
        return 2
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
    "report": _cmd_report,
    "list": _cmd_list,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as err:
        _error(err)
        return 2
    except KeyboardInterrupt:
        _error("interrupted; finish a run with `memespread resume RUN_DIR` (a sweep: rerun it)")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
