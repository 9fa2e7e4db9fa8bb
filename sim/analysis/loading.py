"""Reading run directories and sweep directories into polars.

A run directory holds ``manifest.json`` and one Parquet file per table (see
:mod:`experiments.runner`). A sweep directory holds run directories in a hive-style layout,
``runs/<key>=<label>/.../seed=<s>/``, and optionally ``index.parquet`` (one row per run:
``run_dir``, ``seed``, the swept parameters, ``status``). When the index is missing, it is
rebuilt from the directory names and the manifests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sim.columns import int_max
from sim.manifest import ManifestError, read_manifest
from sim.output import read_tables

#: Tables every run directory holds.
REQUIRED_TABLES = ("steps", "agents", "memories", "transmissions")


@dataclass(frozen=True)
class Run:
    """One run directory, loaded.

    Attributes:
        path: The run directory.
        manifest: The parsed ``manifest.json``.
        tables: Every Parquet table of the directory, by name.
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)
    tables: dict[str, pl.DataFrame] = field(repr=False)

    def table(self, name: str) -> pl.DataFrame:
        """The table ``name``.

        Raises:
            KeyError: The run directory has no such table (the message lists those it has).
        """
        if name not in self.tables:
            raise KeyError(
                f"table {name!r}: not in run directory {self.path}; it has {sorted(self.tables)}"
            )
        return self.tables[name]

    @property
    def steps(self) -> pl.DataFrame:
        """The ``steps`` table (one row per step and meme)."""
        return self.table("steps")

    @property
    def agents(self) -> pl.DataFrame:
        """The ``agents`` table (state-change events)."""
        return self.table("agents")

    @property
    def memories(self) -> pl.DataFrame:
        """The ``memories`` table (every entry with provenance)."""
        return self.table("memories")

    @property
    def transmissions(self) -> pl.DataFrame:
        """The ``transmissions`` table (one row per transmission edge)."""
        return self.table("transmissions")

    @property
    def graph(self) -> pl.DataFrame:
        """The graph as an edge table (source, target)."""
        return self.table("graph")

    @property
    def bank_members(self) -> pl.DataFrame:
        """One row per (bank, agent) with read/write rights."""
        return self.table("bank_members")

    @property
    def name(self) -> str:
        """The run's name (from the manifest, else the directory name)."""
        return str(self.manifest.get("name", self.path.name))

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config as stored in the manifest."""
        return dict(self.manifest.get("config", {}))

    @property
    def n_agents(self) -> int:
        """Number of agents (manifest ``n_agents``, else the bank membership table)."""
        if "n_agents" in self.manifest:
            return int(self.manifest["n_agents"])
        return int_max(self.bank_members["agent_id"]) + 1

    @property
    def meme_ids(self) -> list[str]:
        """Meme ids in config order."""
        memes = self.config.get("memes")
        if memes:
            return [str(m["id"]) for m in memes]
        return self.steps["meme_id"].unique(maintain_order=True).to_list()

    @property
    def policy(self) -> dict[str, Any]:
        """The policy description (manifest ``policy``, else the config's policy section)."""
        return dict(self.manifest.get("policy") or self.config.get("policy", {}))

    @property
    def policy_kind(self) -> str:
        """``"contagion"``, ``"llm"``, ... as described by the policy."""
        policy = self.policy
        return str(policy.get("kind", policy.get("policy", "unknown")))

    def param(self, key: str, default: Any = None) -> Any:
        """A config value by dotted path, e.g. ``"policy.beta"`` or ``"graph.kind"``.

        Integer parts index lists (``"memes.0.id"``). Returns ``default`` when absent.
        """
        node: Any = self.config
        for part in key.split("."):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return default
        return node

    def seed_texts(self) -> dict[str, str]:
        """The text of each meme's seed entries, by meme id (statement plus canary)."""
        from sim.memes import MemeSpec

        return {m["id"]: MemeSpec.model_validate(m).seed_text for m in self.config.get("memes", [])}


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory.

    Args:
        run_dir: A directory holding ``manifest.json`` and the run's Parquet tables.

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory, or lacks the manifest or one of
            :data:`REQUIRED_TABLES` (the message names what is missing).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run_dir = {str(path)!r}: not a directory")
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"run_dir = {str(path)!r}: no manifest.json; not a run directory")
    manifest = read_manifest(path)
    tables = read_tables(path)
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise FileNotFoundError(
            f"run_dir = {str(path)!r}: missing table(s) {missing} (is the run complete? "
            f"status {manifest.get('status')!r})"
        )
    return Run(path=path, manifest=manifest, tables=tables)


