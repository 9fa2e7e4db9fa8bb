"""Sweeps: a grid over any config keys times replicate seeds, run idempotently.

A sweep file is a run config plus a ``[sweep]`` table (run keys first: in TOML, keys
after a table header belong to that table)::

    # One line of documentation.
    steps = 40                         # any run keys: merged over the base file

    [sweep]
    name = "beta-by-topology"          # the sweep directory is OUTPUT_DIR/NAME
    output_dir = "sweeps"
    base = "contagion_small.toml"      # optional; relative to this file
    replicates = 3                     # seeds base.seed, base.seed+1, ...; or
    # seeds = [0, 1, 2]                # explicit seeds (not both)

    [sweep.grid]
    "policy.beta" = [0.05, 0.1, 0.2]   # key path -> list of values

    [sweep.grid.graph]                 # an axis given as a table: values with labels
    name = "topology"                  # optional column name (default: the key path)
    labels = ["ring", "ws"]
    values = [
      { kind = "ring", n = 200, k = 4 },
      { kind = "watts_strogatz", n = 200, k = 4, p = 0.1 },
    ]

The run document is the base file (if any) with the sweep file's other top-level keys
merged over it (tables merge key by key, other values replace); ``--set`` overrides apply
to the merged document, ``sweep.*`` keys included. Every grid point times every seed is
one run, in ``SWEEP_DIR/runs/<axis>=<label>/.../seed=<seed>/`` (Hive-style), so::

    pl.scan_parquet(f"{sweep_dir}/runs/**/steps.parquet", hive_partitioning=True)

reads every run with the swept parameters as columns (once the sweep is complete: an
interrupted run's checkpoint, ``.../checkpoints/step-N/steps.parquet``, matches that glob
too; :meth:`SweepResult.scan` reads the complete runs only). Scalar values label themselves;
table values need ``labels`` unless their ``kind`` values differ. ``SWEEP_DIR/index.parquet``
has one row per run (run_dir, name, seed, each axis, status, steps_completed), and
``SWEEP_DIR/sweep.json`` the sweep as resolved.

Rerunning a sweep is idempotent: complete runs (manifest status) are skipped, incomplete
ones resumed from their checkpoint, missing ones started. What a sweep touches:

* the sweep directory must be absent, empty or a sweep of this tool (its ``sweep.json``);
  anything else is refused, ``overwrite`` or not;
* a run directory holding a run of another config is an error (reported once, with the
  count) unless ``overwrite``; with it, each such run is rerun and replaces the old one
  only after it succeeded (:func:`experiments.runner.run_experiment`);
* a run directory that holds no readable run of this tool (a corrupt manifest, other
  files) is never deleted: it is reported as failed and left as it is.

A sweep has at most :data:`MAX_SWEEP_RUNS` runs (grid points times seeds, counted before
anything is expanded). While a sweep runs, it and its worker processes hold a lock on
``SWEEP_DIR/.lock``; a second sweep into the same directory (or a rerun while workers of
a killed sweep still run) is refused until they are gone. Workers die with their parent
(on Linux through ``PR_SET_PDEATHSIG``, elsewhere within a second by watching it). A rerun
removes the temporary files a killed sweep left (:func:`clean_sweep_leftovers`).
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import errno
import functools
import math
import multiprocessing
import os
import shutil
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from agents.llm.base import EngineError
from experiments.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    read_config,
    set_path,
    validate_config,
    validate_strict,
)
from experiments.grid_errors import RunProblems, grid_where
from experiments.lifetime import die_with_parent
from experiments.names import SafeName, bounded_name, label_problem, name_problem
from experiments.run_contents import describe_foreign, foreign_entries
from experiments.rundirs import (
    RunDirError,
    is_empty_dir,
    is_run_dir,
    is_run_manifest,
    is_sweep_dir,
    refuse_dotdot,
    tool_marker,
)
from experiments.shared_engine import Served, SharedEngines, SharedServers, served_engine
from experiments.sweep_backends import SweepBackendError
from sim.manifest import ManifestError, read_manifest, read_manifest_if_any
from sim.output import write_json_atomic, write_parquet_atomic

#: Sweeps with more runs than this show no per-run progress bars.
PER_RUN_BARS_MAX = 4

#: Most runs a sweep may have (grid points times seeds).
MAX_SWEEP_RUNS = 100_000

#: The lock file a running sweep and its workers hold (shared) in the sweep directory.
LOCK_FILE = ".lock"


class GridAxis(BaseModel):
    """One swept key, given as a table.

    Attributes:
        values: The values the key takes (any TOML values, e.g. whole graph tables).
        labels: One label per value, used in run directory names and the index (1-100
            letters, digits, ``_ . + -``, not starting with ``.``); default: the value
            itself for scalars, the ``kind`` of table values.
        name: Column name of the axis in the index and the Hive paths (default: the key
            path); a name as for runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[Any] = Field(min_length=1)
    labels: list[str] | None = None
    name: str | None = None


