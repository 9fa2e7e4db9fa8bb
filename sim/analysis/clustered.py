"""Inference for means of clustered decisions: stratified cluster resampling, robust errors.

Decisions of one agent (and, across seeds, of one run) are correlated, so the units of
resampling and of the standard error are clusters, never single decisions.

* :func:`stratified_weights` draws bootstrap replicates that resample units with
  replacement *within* strata: each replicate has as many units of each stratum as the
  data. With strata defined by which arms a unit has decisions in, no replicate ever
  leaves an arm empty (a plain cluster bootstrap with few agents per arm does, and
  dropping those replicates would bias the interval towards the replicates that kept
  every arm).
* :func:`ratio_mean_se` is the cluster-robust (sandwich, CR1) standard error of a mean
  of decisions ``sum(s_c) / sum(n_c)`` over clusters ``c`` with outcome sums ``s_c``
  and decision counts ``n_c``: with the influence ``u_c = (s_c - m * n_c) / sum(n)``,
  ``se^2 = G / (G - 1) * sum_c u_c^2`` for ``G`` clusters. With equal cluster sizes it is
  the standard error of the mean of the cluster means (``sd / sqrt(G)``), so a Student-t
  interval with ``G - 1`` degrees of freedom equals
  :func:`sim.analysis.aggregate.confidence_interval` over the cluster means.
* :func:`share_interval` is that mean with its CR1 error and Student-t interval
  (``G - 1`` degrees of freedom), clipped to [0, 1], for shares and probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def stratified_weights(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap multiplicities of units resampled with replacement within strata.

    Args:
        strata: One stratum label per unit (any sortable labels); units of a stratum are
            resampled among themselves, as many draws as the stratum has units.
        n_boot: Replicates.
        rng: The generator; strata are drawn in sorted label order, so the same input
            and generator state give the same weights.

    Returns:
        Array ``(n_boot, n_units)``: how many times each unit is drawn in each replicate
        (a stratum's row sums equal its size).
    """
    strata = np.asarray(strata)
    n_units = len(strata)
    counts = np.zeros(n_boot * n_units, dtype=np.int64)
    offsets = (np.arange(n_boot) * n_units)[:, None]
    for label in np.unique(strata):
        members = np.flatnonzero(strata == label)
        draws = rng.integers(0, len(members), size=(n_boot, len(members)))
        counts += np.bincount((offsets + members[draws]).ravel(), minlength=n_boot * n_units)
    return counts.reshape(n_boot, n_units).astype(np.float64)


def ratio_mean_se(sums: np.ndarray, counts: np.ndarray) -> float | None:
    """Cluster-robust (CR1) standard error of ``sums.sum() / counts.sum()``.

    Args:
        sums: Per cluster, the sum of the outcome over its decisions.
        counts: Per cluster, its number of decisions; clusters with none are ignored.

    Returns:
        The standard error (see the module docstring); None with fewer than 2 clusters
        holding a decision.
    """
    keep = np.asarray(counts) > 0
    s, n = np.asarray(sums, dtype=float)[keep], np.asarray(counts, dtype=float)[keep]
    g = len(n)
    if g < 2:
        return None
    mean = s.sum() / n.sum()
    u = (s - mean * n) / n.sum()
    return float(np.sqrt(g / (g - 1) * np.sum(u**2)))


@dataclass(frozen=True)
class ShareInterval:
    """A mean of clustered decisions (a share or probability) with its interval.

    Attributes:
        mean: ``sum(sums) / sum(counts)``.
        se: Its cluster-robust standard error (:func:`ratio_mean_se`); None with fewer
            than 2 clusters.
        low: ``mean - t * se`` with ``t`` the ``(1 + level) / 2`` quantile of Student's
            t with ``n_clusters - 1`` degrees of freedom, at least 0; None without ``se``.
        high: ``mean + t * se``, at most 1; None without ``se``.
        n_clusters: Clusters holding a decision (``G``).
    """

    mean: float
    se: float | None
    low: float | None
    high: float | None
    n_clusters: int


def share_interval(sums: np.ndarray, counts: np.ndarray, level: float) -> ShareInterval:
    """The mean of clustered 0/1 (or [0, 1]) outcomes with a clustered t-interval.

    Args:
        sums: Per cluster, the sum of the outcome over its decisions.
        counts: Per cluster, its number of decisions (at least one cluster has one).
        level: Confidence level of the interval.
    """
    from scipy import stats

    counts = np.asarray(counts, dtype=float)
    g = int((counts > 0).sum())
    mean = float(np.sum(sums) / counts.sum())
    se = ratio_mean_se(sums, counts)
    if se is None:
        return ShareInterval(mean, None, None, None, g)
    half = float(stats.t.ppf((1 + level) / 2, g - 1)) * se
    return ShareInterval(mean, se, max(0.0, mean - half), min(1.0, mean + half), g)
