"""What every guard is: verdicts, the writes a guard reviews, and the phases it may act in.

A guard is a defense the model consults in its step. Every guard may act in these phases
(each a method of :class:`GuardBase` whose default does nothing):

* ``bind`` — once, when the model is built: the number of agents, the memes and the
  model's generator (the only randomness a guard may use);
* ``screen`` — read time, after retrieval and before exposure is recorded: drop
  retrieved entries before they enter any prompt (a dropped entry exposes nobody);
* ``sweep`` — the guard phase, before writes are reviewed: entries to roll back now
  (the model removes them and, when asked, every descendant in the provenance DAG);
* ``review`` — every proposed write of the step at once: one verdict per write
  (accept, reject, quarantine, down-weight);
* ``admits`` — adoption decisions (contagion rule or probe): which may take effect;
* ``committed`` — after the commit: the ids of the committed entries and the authors
  whose writes any guard flagged in this step (e.g. to lower their trust);
* ``rolled_back`` — the entries the model removed on this guard's ``sweep`` request;
* ``counters`` — extra per-step counts for the ``steps`` table;
* ``state_arrays`` / ``load_state_arrays`` — state between steps, for checkpoints.

Guards run in order; for a write, the first non-accept verdict stands (:func:`combine`).
Every non-accept verdict is a row of the ``guard_decisions`` table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from agents.llm.factory import EngineFactory
    from sim.policy import StepContext, WriteProposals
    from sim.retrieval import Retrieval


#: How a spec that needs an engine gets the run's own (the LLM policy's), or None.
RunEngine = Callable[[], Any] | None


class Verdict(enum.IntEnum):
    """A guard's decision on one proposed write (or one entry)."""

    ACCEPT = 0
    REJECT = 1
    QUARANTINE = 2
    DOWNWEIGHT = 3
    #: An entry in memory removed by a guard (flagged, or a descendant of a flagged one).
    ROLLBACK = 4
    #: A retrieved entry dropped before it entered a prompt (read time).
    SCREEN = 5
    #: An adoption decision that did not take effect (e.g. the agent is immune).
    BLOCK = 6


#: Column suffix in ``steps`` of each verdict that guards count (``guard_<name>_<suffix>``).
VERDICT_COLUMNS = {
    Verdict.REJECT: "rejected",
    Verdict.QUARANTINE: "quarantined",
    Verdict.DOWNWEIGHT: "downweighted",
    Verdict.ROLLBACK: "rolled_back",
    Verdict.SCREEN: "screened",
    Verdict.BLOCK: "blocked",
}


@dataclass(frozen=True)
class GuardDecision:
    """Verdict, importance multiplier and reason per proposal.

    Attributes:
        verdict: ``Verdict`` value per proposal (int8).
        weight: Importance multiplier per proposal (used with DOWNWEIGHT).
        reason: Why, per proposal (None: the guard's name says it).
    """

    verdict: np.ndarray
    weight: np.ndarray
    reason: list[str] | None = None

    @staticmethod
    def accept_all(n: int) -> GuardDecision:
        """Accept every one of ``n`` proposals."""
        return GuardDecision(
            verdict=np.zeros(n, dtype=np.int8), weight=np.ones(n, dtype=np.float32)
        )


@dataclass(frozen=True)
class Writes:
    """The proposed writes of a step as a guard sees them.

    Attributes:
        proposals: The writes (author, bank, text, importance, cause) that passed the
            rights check.
        memes: Meme bit mask per proposal, as the run's detectors read its text.
        shared: Whether each proposal targets a shared (non-private) bank.
    """

    proposals: WriteProposals
    memes: np.ndarray
    shared: np.ndarray

    def __len__(self) -> int:
        return len(self.proposals)


