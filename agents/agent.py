"""The Mesa agent of memespread: one LLM instance (or contagion node) on the graph.

Agents hold no simulation state of their own: the model keeps it in columnar arrays
(memory store, tracker) so that every phase of a step runs for all agents at once. An
agent is the per-instance view of that state, for inspection in scripts and notebooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from sim.model import MemeticModel


class MemeticAgent(mesa.Agent):
    """One agent; ``agent_id`` is its node in the graph and its row in the state arrays.

    Args:
        model: The model.
        agent_id: Index of the agent (0..n-1), equal to its graph node.
    """

    model: MemeticModel

    def __init__(self, model: MemeticModel, agent_id: int) -> None:
        super().__init__(model)
        self.agent_id = int(agent_id)

    def _flags(self, flags: np.ndarray) -> dict[str, bool]:
        return {m: bool(flags[self.agent_id, i]) for i, m in enumerate(self.model.memes.ids)}

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
