"""The guard phases of a model's step, for all of a run's guards at once.

:class:`GuardPhases` is what the model calls: it binds the guards, screens retrieved
entries, filters adoption decisions, executes rollbacks (flagged entries and their
descendants), reviews proposed writes, tells guards what was committed, and keeps the
per-step counts (``steps`` columns ``guard_<name>_<verdict>``) and the rows of the
``guard_decisions`` table: one row per non-accept verdict, per entry or proposal.

``guard_decisions`` columns: step, guard, phase (read, write, rollback, adoption),
verdict (reject, quarantine, downweight, rollback, screen, block), entry_id (the entry;
-1 for a write that never entered a bank), agent_id (writer, author, reader or adopter),
bank_id (-1 for adoptions), memes (meme ids the text carries, or the adopted meme),
reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from sim.guards.base import (
    VERDICT_COLUMNS,
    GuardBase,
    GuardSetup,
    Verdict,
    Writes,
    combine,
)
from sim.guards.rollback import check_entry_ids, descendants
from sim.retrieval import Retrieval

if TYPE_CHECKING:
    from sim.memory import MemoryStore
    from sim.policy import Adoptions, StepContext, WriteProposals

#: Columns of the ``guard_decisions`` table.
DECISIONS_SCHEMA: dict[str, Any] = {
    "step": pl.Int32,
    "guard": pl.String,
    "phase": pl.String,
    "verdict": pl.String,
    "entry_id": pl.Int64,
    "agent_id": pl.Int32,
    "bank_id": pl.Int32,
    "memes": pl.List(pl.String),
    "reason": pl.String,
}


@dataclass(frozen=True)
class Reviewed:
    """The outcome of reviewing a step's writes.

    Attributes:
        keep: Per proposal, whether it is committed.
        weight: Per proposal, the importance multiplier.
        text_ids: Per proposal, its text id (already interned).
        flagged_authors: Authors of proposals with a non-accept verdict.
        rejected: Proposals rejected.
        quarantined: Proposals quarantined.
    """

    keep: np.ndarray
    weight: np.ndarray
    text_ids: np.ndarray
    flagged_authors: np.ndarray
    rejected: int
    quarantined: int


class GuardPhases:
    """Runs every guard of a model in each phase and records what they decided.

    Args:
        guards: The guards, in order (names must be unique).
        setup: Run size, memes and generator, handed to every guard's ``bind``.
    """

    def __init__(self, guards: Sequence[GuardBase], setup: GuardSetup) -> None:
        names = [g.name for g in guards]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"guards: duplicate name(s) {dupes}; give each guard a unique name")
        self.guards = tuple(guards)
        self.meme_ids = list(setup.meme_ids)
        for guard in self.guards:
            guard.bind(setup)
        self._rows: list[pl.DataFrame] = []
        #: Wall-clock seconds spent in the guard phases so far (for benchmarks).
        self.wall_s = 0.0
        self._taken = False
        self._counts = self._zero_counts()
        self._flagged = np.zeros(0, dtype=np.int64)

    def __bool__(self) -> bool:
        return bool(self.guards)

    @contextmanager
    def _timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - started

    def _zero_counts(self) -> dict[str, int]:
        return {
            f"guard_{g.name}_{suffix}": 0
            for g in self.guards
            for suffix in VERDICT_COLUMNS.values()
        }

    # ------------------------------------------------------------ recording
    def _meme_lists(self, masks: np.ndarray) -> list[list[str]]:
        ids = self.meme_ids
        return [[ids[b] for b in range(len(ids)) if m >> b & 1] for m in masks.tolist()]

    def _log(
        self,
        step: int,
        guard: str,
        phase: str,
        verdict: np.ndarray,
        entry_id: np.ndarray,
        agent_id: np.ndarray,
        bank_id: np.ndarray,
        memes: list[list[str]],
        reason: list[str],
    ) -> None:
        n = len(entry_id)
        if n == 0:
            return
        names = {int(v): v.name.lower() for v in Verdict}
        for code in np.unique(verdict).tolist():
            key = f"guard_{guard}_{VERDICT_COLUMNS[Verdict(code)]}"
            if key in self._counts:  # not for manual rollbacks (no guard, no column)
                self._counts[key] += int((verdict == code).sum())
        self._rows.append(
            pl.DataFrame(
                {
                    "step": np.full(n, step, dtype=np.int32),
                    "guard": [guard] * n,
                    "phase": [phase] * n,
                    "verdict": [names[int(v)] for v in verdict.tolist()],
                    "entry_id": entry_id.astype(np.int64),
                    "agent_id": agent_id.astype(np.int32),
                    "bank_id": bank_id.astype(np.int32),
                    "memes": memes,
                    "reason": reason,
                },
                schema=DECISIONS_SCHEMA,
            )
        )

    def take_counts(self) -> dict[str, int]:
        """This step's counts per guard and verdict, plus each guard's own counters (reset)."""
        counts = self._counts
        self._counts = self._zero_counts()
        for guard in self.guards:
            for key, value in guard.counters().items():
                counts[f"guard_{guard.name}_{key}"] = int(value)
        return counts

    def take_rows(self) -> pl.DataFrame | None:
        """The ``guard_decisions`` rows recorded since the last call.

        None when there are none, except at the first call of a model with guards, which
        returns an empty frame, so every run with guards has the table.
        """
        first, self._taken = not self._taken, True
        if not self._rows:
            return pl.DataFrame(schema=DECISIONS_SCHEMA) if first and self.guards else None
        frame = pl.concat(self._rows)
        self._rows = []
        return frame

    # ------------------------------------------------------------ read time
    def screen(self, retrieval: Retrieval, context: StepContext) -> Retrieval:
        """The retrieval without the rows any guard drops (drops logged, time in ``wall_s``)."""
        with self._timed():
            return self._screen(retrieval, context)

    def _screen(self, retrieval: Retrieval, context: StepContext) -> Retrieval:
        """The retrieval without the rows any guard drops (a guard's drops are logged)."""
        keep = np.ones(len(retrieval.entry_ids), dtype=np.bool_)
        store = context.store
        for guard in self.guards:
            mask = guard.screen(retrieval, context)
            if mask is None:
                continue
            dropped = np.flatnonzero(keep & ~mask)
            keep &= mask
            entries = retrieval.entry_ids[dropped]
            self._log(
                context.step,
                guard.name,
                "read",
                np.full(len(dropped), int(Verdict.SCREEN), dtype=np.int8),
                entries,
                retrieval.readers()[dropped],
                store.bank[entries],
                self._meme_lists(store.memes[entries]),
                ["dropped before use"] * len(dropped),
            )
        if keep.all():
            return retrieval
        counts = np.bincount(retrieval.readers()[keep], minlength=retrieval.n_agents).astype(
            np.int64
        )
        indptr = np.zeros(retrieval.n_agents + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Retrieval(
            indptr=indptr, entry_ids=retrieval.entry_ids[keep], scores=retrieval.scores[keep]
        )

    # ------------------------------------------------------------ adoptions
    def admit(self, adoptions: Adoptions, step: int) -> Adoptions:
        """The adoption decisions every guard admits (blocked ones logged; timed)."""
        with self._timed():
            return self._admit(adoptions, step)

    def _admit(self, adoptions: Adoptions, step: int) -> Adoptions:
        """The adoption decisions every guard admits (blocked ones are logged)."""
        if len(adoptions) == 0:
            return adoptions
        keep = np.ones(len(adoptions), dtype=np.bool_)
        adopted = adoptions.adopted.astype(np.bool_)
        for guard in self.guards:
            ok = guard.admits(adoptions.agent, adoptions.meme, adopted) | ~adopted
            blocked = np.flatnonzero(keep & ~ok)
            keep &= ok
            self._log(
                step,
                guard.name,
                "adoption",
                np.full(len(blocked), int(Verdict.BLOCK), dtype=np.int8),
                np.full(len(blocked), -1, dtype=np.int64),
                adoptions.agent[blocked],
                np.full(len(blocked), -1, dtype=np.int32),
                [[self.meme_ids[m]] for m in adoptions.meme[blocked].tolist()],
                ["adoption blocked"] * len(blocked),
            )
        if keep.all():
            return adoptions
        from sim.policy import Adoptions as _Adoptions

        return _Adoptions(
            agent=adoptions.agent[keep],
            meme=adoptions.meme[keep],
            adopted=adoptions.adopted[keep],
            cause=adoptions.cause[keep],
        )

    # ------------------------------------------------------------ rollback
    def rollback(
        self,
        store: MemoryStore,
        entry_ids: np.ndarray | list[int],
        step: int,
        *,
        reason: str,
        guard: str = "manual",
        with_descendants: bool = True,
    ) -> np.ndarray:
        """Remove entries (and their descendants) from the banks; returns the removed ids.

        Entries stay in the store (``alive = False``, ``removed_step = step``); each
        removed entry gets a ``guard_decisions`` row (verdict ``rollback``) with
        ``reason`` for the given entries and ``descendant: <reason>`` for the others.

        Raises:
            ValueError: An id is not an entry of the store (nothing is removed).
        """
        roots = check_entry_ids(store, entry_ids)
        kids = descendants(store, roots) if with_descendants else np.zeros(0, dtype=np.int64)
        ids = np.concatenate([roots, kids])
        is_root = np.concatenate([np.ones(len(roots), bool), np.zeros(len(kids), bool)])
        alive = store.alive[ids]
        ids, is_root = ids[alive], is_root[alive]
        order = np.argsort(ids)
        ids, is_root = ids[order], is_root[order]
        store.remove(ids, step)
        self._log(
            step,
            guard,
            "rollback",
            np.full(len(ids), int(Verdict.ROLLBACK), dtype=np.int8),
            ids,
            store.author[ids],
            store.bank[ids],
            self._meme_lists(store.memes[ids]),
            [reason if r else f"descendant: {reason}" for r in is_root.tolist()],
        )
        if guard != "manual":
            flagged = store.author[ids[is_root]].astype(np.int64)
            self._flagged = np.concatenate([self._flagged, flagged])
        return ids

    def sweep(self, context: StepContext) -> int:
        """Execute every guard's due rollback; returns how many entries were removed (timed)."""
        with self._timed():
            return self._sweep(context)

    def _sweep(self, context: StepContext) -> int:
        """Execute every guard's due rollback; returns how many entries were removed."""
        removed = 0
        for guard in self.guards:
            request = guard.sweep(context)
            if request is None:
                continue
            ids = self.rollback(
                context.store,
                request.entry_ids,
                context.step,
                reason=request.reason,
                guard=guard.name,
                with_descendants=request.descendants,
            )
            guard.rolled_back(ids)
            removed += len(ids)
        return removed

    # ------------------------------------------------------------ writes
    def review(
        self,
        proposals: WriteProposals,
        context: StepContext,
        intern: Callable[[list[str]], np.ndarray],
    ) -> Reviewed:
        """Every guard's verdicts on the step's writes, combined in order, logged (timed)."""
        with self._timed():
            return self._review(proposals, context, intern)

    def _review(
        self,
        proposals: WriteProposals,
        context: StepContext,
        intern: Callable[[list[str]], np.ndarray],
    ) -> Reviewed:
        """Every guard's verdicts on the step's writes, combined in order and logged."""
        n = len(proposals)
        store = context.store
        text_ids = intern(proposals.text)
        memes = store.text_memes[text_ids] if n else np.zeros(0, dtype=np.int64)
        shared = context.banks.shared[proposals.bank]
        writes = Writes(proposals=proposals, memes=memes, shared=shared)
        decision, by = combine([g.review(writes, context) for g in self.guards], n)
        flagged = decision.verdict != Verdict.ACCEPT
        keep = (decision.verdict == Verdict.ACCEPT) | (decision.verdict == Verdict.DOWNWEIGHT)
        lists = self._meme_lists(memes)
        reasons = decision.reason or [""] * n
        for index, guard in enumerate(self.guards):
            mine = np.flatnonzero(by == index)
            # Down-weighted writes are committed: their entry ids are filled in later.
            self._log(
                context.step,
                guard.name,
                "write",
                decision.verdict[mine],
                np.full(len(mine), -1, dtype=np.int64),
                proposals.author[mine],
                proposals.bank[mine],
                [lists[i] for i in mine.tolist()],
                [reasons[i] or guard.name for i in mine.tolist()],
            )
        self._release_dropped(store, text_ids, keep)
        return Reviewed(
            keep=keep,
            weight=decision.weight,
            text_ids=text_ids,
            flagged_authors=proposals.author[flagged].astype(np.int64),
            rejected=int((decision.verdict == Verdict.REJECT).sum()),
            quarantined=int((decision.verdict == Verdict.QUARANTINE).sum()),
        )

    @staticmethod
    def _release_dropped(store: MemoryStore, text_ids: np.ndarray, keep: np.ndarray) -> None:
        """Release from memory the texts only dropped writes had.

        Memory stays bounded by what is alive; a text written again later is revived.
        """
        dropped = np.setdiff1d(text_ids[~keep], text_ids[keep])
        if len(dropped):
            unused = dropped[~np.isin(dropped, store.text_id[store.alive])]
            store.texts.release(unused.tolist())

    def committed(
        self,
        entry_ids: np.ndarray,
        causes: np.ndarray,
        flagged_authors: np.ndarray,
        context: StepContext,
    ) -> None:
        """Tell every guard what was committed and whom guards flagged this step."""
        with self._timed():
            self._committed(entry_ids, causes, flagged_authors, context)

    def _committed(
        self,
        entry_ids: np.ndarray,
        causes: np.ndarray,
        flagged_authors: np.ndarray,
        context: StepContext,
    ) -> None:
        flagged = np.concatenate([self._flagged, flagged_authors.astype(np.int64)])
        self._flagged = np.zeros(0, dtype=np.int64)
        for guard in self.guards:
            guard.committed(entry_ids, causes, flagged, context)

    def close(self) -> None:
        """Release the guards' own resources (engines)."""
        for guard in self.guards:
            guard.close()

    # ------------------------------------------------------------ state
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every guard's state, keyed ``<guard name>.<key>``."""
        return {
            f"{guard.name}.{key}": value
            for guard in self.guards
            for key, value in guard.state_arrays().items()
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved, guard by name.

        A guard without saved state (e.g. one added when a run is forked) keeps its fresh
        state; saved state of a guard the model does not have is ignored.
        """
        for guard in self.guards:
            prefix = f"{guard.name}."
            mine = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            if mine:
                guard.load_state_arrays(mine)
