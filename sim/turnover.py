"""Agent turnover: successive generations of agents on the same nodes.

With a :class:`TurnoverSpec`, at the start of every step ``t >= start_step`` (before the
step's seed entries are injected), every agent is independently replaced with
probability ``rate`` (one draw per agent from the model's generator, in agent order).
A replaced agent is a new individual on the same node:

* it keeps its node, its graph neighbours, its rights on shared banks and everything in
  them (its predecessor's shared writes stay);
* its private bank(s) are emptied: their alive entries are removed at step ``t``
  (``memories.removed_step = t``);
* it holds no meme: a predecessor that held one loses it (``steps.lost_adopters``, an
  ``adopter = false`` row in ``agents``), and it is susceptible again (the contagion
  policy's SIR immunity does not pass on), and the one-shot cascade gives it fresh
  chances;
* its *agent generation* (``Tracker.lineage``) grows by one (0 = the original agent);
  LLM agents take the next persona of the persona list
  (:func:`agents.personas.persona_of`; the ``personas`` table records it).

The tracker's "ever" flags (exposed, carrier, infected, the transmission tree's
``generation``) stay per node. So memes that persist only in shared memory can be told
apart from memes carried by individuals: after turnover, carriage must come back
through retrieval.

Agent generation is not the transmission tree's ``generation`` (hops from a seed) nor
the ``generations`` table (LLM completions). The ``turnover`` table has one row per
replacement (``step, agent_id, agent_generation``); :func:`agent_generation_at` puts the
agent generation on any table with an agent and a step column, and
:func:`carrying_entries_by_layer` counts a meme's entries in private vs shared banks over
time.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sim.memory import MemoryStore
from sim.retrieval import expand_ranges
from topologies.banks import BankKind, Banks

TURNOVER_SCHEMA = {"step": pl.Int32, "agent_id": pl.Int32, "agent_generation": pl.Int32}


class TurnoverSpec(BaseModel):
    """Agent turnover (``[turnover]``).

    Attributes:
        rate: Probability per step that an agent is replaced by a new one, in [0, 1].
        start_step: First step at whose start agents may be replaced (default 1: the
            original agents live through step 0).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(ge=0, le=1)
    start_step: int = Field(1, ge=0)


def draw_replacements(
    spec: TurnoverSpec, n_agents: int, step: int, rng: np.random.Generator
) -> np.ndarray:
    """The agents replaced at the start of ``step`` (ascending; no draws before ``start_step``)."""
    if step < spec.start_step or spec.rate == 0:
        return np.zeros(0, dtype=np.int32)
    return np.flatnonzero(rng.random(n_agents) < spec.rate).astype(np.int32)


def private_entries(store: MemoryStore, banks: Banks, agents: np.ndarray) -> np.ndarray:
    """Alive entries in the private banks the ``agents`` may write (ascending ids)."""
    if len(agents) == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.diff(banks.write_indptr)[agents]
    writable = banks.write_banks[expand_ranges(banks.write_indptr[agents], counts)]
    private = writable[~banks.shared[writable]]
    mark = np.zeros(banks.n_banks, dtype=np.bool_)
    mark[private] = True
    alive = store.alive_ids()
    return alive[mark[store.bank[alive]]].astype(np.int64)


def turnover_rows(step: int, agents: np.ndarray, lineage: np.ndarray) -> pl.DataFrame:
    """Rows of the ``turnover`` table for the agents replaced at ``step``."""
    return pl.DataFrame(
        {
            "step": np.full(len(agents), step, dtype=np.int32),
            "agent_id": agents.astype(np.int32),
            "agent_generation": lineage[agents].astype(np.int32),
        },
        schema=TURNOVER_SCHEMA,
    )


