"""The ``memespread`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from experiments.config import ConfigError, load_config
from experiments.runner import run_experiment


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="path to a run config (TOML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a config key, e.g. --set steps=5 --set graph.n=200 (repeatable; "
        "values are TOML: strings need quotes only if they look like numbers or booleans)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``memespread`` command."""
    parser = argparse.ArgumentParser(
        prog="memespread",
        description="Simulate memetic spread through shared memory banks among many agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one experiment from a config file")
    _add_config_args(run)
    run.add_argument("--run-dir", help="write the run here (default: OUTPUT_DIR/NAME)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    validate = sub.add_parser("validate", help="check a config without running it")
    _add_config_args(validate)
    return parser


def _summary(result) -> str:
    steps = result.steps
    last = steps.filter(steps["step"] == steps["step"].max())
    lines = [f"run directory: {result.run_dir}"]
    for row in last.iter_rows(named=True):
        lines.append(
            f"  meme {row['meme_id']}: after step {row['step']}: exposed {row['exposed']}, "
            f"carriers {row['carriers']}, adopters {row['adopters']} "
            f"of {result.manifest['n_agents']} agents"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(f"{args.config}: valid ({config.steps} steps, {len(config.memes)} meme(s))")
        return 0
    try:
        result = run_experiment(
            config, args.run_dir, overwrite=args.overwrite, progress=not args.quiet
        )
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(_summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