def hive_params(run_dir: str | Path, root: str | Path) -> dict[str, str]:
    """The ``key=label`` parts of ``run_dir`` below ``root``, in path order.

    Example: ``root/runs/graph=ring/beta=0.1/seed=3`` gives
    ``{"graph": "ring", "beta": "0.1", "seed": "3"}``.
    """
    relative = Path(run_dir).resolve().relative_to(Path(root).resolve())
    parts = [p.split("=", 1) for p in relative.parts if "=" in p]
    return {key: value for key, value in parts}


def _parse_label(values: list[str]) -> pl.Series:
    """Labels as numbers when every one parses as an int (else float, else strings)."""
    for dtype, cast in ((pl.Int64, int), (pl.Float64, float)):
        try:
            return pl.Series([cast(v) for v in values], dtype=dtype)
        except ValueError:
            continue
    return pl.Series(values, dtype=pl.String)


@dataclass(frozen=True)
class Sweep:
    """A sweep directory: one run directory per (parameter combination, seed).

    Attributes:
        path: The sweep directory.
        index: One row per run: ``run_dir`` (absolute path string), ``seed``, one column
            per swept parameter, ``status``.
        params: The swept parameter names (hive keys other than ``seed``), in path order.
    """

    path: Path
    index: pl.DataFrame = field(repr=False)
    params: tuple[str, ...]

    def complete(self) -> pl.DataFrame:
        """Index rows of the runs whose status is ``"complete"``."""
        return self.index.filter(pl.col("status") == "complete")

    def iter_runs(self, *, complete_only: bool = True) -> Iterator[tuple[dict[str, Any], Run]]:
        """Yield ``(index row, loaded run)`` for each run (complete ones by default)."""
        rows = self.complete() if complete_only else self.index
        for row in rows.iter_rows(named=True):
            yield row, load_run(row["run_dir"])


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory below ``root`` holding a ``manifest.json``, sorted."""
    return sorted(p.parent for p in Path(root).rglob("manifest.json"))


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read a sweep directory's index (or rebuild it from the hive-style run directories).

    The index's ``run_dir`` values are resolved against the sweep directory when relative.
    Parameter labels become integers or floats when all of them parse as such.

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a directory or holds no run directory.
    """
    path = Path(sweep_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"sweep_dir = {str(path)!r}: not a directory")
    runs_root = path / "runs" if (path / "runs").is_dir() else path
    index_path = path / "index.parquet"
    if index_path.is_file():
        index = pl.read_parquet(index_path)
        if "run_dir" not in index.columns:
            raise ValueError(
                f"{index_path}: column 'run_dir' missing; has {index.columns} (expected "
                "run_dir, seed, the swept parameters, status)"
            )
        resolved = [
            str(p if Path(p).is_absolute() else (path / p))
            for p in index["run_dir"].cast(pl.String).to_list()
        ]
        index = index.with_columns(pl.Series("run_dir", resolved))
        dirs = [Path(p) for p in resolved]
    else:
        dirs = find_run_dirs(runs_root)
        index = pl.DataFrame({"run_dir": [str(d) for d in dirs]}, schema={"run_dir": pl.String})
    if not dirs:
        raise FileNotFoundError(f"sweep_dir = {str(path)!r}: holds no run directory")
    hive = [hive_params(d, runs_root) if _below(d, runs_root) else {} for d in dirs]
    keys: list[str] = []
    for parts in hive:
        keys.extend(k for k in parts if k not in keys)
    for key in keys:
        if key not in index.columns:
            index = index.with_columns(_parse_label([h.get(key, "") for h in hive]).alias(key))
    if "status" not in index.columns:
        statuses = []
        for d in dirs:
            try:
                status = read_manifest(d).get("status")
            except ManifestError as err:
                status = "missing" if isinstance(err, FileNotFoundError) else "unreadable"
            statuses.append(status or "missing")
        index = index.with_columns(pl.Series("status", statuses, dtype=pl.String))
    params = tuple(k for k in keys if k != "seed")
    return Sweep(path=path, index=index, params=params)


def _below(child: Path, root: Path) -> bool:
    try:
        child.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
