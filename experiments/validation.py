"""Validating a run or sweep config file without running it (nothing heavy is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from experiments.catalog import resolve_config
from experiments.checks import config_warnings
from experiments.config import RunConfig, apply_overrides, validate_config
from experiments.sweep import SweepConfig, expand_sweep, is_sweep_document, read_sweep_document


@dataclass(frozen=True)
class Validated:
    """A valid config file.

    Attributes:
        path: The file.
        kind: "run" or "sweep".
        configs: The run config, or every run config of the sweep.
        sweep: The expanded sweep (sweeps only).
        warnings: Likely mistakes that do not stop a run (each once).
    """

    path: Path
    kind: Literal["run", "sweep"]
    configs: tuple[RunConfig, ...]
    sweep: SweepConfig | None
    warnings: tuple[str, ...]

    def describe(self) -> str:
        """One line about the config."""
        first = self.configs[0]
        if self.sweep is None:
            return (
                f"valid run config: {first.steps} steps, {len(first.memes)} meme(s), policy "
                f"{first.policy.kind}, graph {first.graph.kind}"
            )
        axes = ", ".join(f"{a.column} ({len(a.values)})" for a in self.sweep.axes) or "none"
        return (
            f"valid sweep config: {len(self.configs)} runs; axes: {axes}; "
            f"{len(self.configs) // max(1, _points(self.sweep))} seed(s) per point"
        )


def _points(sweep: SweepConfig) -> int:
    count = 1
    for axis in sweep.axes:
        count *= len(axis.values)
    return count


def validate(path: str | Path, overrides: list[str] | None = None) -> Validated:
    """Validate a run or sweep config file (or a shipped config's name).

    Covers every check a run makes before its model loads (see :mod:`experiments.checks`),
    so a config that validates does not fail on its input at ``run``.

    Raises:
        ConfigError: Listing every problem found.
    """
    path = resolve_config(path)
    data = read_sweep_document(path)
    sweep_file = is_sweep_document(data)
    apply_overrides(data, overrides)
    if sweep_file:
        sweep = expand_sweep(data, str(path), path.parent)
        configs = tuple(run.config for run in sweep.runs)
        kind: Literal["run", "sweep"] = "sweep"
    else:
        sweep = None
        configs = (validate_config(data, str(path)),)
        kind = "run"
    warnings = tuple(dict.fromkeys(w for c in configs for w in config_warnings(c)))
    return Validated(path, kind, configs, sweep, warnings)
