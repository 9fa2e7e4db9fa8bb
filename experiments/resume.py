"""Resuming a run that was interrupted (killed, crashed or stopped) from its run directory.

The manifest holds the resolved config; the model is rebuilt from it, the latest
checkpoint under ``run_dir/checkpoints`` is restored and the remaining steps run. The
result is exactly the tables of an uninterrupted run with the same config (LLM runs
replay the completions of repeated steps from ``run_dir/completions.jsonl``). With no
checkpoint yet, the run restarts from step 0 in the same directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.config import ConfigError, validate_config
from experiments.runner import CHECKPOINTS_DIR, RunResult, execute
from sim.checkpoint import latest_checkpoint
from sim.output import read_tables, write_json_atomic


def read_manifest(run_dir: str | Path) -> dict:
    """The manifest of a run directory.

    Raises:
        FileNotFoundError: ``run_dir/manifest.json`` does not exist.
        ValueError: The manifest is not valid JSON.
    """
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no manifest.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def resume_run(run_dir: str | Path, *, progress: bool = True) -> RunResult:
    """Finish an interrupted run; a complete run is returned as it is.

    Args:
        run_dir: The run directory (with ``manifest.json``).
        progress: Show a progress bar over the remaining steps.

    Returns:
        The run's tables and manifest, as :func:`experiments.runner.run_experiment`.

    Raises:
        FileNotFoundError: Not a run directory.
        ConfigError: The manifest's config no longer validates (e.g. after an upgrade).
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    config = validate_config(manifest.get("config"), f"{run_dir}/manifest.json")
    if manifest.get("status") == "complete":
        return RunResult(
            run_dir=run_dir, config=config, tables=read_tables(run_dir), manifest=manifest
        )
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS_DIR)
    start = 0 if checkpoint is None else int(checkpoint.name.split("-", 1)[1])
    if start > config.steps:
        raise ConfigError(
            f"{run_dir}/manifest.json",
            [f"steps = {config.steps}: the checkpoint {checkpoint.name} is further on"],
        )
    manifest.setdefault("resumes", []).append(
        {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": start}
    )
    manifest["steps_completed"] = start
    manifest["checkpoint"] = None if checkpoint is None else f"{CHECKPOINTS_DIR}/{checkpoint.name}"
    manifest.pop("finished_at", None)
    write_json_atomic(manifest, run_dir / "manifest.json")
    return execute(config, run_dir, manifest, progress=progress, checkpoint=checkpoint)
