"""Runs side by side: e.g. LLM agents vs the classical contagion policy on the same network.

A fair comparison holds the graph and the bank layout fixed and varies only the policy;
:func:`same_layout` checks that from the runs' ``graph`` and ``bank_members`` tables.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from sim.analysis.loading import Run
from sim.analysis.prevalence import prevalence
from sim.analysis.summary import METRICS, run_metrics


def same_layout(a: Run, b: Run) -> bool:
    """Whether two runs share the graph (edge table) and the bank membership table."""
    for name in ("graph", "bank_members"):
        if name not in a.tables or name not in b.tables:
            return False
        if not a.tables[name].equals(b.tables[name]):
            return False
    return True


def _check(runs: Mapping[str, Run]) -> None:
    if len(runs) < 1:
        raise ValueError("runs: pass at least one labelled run, e.g. {'llm': a, 'contagion': b}")


def compare_runs(runs: Mapping[str, Run], *, window: int = 1) -> pl.DataFrame:
    """The metrics of :func:`sim.analysis.summary.run_metrics` side by side.

    Args:
        runs: Runs by label (e.g. ``{"llm": run_a, "contagion": run_b}``).
        window: Window of ``r0_window``.

    Returns:
        One row per (meme, metric); columns ``meme_id, metric`` and one Float64 column per
        label (null where the metric is undefined for that run).
    """
    _check(runs)
    wide = None
    for label, run in runs.items():
        metrics = run_metrics(run, window=window)
        long = metrics.select("meme_id", *(pl.col(m).cast(pl.Float64) for m in METRICS)).unpivot(
            index="meme_id", variable_name="metric", value_name=label
        )
        wide = (
            long
            if wide is None
            else wide.join(long, on=["meme_id", "metric"], how="full", coalesce=True)
        )
    assert wide is not None
    order = {m: i for i, m in enumerate(METRICS)}
    return wide.sort("meme_id", pl.col("metric").replace_strict(order, return_dtype=pl.Int64))


def prevalence_side_by_side(runs: Mapping[str, Run], state: str = "adopter") -> pl.DataFrame:
    """Prevalence curves of several runs in one long table with a ``label`` column.

    Returns:
        Columns ``label, meme_id, step, prevalence`` for ``state``.
    """
    _check(runs)
    frames = [
        prevalence(run.steps, run.n_agents)
        .filter(pl.col("state") == state)
        .select(pl.lit(label).alias("label"), "meme_id", "step", "prevalence")
        for label, run in runs.items()
    ]
    return pl.concat(frames)