class SweepSpec(BaseModel):
    """The ``[sweep]`` table.

    Attributes:
        name: Name of the sweep (its directory under ``output_dir``): 1-100 characters
            from letters, digits, ``_ . -``, starting with a letter, digit or ``_``.
        output_dir: Directory that receives the sweep directory.
        base: Run config the sweep starts from, relative to the sweep file.
        seeds: Explicit seeds; each grid point runs once per seed.
        replicates: Number of seeds, ``base seed + 0 .. replicates-1`` (default 1).
        grid: Key path -> list of values, or a table with ``values`` (and optional
            ``labels`` and ``name``, see :class:`GridAxis`).
        shared_server: When runs execute in several processes (``jobs > 1``, or Ray
            on this machine), LLM runs on llama.cpp share one managed local server
            instead of loading the model in every worker (see
            :mod:`experiments.shared_engine`); false: each worker builds its own engine.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SafeName = "sweep"
    output_dir: str = "sweeps"
    base: str | None = None
    seeds: list[int] | None = Field(None, min_length=1, max_length=MAX_SWEEP_RUNS)
    replicates: int | None = Field(None, ge=1, le=MAX_SWEEP_RUNS)
    grid: dict[str, Any] = {}
    shared_server: bool = True

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        if self.seeds is not None and self.replicates is not None:
            raise ValueError("give either seeds or replicates, not both")
        seeds = self.seeds or []
        if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds = {self.seeds}: must be distinct integers >= 0")
        return self


@dataclass(frozen=True)
class Axis:
    """A resolved grid axis: key path, column name, values and their labels."""

    key: str
    column: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]

    def column_value(self, index: int) -> Any:
        """The index value of point ``index``: the value for scalars, else the label."""
        value = self.values[index]
        return self.labels[index] if isinstance(value, dict | list) else value


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    Attributes:
        rel_dir: Run directory relative to the sweep directory (``runs/a=x/seed=0``).
        params: Column -> value of every axis, then ``seed``.
        config: The run's validated config.
    """

    rel_dir: str
    params: dict[str, Any]
    config: RunConfig


@dataclass(frozen=True)
class SweepConfig:
    """A loaded sweep: its spec, the merged run document, the axes and the runs.

    Attributes:
        source: The sweep file.
        spec: The ``[sweep]`` table.
        document: The run document before the grid is applied.
        axes: The resolved grid axes, in file order.
        runs: Every run (grid points times seeds), validated.
    """

    source: str
    spec: SweepSpec
    document: dict[str, Any] = field(repr=False)
    axes: tuple[Axis, ...]
    runs: tuple[SweepRun, ...] = field(repr=False)

    @property
    def sweep_dir(self) -> Path:
        """``output_dir/name``."""
        return Path(self.spec.output_dir) / self.spec.name


