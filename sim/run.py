"""One run, in memory: its directory, its manifest and its tables.

The one run object of the packages. :func:`experiments.run_experiment` (and
``resume_run``, ``fork_run``) return it with the tables the run just wrote;
:func:`load_run` reads it back from a run directory (the notebooks' entry point,
re-exported by :mod:`sim.analysis`). Both give the same object: ``run.config`` is the
resolved config as stored in ``manifest.json`` (JSON values: ``run.param("policy.beta")``
reads one; ``experiments.config.validate_config(run.config)`` gives the typed
``RunConfig``).

A run read with only some tables (``load_run(run_dir, tables=...)``) knows which it read
(:class:`RunTables`): a table it read and the run has is there; one it read that the run
never wrote (e.g. ``turnover`` of a run without turnover) is absent, as for a run read
whole; asking for one it did not read raises :class:`TableNotReadError` instead of
answering "absent", so an analysis given such a run cannot silently skip a table the
run has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sim.columns import int_max
from sim.manifest import read_manifest
from sim.output import read_tables
from sim.tables import table_names

#: Tables every run directory holds.
REQUIRED_TABLES = ("steps", "agents", "memories", "transmissions")


class TableNotReadError(LookupError):
    """A table asked of a run that was read without it (``load_run(..., tables=...)``).

    Not a :class:`KeyError`: ``run.tables.get(name)`` and ``name in run.tables`` raise
    it rather than answer "the run has no such table", which they could not know.
    """


class RunTables(Mapping[str, pl.DataFrame]):
    """A run's tables by name, and which table names were read from its directory.

    With ``read`` None every table of the run is here (a run read whole, or the tables a
    run just wrote): a name that is not here is a table the run does not have. With
    ``read`` a set of names, only those were read: a name among them that is not here
    is a table the run does not have (``get`` gives None, ``in`` False), and any other
    name raises :class:`TableNotReadError` on ``[]``, ``get`` and ``in``. Iteration and
    ``len`` cover the tables held. A table named in ``columns`` holds only those
    columns (selecting another raises polars' ``ColumnNotFoundError``).
    """

    def __init__(
        self,
        frames: Mapping[str, pl.DataFrame],
        read: Iterable[str] | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._frames = dict(frames)
        self._read = None if read is None else frozenset(read)
        self._columns = {name: tuple(cols) for name, cols in (columns or {}).items()}
        if self._read is not None and not set(self._frames) <= self._read:
            extra = sorted(set(self._frames) - self._read)
            raise ValueError(f"frames: tables {extra} are not among those read")

    @property
    def read(self) -> frozenset[str] | None:
        """The table names that were read (None: every table of the run)."""
        return self._read

    @property
    def columns(self) -> dict[str, tuple[str, ...]]:
        """The tables read with only some columns: those columns, by table name."""
        return dict(self._columns)

    def covers(
        self, names: Iterable[str], columns: Mapping[str, Sequence[str]] | None = None
    ) -> bool:
        """Whether these tables were read, each with the columns asked for.

        Args:
            names: Table names: each must have been read (held, or known to be absent).
            columns: For some of ``names``, the columns needed; a table not in it needs
                every column (it must not have been read with only some).
        """
        wanted = set(names)
        if self._read is not None and not wanted <= self._read:
            return False
        needed = columns or {}
        for name, held in self._columns.items():
            if name in wanted and not (name in needed and set(needed[name]) <= set(held)):
                return False
        return True

    def _check(self, name: str) -> None:
        if self._read is not None and name not in self._read:
            raise TableNotReadError(
                f"table {name!r} was not read (the run was read with only the tables "
                f"{sorted(self._read)}); read it too (load_run(..., tables=...), "
                "Sweep.with_runs(tables=...)) or read the run whole"
            )

    def __getitem__(self, name: str) -> pl.DataFrame:
        self._check(name)
        return self._frames[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._check(name)
        return name in self._frames

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


@dataclass(frozen=True)
class Run:
    """One run: what a run, resume or fork returned, or what :func:`load_run` read.

    Attributes:
        path: The run directory.
        manifest: The manifest (as written, or as read by the checked reader).
        tables: Every table of the run (its Parquet files), by name; or, read by
            ``load_run(..., tables=...)``, those of the tables asked for that it has, in
            a :class:`RunTables` that raises :class:`TableNotReadError` for a table not
            asked for (a plain mapping: every table of the run).
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)
    tables: Mapping[str, pl.DataFrame] = field(repr=False)

    @property
    def run_dir(self) -> Path:
        """The run directory (the same as :attr:`path`; the name run results had)."""
        return self.path

    def table(self, name: str) -> pl.DataFrame:
        """The table ``name``.

        Raises:
            KeyError: The run directory has no such table (the message lists those it has).
            TableNotReadError: The run was read without this table.
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


def load_run(
    run_dir: str | Path,
    tables: Sequence[str] | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> Run:
    """Read a run directory.

    Args:
        run_dir: A directory holding ``manifest.json`` and the run's Parquet tables.
        tables: Only these tables (those of them the run has; the others are not
            read, e.g. a long LLM run's ``prompts`` when only ``steps`` is needed, and
            asking the run for one raises :class:`TableNotReadError`); None: every
            table.
        columns: For some of ``tables``, only these of their columns (e.g. a large
            ``memories`` table without its texts); the others are read whole.

    Raises:
        ValueError: ``tables`` names a table no run writes (see :mod:`sim.tables`): a
            misspelt name would otherwise read as a table the run does not have; or
            ``columns`` names a table not among ``tables`` (or is given without them).
        FileNotFoundError: ``run_dir`` is not a directory, or lacks one of
            :data:`REQUIRED_TABLES` (of those asked for; the message names what is
            missing).
        sim.manifest.ManifestError: No manifest (:class:`~sim.manifest.NotARunDirError`,
            also a ``FileNotFoundError``), or one :func:`~sim.manifest.read_manifest`
            refuses.
    """
    path = Path(run_dir)
    if tables is not None:
        unknown = [t for t in tables if t not in table_names()]
        if unknown:
            raise ValueError(
                f"tables: {unknown} are not tables of a run; tables are {list(table_names())}"
            )
    only = {name: list(cols) for name, cols in (columns or {}).items()}
    stray = [t for t in only if tables is None or t not in tables]
    if stray:
        raise ValueError(f"columns: tables {stray} are not among the tables read ({tables})")
    if not path.is_dir():
        raise FileNotFoundError(f"run_dir = {str(path)!r}: not a directory")
    manifest = read_manifest(path)
    if tables is None:
        read = read_tables(path)
        wanted: Sequence[str] = REQUIRED_TABLES
    else:
        read = {
            name: pl.read_parquet(path / f"{name}.parquet", columns=only.get(name))
            for name in tables
            if (path / f"{name}.parquet").is_file()
        }
        wanted = [t for t in REQUIRED_TABLES if t in tables]
    missing = [t for t in wanted if t not in read]
    if missing:
        raise FileNotFoundError(
            f"run_dir = {str(path)!r}: missing table(s) {missing} (is the run complete? "
            f"status {manifest.get('status')!r})"
        )
    return Run(path=path, manifest=manifest, tables=RunTables(read, tables, only))
