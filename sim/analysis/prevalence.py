"""Prevalence and incidence per meme and state, times to 10/50/90 %, final size.

Definitions (``n`` = number of agents; ``t`` = step index, counts taken at the end of the
step, as the ``steps`` table records them):

* state ``exposed`` — agents that have ever had a carrying entry by someone else in their
  retrieved context; ``carrier`` — agents that have ever written a carrying entry (seeds
  included); ``expressed`` — agents whose scored choice acted on the meme (ever; LLM
  runs with choice tasks, absent from older runs); ``infected`` — seeds plus agents with
  an infection edge (ever); ``adopter`` — agents holding the meme now (may fall when LLM
  probes revise adoption).
* prevalence(t) = count(t) / n.
* incidence(t) = agents entering the state during step t: the recorded ``new_exposed``,
  ``new_carriers``, ``new_adopters`` columns, and the step-to-step increase of
  ``infected`` (seeds included) for ``infected``.
* time to fraction f = the first step whose prevalence is >= f; null if never, i.e.
  right-censored at the last recorded step (a time is never beyond it; intervals over
  seeds keep to it too, see :mod:`sim.analysis.aggregate`).
* final size = prevalence (and count) at the last recorded step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from sim.analysis.recovery import RECOVERED, Recoveries

#: State name -> (count column, incidence column) of the ``steps`` table.
STATE_COLUMNS: dict[str, tuple[str, str | None]] = {
    "exposed": ("exposed", "new_exposed"),
    "carrier": ("carriers", "new_carriers"),
    "expressed": ("expressed", "new_expressed"),
    "adopter": ("adopters", "new_adopters"),
    "infected": ("infected", None),
}


def check_state(state: str) -> str:
    """Return ``state`` if known, else raise a ValueError listing the allowed states."""
    if state not in STATE_COLUMNS:
        raise ValueError(f"state = {state!r}: must be one of {sorted(STATE_COLUMNS)}")
    return state


def prevalence(steps: pl.DataFrame, n_agents: int) -> pl.DataFrame:
    """Prevalence and incidence per (meme, state, step), in long form.

    Args:
        steps: The ``steps`` table.
        n_agents: Number of agents (the denominator).

    Returns:
        Columns ``meme_id, state, step, count, prevalence, incidence`` sorted by meme,
        state, step.
    """
    if n_agents < 1:
        raise ValueError(f"n_agents = {n_agents}: must be a positive integer")
    frames = []
    ordered = steps.sort("meme_id", "step")
    for state, (count_col, new_col) in STATE_COLUMNS.items():
        if count_col not in steps.columns:
            continue  # e.g. ``expressed`` in runs recorded before it existed
        count = pl.col(count_col).cast(pl.Int64)
        if new_col is None:
            incidence = (count - count.shift(1, fill_value=0).over("meme_id")).alias("incidence")
        else:
            incidence = pl.col(new_col).cast(pl.Int64).alias("incidence")
        frames.append(
            ordered.select(
                "meme_id",
                pl.lit(state).alias("state"),
                pl.col("step").cast(pl.Int64),
                count.alias("count"),
                (count / n_agents).alias("prevalence"),
                incidence,
            )
        )
    return pl.concat(frames).sort("meme_id", "state", "step")


def time_to_fraction(
    prev: pl.DataFrame, fractions: Sequence[float] = (0.1, 0.5, 0.9), state: str = "adopter"
) -> pl.DataFrame:
    """The first step at which prevalence reaches each fraction, per meme.

    Args:
        prev: Output of :func:`prevalence`.
        fractions: Fractions of agents, each in (0, 1].
        state: Which state's prevalence.

    Returns:
        Columns ``meme_id`` and ``t<pct>`` for each fraction (``t10``, ``t50``, ``t90`` by
        default; Int64, null when not reached by the last step of ``prev``: censored
        there, not "infinitely late").
    """
    check_state(state)
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions: {f} is not in (0, 1]")
    sub = prev.filter(pl.col("state") == state)
    return (
        sub.group_by("meme_id", maintain_order=True)
        .agg(
            pl.col("step").filter(pl.col("prevalence") >= f - 1e-12).min().alias(_label(f))
            for f in fractions
        )
        .sort("meme_id")
    )


def _label(fraction: float) -> str:
    pct = fraction * 100
    return f"t{round(pct)}" if np.isclose(pct, round(pct)) else f"t{pct:g}"


def final_size(prev: pl.DataFrame, state: str = "infected") -> pl.DataFrame:
    """Count and prevalence at the last recorded step, per meme.

    Returns:
        Columns ``meme_id, final_count, final_size`` (size as a fraction of agents).
    """
    check_state(state)
    return (
        prev.filter(pl.col("state") == state)
        .sort("step")
        .group_by("meme_id")
        .agg(
            pl.col("count").last().alias("final_count"),
            pl.col("prevalence").last().alias("final_size"),
        )
        .sort("meme_id")
    )


def states_at(
    agents: pl.DataFrame,
    n_agents: int,
    step: int,
    meme_id: str,
    *,
    turnover: pl.DataFrame | None,
) -> pl.DataFrame:
    """Each agent's flags and state at the end of ``step`` for one meme, from the tables.

    Args:
        agents: The ``agents`` table (step, agent_id, meme_id, state, value).
        n_agents: Number of agents.
        step: The step (flags after it).
        meme_id: The meme.
        turnover: The ``turnover`` table (``run.tables.get("turnover")``); None for a
            run without turnover. Required: without it, a predecessor's adoption lost
            to its node's replacement would read as a recovery.

    Returns:
        One row per agent: ``agent_id, seeded, exposed, carrier, expressed, adopter``
        (booleans; the last event at or before ``step`` decides each flag; ``expressed``
        is False in runs without scored choices), ``recovered`` (it held the meme since
        its node's last replacement and holds it no longer: SIS/SIR recovery or a probe
        no longer endorsing it; :mod:`sim.analysis.recovery`, the dashboard's rule) and
        ``state``: ``"recovered"`` for a recovered agent (it is no adopter; its exposed
        and carrier flags stay, as the ``steps`` table counts them), else the most
        advanced of ``susceptible < exposed < carrier < expressed < adopter``.
    """
    events = agents.filter((pl.col("meme_id") == meme_id) & (pl.col("step") <= step))
    last = (
        events.with_row_index("order")
        .sort("order")
        .group_by("agent_id", "state")
        .agg(pl.col("value").last())
    )
    wide = pl.DataFrame({"agent_id": np.arange(n_agents, dtype=np.int32)})
    for flag in ("seeded", "exposed", "carrier", "expressed", "adopter"):
        col = last.filter(pl.col("state") == flag).select(
            pl.col("agent_id").cast(pl.Int32), pl.col("value").alias(flag)
        )
        wide = wide.join(col, on="agent_id", how="left", maintain_order="left").with_columns(
            pl.col(flag).fill_null(False)
        )
    recovered = Recoveries.of(events, turnover, n_agents, (meme_id,)).at(step)[:, 0]
    return wide.with_columns(pl.Series("recovered", recovered)).with_columns(
        pl.when(pl.col("recovered"))
        .then(pl.lit(RECOVERED))
        .when(pl.col("adopter"))
        .then(pl.lit("adopter"))
        .when(pl.col("expressed"))
        .then(pl.lit("expressed"))
        .when(pl.col("carrier"))
        .then(pl.lit("carrier"))
        .when(pl.col("exposed"))
        .then(pl.lit("exposed"))
        .otherwise(pl.lit("susceptible"))
        .alias("state")
    )