@dataclass(frozen=True)
class SweepResult:
    """The outcome of a sweep.

    Attributes:
        sweep_dir: The sweep directory.
        index: One row per run (run_dir, name, seed, each axis, status, steps_completed);
            status is the manifest's, ``pending`` before a run starts, ``unreadable`` for a
            directory left alone.
        ran: Number of runs started or resumed by this call.
        skipped: Number of runs that were already complete.
        failed: ``rel_dir -> error`` of the runs that failed in this call.
        engines_built: LLM engines built by this call when it ran its runs in this
            process (one per distinct engine spec, shared by the runs; see
            :mod:`experiments.shared_engine`); None for worker processes and Ray.
        servers_started: Managed local servers started by this call for runs in worker
            processes or Ray tasks (one per distinct llama.cpp engine spec; see
            :mod:`experiments.shared_engine`); None when runs ran in this process or
            shared servers were off.
    """

    sweep_dir: Path
    index: pl.DataFrame
    ran: int
    skipped: int
    failed: dict[str, str]
    engines_built: int | None = None
    servers_started: int | None = None

    def scan(self, table: str = "steps") -> pl.LazyFrame:
        """A lazy frame of ``table`` over the complete runs, with the swept columns.

        Runs may differ in columns (a sweep over guards: ``steps`` has the counts of each
        run's own guards); the frames are concatenated diagonally (null where a run
        lacks a column).
        """
        done = self.index.filter(pl.col("status") == "complete")["run_dir"].to_list()
        paths = [str(self.sweep_dir / d / f"{table}.parquet") for d in done]
        if not paths:
            return pl.scan_parquet(paths, hive_partitioning=True)
        frames = [pl.scan_parquet(p, hive_partitioning=True) for p in paths]
        return pl.concat(frames, how="diagonal_relaxed")


def is_sweep_document(data: dict[str, Any]) -> bool:
    """Whether a TOML document is a sweep config (it has a ``[sweep]`` table)."""
    return isinstance(data.get("sweep"), dict)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _label_of(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict) and isinstance(value.get("kind"), str):
        return value["kind"]
    if isinstance(value, dict | list):
        return ""
    return str(value)


def _axes(spec: SweepSpec) -> tuple[tuple[Axis, ...], list[str]]:
    axes: list[Axis] = []
    errors: list[str] = []
    columns: set[str] = {"seed"}
    for key, raw in spec.grid.items():
        where = grid_where(key)
        if isinstance(raw, list) and raw:
            axis = GridAxis(values=raw)
        elif isinstance(raw, dict):
            try:
                axis = validate_strict(GridAxis, raw, where)
            except ConfigError as err:
                errors += [f"{where}.{e}" for e in err.errors]
                continue
        else:
            errors.append(
                f"{where} = {raw!r}: must be a non-empty list of values, or a table with "
                "values = [...] (and optional labels = [...], name = ...)"
            )
            continue
        if axis.labels is not None:
            labels = list(axis.labels)
            if len(labels) != len(axis.values):
                errors.append(
                    f"{where}.labels: {len(labels)} label(s) for {len(axis.values)} value(s); "
                    "give one label per value"
                )
                continue
        else:
            labels = [_label_of(v) for v in axis.values]
        # How to name the values: a list axis takes labels only once written as a table.
        give = (
            "give labels = [...]"
            if isinstance(raw, dict)
            else f'write the axis as a table, "{key}" = {{ values = [...], labels = [...] }}'
        )
        problems = [(lab, problem) for lab in labels if (problem := label_problem(lab))]
        if problems:
            shown = [lab if len(lab) <= 40 else lab[:37] + "..." for lab, _ in problems]
            errors.append(
                f"{where}: label(s) {shown} cannot name a directory; labels "
                f"{problems[0][1].removeprefix('must be ')} ({give})"
            )
            continue
        if len(set(labels)) != len(labels):
            errors.append(f"{where}: labels {labels} are not distinct; {give}")
            continue
        column = axis.name or key
        if name_problem(column) or column in columns:
            errors.append(
                f"{where}.name = {column!r}: must be a distinct column name (1-100 letters, "
                "digits, '_', '.', '-', starting with a letter, digit or '_'; not 'seed' or "
                "another axis)"
            )
            continue
        columns.add(column)
        axes.append(Axis(key, column, tuple(axis.values), tuple(labels)))
    return tuple(axes), errors


