"""Experiments: run configs, the memespread CLI, run and sweep runners.

The Python API mirrors the command line::

    from experiments import load_config, run_experiment, resume_run, load_sweep_config
    result = run_experiment(load_config("contagion_small"))  # a shipped name, or a path
    result.steps  # a polars DataFrame; result is a sim.run.Run, as load_run(dir) gives

Heavy libraries (inference engines, matplotlib) load only when a run or report needs them.
"""

from experiments.catalog import ShippedConfig, list_configs
from experiments.config import ConfigError, RunConfig, load_config
from experiments.report import Report, report
from experiments.resume import resume_run
from experiments.runner import RunResult, run_experiment
from experiments.sweep import SweepConfig, SweepResult, load_sweep, load_sweep_config, run_sweep
from experiments.validation import Validated, validate
from sim.run import Run

__all__ = [
    "ConfigError",
    "Report",
    "Run",
    "RunConfig",
    "RunResult",
    "ShippedConfig",
    "SweepConfig",
    "SweepResult",
    "Validated",
    "list_configs",
    "load_config",
    "load_sweep",
    "load_sweep_config",
    "report",
    "resume_run",
    "run_experiment",
    "run_sweep",
    "validate",
]
