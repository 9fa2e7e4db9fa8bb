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
ones resumed from their checkpoint, missing ones started. A run directory whose manifest
config differs from the sweep's is an error unless ``overwrite``.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import multiprocessing
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm.auto import tqdm

from experiments.config import (
    ConfigError,
    RunConfig,
    _format_error,
    apply_overrides,
    read_toml,
    set_path,
    validate_config,
)
from sim.output import write_json_atomic, write_parquet_atomic

_LABEL = re.compile(r"^[A-Za-z0-9_.+\-]+$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

#: Sweeps with more runs than this show no per-run progress bars.
PER_RUN_BARS_MAX = 4


class GridAxis(BaseModel):
    """One swept key, given as a table.

    Attributes:
        values: The values the key takes (any TOML values, e.g. whole graph tables).
        labels: One label per value, used in run directory names and the index (letters,
            digits, ``_ . + -``); default: the value itself for scalars, the ``kind`` of
            table values.
        name: Column name of the axis in the index and the Hive paths (default: the key
            path).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[Any] = Field(min_length=1)
    labels: list[str] | None = None
    name: str | None = None


class SweepSpec(BaseModel):
    """The ``[sweep]`` table.

    Attributes:
        name: Name of the sweep (its directory under ``output_dir``).
        output_dir: Directory that receives the sweep directory.
        base: Run config the sweep starts from, relative to the sweep file.
        seeds: Explicit seeds; each grid point runs once per seed.
        replicates: Number of seeds, ``base seed + 0 .. replicates-1`` (default 1).
        grid: Key path -> list of values, or a table with ``values`` (and optional
            ``labels`` and ``name``, see :class:`GridAxis`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.\-]+$")
    output_dir: str = "sweeps"
    base: str | None = None
    seeds: list[int] | None = Field(None, min_length=1)
    replicates: int | None = Field(None, ge=1)
    grid: dict[str, Any] = {}

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
        index: One row per run (run_dir, name, seed, each axis, status, steps_completed).
        ran: Number of runs started or resumed by this call.
        skipped: Number of runs that were already complete.
        failed: ``rel_dir -> error`` of the runs that failed in this call.
    """

    sweep_dir: Path
    index: pl.DataFrame
    ran: int
    skipped: int
    failed: dict[str, str]

    def scan(self, table: str = "steps") -> pl.LazyFrame:
        """A lazy frame of ``table`` over the complete runs, with the swept columns."""
        done = self.index.filter(pl.col("status") == "complete")["run_dir"].to_list()
        paths = [str(self.sweep_dir / d / f"{table}.parquet") for d in done]
        return pl.scan_parquet(paths, hive_partitioning=True)


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
        where = f'sweep.grid."{key}"' if "." in key else f"sweep.grid.{key}"
        if isinstance(raw, list) and raw:
            axis = GridAxis(values=raw)
        elif isinstance(raw, dict):
            try:
                axis = GridAxis.model_validate(raw)
            except ValidationError as err:
                errors += [
                    _format_error({**e, "loc": (where, *e["loc"])}, {where: raw})
                    for e in err.errors()
                ]
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
        bad = [lab for lab in labels if not _LABEL.match(lab)]
        if bad:
            errors.append(
                f"{where}: label(s) {bad} cannot name a directory; labels may use letters, "
                "digits, '_', '.', '+', '-' (give labels = [...] for table values)"
            )
            continue
        if len(set(labels)) != len(labels):
            errors.append(f"{where}: labels {labels} are not distinct; give labels = [...]")
            continue
        column = axis.name or key
        if not _NAME.match(column) or column in columns:
            errors.append(
                f"{where}.name = {column!r}: must be a distinct column name (letters, "
                "digits, '_', '.', '-'; not 'seed' or another axis)"
            )
            continue
        columns.add(column)
        axes.append(Axis(key, column, tuple(axis.values), tuple(labels)))
    return tuple(axes), errors


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
        spec = SweepSpec.model_validate(table)
    except ValidationError as err:
        errors = [
            _format_error({**e, "loc": ("sweep", *e["loc"])}, {"sweep": table})
            for e in err.errors()
        ]
        raise ConfigError(source, errors) from None
    if spec.base is not None:
        base_path = (base_dir or Path.cwd()) / spec.base
        base = read_toml(base_path)
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
    elif isinstance(base_seed, int):
        seeds = [base_seed + i for i in range(spec.replicates or 1)]
    else:
        raise ConfigError(source, [f"seed = {base_seed!r}: must be an integer >= 0"])
    runs: list[SweepRun] = []
    problems: dict[str, list[str]] = {}
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
            run["name"] = "__".join([spec.name, *(p.replace("=", "-") for p in parts)])
            rel_dir = "/".join(["runs", *parts])
            try:
                config = validate_config(run, f"{source} [{rel_dir}]")
            except ConfigError as err:
                for e in err.errors:
                    problems.setdefault(e, []).append(rel_dir)
                continue
            runs.append(SweepRun(rel_dir, params, config))
    if problems:
        lines = [
            f"{e} (in {len(where)} run(s), e.g. {where[0]})"
            if len(where) > 1
            else f"{e} ({where[0]})"
            for e, where in problems.items()
        ]
        raise ConfigError(source, lines)
    return SweepConfig(source, spec, document, axes, tuple(runs))


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read a sweep file, apply ``--set`` overrides, validate and expand it.

    Raises:
        ConfigError: The file is missing, invalid TOML, not a sweep, or invalid.
    """
    path = Path(path)
    data = read_toml(path)
    if not is_sweep_document(data):
        raise ConfigError(str(path), ["sweep: no [sweep] table; this is a run config (use run)"])
    apply_overrides(data, overrides)
    return expand_sweep(data, str(path), path.parent)


def _run_one(config_data: dict[str, Any], run_dir: str, action: str, progress: bool) -> str:
    """Run, resume or restart one run (in this process or a worker); returns its status."""
    from experiments.resume import resume_run
    from experiments.runner import run_experiment

    config = RunConfig.model_validate(config_data)
    if action == "resume":
        result = resume_run(run_dir, progress=progress)
    else:
        result = run_experiment(config, run_dir, overwrite=True, progress=progress)
    return str(result.manifest["status"])


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _index(sweep: SweepConfig, sweep_dir: Path) -> pl.DataFrame:
    rows = []
    for run in sweep.runs:
        manifest = _manifest(sweep_dir / run.rel_dir) or {}
        rows.append(
            {
                "run_dir": run.rel_dir,
                "name": run.config.name,
                **run.params,
                "status": manifest.get("status", "pending"),
                "steps_completed": int(manifest.get("steps_completed", 0)),
                "steps": run.config.steps,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def run_sweep(
    sweep: SweepConfig,
    sweep_dir: str | Path | None = None,
    *,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> SweepResult:
    """Run every run of a sweep that is not complete yet.

    Args:
        sweep: The loaded sweep (:func:`load_sweep`).
        sweep_dir: Where to write (default ``output_dir/name`` of the sweep).
        jobs: Runs at once (worker processes, spawned); 1 runs in this process.
        overwrite: Restart runs whose recorded config differs from the sweep's instead of
            failing.
        progress: A progress bar over runs (and over steps for sweeps of at most
            :data:`PER_RUN_BARS_MAX` runs run one at a time).

    Returns:
        The index and counts. Runs that fail are listed in ``failed`` (the others go on).

    Raises:
        ConfigError: A run directory holds a run of another config and not ``overwrite``.
    """
    if jobs < 1:
        raise ValueError(f"jobs = {jobs}: must be >= 1")
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else sweep.sweep_dir
    sweep_dir.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[SweepRun, str]] = []
    stale: list[str] = []
    skipped = 0
    for run in sweep.runs:
        manifest = _manifest(sweep_dir / run.rel_dir)
        expected = run.config.model_dump(mode="json", by_alias=True)
        if manifest is None:
            todo.append((run, "start"))
        elif manifest.get("config") != expected:
            if overwrite:
                todo.append((run, "start"))
            else:
                stale.append(run.rel_dir)
        elif manifest.get("status") == "complete":
            skipped += 1
        else:
            todo.append((run, "resume"))
    if stale:
        raise ConfigError(
            sweep.source,
            [
                f"{d}: holds a run of a different config; pass overwrite (--overwrite) to "
                "restart it, or use another sweep name/output_dir"
                for d in stale
            ],
        )
    write_json_atomic(
        {
            "source": sweep.source,
            "sweep": sweep.spec.model_dump(mode="json"),
            "document": sweep.document,
            "axes": [{"key": a.key, "column": a.column, "labels": a.labels} for a in sweep.axes],
            "n_runs": len(sweep.runs),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        sweep_dir / "sweep.json",
    )
    write_parquet_atomic(_index(sweep, sweep_dir), sweep_dir / "index.parquet")
    per_run = progress and jobs == 1 and len(todo) <= PER_RUN_BARS_MAX
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc=sweep.spec.name, unit="run", disable=not progress)
    try:
        if jobs == 1:
            for run, action in todo:
                try:
                    _run_one(_dump(run), str(sweep_dir / run.rel_dir), action, per_run)
                except Exception as err:
                    failed[run.rel_dir] = f"{type(err).__name__}: {err}"
                bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = {
                    pool.submit(_run_one, _dump(r), str(sweep_dir / r.rel_dir), a, False): r
                    for r, a in todo
                }
                for future in concurrent.futures.as_completed(futures):
                    error = future.exception()
                    if error is not None:
                        failed[futures[future].rel_dir] = f"{type(error).__name__}: {error}"
                    bar.update(1)
    finally:
        bar.close()
        index = _index(sweep, sweep_dir)
        write_parquet_atomic(index, sweep_dir / "index.parquet")
    return SweepResult(sweep_dir, index, ran=len(todo), skipped=skipped, failed=failed)


def _dump(run: SweepRun) -> dict[str, Any]:
    return run.config.model_dump(mode="json", by_alias=True)
