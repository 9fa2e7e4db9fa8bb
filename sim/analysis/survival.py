"""Kaplan-Meier estimates of a time to an event over replicates, some right-censored.

A time to a fraction (``t50``: the first step at which 50 % of the agents adopted) is
observed only up to a run's last step: a run that never got there is right-censored at
its last step (it had not reached the fraction by then). Leaving such runs out biases a
mean early; the Kaplan-Meier estimator uses them for as long as they were observed.

With distinct times ``t_1 < t_2 < ...``, ``d_i`` runs reaching the event at ``t_i`` and
``n_i`` runs at risk there (those whose time, event or censoring, is ``>= t_i``: a run
censored at ``t_i`` was still observed without the event at ``t_i``, so at the same
time events come before censorings), the share not yet reached after ``t`` is

    S(t) = prod_{t_i <= t} (1 - d_i / n_i).

The KM median is the smallest time with ``S(t) <= 0.5`` (the convention of lifelines'
``median_survival_time_``; R's ``survfit`` instead takes the midpoint to the next event
time when ``S`` is exactly 0.5). It is None when ``S`` never drops to 0.5 within the
observed times, i.e. the median lies beyond the last of them; without censoring before
the last event that is when fewer than half of the runs reached the event.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

#: Tolerance of ``S(t) <= 0.5`` (a product such as 4/5 * 5/8 is 0.5 only up to rounding).
_HALF_TOL = 1e-12


def _checked(
    times: Sequence[int] | np.ndarray, reached: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=float)
    r = np.asarray(reached, dtype=bool)
    if t.ndim != 1 or t.shape != r.shape:
        raise ValueError(f"times ({t.shape}) and reached ({r.shape}) must be 1-d, one per run")
    if not np.isfinite(t).all():
        raise ValueError("times: every run needs a finite time (its event or censoring time)")
    if (t != np.round(t)).any():
        raise ValueError(f"times: {t[t != np.round(t)].tolist()} are not integer steps")
    return t.astype(np.int64), r


def kaplan_meier(
    times: Sequence[int] | np.ndarray, reached: Sequence[bool] | np.ndarray
) -> pl.DataFrame:
    """Kaplan-Meier curve of right-censored integer times (see the module docstring).

    Args:
        times: Per run, the step of the event when ``reached``, else the last step it
            was observed without it (its censoring time).
        reached: Per run, whether the event happened (False = right-censored).

    Returns:
        One row per distinct time (event or censoring), ascending: ``time``,
        ``at_risk`` (runs with a time ``>=`` it), ``reached`` (events there),
        ``censored`` (censorings there), ``survival`` (``S(time)``, the share that had
        not reached the event by then). Empty for no runs.

    Raises:
        ValueError: Lengths differ, or a time is missing, infinite or not an integer.
    """
    t, r = _checked(times, reached)
    distinct = np.unique(t)
    at_risk = np.array([(t >= x).sum() for x in distinct], dtype=np.int64)
    events = np.array([(r & (t == x)).sum() for x in distinct], dtype=np.int64)
    censored = np.array([(~r & (t == x)).sum() for x in distinct], dtype=np.int64)
    survival = np.cumprod(1.0 - events / at_risk) if len(distinct) else np.array([])
    return pl.DataFrame(
        {
            "time": distinct,
            "at_risk": at_risk,
            "reached": events,
            "censored": censored,
            "survival": survival,
        },
        schema={
            "time": pl.Int64,
            "at_risk": pl.Int64,
            "reached": pl.Int64,
            "censored": pl.Int64,
            "survival": pl.Float64,
        },
    )


def km_median(
    times: Sequence[int] | np.ndarray, reached: Sequence[bool] | np.ndarray
) -> int | None:
    """The Kaplan-Meier median time: the smallest time with ``S(t) <= 0.5``.

    Args:
        times: As for :func:`kaplan_meier`.
        reached: As for :func:`kaplan_meier`.

    Returns:
        That time (always a step at which some run reached the event); None when the
        curve stays above 0.5 (the median lies beyond the last observed time) or there
        are no runs.
    """
    curve = kaplan_meier(times, reached)
    below = curve.filter(pl.col("survival") <= 0.5 + _HALF_TOL)
    return None if below.is_empty() else int(below["time"][0])