def _resolve_grid_paths(spec_table: Any, base_dir: Path) -> None:
    """Make relative file paths in grid values absolute against ``base_dir``.

    A grid value is resolved as the same value at its key in a config file would be
    (:func:`experiments.config.resolve_relative_paths`: graph files, data files, engine
    files), and a ``graph.path`` value always (its graph's kind is in the base config).
    """
    from experiments.config import resolve_relative_paths

    grid = spec_table.get("grid") if isinstance(spec_table, dict) else None
    if not isinstance(grid, dict):
        return
    for key, raw in grid.items():
        values = raw.get("values") if isinstance(raw, dict) else raw
        if not isinstance(values, list):
            continue
        parts = key.split(".")
        for i, value in enumerate(values):
            if key == "graph.path" and isinstance(value, str) and not os.path.isabs(value):
                values[i] = os.path.abspath(base_dir / value)
                continue
            holder: Any = value
            for part in reversed(parts):
                holder = {part: holder}
            resolve_relative_paths(holder, base_dir)
            for part in parts:
                holder = holder[part]
            values[i] = holder


def _points(axes: tuple[Axis, ...]) -> list[tuple[int, ...]]:
    points: list[tuple[int, ...]] = [()]
    for axis in axes:
        points = [(*p, i) for p in points for i in range(len(axis.values))]
    return points


def expand_sweep(
    data: dict[str, Any], source: str = "<sweep>", base_dir: Path | None = None
) -> SweepConfig:
    """Validate a sweep document and expand it into its runs (nothing heavy is built).

    Args:
        data: The sweep document, overrides applied (a ``[sweep]`` table plus run keys).
        source: Name of the document, for messages.
        base_dir: Directory that ``sweep.base`` is relative to (default: the current one).

    Raises:
        ConfigError: Listing every error: of the sweep table, of the base, and of the runs
            (an error shared by many runs is listed once, with the count).
    """
    data = copy.deepcopy(data)
    table = data.pop("sweep", {})
    try:
        spec = validate_strict(_SweepTable, {"sweep": table}, source).sweep
    except ConfigError as err:
        raise ConfigError(source, err.errors) from None
    if spec.base is not None:
        base_path = (base_dir or Path.cwd()) / spec.base
        base = read_config(base_path, "sweep.base")
        if is_sweep_document(base):
            raise ConfigError(source, [f"sweep.base = {spec.base!r}: is itself a sweep config"])
        document = _merge(base, data)
    else:
        document = data
    axes, errors = _axes(spec)
    if errors:
        raise ConfigError(source, errors)
    base_seed = document.get("seed", RunConfig.model_fields["seed"].default)
    if spec.seeds is not None:
        seeds = list(spec.seeds)
    elif isinstance(base_seed, int) and not isinstance(base_seed, bool):
        seeds = [base_seed + i for i in range(spec.replicates or 1)]
    else:
        raise ConfigError(source, [f"seed = {base_seed!r}: must be an integer >= 0"])
    size = math.prod(len(a.values) for a in axes) * len(seeds)
    if size > MAX_SWEEP_RUNS:
        sizes = " x ".join([*(str(len(a.values)) for a in axes), f"{len(seeds)} seed(s)"])
        raise ConfigError(
            source,
            [f"sweep: {sizes} = {size} runs; a sweep has at most {MAX_SWEEP_RUNS} runs"],
        )
    runs: list[SweepRun] = []
    problems = RunProblems(axes)
    for point in _points(axes):
        for seed in seeds:
            run = copy.deepcopy(document)
            parts, params = [], {}
            for axis, i in zip(axes, point, strict=True):
                try:
                    set_path(run, axis.key, copy.deepcopy(axis.values[i]))
                except ConfigError as err:
                    raise ConfigError(source, [f"sweep.grid.{e}" for e in err.errors]) from None
                parts.append(f"{axis.column}={axis.labels[i]}")
                params[axis.column] = axis.column_value(i)
            parts.append(f"seed={seed}")
            params["seed"] = seed
            run["seed"] = seed
            run["name"] = bounded_name([spec.name, *(p.replace("=", "-") for p in parts)])
            rel_dir = "/".join(["runs", *parts])
            try:
                config = validate_config(run, f"{source} [{rel_dir}]")
            except ConfigError as err:
                for e in err.errors:
                    problems.add(e, point, rel_dir, run)
                continue
            runs.append(SweepRun(rel_dir, params, config))
    if problems:
        raise ConfigError(source, problems.lines())
    return SweepConfig(source, spec, document, axes, tuple(runs))


