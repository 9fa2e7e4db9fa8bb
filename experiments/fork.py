"""Counterfactual forks: continue a run from a step with an intervention, as a new run.

``fork_run(RUN_DIR, at=STEP, ...)`` takes the parent run's state after ``STEP`` steps,
applies the intervention — entries deleted (``delete_entries``, optionally with their
descendants in the provenance DAG) and any ``--set`` change of the config (e.g.
``guards=[...]``, ``policy.beta=0.05``) — and runs the remaining steps into a new run
directory whose manifest records ``"parent": {"run_dir", "step", "deleted_entries",
"with_descendants", "overrides"}``. The fork's tables start with the parent's first
``STEP`` steps, so parent and fork curves can be compared directly
(:func:`sim.analysis.forks.fork_comparison`).

The parent's state at ``STEP`` comes from its checkpoint ``checkpoints/step-STEP`` when
there is one; a *complete* parent is otherwise re-simulated to ``STEP`` from its
manifest's config (LLM runs are served every completion from the parent's
``completions.jsonl``, and guards and judges with an engine of their own from the
parent's ``completions-<key>.jsonl``, so nothing is generated), and the re-simulated
steps are checked against the parent's ``steps`` table. The fork's run directory starts
with a copy of every replay cache of the parent (:func:`experiments.replay_files.replay_files`),
so a fork replays what it shares with its parent. A parent checkpoint of an older format
(``memespread-checkpoint/3``, before the ``personas`` table) is first restored into a
model of the parent's own config and saved again, so what the format lacked is rebuilt
as the parent assigned it (its personas rows), not as the fork's changed config would.

A fork of an LLM run into another policy (``--set 'policy={kind = "contagion", ...}'``)
keeps the parent's ``personas`` rows of the steps before ``STEP`` only: its agents no
longer speak as personas from the fork on, and its manifest says so with
``"parent": {..., "personas_until_step": STEP}``.

Nothing is written before every check passed: a step out of range, a parent that is
neither complete nor checkpointed at ``STEP``, an entry that does not exist, a config
change the parent's state cannot take (other agents or memes), and a target directory
that holds something else are each a clear error with nothing changed on disk.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from experiments.config import ConfigError, apply_overrides, validate_config
from experiments.manifest import ManifestError, config_binding, read_manifest
from experiments.messages import first_line
from experiments.replay_files import RunReplays, replay_files
from experiments.rundirs import (
    locked_run_dir,
    plan_target,
)
from experiments.runner import (
    CHECKPOINTS_DIR,
    COMPLETIONS_FILE,
    build_model,
    build_policy,
    execute,
    new_manifest,
)
from sim.checkpoint import FORMAT, load_checkpoint, read_checkpoint_state, save_checkpoint
from sim.output import write_json_atomic
from sim.run import Run

__all__ = ["fork_run"]


def _parent_checkpoint(parent: Path, at: int) -> Path | None:
    path = parent / CHECKPOINTS_DIR / f"step-{at:06d}"
    return path if path.is_dir() else None


def _replay_policy(config: Any, parent: Path) -> Any:
    """The parent's policy; an LLM policy is served from the parent's completions only."""
    from agents.llm_policy import LLMPolicySpec

    if not isinstance(config.policy, LLMPolicySpec):
        return build_policy(config)
    from agents.llm.replay import ReplayEngine

    cache = parent / COMPLETIONS_FILE
    if not cache.is_file():
        raise ConfigError(
            str(parent), [f"{cache}: missing; an LLM run is re-simulated from its completions"]
        )
    return build_policy(config, ReplayEngine(None, cache, "replay"))


def _drop_wall(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in frame.columns if c.endswith("_wall_s")])


def _state_at(parent: Path, manifest: dict[str, Any], config: Any, at: int, root: Path) -> Path:
    """A checkpoint of the parent's state after ``at`` steps, under ``root``."""
    checkpoint = _parent_checkpoint(parent, at)
    if checkpoint is not None:
        return checkpoint
    if manifest.get("status") != "complete":
        have = sorted(p.name for p in (parent / CHECKPOINTS_DIR).glob("step-*"))
        raise ValueError(
            f"--at {at}: {parent} has no checkpoint at step {at} (checkpoints: "
            f"{have or 'none'}) and is not complete (status {manifest.get('status')!r}), "
            "so its state at that step cannot be rebuilt; fork a complete run, or a "
            "checkpointed step"
        )
    steps = _parent_steps(parent, at)  # before re-simulating: a damaged table fails fast
    policy = _replay_policy(config, parent)
    model = build_model(config, policy, RunReplays(parent, "replay"))
    try:
        for _ in range(at):
            model.step()
        if at and not _drop_wall(model.steps_frame()).equals(_drop_wall(steps)):
            raise ConfigError(
                str(parent),
                [f"--at {at}: re-simulating the parent did not reproduce its steps table"],
            )
        return save_checkpoint(model, root / "parent", binding=config_binding(config))
    finally:
        model.close()


def _parent_steps(parent: Path, at: int) -> pl.DataFrame:
    """The complete parent's ``steps`` rows before step ``at``, which re-simulating it must give.

    Raises:
        ManifestError: ``steps.parquet`` is missing or not readable as Parquet (the parent's
            directory was damaged after the run, e.g. a truncated file).
    """
    path = parent / "steps.parquet"
    try:
        return pl.read_parquet(path).filter(pl.col("step") < at)
    except Exception as err:  # polars' errors for a missing, truncated or foreign file
        raise ManifestError(
            path,
            f"unreadable ({first_line(err)}); the parent run is complete but its directory is "
            "damaged: rerun its config with --overwrite, then fork it",
        ) from None


