"""Resuming a run that was interrupted (killed, crashed or stopped) from its run directory.

The manifest holds the resolved config; the model is rebuilt from it, the latest
checkpoint under ``run_dir/checkpoints`` is restored and the remaining steps run. The
result is exactly the tables of an uninterrupted run with the same config (LLM runs
replay the completions of repeated steps from ``run_dir/completions.jsonl``, failed
requests included: they are served as failed, as the uninterrupted run saw them). A run
whose status is ``failed`` is resumed to try again: its failed requests are sent again.
With no checkpoint yet, the run restarts from step 0 in the same directory.

What is trusted: the manifest is read by :func:`experiments.manifest.read_manifest` (its
config must still match the ``config_sha256`` it was written with), and the checkpoint
must be intact (its digest) and bound to that same config hash; anything else is refused
with a one-line :class:`~experiments.config.ConfigError` (exit 2) instead of resuming
into wrong tables. Temporary files that a killed process left in the run directory
(``.NAME.*.tmp``, ``checkpoints/.tmp-*``) are removed first.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.config import ConfigError, validate_config
from experiments.manifest import ManifestError, config_sha256, read_manifest
from experiments.messages import first_line
from experiments.rundirs import writing_lock
from experiments.runner import CHECKPOINTS_DIR, TABLES, execute
from sim.checkpoint import (
    CheckpointError,
    checkpoint_step,
    latest_checkpoint,
    read_checkpoint_state,
)

if TYPE_CHECKING:
    from agents.llm.base import Engine
from sim.output import read_tables, write_json_atomic
from sim.run import Run

__all__ = ["checked_checkpoint", "clean_temporary_files", "read_manifest", "resume_run"]


def clean_temporary_files(run_dir: str | Path) -> list[Path]:
    """Remove what a killed writer leaves in a run directory; returns what was removed.

    That is the atomic writers' temporary files (``.NAME.XXXX.tmp`` directly in the run
    directory) and unfinished checkpoints (``checkpoints/.tmp-*``). Call it only when no
    process is writing the run.
    """
    run_dir = Path(run_dir)
    removed = []
    for path in sorted(run_dir.glob(".*.tmp")):
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    for path in sorted((run_dir / CHECKPOINTS_DIR).glob(".tmp-*")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def checked_checkpoint(run_dir: Path, config_hash: dict[str, str]) -> tuple[Path | None, int]:
    """The latest checkpoint and its step, checked against the run's config hash.

    Resume restores it; the dashboard replays the steps it holds. ``(None, 0)`` when the
    run has no checkpoint.

    Raises:
        ManifestError: The checkpoint is corrupt or edited (its digest), or was made with
            another config than ``config_hash`` (the message says to delete the
            checkpoints to restart the run from step 0).
    """
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS_DIR)
    if checkpoint is None:
        return None, 0
    hint = f"delete {run_dir / CHECKPOINTS_DIR} to restart the run from step 0"
    try:
        state = read_checkpoint_state(checkpoint)
        step = checkpoint_step(checkpoint)
    except CheckpointError as err:
        raise ManifestError(checkpoint, f"{str(err).split(': ', 1)[-1]}; {hint}") from None
    binding: Any = state.get("binding")
    if not isinstance(binding, dict) or binding.get("config_sha256") != config_hash.get(
        "config_sha256"
    ):
        raise ManifestError(
            checkpoint,
            "the checkpoint was made with another config than the manifest's (edited, or "
            f"another run's); {hint}",
        )
    return checkpoint, step


def resume_run(run_dir: str | Path, *, progress: bool = True, engine: Engine | None = None) -> Run:
    """Finish an interrupted run; a complete run is returned as it is.

    Args:
        run_dir: The run directory (with ``manifest.json``).
        progress: Show a progress bar over the remaining steps.
        engine: For LLM runs, a ready engine instead of the configured one (a sweep's
            shared engine; see :func:`experiments.runner.build_run_engine`).

    Returns:
        The run's tables and manifest, as :func:`experiments.runner.run_experiment`.

    Raises:
        ManifestError: Not a run directory, a corrupt or edited manifest, or a checkpoint
            that is corrupt, edited or of another config (a :class:`ConfigError`).
        ConfigError: The manifest's config no longer validates (e.g. after an upgrade).
        RunDirError: Another process is writing the run now (it holds the directory's
            write lock, :func:`experiments.rundirs.writing_lock`).
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest["status"] == "complete":
        return _complete_run(run_dir, manifest)
    with writing_lock(run_dir):
        return _resume_locked(run_dir, progress, engine)


def _complete_run(run_dir: Path, manifest: dict[str, Any]) -> Run:
    """A complete run as it is on disk.

    Raises:
        ManifestError: A table every run writes is missing, or a table is unreadable (the
            directory was damaged after the run: deleted or truncated files).
    """
    try:
        tables = read_tables(run_dir)
    except Exception as err:  # polars' errors for a truncated or foreign file
        raise ManifestError(
            run_dir, _damaged(f"a table is unreadable ({first_line(err)})")
        ) from None
    missing = [name for name in TABLES if name not in tables]
    if missing:
        files = ", ".join(f"{name}.parquet" for name in missing)
        raise ManifestError(run_dir, _damaged(f"{files} missing"))
    return Run(path=run_dir, manifest=manifest, tables=tables)


def _damaged(what: str) -> str:
    """The problem of a complete run whose directory was damaged, with what to do."""
    return (
        f"the run is complete but its directory is damaged: {what}; rerun its config "
        "with --overwrite"
    )


def _resume_locked(run_dir: Path, progress: bool, engine: Engine | None) -> Run:
    """:func:`resume_run` once this process holds the run directory's write lock."""
    # Read again: another process may have finished the run before the lock was ours.
    manifest = read_manifest(run_dir)
    config = validate_config(manifest["config"], f"{run_dir}/manifest.json")
    status = manifest["status"]
    if status == "complete":
        return _complete_run(run_dir, manifest)
    clean_temporary_files(run_dir)
    # The hash the run was started with (the manifest's config as written).
    checkpoint, start = checked_checkpoint(
        run_dir, {"config_sha256": config_sha256(manifest["config"])}
    )
    if checkpoint is not None and start > config.steps:
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
    # A run that failed is resumed to try again (its failed requests are sent again); an
    # interrupted or killed one must see what the uninterrupted run saw.
    return execute(
        config,
        run_dir,
        manifest,
        progress=progress,
        checkpoint=checkpoint,
        engine=engine,
        retry_errors=status == "failed",
    )
