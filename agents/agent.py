"""The Mesa agent of memespread: one LLM instance (or contagion node) on the graph.

The simulation state lives in the model's columnar arrays (memory store, tracker) so that
every phase of a step runs for all agents at once; a :class:`MemeticAgent` is the
per-agent face of that state, with the attributes a Mesa user expects: ``unique_id``
(= its graph node), ``state`` / ``states`` per meme, ``degree``, the banks it may read
and write, its memories, and ``cell`` in the model's Mesa network space. They work with
``model.agents.select(...)``, ``model.agents.groupby(...)`` and Mesa's ``DataCollector``.

The agent depends on the model only through :class:`ModelView` (a protocol), so this
module never imports :mod:`sim.model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from mesa.discrete_space import FixedAgent

if TYPE_CHECKING:
    import networkx as nx
    import polars as pl
    from mesa.discrete_space import Cell, Network

    from sim.memebook import MemeBook
    from sim.memory import MemoryStore
    from sim.retrieval import Retrieval
    from sim.tracking import Tracker
    from topologies.banks import Banks

#: Agent states per meme, from the least to the most advanced; an agent's state is the
#: most advanced flag it holds (``susceptible`` when none). Flags the tracker does not
#: keep are skipped.
STATE_ORDER = ("susceptible", "exposed", "carrier", "expressed", "adopter")


class ModelView(Protocol):
    """What a :class:`MemeticAgent` reads from its model (``sim.model.MemeticModel``)."""

    graph: nx.Graph
    tracker: Tracker
    memes: MemeBook
    banks: Banks
    store: MemoryStore
    last_retrieval: Retrieval | None

    @property
    def grid(self) -> Network:
        """The graph as a Mesa network space (one cell per agent)."""
        ...

    def register_agent(self, agent: Any) -> None:
        """Mesa's agent registration."""
        ...


class MemeticAgent(FixedAgent):
    """One agent, fixed to its graph node.

    ``unique_id`` and ``agent_id`` are both the agent's graph node and its row in the
    model's state arrays (0..n-1).

    Args:
        model: The model.
        agent_id: Index of the agent (0..n-1), equal to its graph node.
    """

    model: ModelView

    def __init__(self, model: ModelView, agent_id: int) -> None:
        super().__init__(model)
        # Mesa numbers agents from 1 in creation order; one id per agent: the node.
        self.unique_id = int(agent_id)
        self.agent_id = int(agent_id)

    # ------------------------------------------------------------ states
    def _flags(self, flags: np.ndarray) -> dict[str, bool]:
        return {m: bool(flags[self.agent_id, i]) for i, m in enumerate(self.model.memes.ids)}

    def state_of(self, meme_id: str) -> str:
        """The agent's state for one meme: the most advanced of :data:`STATE_ORDER`.

        Raises:
            KeyError: ``meme_id`` is not a meme of the model.
        """
        ids = self.model.memes.ids
        if meme_id not in ids:
            raise KeyError(f"meme_id = {meme_id!r}: not a meme of the model; memes are {ids}")
        column = ids.index(meme_id)
        tracker = self.model.tracker
        state = STATE_ORDER[0]
        for flag in STATE_ORDER[1:]:
            values = getattr(tracker, flag, None)
            if values is not None and values[self.agent_id, column]:
                state = flag
        return state

    @property
    def states(self) -> dict[str, str]:
        """Per meme id: the agent's state (see :meth:`state_of`)."""
        return {m: self.state_of(m) for m in self.model.memes.ids}

    @property
    def state(self) -> str:
        """The state for the model's FIRST meme (use :meth:`state_of` for the others).

        Hashable, so ``model.agents.groupby("state")`` works.
        """
        return self.state_of(self.model.memes.ids[0])

    @property
    def exposed(self) -> dict[str, bool]:
        """Per meme id: whether a carrying entry by someone else was ever in its context."""
        return self._flags(self.model.tracker.exposed)

    @property
    def carrier(self) -> dict[str, bool]:
        """Per meme id: whether it has written a carrying entry."""
        return self._flags(self.model.tracker.carrier)

    @property
    def adopter(self) -> dict[str, bool]:
        """Per meme id: whether it holds the meme now."""
        return self._flags(self.model.tracker.adopter)

    # ------------------------------------------------------------ place
    @property
    def degree(self) -> int:
        """Number of graph neighbours."""
        return int(self.model.graph.degree[self.agent_id])

    @property
    def cell(self) -> Cell:
        """Its cell in ``model.grid`` (the Mesa network space, built on first access)."""
        return self.model.grid[self.agent_id]

    # ------------------------------------------------------------ memory
    @property
    def readable_banks(self) -> list[str]:
        """Names of the banks it may read."""
        banks = self.model.banks
        return [banks.names[b] for b in banks.readable(self.agent_id).tolist()]

    @property
    def writable_banks(self) -> list[str]:
        """Names of the banks it may write."""
        banks = self.model.banks
        return [banks.names[b] for b in banks.writable(self.agent_id).tolist()]

    def memories(self, *, writable: bool = False) -> pl.DataFrame:
        """The live entries of the banks it may read (or, with ``writable``, write).

        Returns:
            The rows of the model's ``memories`` table (see ``MemoryStore.to_frame``) whose
            bank is readable (writable) by this agent and that are still alive.
        """
        import polars as pl

        banks = self.model.banks
        ids = banks.writable(self.agent_id) if writable else banks.readable(self.agent_id)
        frame = self.model.store.to_frame(self.model.memes.ids)
        return frame.filter(pl.col("bank_id").is_in(ids.tolist()) & pl.col("alive"))

    def context(self) -> list[str]:
        """Texts of the entries it retrieved in the last step, best first."""
        retrieval = self.model.last_retrieval
        if retrieval is None:
            return []
        return [self.model.store.text(int(e)) for e in retrieval.of(self.agent_id)]

    def step(self) -> None:
        """Agents never act alone: the model runs every phase for all agents in one batch."""
        raise RuntimeError(
            "MemeticAgent.step is not used: MemeticModel.step runs each phase for all agents "
            "at once (one batched policy call per step)"
        )