@dataclass(frozen=True)
class GuardSetup:
    """What a guard learns once, when the model is built.

    Attributes:
        n_agents: Number of agents.
        meme_ids: The run's meme ids, in meme-index order.
        rng: The model's numpy generator.
        run_engine: Returns the run's engine (the LLM policy's), or None without one.
        banks: The run's banks (bank names to ids).
        intern: Interns texts into the store (running the meme detectors on new ones) and
            returns their text ids; guards that write entries (lessons) use it.
        engines: Builds a guard's own engine (from its ``engine`` spec) under its config
            key; a run with a run directory records it there. None: the spec is built
            as it is (:func:`agents.llm.factory.build_own_engine`).
    """

    n_agents: int
    meme_ids: list[str]
    rng: np.random.Generator
    run_engine: RunEngine = None
    banks: Any = None
    intern: Callable[[list[str]], np.ndarray] | None = None
    engines: EngineFactory | None = None

    def meme_index(self, meme_id: str, key: str) -> int:
        """The index of ``meme_id``.

        Raises:
            ValueError: No meme of the run has that id (``key`` names the setting).
        """
        if meme_id not in self.meme_ids:
            raise ValueError(f"{key} = {meme_id!r}: not a meme of the run (memes: {self.meme_ids})")
        return self.meme_ids.index(meme_id)


@dataclass(frozen=True)
class RollbackRequest:
    """Entries a guard removes from memory now.

    Attributes:
        entry_ids: The flagged entries (alive ones are removed).
        descendants: Whether every alive descendant (through the parents column) goes too.
        reason: Why (recorded per entry; descendants get "descendant of <id>").
    """

    entry_ids: np.ndarray
    descendants: bool = True
    reason: str = "flagged"


class GuardBase:
    """A guard that does nothing in any phase; guards override the phases they act in.

    Attributes:
        name: Unique name within the run (``steps`` columns are ``guard_<name>_<verdict>``).
    """

    name: str = "guard"

    def bind(self, setup: GuardSetup) -> None:
        """Learn the run's size, memes and generator (called once by the model)."""

    def screen(self, retrieval: Retrieval, context: StepContext) -> np.ndarray | None:
        """Keep mask over the retrieved rows (None: keep every row)."""
        return None

    def sweep(self, context: StepContext) -> RollbackRequest | None:
        """Entries to roll back at this step (None: none)."""
        return None

    def review(self, writes: Writes, context: StepContext) -> GuardDecision:
        """One verdict per proposed write."""
        return GuardDecision.accept_all(len(writes))

    def admits(self, agents: np.ndarray, memes: np.ndarray, adopted: np.ndarray) -> np.ndarray:
        """Whether each adoption decision may take effect (recoveries always do)."""
        return np.ones(len(agents), dtype=np.bool_)

    def committed(
        self,
        entry_ids: np.ndarray,
        causes: np.ndarray,
        flagged_authors: np.ndarray,
        context: StepContext,
    ) -> None:
        """Learn the entries committed this step and the authors any guard flagged.

        Args:
            entry_ids: The committed entries, ascending.
            causes: Each committed entry's validated cause entry (-1: none).
            flagged_authors: Agents any guard flagged this step (a non-accept verdict on
                one of their writes, or one of their entries rolled back as flagged).
            context: The step.
        """

    def rolled_back(self, entry_ids: np.ndarray) -> None:
        """Learn the entries removed by this guard's rollback request (flagged + descendants)."""

    def counters(self) -> dict[str, int]:
        """Extra per-step counts (``steps`` column ``guard_<name>_<key>``)."""
        return {}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """State between steps (for checkpoints)."""
        return {}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved."""

    def close(self) -> None:
        """Release resources (an engine of the guard's own)."""


def combine(decisions: list[GuardDecision], n: int) -> tuple[GuardDecision, np.ndarray]:
    """Combine guards in order: the first non-accept verdict per proposal stands.

    Returns:
        The combined decision and, per proposal, the index of the guard whose verdict
        stands (-1: accepted by all).
    """
    verdict = np.zeros(n, dtype=np.int8)
    weight = np.ones(n, dtype=np.float32)
    by = np.full(n, -1, dtype=np.int32)
    reason: list[str] = [""] * n
    for index, decision in enumerate(decisions):
        open_ = (verdict == Verdict.ACCEPT) & (decision.verdict != Verdict.ACCEPT)
        verdict = np.where(open_, decision.verdict, verdict).astype(np.int8)
        weight = np.where(open_, decision.weight, weight).astype(np.float32)
        by = np.where(open_, index, by).astype(np.int32)
        if decision.reason is not None:
            for i in np.flatnonzero(open_).tolist():
                reason[i] = decision.reason[i]
    return GuardDecision(verdict=verdict, weight=weight, reason=reason), by
