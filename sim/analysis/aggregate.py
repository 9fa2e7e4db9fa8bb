"""Aggregation across replicate seeds (with confidence intervals) and across swept parameters.

Confidence intervals of a mean over ``n`` replicate values:

* ``"t"`` — Student t: ``mean ± t_{(1+level)/2, n-1} * sd / sqrt(n)``;
* ``"bootstrap"`` — percentile bootstrap: ``n_boot`` resamples with replacement drawn from
  ``numpy.random.default_rng(seed)`` (fixed seed: the same input gives the same interval);
  the interval is the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the resampled means.
  It lies within the range of the values by construction. With fewer than
  :data:`MIN_BOOTSTRAP_N` values the percentile bootstrap is too narrow (its resampled
  means ignore the t factor and the ``n/(n-1)`` variance correction: with 3 seeds a
  nominal 95 % band covers far less), so the t-interval is used instead.

Intervals stay in the valid range of the quantity: with ``bounds=(low, high)`` (e.g.
``(0, 1)`` for shares, ``(0, None)`` for counts and R0) the t-interval is clipped to it.
:func:`aggregate_metrics` and :func:`curve_bands` pass the bounds of their quantities
(:data:`sim.analysis.summary.METRIC_BOUNDS`; prevalence in ``[0, 1]``).

For one proportion of ``k`` successes in ``n`` trials (e.g. the share of agents in a
state in one run) use :func:`wilson_interval`, which lies in ``[0, 1]`` by construction.

With a single value both bounds are null; null (missing) values are dropped first, and
``n`` counts the values used.

Times to a fraction (``t10``, ``t50``, ``t90``) are observed only up to the runs' last
recorded step: a run that never reached the fraction has a null time (right-censored),
and no mean of observed times exceeds the last step, but the t-interval's upper bound
can. Such a bound is not reported as a number no run observed: with ``horizons``,
:func:`aggregate` clips it to the group's last step and sets ``<v>_high_censored``
(the true bound lies beyond the end of the runs); :func:`aggregate_metrics` does this
for the times of :func:`sweep_metrics` (its ``last_step`` column).

That mean covers only the seeds that reached the fraction (``<t>_n`` of them), so it
leans early: 2 of 10 seeds at 50 % by step 3 give ``t50_mean`` 3. :func:`aggregate_metrics`
therefore adds, per time, the censoring-aware ``<t>_km_median``: the Kaplan-Meier median
over all the group's seeds, each seed without the time right-censored at its
``last_step`` (:func:`sim.analysis.survival.km_median`). It is null when the KM curve
never drops to 0.5, i.e. (with the runs of a grid point equally long) when fewer than
half of the seeds reached the fraction; ``<t>_km_end`` is the last step the curve covers
(the largest time or ``last_step`` among the seeds), beyond which such a median lies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import polars as pl

from sim.analysis.loading import Run, Sweep
from sim.analysis.prevalence import check_state, prevalence
from sim.analysis.summary import METRIC_BOUNDS, METRICS, run_metrics
from sim.analysis.survival import km_median

Method = Literal["t", "bootstrap"]
#: The valid range of a quantity: (lowest, highest); None = unbounded on that side.
Bounds = tuple[float | None, float | None]

#: Fewest values for a percentile bootstrap; below it the t-interval is used.
MIN_BOOTSTRAP_N = 10

#: The times to a fraction among the metrics: observed only up to a run's last step.
TIMES = ("t10", "t50", "t90")

#: The tables of a run that :func:`run_curve` and :func:`sweep_curves` read (with its
#: manifest; see :data:`sim.analysis.summary.METRIC_TABLES` for ``n_agents``).
#: :func:`sweep_metrics` reads :data:`~sim.analysis.summary.METRIC_TABLES`.
CURVE_TABLES = ("steps",)


def _clip(value: float, bounds: Bounds) -> float:
    low, high = bounds
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def wilson_interval(
    successes: int, n: int, *, level: float = 0.95
) -> tuple[float | None, float | None]:
    """Wilson score interval of a binomial proportion ``successes / n``; within [0, 1].

    Returns:
        ``(low, high)``; both None when ``n`` is 0.
    """
    if not 0 < level < 1:
        raise ValueError(f"level = {level}: must be in (0, 1)")
    if not 0 <= successes <= n:
        raise ValueError(f"successes = {successes}, n = {n}: need 0 <= successes <= n")
    if n == 0:
        return None, None
    from scipy import stats

    z = float(stats.norm.ppf((1 + level) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def confidence_interval(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    method: Method = "t",
    n_boot: int = 2000,
    seed: int = 0,
    bounds: Bounds = (None, None),
) -> tuple[float | None, float | None, float | None, int]:
    """Mean and confidence interval of the mean (see the module docstring).

    Args:
        values: Replicate values (None and NaN are dropped).
        level: Confidence level.
        method: ``"t"``, or ``"bootstrap"`` (the t-interval below
            :data:`MIN_BOOTSTRAP_N` values).
        n_boot: Bootstrap resamples.
        seed: Seed of the bootstrap generator.
        bounds: The valid range of the quantity; the t-interval is clipped to it.

    Returns:
        ``(mean, low, high, n)``; mean is None for no values, the bounds for fewer than 2.
    """
    if not 0 < level < 1:
        raise ValueError(f"level = {level}: must be in (0, 1)")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method = {method!r}: must be 't' or 'bootstrap'")
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return None, None, None, 0
    mean = float(x.mean())
    if n < 2:
        return mean, None, None, n
    if method == "t" or n < MIN_BOOTSTRAP_N:
        from scipy import stats

        half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
        return mean, _clip(mean - half, bounds), _clip(mean + half, bounds), n
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return mean, float(low), float(high), n


def aggregate(
    frame: pl.DataFrame,
    by: Sequence[str],
    values: Sequence[str],
    *,
    level: float = 0.95,
    method: Method = "t",
    n_boot: int = 2000,
    seed: int = 0,
    bounds: Mapping[str, Bounds] | None = None,
    horizons: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Mean and confidence interval of each value column within each group.

    Args:
        frame: One row per replicate (and group).
        by: Group columns (e.g. the swept parameters, ``meme_id``, ``step``).
        values: Numeric columns to aggregate.
        level: Confidence level.
        method: ``"t"`` or ``"bootstrap"``.
        n_boot: Bootstrap resamples.
        seed: Seed of the bootstrap generator.
        bounds: Valid range per value column (intervals are kept inside it).
        horizons: Per value column, the column holding each row's largest observable
            value (e.g. ``last_step`` for a time to a fraction). An upper bound beyond
            the group's largest horizon is clipped to it and flagged (see Returns).

    Returns:
        The ``by`` columns, then for each value ``v``: ``v_mean, v_low, v_high, v_n``,
        and for each ``v`` in ``horizons`` ``v_high_censored`` (True when the unclipped
        upper bound lay beyond the horizon, so ``v_high`` is the horizon and the bound
        itself was not observed; null without a bound); sorted by ``by``.
    """
    horizons = dict(horizons or {})
    unknown = [v for v in horizons if v not in values]
    if unknown:
        raise ValueError(f"horizons: {unknown} are not among the values {list(values)}")
    missing = [c for c in [*by, *values, *horizons.values()] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {frame.columns}")
    rows = []
    groups = frame.group_by(list(by), maintain_order=True) if by else [((), frame)]
    for key, group in groups:
        row = dict(zip(by, key, strict=True))
        for v in values:
            mean, low, high, n = confidence_interval(
                group[v].cast(pl.Float64).to_list(),
                level=level,
                method=method,
                n_boot=n_boot,
                seed=seed,
                bounds=(bounds or {}).get(v, (None, None)),
            )
            row.update({f"{v}_mean": mean, f"{v}_low": low, f"{v}_high": high, f"{v}_n": n})
            if v in horizons:
                ends = group[horizons[v]].cast(pl.Float64).drop_nulls().to_numpy()
                horizon = float(ends.max()) if len(ends) else None
                beyond = high is not None and horizon is not None and high > horizon
                if beyond:
                    row[f"{v}_high"] = horizon
                row[f"{v}_high_censored"] = None if high is None else beyond
        rows.append(row)
    schema: dict[str, pl.DataType] = {b: frame.schema[b] for b in by}
    for v in values:
        schema.update(
            {
                f"{v}_mean": pl.Float64(),
                f"{v}_low": pl.Float64(),
                f"{v}_high": pl.Float64(),
                f"{v}_n": pl.Int64(),
            }
        )
        if v in horizons:
            schema[f"{v}_high_censored"] = pl.Boolean()
    out = pl.DataFrame(rows, schema=schema)
    return out.sort(list(by)) if by else out


def sweep_metrics(
    sweep: Sweep, *, window: int = 1, fit: bool = True, drift: bool = True
) -> pl.DataFrame:
    """:func:`sim.analysis.summary.run_metrics` of every complete run, with its parameters.

    ``window``, ``fit`` and ``drift`` go to :func:`~sim.analysis.summary.run_metrics`.

    Returns:
        The sweep parameters, ``seed``, ``run_dir``, ``last_step`` (the run's last
        recorded step: its times to a fraction are observed up to it, null beyond),
        then ``meme_id`` and the metrics.
    """
    frames = []
    keys = [*sweep.params, "seed", "run_dir"]
    for row, run in sweep.iter_runs():
        metrics = run_metrics(run, window=window, fit=fit, drift=drift)
        last_step = pl.lit(run.steps["step"].max(), dtype=pl.Int64).alias("last_step")
        frames.append(
            metrics.with_columns(pl.lit(row.get(k)).alias(k) for k in keys if k in row)
            .with_columns(last_step)
            .select(
                *(k for k in keys if k in row), "last_step", pl.all().exclude(*keys, "last_step")
            )
        )
    if not frames:
        raise ValueError(f"sweep {sweep.path}: no complete run to aggregate")
    return pl.concat(frames, how="diagonal_relaxed")


def aggregate_metrics(
    metrics: pl.DataFrame,
    by: Sequence[str],
    values: Sequence[str] = ("final_size", "t50", "r0", "structural_virality"),
    **kwargs: object,
) -> pl.DataFrame:
    """:func:`aggregate` of the metric columns of :func:`sweep_metrics` over replicate seeds.

    ``kwargs`` go to :func:`aggregate` (level, method, n_boot, seed); the intervals stay
    within :data:`sim.analysis.summary.METRIC_BOUNDS`, and the upper bounds of the times
    to a fraction (:data:`TIMES`) within the runs' ``last_step``, with
    ``<t>_high_censored`` saying where the interval reached beyond it (see the module
    docstring).

    Returns:
        The columns of :func:`aggregate` (``by``, ``meme_id``, then per value
        ``v_mean, v_low, v_high, v_n`` and for a time ``v_high_censored``); each time
        ``t`` is followed by ``t_km_median`` (the Kaplan-Meier median over the group's
        seeds, those without ``t`` censored at their ``last_step``; Int64, null when the
        curve never drops to 0.5) and ``t_km_end`` (the last step the curve covers).

    Raises:
        ValueError: An unknown metric, or a time without the ``last_step`` column.
    """
    unknown = [v for v in values if v not in METRICS]
    if unknown:
        raise ValueError(f"values: {unknown} are not metrics; choose from {list(METRICS)}")
    times = [v for v in values if v in TIMES]
    if times and "last_step" not in metrics.columns:
        raise ValueError(
            f"{times}: the frame has no last_step column (sweep_metrics gives it), so a "
            "bound beyond the end of the runs could not be told from an observed one"
        )
    kwargs.setdefault("bounds", METRIC_BOUNDS)
    kwargs.setdefault("horizons", dict.fromkeys(times, "last_step"))
    keys = [*by, "meme_id"]
    out = aggregate(metrics, keys, list(values), **kwargs)  # type: ignore[arg-type]
    if not times:
        return out
    km = _km_times(metrics, keys, times)
    # Each time's KM columns follow its own: after <t>_high_censored, or <t>_n without it.
    order = list(out.columns)
    for v in times:
        after = f"{v}_high_censored" if f"{v}_high_censored" in order else f"{v}_n"
        at = order.index(after) + 1
        order[at:at] = [f"{v}_km_median", f"{v}_km_end"]
    joined = out.join(km, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return joined.select(order)


def _km_times(metrics: pl.DataFrame, keys: list[str], times: Sequence[str]) -> pl.DataFrame:
    """Per group of ``keys``, the Kaplan-Meier median of each time and where its curve ends.

    A seed with a null time is censored at its ``last_step``; a seed with neither is left
    out (it says nothing about the time).
    """
    rows = []
    for key, group in metrics.group_by(keys, maintain_order=True):
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        for v in times:
            seen = group.filter(pl.col(v).is_not_null() | pl.col("last_step").is_not_null())
            observed = seen.select(pl.coalesce(pl.col(v), pl.col("last_step")).cast(pl.Int64))
            at = observed.to_series().to_numpy()
            row[f"{v}_km_median"] = km_median(at, seen[v].is_not_null().to_numpy())
            row[f"{v}_km_end"] = int(at.max()) if len(at) else None
        rows.append(row)
    schema: dict[str, pl.DataType] = {k: metrics.schema[k] for k in keys}
    for v in times:
        schema.update({f"{v}_km_median": pl.Int64(), f"{v}_km_end": pl.Int64()})
    return pl.DataFrame(rows, schema=schema)


def sweep_curves(sweep: Sweep, state: str = "adopter") -> pl.DataFrame:
    """Per-step prevalence of every complete run of a sweep, with its parameters.

    Returns:
        The sweep parameters, ``seed``, then ``meme_id, step, prevalence``.
    """
    check_state(state)
    frames = []
    for row, run in sweep.iter_runs():
        frames.append(
            run_curve(run, state).with_columns(
                pl.lit(row.get(k)).alias(k) for k in (*sweep.params, "seed") if k in row
            )
        )
    if not frames:
        raise ValueError(f"sweep {sweep.path}: no complete run")
    cols = [k for k in (*sweep.params, "seed") if k in frames[0].columns]
    return pl.concat(frames, how="diagonal_relaxed").select(*cols, "meme_id", "step", "prevalence")


def run_curve(run: Run, state: str = "adopter") -> pl.DataFrame:
    """One run's prevalence of ``state``: columns ``meme_id, step, prevalence``."""
    check_state(state)
    return (
        prevalence(run.steps, run.n_agents)
        .filter(pl.col("state") == state)
        .select("meme_id", "step", "prevalence")
    )


def curve_bands(
    curves: pl.DataFrame,
    by: Sequence[str] = (),
    *,
    value: str = "prevalence",
    level: float = 0.95,
    method: Method = "t",
    seed: int = 0,
) -> pl.DataFrame:
    """Mean curve and confidence band per group and step, across replicate seeds.

    A ``prevalence`` band stays within [0, 1] (see the module docstring).

    Returns:
        The ``by`` columns, ``meme_id``, ``step``, then ``mean, low, high, n``.
    """
    agg = aggregate(
        curves,
        [*by, "meme_id", "step"],
        [value],
        level=level,
        method=method,
        seed=seed,
        bounds={"prevalence": (0.0, 1.0)},
    )
    return agg.rename(
        {f"{value}_mean": "mean", f"{value}_low": "low", f"{value}_high": "high", f"{value}_n": "n"}
    )