class _SweepTable(BaseModel):
    """Holds the ``[sweep]`` table, so its errors carry the ``sweep.`` prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep: SweepSpec


def read_sweep_document(path: str | Path) -> dict[str, Any]:
    """Read a sweep file with its relative graph paths resolved against its folder.

    Raises:
        ConfigError: The file cannot be read as TOML.
    """
    path = Path(path)
    data = read_config(path)
    _resolve_grid_paths(data.get("sweep"), path.parent)
    return data


def load_sweep_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read a sweep file, apply ``--set`` overrides, validate and expand it.

    Args:
        path: The sweep file, or the name of a shipped sweep config.
        overrides: ``key.path=value`` strings, applied to the merged document.

    Raises:
        ConfigError: The file is missing, invalid TOML, not a sweep, or invalid.
    """
    from experiments.catalog import resolve_config

    path = resolve_config(path)
    data = read_sweep_document(path)
    if not is_sweep_document(data):
        raise ConfigError(str(path), ["sweep: no [sweep] table; this is a run config (use run)"])
    apply_overrides(data, overrides)
    return expand_sweep(data, str(path), path.parent)


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Deprecated name of :func:`load_sweep_config`.

    It is easily confused with :func:`sim.analysis.loading.load_sweep`, which reads a
    sweep *directory*.
    """
    warnings.warn(
        "experiments.load_sweep is deprecated: use load_sweep_config (a sweep config file); "
        "sim.analysis.load_sweep reads a sweep directory",
        DeprecationWarning,
        stacklevel=2,
    )
    return load_sweep_config(path, overrides)


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as its parent process is gone (checked every second)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int, lock_path: str) -> None:
    """Set up a sweep worker: die with the parent, share the sweep directory's lock.

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); a
    daemon thread also watches the parent everywhere. The worker holds a shared lock on
    the sweep's lock file for as long as it lives, so a rerun can tell that it still runs.
    """
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    fd = os.open(lock_path, os.O_RDWR)
    _lock(fd, exclusive=False)  # kept open (and locked) until the worker exits


def _lock(fd: int, *, exclusive: bool) -> bool:
    """Take a (non-blocking) lock on an open file; False if another process holds one.

    Without ``fcntl`` (not POSIX) there is no locking and this returns True.
    """
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return True  # a filesystem without locks (some network ones): run unlocked
        raise
    return True


def acquire_sweep_lock(sweep_dir: Path) -> int:
    """Lock a sweep directory for this process; returns the open lock file descriptor.

    The lock is taken exclusively (so no other sweep process or live worker holds it),
    then shared, so that this sweep's workers can share it. Close the descriptor to
    release it.

    Raises:
        RunDirError: Another process (a sweep, or a worker of a killed sweep) holds it.
    """
    path = sweep_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        if not _lock(fd, exclusive=True):
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise RunDirError(
                f"sweep directory {sweep_dir} is in use by another memespread process "
                f"(a sweep, pid {holder}, or its workers still running); wait for it to "
                "finish or stop it, then rerun"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        # flock converts a lock by dropping it first: another process may slip in.
        if not _lock(fd, exclusive=False):
            raise RunDirError(
                f"sweep directory {sweep_dir} was just taken by another memespread process"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _run_one(
    config_data: dict[str, Any],
    run_dir: str,
    action: str,
    progress: bool,
    engines: SharedEngines | None = None,
    served: Served | None = None,
) -> str:
    """Run, resume or restart one run (in this process or a worker); returns its status.

    With ``engines`` (in-process sweeps), an LLM run uses the sweep's shared engine; with
    ``served`` (workers), it uses the sweep's shared server when one serves its engine.
    """
    from experiments.resume import resume_run
    from experiments.runner import run_experiment

    config = RunConfig.model_validate(config_data)
    engine = engines.lend(config) if engines is not None else served_engine(config, served)
    if action == "resume":
        result = resume_run(run_dir, progress=progress, engine=engine)
    else:
        result = run_experiment(
            config, run_dir, overwrite=action == "replace", progress=progress, engine=engine
        )
    return str(result.manifest["status"])


def _index(sweep: SweepConfig, sweep_dir: Path) -> pl.DataFrame:
    rows = []
    for run in sweep.runs:
        run_dir = sweep_dir / run.rel_dir
        manifest = read_manifest_if_any(run_dir) or {}
        if not manifest and run_dir.is_dir() and not is_empty_dir(run_dir):
            manifest = {"status": "unreadable"}  # left alone, see _plan
        done = manifest.get("steps_completed", 0)
        rows.append(
            {
                "run_dir": run.rel_dir,
                "name": run.config.name,
                **run.params,
                "status": str(manifest.get("status", "pending")),
                "steps_completed": done if type(done) is int else 0,
                "steps": run.config.steps,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _is_fresh(sweep_dir: Path) -> bool:
    """An absent or empty directory (or one holding only a lock file of this tool).

    A killed sweep may leave just its lock file (empty, or the pid line
    :func:`acquire_sweep_lock` writes); a ``.lock`` that is anything else (a symlink, or a
    file with other content, such as another program's lock) is not ours, so the
    directory is not fresh.
    """
    if not sweep_dir.exists():
        return True
    return sweep_dir.is_dir() and all(_is_our_lock_file(p) for p in sweep_dir.iterdir())


def _is_our_lock_file(path: Path) -> bool:
    """Whether ``path`` is a sweep lock file as this tool writes it."""
    if path.name != LOCK_FILE or path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            content = handle.read(33)
    except OSError:
        return False
    pid = content.strip()
    return len(content) <= 32 and (pid.isdigit() or not pid)


def _check_sweep_dir(sweep_dir: Path) -> None:
    """Refuse a sweep directory that is neither fresh nor a sweep of this tool.

    A path ending in ``..`` is refused too (:func:`experiments.rundirs.refuse_dotdot`).
    """
    refuse_dotdot(sweep_dir, "sweep")
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(sweep_dir))
    if _is_fresh(sweep_dir) or is_sweep_dir(sweep_dir):
        return
    found = "it holds a memespread run" if is_run_dir(sweep_dir) else "it is not a sweep directory"
    raise RunDirError(
        f"{sweep_dir} exists and {found} (no memespread sweep.json); refusing to write into "
        "it, --overwrite or not: choose another --sweep-dir or sweep name"
    )


def _plan(
    sweep: SweepConfig, sweep_dir: Path, overwrite: bool
) -> tuple[list[tuple[SweepRun, str]], dict[str, str], int]:
    """Sort the runs: to start, resume or replace; complete; and left alone."""
    todo: list[tuple[SweepRun, str]] = []
    stale: list[str] = []
    alone: dict[str, str] = {}
    skipped = 0
    for run in sweep.runs:
        run_dir = sweep_dir / run.rel_dir
        if not run_dir.exists() or is_empty_dir(run_dir):
            todo.append((run, "start"))
            continue
        try:
            manifest = read_manifest(run_dir)
            problem = None if is_run_manifest(manifest) else "not written by memespread"
        except (ManifestError, OSError) as err:
            problem = getattr(err, "problem", None) or str(err)
        if problem is not None:
            alone[run.rel_dir] = (
                f"left alone: {run_dir} exists but holds no readable memespread run (its "
                f"manifest.json is missing or corrupt: {problem}); move it away (or delete "
                "it) and rerun the sweep to redo this run"
            )
        elif manifest.get("config") != run.config.model_dump(mode="json", by_alias=True):
            foreign = foreign_entries(run_dir) if overwrite else []
            if foreign:
                alone[run.rel_dir] = (
                    f"left alone: {describe_foreign(run_dir, foreign)}, then rerun the sweep"
                )
            elif overwrite:
                todo.append((run, "replace"))
            else:
                stale.append(run.rel_dir)
        elif manifest.get("status") == "complete":
            skipped += 1
        else:
            todo.append((run, "resume"))
    if stale:
        held = "directory holds a run" if len(stale) == 1 else "directories hold runs"
        raise RunDirError(
            f"{sweep_dir}: {len(stale)} run {held} "
            f"of a different config (e.g. {stale[0]}); pass overwrite (--overwrite) to "
            "replace each once its new run succeeded, or use another sweep name/output_dir"
        )
    return todo, alone, skipped


def run_sweep(
    sweep: SweepConfig,
    sweep_dir: str | Path | None = None,
    *,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
    shared_server: bool | None = None,
) -> SweepResult:
    """Run every run of a sweep that is not complete yet.

    See the module docstring for what a sweep may touch.

    Args:
        sweep: The loaded sweep (:func:`load_sweep_config`).
        sweep_dir: Where to write (default ``output_dir/name`` of the sweep).
        jobs: Runs at once (worker processes, spawned; they die with this process); 1
            runs in this process.
        overwrite: Rerun runs whose directory holds a run of a different config,
            replacing each old run once its new run succeeded.
        progress: A progress bar over runs (and over steps for sweeps of at most
            :data:`PER_RUN_BARS_MAX` runs run one at a time).
        backend: ``"local"`` (this machine, see ``jobs``) or ``"ray"`` (one Ray task per
            run, see :mod:`experiments.sweep_backends`; ``jobs`` is ignored).
        address: The Ray cluster for the ``ray`` backend (None: a local Ray).
        shared_server: Whether runs in worker processes or Ray tasks on this machine
            share one managed server per llama.cpp engine (None: the sweep's
            ``shared_server``, true by default). Not used for in-process sweeps (they
            share the engine itself) nor for a Ray cluster at ``address``.

    Returns:
        The index and counts. Runs that fail are listed in ``failed`` (the others go on),
        and so are run directories left alone because they hold no readable run.

    Raises:
        RunDirError: The sweep directory is not a sweep of this tool, is in use by
            another process, or run directories hold runs of another config and not
            ``overwrite``.
        experiments.sweep_backends.SweepBackendError: The Ray backend cannot be used, or
            a shared server cannot start.
    """
    if jobs < 1:
        raise ValueError(f"jobs = {jobs}: must be >= 1")
    if backend not in ("local", "ray"):
        raise ValueError(f"backend = {backend!r}: must be 'local' or 'ray'")
    if backend == "ray":
        from experiments.sweep_backends import connect_ray

        connect_ray(address)  # a bad address fails before anything is written
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else sweep.sweep_dir
    _check_sweep_dir(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if shared_server is None:
        shared_server = sweep.spec.shared_server
    # Workers on this machine can reach a server on the loopback interface.
    share = shared_server and (jobs > 1 if backend == "local" else address is None)
    lock = acquire_sweep_lock(sweep_dir)
    try:
        return _run_locked(sweep, sweep_dir, jobs, overwrite, progress, backend, address, share)
    finally:
        os.close(lock)


def clean_sweep_leftovers(sweep: SweepConfig, sweep_dir: Path) -> list[Path]:
    """Remove what a killed sweep left; call it only while holding the sweep's lock.

    That is the atomic writers' temporary files in the sweep directory (``.NAME.*.tmp``)
    and the staging directories of replacements that never finished
    (``.LEAF.new-XXXXXXXX`` next to a run directory that exists; one whose run directory
    is missing is left, as it may hold the only copy). Run directories themselves are
    cleaned when they are resumed (:func:`experiments.resume.clean_temporary_files`).

    Returns:
        What was removed.
    """
    removed = [p for p in sorted(sweep_dir.glob(".*.tmp")) if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    for run in sweep.runs:
        run_dir = sweep_dir / run.rel_dir
        if not run_dir.is_dir():
            continue
        for staging in sorted(run_dir.parent.glob(f".{run_dir.name}.new-*")):
            if staging.is_dir() and not staging.is_symlink():
                shutil.rmtree(staging, ignore_errors=True)
                removed.append(staging)
    return removed


def _run_locked(
    sweep: SweepConfig,
    sweep_dir: Path,
    jobs: int,
    overwrite: bool,
    progress: bool,
    backend: str = "local",
    address: str | None = None,
    share: bool = False,
) -> SweepResult:
    clean_sweep_leftovers(sweep, sweep_dir)
    todo, alone, skipped = _plan(sweep, sweep_dir, overwrite)
    _write_sweep_json(sweep, sweep_dir, [])
    with SharedServers(sweep_dir, sweep_dir / LOCK_FILE, _lock) as servers:
        served: Served | None = None
        if share:
            try:
                served = servers.start(run.config for run, _ in todo)
            except EngineError as err:
                raise SweepBackendError(
                    f"{err}\n(run the sweep without a shared server: --no-shared-server, "
                    "or sweep.shared_server = false)"
                ) from None
        if servers.started:
            _write_sweep_json(sweep, sweep_dir, servers.describe())
        result = _run_todo(
            sweep, sweep_dir, todo, alone, skipped, jobs, progress, backend, address, served
        )
    if share:
        result = dataclasses.replace(result, servers_started=servers.started)
    return result


def _write_sweep_json(
    sweep: SweepConfig, sweep_dir: Path, shared_servers: list[dict[str, Any]]
) -> None:
    write_json_atomic(
        {
            **tool_marker(),
            "source": sweep.source,
            "sweep": sweep.spec.model_dump(mode="json"),
            "document": sweep.document,
            "axes": [{"key": a.key, "column": a.column, "labels": a.labels} for a in sweep.axes],
            "n_runs": len(sweep.runs),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # The managed servers this invocation's runs used (see shared_engine).
            "shared_servers": shared_servers,
        },
        sweep_dir / "sweep.json",
    )


def _run_todo(
    sweep: SweepConfig,
    sweep_dir: Path,
    todo: list[tuple[SweepRun, str]],
    alone: dict[str, str],
    skipped: int,
    jobs: int,
    progress: bool,
    backend: str,
    address: str | None,
    served: Served | None,
) -> SweepResult:
    write_parquet_atomic(_index(sweep, sweep_dir), sweep_dir / "index.parquet")
    per_run = progress and jobs == 1 and backend == "local" and len(todo) <= PER_RUN_BARS_MAX
    failed: dict[str, str] = dict(alone)
    engines_built: int | None = None
    bar = tqdm(total=len(todo), desc=sweep.spec.name, unit="run", disable=not progress)
    try:
        if backend == "ray":
            from experiments.sweep_backends import run_on_ray

            failed.update(
                {
                    str(Path(run_dir).relative_to(sweep_dir)): error
                    for run_dir, error in run_on_ray(
                        [(_dump(r), str(sweep_dir / r.rel_dir), a) for r, a in todo],
                        sweep_dir / LOCK_FILE,
                        run_one=functools.partial(_run_one, served=served),
                        lock=_lock,
                        address=address,
                        on_done=lambda: bar.update(1),
                    ).items()
                }
            )
        elif jobs == 1:
            with SharedEngines() as engines:  # one engine per distinct spec, see shared_engine
                for run, action in todo:
                    try:
                        _run_one(_dump(run), str(sweep_dir / run.rel_dir), action, per_run, engines)
                    except Exception as err:
                        failed[run.rel_dir] = _one_line(err)
                    bar.update(1)
            engines_built = engines.built
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                jobs,
                mp_context=context,
                initializer=_worker_init,
                initargs=(os.getpid(), str(sweep_dir / LOCK_FILE)),
            ) as pool:
                futures = {
                    pool.submit(
                        _run_one, _dump(r), str(sweep_dir / r.rel_dir), a, False, None, served
                    ): r
                    for r, a in todo
                }
                for future in concurrent.futures.as_completed(futures):
                    error = future.exception()
                    if error is not None:
                        failed[futures[future].rel_dir] = _one_line(error)
                    bar.update(1)
    finally:
        bar.close()
        index = _index(sweep, sweep_dir)
        write_parquet_atomic(index, sweep_dir / "index.parquet")
    return SweepResult(
        sweep_dir, index, ran=len(todo), skipped=skipped, failed=failed, engines_built=engines_built
    )


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _dump(run: SweepRun) -> dict[str, Any]:
    return run.config.model_dump(mode="json", by_alias=True)
