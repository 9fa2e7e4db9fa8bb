"""Tracking: exposure, carriage, adoption and transmission of every meme.

Per (agent, meme) the tracker keeps four flags:

* exposed — an entry carrying the meme, written by someone else, was in the agent's
  retrieved context (ever);
* carrier — the agent has written an entry carrying the meme (ever);
* expressed — the agent has acted on the meme (ever): its scored choice in a decision
  task was one of the meme's ``target_options``;
* adopter — the agent holds the meme now (contagion rule, or the last adoption probe).

When an agent writes an entry carrying a meme and its context held a carrying entry by
another author (or by the environment), that is a transmission edge from that author.
The first edge into an agent for a meme is its infection edge; infection edges form the
transmission tree, whose roots are the seeded agents (or the environment, for memes
seeded into a bank).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import polars as pl

from sim.memory import ENVIRONMENT, MemoryStore
from sim.retrieval import Retrieval, expand_ranges
from sim.rowlog import RowLog
from sim.state import State, frame_list
from sim.unique import sorted_unique

#: Schema of the ``agents`` table (:meth:`Tracker.events_frame`): one state change a row.
AGENTS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "meme_id": pl.String,
    "state": pl.String,
    "value": pl.Boolean,
}

#: Schema of the ``transmissions`` table (:meth:`Tracker.edges_frame`): one edge a row.
TRANSMISSIONS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "meme_id": pl.String,
    "step": pl.Int32,
    "source_agent": pl.Int32,
    "target_agent": pl.Int32,
    "source_entry": pl.Int64,
    "target_entry": pl.Int64,
    "hop": pl.Int32,
    "is_infection": pl.Boolean,
}


def run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a new run of equal values starts in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.ones(len(sorted_keys), dtype=np.bool_)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.flatnonzero(starts)


def _context_sources(
    retrieval: Retrieval, store: MemoryStore, meme: int, writers: np.ndarray
) -> np.ndarray:
    """Per writer, the best-ranked entry of its context exposing it to ``meme``, or -1.

    An entry exposes its reader when it carries the meme and someone else wrote it. Only
    the writers' own contexts are read (writers are few: the work does not grow with the
    number of agents that merely read).
    """
    agents, slot = np.unique(writers, return_inverse=True)
    starts = retrieval.indptr[agents]
    counts = retrieval.indptr[agents + 1] - starts
    rows = expand_ranges(starts, counts)
    owner = np.repeat(np.arange(len(agents)), counts)
    entries = retrieval.entry_ids[rows]
    qualifies = (store.author[entries] != agents[owner]) & (
        (store.memes[entries] >> meme) & 1
    ).astype(bool)
    entries, owner = entries[qualifies], owner[qualifies]
    first = run_starts(owner)  # each context is ranked best first
    best = np.full(len(agents), -1, dtype=np.int64)
    best[owner[first]] = entries[first]
    return best[slot.reshape(-1)]


class AgentState(enum.IntEnum):
    """The flags recorded in the ``agents`` table."""

    SEEDED = 0
    EXPOSED = 1
    CARRIER = 2
    ADOPTER = 3
    EXPRESSED = 4


@dataclass(frozen=True)
class StepCounts:
    """New events of one step, per meme (arrays of length n_memes)."""

    exposures: np.ndarray
    new_exposed: np.ndarray
    new_carriers: np.ndarray
    new_adopters: np.ndarray
    new_expressed: np.ndarray
    lost_adopters: np.ndarray
    transmissions: np.ndarray
    infections: np.ndarray


class Tracker:
    """Per-(agent, meme) state, state-change events and transmission edges of a run."""

    def __init__(self, n_agents: int, n_memes: int) -> None:
        self.n_agents = n_agents
        self.n_memes = n_memes
        shape = (n_agents, n_memes)
        self.seeded = np.zeros(shape, dtype=np.bool_)
        self.exposed = np.zeros(shape, dtype=np.bool_)
        self.carrier = np.zeros(shape, dtype=np.bool_)
        self.adopter = np.zeros(shape, dtype=np.bool_)
        self.expressed = np.zeros(shape, dtype=np.bool_)
        self.infected = np.zeros(shape, dtype=np.bool_)
        # Has lost adoption at least once (recovery, or a probe no longer endorsing).
        self.recovered = np.zeros(shape, dtype=np.bool_)
        # Agent generation per node: 0 for the original agent, +1 per replacement (turnover).
        self.lineage = np.zeros(n_agents, dtype=np.int32)
        self.generation = np.full(shape, -1, dtype=np.int32)
        self._events = RowLog()
        self._edges = RowLog()
        self._reset_counts()

    def _reset_counts(self) -> None:
        zeros = np.zeros(self.n_memes, dtype=np.int64)
        self._exposures = zeros.copy()
        self._new = {state: zeros.copy() for state in AgentState}
        self._lost_adopters = zeros.copy()
        self._transmissions = zeros.copy()
        self._infections = zeros.copy()

    def take_counts(self) -> StepCounts:
        """The new-event counts accumulated since the last call (then reset)."""
        counts = StepCounts(
            exposures=self._exposures,
            new_exposed=self._new[AgentState.EXPOSED],
            new_carriers=self._new[AgentState.CARRIER],
            new_adopters=self._new[AgentState.ADOPTER],
            new_expressed=self._new[AgentState.EXPRESSED],
            lost_adopters=self._lost_adopters,
            transmissions=self._transmissions,
            infections=self._infections,
        )
        self._reset_counts()
        return counts

    # ---------------------------------------------------------------- events
    def _log(
        self, step: int, agents: np.ndarray, meme: int, state: AgentState, value: bool
    ) -> None:
        if len(agents) == 0:
            return
        self._events.add(
            {
                "step": np.full(len(agents), step, dtype=np.int32),
                "agent_id": agents.astype(np.int32),
                "meme_index": np.full(len(agents), meme, dtype=np.int32),
                "state": np.full(len(agents), int(state), dtype=np.int8),
                "value": np.full(len(agents), value, dtype=np.bool_),
            }
        )

    def _set(self, flags: np.ndarray, agents: np.ndarray, meme: int, state: AgentState, step: int):
        mark = np.zeros(self.n_agents, dtype=np.bool_)
        mark[agents] = True
        new = np.flatnonzero(mark & ~flags[:, meme])
        flags[new, meme] = True
        self._log(step, new, meme, state, True)
        if state in self._new:
            self._new[state][meme] += len(new)
        return new

    def seed(self, agents: np.ndarray, meme: int, step: int, adopt: bool) -> None:
        """Mark agents as seeded with a meme (carriers, generation 0, adopters if ``adopt``)."""
        self._set(self.seeded, agents, meme, AgentState.SEEDED, step)
        self._set(self.carrier, agents, meme, AgentState.CARRIER, step)
        self.infected[agents, meme] = True
        self.generation[agents, meme] = 0
        if adopt:
            self._set(self.adopter, agents, meme, AgentState.ADOPTER, step)

    def observe_retrieval(self, retrieval: Retrieval, store: MemoryStore, step: int) -> None:
        """Mark readers exposed to carrying entries by other authors in their context."""
        if len(retrieval.entry_ids) == 0:
            return
        readers = retrieval.readers()
        for meme in range(self.n_memes):
            hit = retrieval.exposing(store, meme)
            self._exposures[meme] += int(np.count_nonzero(hit))
            # Only readers not yet exposed can become exposed.
            rows = retrieval.rows_where(hit, ~self.exposed[:, meme])
            self._set(self.exposed, readers.take(rows), meme, AgentState.EXPOSED, step)

    def apply_adoptions(
        self, agents: np.ndarray, memes: np.ndarray, adopted: np.ndarray, step: int
    ) -> None:
        """Set (or clear) adoption flags."""
        for meme in sorted_unique(memes, bound=self.n_memes).tolist():
            sel = memes == meme
            self._set(self.adopter, agents[sel & adopted], meme, AgentState.ADOPTER, step)
            drop = sorted_unique(agents[sel & ~adopted], bound=self.n_agents)
            drop = drop[self.adopter[drop, meme]]
            self.adopter[drop, meme] = False
            self.recovered[drop, meme] = True
            self._lost_adopters[meme] += len(drop)
            self._log(step, drop, meme, AgentState.ADOPTER, False)

    def replace(self, agents: np.ndarray, step: int) -> None:
        """New agents take over the nodes ``agents`` (turnover, see :mod:`sim.turnover`).

        They hold no meme (predecessors' adoptions are lost: counted in ``lost_adopters``
        and logged as ``adopter = false``), are not recovered (susceptible again), and
        their agent generation (``lineage``) grows by one. Per-node "ever" flags (exposed,
        carrier, infected, tree generation) are kept.
        """
        if len(agents) == 0:
            return
        for meme in range(self.n_memes):
            drop = agents[self.adopter[agents, meme]]
            self.adopter[drop, meme] = False
            self._lost_adopters[meme] += len(drop)
            self._log(step, drop, meme, AgentState.ADOPTER, False)
        self.recovered[agents] = False
        self.lineage[agents] += 1

    def apply_expressions(self, expressed: np.ndarray, step: int) -> None:
        """Mark agents that acted on memes this step.

        Args:
            expressed: Boolean (n_agents, n_memes): whose choice expressed which meme.
            step: The current step.
        """
        for meme in range(self.n_memes):
            agents = np.flatnonzero(expressed[:, meme])
            self._set(self.expressed, agents, meme, AgentState.EXPRESSED, step)

    def observe_writes(
        self,
        entry_ids: np.ndarray,
        retrieval: Retrieval,
        cause: np.ndarray,
        store: MemoryStore,
        step: int,
    ) -> None:
        """Record carriers and transmission edges for entries committed this step.

        The source of a transmission is the write's ``cause`` entry when it carries the
        meme and was written by someone else; otherwise the best-ranked entry of the
        writer's context that does. Writes whose context held no such entry transmit
        nothing (the writer carried the meme already, or produced it spontaneously).

        Args:
            entry_ids: Ids of the committed entries (ascending).
            retrieval: This step's retrieval (the writers' contexts = the parents).
            cause: Validated cause entry per committed entry, or -1.
            store: The memory store.
            step: The current step.
        """
        if len(entry_ids) == 0:
            return
        writers = store.author[entry_ids]
        masks = store.memes[entry_ids]
        for meme in range(self.n_memes):
            carrying = ((masks >> meme) & 1).astype(bool)
            if not carrying.any():
                continue
            self._set(self.carrier, writers[carrying], meme, AgentState.CARRIER, step)
            w_entries = entry_ids[carrying]
            w_writers = writers[carrying]
            w_cause = cause[carrying]
            cause_ok = w_cause >= 0
            cause_ok[cause_ok] = ((store.memes[w_cause[cause_ok]] >> meme) & 1).astype(bool) & (
                store.author[w_cause[cause_ok]] != w_writers[cause_ok]
            )
            source = np.where(
                cause_ok, w_cause, _context_sources(retrieval, store, meme, w_writers)
            )
            has = source >= 0
            if not has.any():
                continue
            w_entries, w_writers, source = w_entries[has], w_writers[has], source[has]
            src_agents = store.author[source]
            src_gen = np.where(
                src_agents == ENVIRONMENT,
                0,
                np.maximum(self.generation[np.maximum(src_agents, 0), meme], 0),
            )
            hop = src_gen + 1
            # Infection edge: the first edge into a not-yet-infected agent.
            order = np.lexsort((w_entries, w_writers))
            w_entries, w_writers = w_entries[order], w_writers[order]
            source, src_agents, hop = source[order], src_agents[order], hop[order]
            first_of_writer = np.ones(len(w_writers), dtype=np.bool_)
            first_of_writer[1:] = w_writers[1:] != w_writers[:-1]
            is_infection = first_of_writer & ~self.infected[w_writers, meme]
            newly = w_writers[is_infection]
            self.infected[newly, meme] = True
            self.generation[newly, meme] = hop[is_infection]
            self._transmissions[meme] += len(w_entries)
            self._infections[meme] += len(newly)
            self._edges.add(
                {
                    "meme_index": np.full(len(w_entries), meme, dtype=np.int32),
                    "step": np.full(len(w_entries), step, dtype=np.int32),
                    "source_agent": src_agents.astype(np.int32),
                    "target_agent": w_writers.astype(np.int32),
                    "source_entry": source.astype(np.int64),
                    "target_entry": w_entries.astype(np.int64),
                    "hop": hop.astype(np.int32),
                    "is_infection": is_infection,
                }
            )

    # ---------------------------------------------------------------- tables
    def events_frame(self, meme_ids: list[str]) -> pl.DataFrame:
        """The ``agents`` table: one row per state change (step, agent, meme, state, value)."""
        schema = {
            "step": pl.Int32,
            "agent_id": pl.Int32,
            "meme_index": pl.Int32,
            "state": pl.Int8,
            "value": pl.Boolean,
        }
        events = self._events.frames()
        frame = pl.concat(events) if events else pl.DataFrame(schema=schema)
        names = [s.name.lower() for s in AgentState]
        return frame.with_columns(
            pl.col("meme_index")
            .replace_strict(list(range(len(meme_ids))), meme_ids, return_dtype=pl.String)
            .alias("meme_id"),
            pl.col("state").replace_strict(list(range(len(names))), names, return_dtype=pl.String),
        ).select(*AGENTS_SCHEMA)

    def edges_frame(self, meme_ids: list[str]) -> pl.DataFrame:
        """The ``transmissions`` table (one row per transmission edge)."""
        # Rows are recorded with the meme's index; the table shows its id.
        schema = {"meme_index": pl.Int32, **TRANSMISSIONS_SCHEMA}
        del schema["meme_id"]
        edges = self._edges.frames()
        frame = pl.concat(edges) if edges else pl.DataFrame(schema=schema)
        return frame.with_columns(
            pl.col("meme_index")
            .replace_strict(list(range(len(meme_ids))), meme_ids, return_dtype=pl.String)
            .alias("meme_id")
        ).select(*TRANSMISSIONS_SCHEMA)

    # ---------------------------------------------------------------- state
    def get_state(self) -> State:
        """The flags and the rows recorded so far (see :mod:`sim.state`)."""
        state = State(arrays=self.state_arrays())
        for name, rows in (("events", self._events), ("edges", self._edges)):
            frame = frame_list(rows.frames())
            if frame is not None:
                state.frames[name] = frame
        return state

    def set_state(self, state: State) -> None:
        """Restore what :meth:`get_state` returned into a tracker of the same shape.

        Raises:
            ValueError: The flags have another (agents, memes) shape.
        """
        shape = state.arrays["seeded"].shape
        if shape != self.seeded.shape:
            raise ValueError(
                f"the state has {shape} (agents, memes), the tracker {self.seeded.shape}: "
                "it was made from another config"
            )
        for name, value in state.arrays.items():
            getattr(self, name)[...] = value
        self._events = RowLog(state.frames.get("events"))
        self._edges = RowLog(state.frames.get("edges"))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Flag arrays (for checkpoints)."""
        return {
            "seeded": self.seeded.copy(),
            "exposed": self.exposed.copy(),
            "carrier": self.carrier.copy(),
            "adopter": self.adopter.copy(),
            "expressed": self.expressed.copy(),
            "infected": self.infected.copy(),
            "recovered": self.recovered.copy(),
            "lineage": self.lineage.copy(),
            "generation": self.generation.copy(),
        }
