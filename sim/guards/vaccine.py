"""The ``vaccine`` guard: immunity against one meme, given or acquired.

An ``immune`` share of the agents (exactly ``round(immune * n_agents)`` of them, drawn
from the model's generator when the model is built) is immune from the start. With a
``counter`` meme (a counter-meme of the run, seeded like any meme: placement, timing),
every agent that has been exposed to it or holds it becomes immune too, from the step
after. An immune agent ignores the protected ``meme``: its adoption decisions for the
meme (contagion rule or probe answers) do not take effect, and its writes carrying the
meme are rejected. Immunity is permanent (a replaced agent keeps the node's immunity).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.guards.base import GuardBase, GuardDecision, GuardSetup, RunEngine, Verdict, Writes

if TYPE_CHECKING:
    from sim.policy import StepContext


class VaccineGuardSpec(BaseModel):
    """Agents immune to a meme, from the start or after meeting a counter-meme.

    Attributes:
        kind: Always "vaccine".
        meme: The meme the vaccine protects against (a meme id of the run).
        immune: Share of agents immune from the start, in [0, 1].
        counter: A counter-meme of the run (its id): agents exposed to it, or holding
            it, become immune.
        name: Name in the ``steps`` columns and ``guard_decisions`` (default: the kind).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["vaccine"] = "vaccine"
    meme: str
    immune: float = Field(0.0, ge=0, le=1)
    counter: str | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,40}$")

    def build(self, run_engine: RunEngine = None) -> VaccineGuard:
        """The guard this spec describes (it needs no engine)."""
        return VaccineGuard(self)


class VaccineGuard(GuardBase):
    """Blocks adoptions and carrying writes of immune agents."""

    def __init__(self, spec: VaccineGuardSpec) -> None:
        self.spec = spec
        self.name = spec.name or "vaccine"
        self.immune = np.zeros(0, dtype=np.bool_)
        self._meme = -1
        self._counter = -1

    def bind(self, setup: GuardSetup) -> None:
        """Resolve the memes and draw the initially immune agents."""
        self._meme = setup.meme_index(self.spec.meme, "guards.vaccine.meme")
        if self.spec.counter is not None:
            self._counter = setup.meme_index(self.spec.counter, "guards.vaccine.counter")
            if self._counter == self._meme:
                raise ValueError(
                    f"guards.vaccine.counter = {self.spec.counter!r}: must differ from meme"
                )
        n = setup.n_agents
        self.immune = np.zeros(n, dtype=np.bool_)
        count = round(self.spec.immune * n)
        if count:
            self.immune[setup.rng.choice(n, size=count, replace=False)] = True

    def _update(self, context: StepContext) -> None:
        if self._counter >= 0:
            tracker = context.tracker
            self.immune |= tracker.exposed[:, self._counter] | tracker.adopter[:, self._counter]

    def screen(self, retrieval, context: StepContext) -> None:
        """Immunity acquired up to the previous step takes effect now (reads nothing)."""
        self._update(context)
        return None

    def admits(self, agents: np.ndarray, memes: np.ndarray, adopted: np.ndarray) -> np.ndarray:
        """Adoptions of the protected meme by immune agents do not take effect."""
        return ~((memes == self._meme) & adopted & self.immune[agents])

    def review(self, writes: Writes, context: StepContext) -> GuardDecision:
        """Reject immune agents' writes carrying the protected meme."""
        proposals = writes.proposals
        carrying = ((writes.memes >> self._meme) & 1).astype(np.bool_)
        hit = carrying & self.immune[proposals.author]
        n = len(writes)
        return GuardDecision(
            verdict=np.where(hit, int(Verdict.REJECT), 0).astype(np.int8),
            weight=np.ones(n, dtype=np.float32),
            reason=[f"immune to {self.spec.meme}"] * n,
        )

    def counters(self) -> dict[str, int]:
        """Immune agents now."""
        return {"immune": int(self.immune.sum())}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The immune agents."""
        return {"immune": self.immune.copy()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the immune agents."""
        self.immune = np.asarray(arrays["immune"], dtype=np.bool_).copy()
