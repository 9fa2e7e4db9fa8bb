"""Which agents have recovered from a meme after each step, read from a run's tables.

The ``agents`` table logs adoption as ``adopter`` rows: ``true`` when an agent takes a
meme up, ``false`` when it loses it (SIS/SIR recovery, a probe no longer endorsing it, or
its node's turnover). The ``turnover`` table names the agents replaced at the start of
each step, before anything else of that step happens (:mod:`sim.turnover`).

An agent is **recovered** after step ``t`` when it held the meme at some point since its
node's last replacement (at or before ``t``) and holds it no longer: the tracker's
``recovered`` flag of the agents that are not adopters (:class:`sim.tracking.Tracker`),
which no table stores. A replaced agent is a new individual: its predecessor's adoption
and recovery do not pass on (it is susceptible again, :mod:`sim.turnover`), so it is
not recovered until it adopts and loses the meme itself.

The one rule for every figure and page that shows recovered agents:
:func:`sim.analysis.prevalence.states_at` (the network figure of :mod:`sim.plots`) and
the dashboard (:mod:`experiments.dashboard.view`) both read it from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

#: The node state of a recovered agent (see the module docstring).
RECOVERED = "recovered"


@dataclass(frozen=True, eq=False)
class Recoveries:
    """The ``adopter`` rows and replacements of a run, walked step by step.

    Attributes:
        n_agents: Number of agents.
        meme_ids: The memes (columns of :meth:`at`, in this order).
        adoption: The ``adopter`` rows in table order: ``step, agent_id, meme, value``
            (``meme`` the index into ``meme_ids``).
        replaced: The replacements: ``step, agent_id``.
    """

    n_agents: int
    meme_ids: tuple[str, ...]
    adoption: pl.DataFrame
    replaced: pl.DataFrame

    @classmethod
    def of(
        cls,
        agents: pl.DataFrame,
        turnover: pl.DataFrame | None,
        n_agents: int,
        meme_ids: tuple[str, ...],
    ) -> Recoveries:
        """The recoveries of a run from its ``agents`` and ``turnover`` tables.

        Args:
            agents: The ``agents`` table (step, agent_id, meme_id, state, value).
            turnover: The ``turnover`` table (step, agent_id, ...); None for a run
                without turnover.
            n_agents: Number of agents.
            meme_ids: The memes.
        """
        index = pl.DataFrame(
            {"meme_id": list(meme_ids), "meme": np.arange(len(meme_ids), dtype=np.int32)}
        )
        adoption = (
            agents.filter(pl.col("state") == "adopter")
            .join(index, on="meme_id", how="inner", maintain_order="left")
            .select(
                pl.col("step").cast(pl.Int64),
                pl.col("agent_id").cast(pl.Int64),
                "meme",
                "value",
            )
        )
        if turnover is None:
            replaced = pl.DataFrame(schema={"step": pl.Int64, "agent_id": pl.Int64})
        else:
            replaced = turnover.select(
                pl.col("step").cast(pl.Int64), pl.col("agent_id").cast(pl.Int64)
            )
        return cls(n_agents=n_agents, meme_ids=meme_ids, adoption=adoption, replaced=replaced)

    def walk(self, last_step: int) -> Iterator[tuple[int, np.ndarray]]:
        """Each step from 0 to ``last_step`` with who is recovered after it.

        Yields:
            ``(step, recovered)``, ``recovered`` a boolean array of shape
            ``(n_agents, len(meme_ids))``, a fresh array each step.
        """
        shape = (self.n_agents, len(self.meme_ids))
        held = np.zeros(shape, dtype=np.bool_)  # holds the meme now
        had = np.zeros(shape, dtype=np.bool_)  # has held it since its node's replacement
        steps, agent, meme, value = self._rows
        swap_steps, swap_agents = self._swaps
        for step in range(last_step + 1):
            # The turnover comes first in a step: the new agent has held nothing.
            lo, hi = np.searchsorted(swap_steps, [step, step + 1])
            had[swap_agents[lo:hi]] = False
            lo, hi = np.searchsorted(steps, [step, step + 1])
            if hi > lo:
                a, m, v = agent[lo:hi], meme[lo:hi], value[lo:hi]
                had[a[v], m[v]] = True
                # The last row of an (agent, meme) in the step decides whether it holds it.
                key = a * len(self.meme_ids) + m
                _, last = np.unique(key[::-1], return_index=True)
                last = len(key) - 1 - last
                held[a[last], m[last]] = v[last]
            yield step, had & ~held

    @cached_property
    def _rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The ``adopter`` rows by step, in table order within a step (sorted once)."""
        rows = self.adoption.with_row_index("order").sort("step", "order")
        return (
            rows["step"].to_numpy(),
            rows["agent_id"].to_numpy(),
            rows["meme"].to_numpy().astype(np.int64),
            rows["value"].to_numpy(),
        )

    @cached_property
    def _swaps(self) -> tuple[np.ndarray, np.ndarray]:
        """The replacements' steps (sorted) and agents."""
        swaps = self.replaced.sort("step")
        return swaps["step"].to_numpy(), swaps["agent_id"].to_numpy()

    def at(self, step: int) -> np.ndarray:
        """Who is recovered after ``step``: booleans of shape ``(n_agents, len(meme_ids))``."""
        after = np.zeros((self.n_agents, len(self.meme_ids)), dtype=np.bool_)
        for _, recovered in self.walk(step):
            after = recovered
        return after

    def prevalence(self, last_step: int) -> pl.DataFrame:
        """The recovered state per step and meme, as :func:`sim.analysis.prevalence.prevalence`.

        Columns ``meme_id, state, step, count, prevalence, incidence`` (``state`` is
        ``"recovered"``; ``incidence``: agents recovered after the step that were not
        after the step before), sorted by meme and step.
        """
        previous = np.zeros((self.n_agents, len(self.meme_ids)), dtype=np.bool_)
        frames = []
        for step, recovered in self.walk(last_step):
            frames.append(
                pl.DataFrame(
                    {
                        "meme_id": list(self.meme_ids),
                        "step": np.full(len(self.meme_ids), step, dtype=np.int64),
                        "count": recovered.sum(axis=0).astype(np.int64),
                        "incidence": (recovered & ~previous).sum(axis=0).astype(np.int64),
                    }
                )
            )
            previous = recovered
        schema = {"meme_id": pl.String, "step": pl.Int64, "count": pl.Int64, "incidence": pl.Int64}
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
        return frame.select(
            "meme_id",
            pl.lit(RECOVERED).alias("state"),
            "step",
            "count",
            (pl.col("count") / max(self.n_agents, 1)).alias("prevalence"),
            "incidence",
        ).sort("meme_id", "step")