def agent_generation_at(
    turnover: pl.DataFrame,
    frame: pl.DataFrame,
    *,
    agent: str = "agent_id",
    step: str = "step",
) -> pl.DataFrame:
    """``frame`` with an ``agent_generation`` column: the generation of each row's agent.

    The column says which generation of agent ``frame[agent]`` was on its node at step
    ``frame[step]``. A replacement at step ``t`` happens at the start of ``t``, so rows
    of step ``t`` belong to the new generation. Use ``agent="author_id"`` for the
    ``memories`` table (authors -1, the environment, get generation 0).

    Args:
        turnover: The ``turnover`` table.
        frame: Any table with an agent column and a step column.
        agent: The agent column of ``frame``.
        step: The step column of ``frame``.
    """
    counts = (
        frame.select(
            pl.col(agent).cast(pl.Int64).alias("_a"), pl.col(step).cast(pl.Int64).alias("_s")
        )
        .unique()
        .join(
            turnover.select(
                pl.col("agent_id").cast(pl.Int64).alias("_a"),
                pl.col("step").cast(pl.Int64).alias("_t"),
            ),
            on="_a",
            how="left",
            maintain_order="left",
        )
        .group_by("_a", "_s")
        .agg((pl.col("_t") <= pl.col("_s")).sum().cast(pl.Int32).alias("agent_generation"))
    )
    return (
        frame.with_row_index("_row")
        .with_columns(
            pl.col(agent).cast(pl.Int64).alias("_a"), pl.col(step).cast(pl.Int64).alias("_s")
        )
        .join(counts, on=["_a", "_s"], how="left", maintain_order="left")
        .sort("_row")
        .drop("_row", "_a", "_s")
    )


def carrying_entries_by_layer(
    memories: pl.DataFrame, banks: pl.DataFrame, last_step: int
) -> pl.DataFrame:
    """Per step and meme, how many carrying entries exist in private vs shared banks.

    With turnover, a meme carried by individuals lives in private banks and dies with
    its carriers; a meme that persists only in shared memory keeps its shared entries
    after every agent that wrote them has been replaced. An entry counts at step ``t``
    when it was written at or before ``t`` and not removed before ``t``
    (``removed_step`` is -1 or at least ``t``: an entry removed at ``t`` was still
    retrievable in ``t``).

    Args:
        memories: The ``memories`` table.
        banks: The ``banks`` table (``bank_id``, ``kind``).
        last_step: The last step to report (e.g. ``steps["step"].max()``).

    Returns:
        Columns ``meme_id, step, private, shared`` (entry counts), every step
        ``0..last_step`` for every meme that has a carrying entry.
    """
    if last_step < 0:
        raise ValueError(f"last_step = {last_step}: must be >= 0")
    entries = (
        memories.select(
            pl.col("bank_id").cast(pl.Int64),
            pl.col("step").cast(pl.Int64).alias("written"),
            pl.col("removed_step").cast(pl.Int64),
            pl.col("memes").alias("meme_id"),
        )
        .explode("meme_id")
        .drop_nulls("meme_id")
        .join(
            banks.select(
                pl.col("bank_id").cast(pl.Int64),
                (pl.col("kind") == BankKind.PRIVATE.label).alias("private"),
            ),
            on="bank_id",
        )
    )
    memes = entries.select("meme_id").unique()
    grid = memes.join(pl.DataFrame({"step": np.arange(last_step + 1, dtype=np.int64)}), how="cross")
    live = (
        grid.join(entries, on="meme_id")
        .filter(
            (pl.col("written") <= pl.col("step"))
            & ((pl.col("removed_step") < 0) | (pl.col("removed_step") >= pl.col("step")))
        )
        .group_by("meme_id", "step")
        .agg(
            pl.col("private").sum().cast(pl.Int64).alias("private"),
            (~pl.col("private")).sum().cast(pl.Int64).alias("shared"),
        )
    )
    return (
        grid.join(live, on=["meme_id", "step"], how="left", maintain_order="left")
        .with_columns(pl.col("private", "shared").fill_null(0))
        .sort("meme_id", "step")
    )
