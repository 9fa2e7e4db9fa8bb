"""Reading run directories and sweep directories into polars.

A run directory holds ``manifest.json`` and one Parquet file per table (see
:mod:`experiments.runner`); :func:`load_run` reads one into the one run object,
:class:`sim.run.Run` (both defined in :mod:`sim.run`, re-exported here). A sweep
directory holds run directories in a hive-style layout,
``runs/<key>=<label>/.../seed=<s>/``, and optionally ``index.parquet`` (one row per run:
``run_dir``, ``seed``, the swept parameters, ``status``). When the index is missing, it is
rebuilt from the directory names and the manifests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from sim.manifest import ManifestError, read_manifest
from sim.run import REQUIRED_TABLES, Run, RunTables, TableNotReadError, load_run
from sim.tables import table_names

__all__ = [
    "REQUIRED_TABLES",
    "Run",
    "Sweep",
    "TableNotReadError",
    "find_run_dirs",
    "hive_params",
    "load_run",
    "load_sweep",
]


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

    A sweep reads its runs from disk each time :meth:`iter_runs` goes over them, one at
    a time (so a large sweep never sits in memory). :meth:`with_runs` reads the complete
    runs once and keeps them: every analysis given that sweep (metrics, curves, effects,
    the defense frontier) then works on the same runs in memory, as ``memespread
    report`` does, instead of reading every run again.

    Attributes:
        path: The sweep directory.
        index: One row per run: ``run_dir`` (absolute path string), ``seed``, one column
            per swept parameter, ``status``.
        params: The swept parameter names (hive keys other than ``seed``), in path order.
        runs: The complete runs, read by :meth:`with_runs`, in the order of
            :meth:`complete`'s rows; None when they are read on demand.
    """

    path: Path
    index: pl.DataFrame = field(repr=False)
    params: tuple[str, ...]
    runs: tuple[Run, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.runs is None:
            return
        expected = [Path(d) for d in self.complete()["run_dir"].to_list()]
        held = [run.path for run in self.runs]
        if held != expected:
            raise ValueError(
                f"runs: {len(held)} run(s) held, but the index lists {len(expected)} "
                "complete run(s) (the runs must be the complete ones, in index order)"
            )

    def complete(self) -> pl.DataFrame:
        """Index rows of the runs whose status is ``"complete"``."""
        return self.index.filter(pl.col("status") == "complete")

    def with_runs(
        self,
        tables: Sequence[str] | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
    ) -> Sweep:
        """This sweep with its complete runs read from disk now, once, and kept in memory.

        Args:
            tables: Read only these tables of each run (``load_run(..., tables=...)``),
                for an analysis that needs no other (e.g. ``("steps", "actions")`` for
                :func:`experiments.report.sweep_choice_summary`); asking a held run for
                another raises :class:`~sim.run.TableNotReadError`. None: every table.
                A sweep that holds its runs already is returned as it is, when they
                were read with these tables (or more).
            columns: For some of ``tables``, only these of their columns (see
                :func:`load_run`).

        Raises:
            FileNotFoundError: A complete run's directory lacks a required table (see
                :func:`load_run`).
            ValueError: The sweep holds runs read without some of ``tables`` or
                ``columns`` (or, with ``tables`` None, without every table), or
                ``tables`` names a table no run writes.
            sim.manifest.ManifestError: A run's manifest is unreadable.
        """
        if self.runs is not None:
            wanted = table_names() if tables is None else tables
            for run in self.runs:
                held = run.tables
                if isinstance(held, RunTables) and not held.covers(wanted, columns):
                    raise ValueError(
                        f"tables: the sweep holds runs read with only the tables "
                        f"{sorted(held.read or wanted)} (columns {held.columns}), not "
                        f"{sorted(wanted)} (columns {dict(columns or {})}); load the sweep "
                        "again (load_sweep) to read them"
                    )
            return self
        dirs = self.complete()["run_dir"].to_list()
        return replace(self, runs=tuple(load_run(run_dir, tables, columns) for run_dir in dirs))

    def iter_runs(self, *, complete_only: bool = True) -> Iterator[tuple[dict[str, Any], Run]]:
        """Yield ``(index row, loaded run)`` for each run (complete ones by default).

        The runs :meth:`with_runs` holds when it read them (complete ones), else each
        read from its directory as it is reached.
        """
        rows = self.complete() if complete_only else self.index
        if complete_only and self.runs is not None:
            yield from zip(rows.iter_rows(named=True), self.runs, strict=True)
            return
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