def _current_format(checkpoint: Path, config: Any, root: Path) -> Path:
    """The parent's checkpoint in the format written now, under ``root`` if it had another.

    An older checkpoint is restored into a model of the parent's config, which rebuilds
    what its format lacked as the parent had it (:func:`sim.checkpoint.load_checkpoint`),
    and saved again; the fork's changed config never fills it in.
    """
    if read_checkpoint_state(checkpoint)["format"] == FORMAT:
        return checkpoint
    model = build_model(config, build_policy(config))
    try:
        load_checkpoint(model, checkpoint)
        return save_checkpoint(model, root / "parent", binding=config_binding(config))
    finally:
        model.close()


def _is_llm(config: Any) -> bool:
    from agents.llm_policy import LLMPolicySpec

    return isinstance(config.policy, LLMPolicySpec)


def fork_run(
    run_dir: str | Path,
    at: int,
    *,
    delete_entries: Sequence[int] = (),
    with_descendants: bool = False,
    overrides: Sequence[str] | None = None,
    name: str | None = None,
    fork_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Run:
    """Fork a run at step ``at`` with an intervention (see the module docstring).

    Args:
        run_dir: The parent run directory.
        at: Steps of the parent kept (the fork runs steps ``at`` .. ``steps - 1``).
        delete_entries: Entry ids removed from the banks at the fork (``memories`` keeps
            them with ``removed_step = at``).
        with_descendants: Remove the deleted entries' descendants too.
        overrides: ``KEY.PATH=VALUE`` changes of the parent's config.
        name: The fork's name (default ``<parent name>-fork<at>``).
        fork_dir: The fork's run directory (default: beside the parent, named ``name``).
        overwrite: Replace an existing run directory of this tool (after success).
        progress: Show a progress bar.

    Raises:
        ManifestError: The parent is not a readable run directory.
        ConfigError: A config change that does not validate or does not fit the
            parent's state.
        ValueError: A step out of range, no state at that step, or an entry to delete
            that does not exist.
        RunDirError: ``fork_dir`` holds a run and not ``overwrite``, or something else.
    """
    parent = Path(run_dir)
    manifest = read_manifest(parent)
    config = validate_config(manifest["config"], f"{parent}/manifest.json")
    if not 0 <= at < config.steps:
        # An argument, not the config: one line, not a "invalid config" list.
        raise ValueError(
            f"--at {at}: must be in 0..{config.steps - 1} ({parent} has {config.steps} steps)"
        )
    data = copy.deepcopy(manifest["config"])
    apply_overrides(data, list(overrides or []))
    data["name"] = name if name is not None else f"{config.name}-fork{at}"
    child = validate_config(data, "fork --set")
    # Beside the parent: its parent folder taken from the absolute path, as "." (a fork
    # run from inside the parent) has itself as parent and would nest the fork in it.
    beside = Path(os.path.abspath(parent)).parent
    target = Path(fork_dir) if fork_dir is not None else beside / child.name
    if target.resolve() == parent.resolve():
        raise ConfigError(str(parent), ["the fork's directory must differ from the parent's"])
    # A fork's directory comes from --name or --run-dir, not the config's output_dir.
    plan = plan_target(target, overwrite=overwrite, kind="run", elsewhere="--name or --run-dir")
    with tempfile.TemporaryDirectory(prefix="memespread-fork-") as tmp:
        root = Path(tmp)
        state = _current_format(_state_at(parent, manifest, config, at, root), config, root)
        model = build_model(child, build_policy(child))
        try:
            try:
                load_checkpoint(model, state)
            except (ValueError, KeyError) as err:
                raise ConfigError(
                    "fork --set",
                    [f"the parent's state at step {at} does not fit the changed config: {err}"],
                ) from None
            deleted = []
            if delete_entries:
                deleted = model.guard_phases.rollback(
                    model.store,
                    list(delete_entries),
                    at,
                    reason="fork: deleted",
                    with_descendants=with_descendants,
                ).tolist()
            start = save_checkpoint(model, root / "child", binding=config_binding(child))
        finally:
            model.close()
        fresh = new_manifest(child)
        fresh["parent"] = {
            "run_dir": str(parent.resolve()),
            "name": config.name,
            "step": at,
            "deleted_entries": sorted(int(i) for i in delete_entries),
            "removed_entries": deleted,
            "with_descendants": with_descendants,
            "overrides": list(overrides or []),
        }
        if _is_llm(config) and not _is_llm(child):
            # The parent's personas rows hold until the fork; nobody speaks after it.
            fresh["parent"]["personas_until_step"] = at
        # The fork holds its directory's write lock like a run does, so a `resume` of the
        # fork (its manifest says "running") is refused while it is being written.
        with locked_run_dir(target, plan) as work:
            for cache in replay_files(parent):
                shutil.copyfile(cache, work / cache.name)
            checkpoint = work / CHECKPOINTS_DIR / start.name
            shutil.copytree(start, checkpoint)
            fresh["steps_completed"] = at
            fresh["checkpoint"] = f"{CHECKPOINTS_DIR}/{start.name}"
            write_json_atomic(fresh, work / "manifest.json")
            result = execute(child, work, fresh, progress=progress, checkpoint=checkpoint)
    return dataclasses.replace(result, path=target)
