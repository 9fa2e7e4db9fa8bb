"""Value drift: the ``values`` table (questionnaire scores) over time and with vs without memory.

The ``values`` table (see :data:`agents.values.VALUES_SCHEMA`) has one row per (step,
agent, memory condition, item); ``score`` is the item's endorsement of its dimension in
[0, 1] (NaN when the item could not be scored). Functions here average items into
dimensions, follow dimensions over time, and measure the effect of memory per agent.

Confidence intervals are Student-t 95 % intervals over agents (agents are the
independent units within a run: ``mean ± t_{0.975, n-1} * sd / sqrt(n)``; runs have
few agents, so the normal z would be too narrow), clipped to the range of the quantity
(scores in [0, 1], effects in [-1, 1]); with one agent both bounds are null. Pool seeds
by concatenating their tables with a ``run`` column and grouping by it first if runs
must not be mixed.
"""

from __future__ import annotations

import polars as pl

from sim.analysis.aggregate import confidence_interval

#: Confidence level of the intervals.
LEVEL = 0.95


def dimension_scores(values: pl.DataFrame) -> pl.DataFrame:
    """Mean item score per (step, agent, memory condition, dimension).

    Unscored items (NaN) are dropped. Columns: step, agent_id, memory, dimension, score,
    items (how many items were averaged).
    """
    return (
        values.filter(pl.col("score").is_not_nan())
        .group_by("step", "agent_id", "memory", "dimension")
        .agg(pl.col("score").mean().alias("score"), pl.len().cast(pl.Int32).alias("items"))
        .sort("step", "agent_id", "memory", "dimension")
    )


def _summarise(
    frame: pl.DataFrame, column: str, by: list[str], bounds: tuple[float, float]
) -> pl.DataFrame:
    """Per group of ``by``: the mean of ``column``, the number of agents, and its interval.

    The interval is :func:`sim.analysis.aggregate.confidence_interval`'s Student-t
    interval, clipped to ``bounds``; both bounds are null for one agent.
    """
    out = (
        frame.group_by(by)
        .agg(
            pl.col(column).mean().alias("mean"),
            pl.len().cast(pl.Int32).alias("agents"),
            pl.col(column).alias("_values"),
        )
        .sort(by)
    )
    intervals = [
        confidence_interval(values, level=LEVEL, bounds=bounds)[1:3]
        for values in out["_values"].to_list()
    ]
    return out.drop("_values").with_columns(
        pl.Series("ci_low", [low for low, _ in intervals], dtype=pl.Float64),
        pl.Series("ci_high", [high for _, high in intervals], dtype=pl.Float64),
    )


def value_drift(values: pl.DataFrame, memory: str = "with") -> pl.DataFrame:
    """Mean dimension score over agents at every questionnaire step, with a 95 % CI.

    Args:
        values: The ``values`` table.
        memory: Which condition to follow (``"with"``: as the agents run; ``"without"``:
            the audit's memory-free baseline).

    Returns:
        Columns step, dimension, mean, agents, ci_low, ci_high (null with one agent).
    """
    dims = dimension_scores(values.filter(pl.col("memory") == memory))
    return _summarise(dims, "score", ["step", "dimension"], (0.0, 1.0))


def memory_effect(values: pl.DataFrame) -> pl.DataFrame:
    """Per (step, agent, dimension): score with memories minus score without (audit mode).

    Only rows present in both conditions count. Columns: step, agent_id, dimension,
    with_memory, without_memory, effect.
    """
    dims = dimension_scores(values)
    with_ = dims.filter(pl.col("memory") == "with").select(
        "step", "agent_id", "dimension", pl.col("score").alias("with_memory")
    )
    without = dims.filter(pl.col("memory") == "without").select(
        "step", "agent_id", "dimension", pl.col("score").alias("without_memory")
    )
    return (
        with_.join(without, on=["step", "agent_id", "dimension"], how="inner")
        .with_columns((pl.col("with_memory") - pl.col("without_memory")).alias("effect"))
        .sort("step", "agent_id", "dimension")
    )


def memory_effect_summary(values: pl.DataFrame) -> pl.DataFrame:
    """Mean effect of memory per (step, dimension) over agents, with a 95 % CI.

    Columns step, dimension, mean, agents, ci_low, ci_high (see :func:`memory_effect`).
    """
    return _summarise(memory_effect(values), "effect", ["step", "dimension"], (-1.0, 1.0))
