"""When, how and from whom each agent got each meme: the nodes of the transmission tree.

An agent acquires a meme in one of three ways, per (meme, agent), the earliest deciding:

* ``seeded`` — the experimenter seeded it (an ``agents`` event with state ``seeded``);
  generation 0, no source;
* ``transmission`` — its infection edge (``transmissions`` row with ``is_infection``):
  the step of that edge, generation = the edge's ``hop``, source = ``source_agent``
  (``-1`` = the environment, for memes seeded into a bank);
* ``spontaneous`` — it wrote a carrying entry without any carrying entry by someone else
  in its context (first ``carrier`` event, no infection edge); generation 0 and no source:
  like a seed, it roots a cascade of its own (the tracker also gives its transmissions
  hop 1).

The environment (agent ``-1``) is included as a node when it is the source of an edge:
generation 0, origin ``environment``, step = the step of its earliest carrying entry when
``memories`` is given, else the step of its earliest outgoing edge.

When does an agent become infectious? Seed entries are written at the start of their step
and are retrievable in that same step; an agent's own writes are committed at the end of
the step and become visible at the next one. So ``infectious_from`` = ``step`` for
``seeded`` and ``environment`` nodes, and ``step + 1`` otherwise.
"""

from __future__ import annotations

import polars as pl

from sim.memory import ENVIRONMENT

_ORIGIN_RANK = {"seeded": 0, "environment": 0, "transmission": 1, "spontaneous": 2}

SCHEMA = {
    "meme_id": pl.String,
    "agent_id": pl.Int64,
    "step": pl.Int64,
    "generation": pl.Int64,
    "source_agent": pl.Int64,
    "origin": pl.String,
}


def infection_times(
    transmissions: pl.DataFrame, agents: pl.DataFrame, memories: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per (meme, agent) that acquired the meme (see the module docstring).

    Args:
        transmissions: The ``transmissions`` table.
        agents: The ``agents`` table (state-change events).
        memories: The ``memories`` table (optional; dates the environment's seeding).

    Returns:
        Columns ``meme_id, agent_id, step, generation, source_agent, origin,
        infectious_from``, sorted by meme, step, agent.
    """
    seeded = agents.filter((pl.col("state") == "seeded") & pl.col("value")).select(
        "meme_id",
        pl.col("agent_id").cast(pl.Int64),
        pl.col("step").cast(pl.Int64),
        pl.lit(0, dtype=pl.Int64).alias("generation"),
        pl.lit(None, dtype=pl.Int64).alias("source_agent"),
        pl.lit("seeded").alias("origin"),
    )
    edges = transmissions.filter(pl.col("is_infection")).select(
        "meme_id",
        pl.col("target_agent").cast(pl.Int64).alias("agent_id"),
        pl.col("step").cast(pl.Int64),
        pl.col("hop").cast(pl.Int64).alias("generation"),
        pl.col("source_agent").cast(pl.Int64),
        pl.lit("transmission").alias("origin"),
    )
    spontaneous = (
        agents.filter((pl.col("state") == "carrier") & pl.col("value"))
        .group_by("meme_id", "agent_id")
        .agg(pl.col("step").min())
        .select(
            "meme_id",
            pl.col("agent_id").cast(pl.Int64),
            pl.col("step").cast(pl.Int64),
            pl.lit(0, dtype=pl.Int64).alias("generation"),
            pl.lit(None, dtype=pl.Int64).alias("source_agent"),
            pl.lit("spontaneous").alias("origin"),
        )
    )
    env_edges = transmissions.filter(pl.col("source_agent") == ENVIRONMENT)
    if memories is not None and len(env_edges):
        env = (
            memories.filter(pl.col("author_id") == ENVIRONMENT)
            .explode("memes")
            .group_by(pl.col("memes").alias("meme_id"))
            .agg(pl.col("step").min().cast(pl.Int64))
            .join(env_edges.select("meme_id").unique(), on="meme_id", how="semi")
        )
    else:
        env = env_edges.group_by("meme_id").agg(pl.col("step").min().cast(pl.Int64))
    env = env.select(
        "meme_id",
        pl.lit(ENVIRONMENT, dtype=pl.Int64).alias("agent_id"),
        "step",
        pl.lit(0, dtype=pl.Int64).alias("generation"),
        pl.lit(None, dtype=pl.Int64).alias("source_agent"),
        pl.lit("environment").alias("origin"),
    )
    frames = [f.cast(SCHEMA) for f in (seeded, edges, spontaneous, env)]  # type: ignore[arg-type]
    rank = pl.col("origin").replace_strict(_ORIGIN_RANK, return_dtype=pl.Int64)
    return (
        pl.concat(frames)
        # Stable: of two candidates tied on step and origin (e.g. two infection edges into
        # one agent in one step), the first in the tables wins, on any thread count.
        .sort("meme_id", "agent_id", "step", rank, maintain_order=True)
        .group_by("meme_id", "agent_id", maintain_order=True)
        .first()
        .with_columns(
            pl.when(pl.col("origin").is_in(["seeded", "environment"]))
            .then(pl.col("step"))
            .otherwise(pl.col("step") + 1)
            .alias("infectious_from")
        )
        .sort("meme_id", "step", "agent_id")
    )
