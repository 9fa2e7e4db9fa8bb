"""The classical contagion policy: the null model that LLM runs are compared with.

It runs the same memory pipeline as an LLM policy (retrieval, capacity, provenance) but
decides by rule instead of by a language model. An *exposure* is a retrieved entry
carrying meme m, written by someone else (another agent or the environment), in the
context of an agent that does not hold m. Adoption rules (``rule``):

* ``repeated_exposure`` — every exposure independently makes the reader adopt with
  probability ``beta``, and the trials repeat at every step the entry stays in the
  context: with persistent entries this is network SI (an adopter's entry keeps exposing
  its readers). A reader with ``m`` exposures adopts with ``1 - (1 - beta)^m``; the
  cause is a uniformly chosen successful exposure. ``independent_cascade`` is the
  deprecated old name of this rule (it warns).
* ``one_shot_cascade`` — the independent cascade model: each reader gets exactly ONE
  trial (probability ``beta``) per author whose carrying entry it sees for the first
  time, at that first exposure; later exposures to the same entry never try again. A
  new adopter's copies are new entries, so each adoption (also a re-adoption after
  recovery) gives one chance per reader that sees it. Several fresh copies by one
  author in one reader's context (an author writing into several banks the reader
  reads) make one trial, whose cause is the best-ranked of them. An exposure the reader
  meets while it holds the meme is spent too. Retrieval decides what is seen: with a
  small ``k`` an entry may first be seen (and tried) late, or never.
* ``threshold`` (complex contagion) — a reader adopts when carrying entries from at
  least ``threshold`` distinct authors are in its context; the cause is the best-ranked.

Recovery (``gamma > 0``): at every step, each agent that holds a meme (at the start of the
step's decision, so not one that adopts in this step) recovers from it with probability
``gamma``, independently per meme; the tracker records it as a lost adopter.
``recovery = "sis"``: it may adopt again later; ``"sir"``: it is immune (removed) for the
rest of the run. Its carrying entries (``recovered_entries``): ``"remove"`` retracts every
alive entry it wrote carrying the meme, from every bank, at the recovery step (they were
still visible in that step's retrieval); ``"inactive"`` leaves them in memory (readers
still retrieve them and count as exposed in the tables) but the rule ignores entries
whose author is a recovered agent not currently holding the meme (after a re-adoption
under SIS they count again, next to the new copies). Entries of the environment and of
agents that never held-and-lost the meme always count.

Random draws come from the model's generator in this order: for each meme, the recovery
draws of its current holders (ascending agent id, only when ``gamma > 0``) and then the
rule's trial draws; after all memes, the mutation draws of the adopters' copies. With
``gamma = 0`` the draws are those of the rule alone, so runs without recovery reproduce
runs made before recovery existed.

An agent that adopts writes, in the same step, one entry carrying the meme into each
bank it may write (or each shared bank): a copy of the cause's text, edited with
probability ``mutation_prob`` (the detector then decides whether the edit still carries
the meme).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.mutation import mutate_text
from sim.memory import ENVIRONMENT
from sim.policy import Adoptions, PolicyOutput, StepContext, WriteProposals
from sim.retrieval import expand_ranges
from sim.state import State
from sim.tracking import run_starts
from sim.unique import sorted_unique

DEPRECATED_RULES = {"independent_cascade": "repeated_exposure"}
"""Old rule names and the rule each now means."""


def deprecated_rule_message(rule: str) -> str:
    """Why ``rule`` is deprecated and what to write instead."""
    return (
        f"policy.rule = {rule!r} is deprecated: it is the repeated-exposure rule (a trial "
        f"at every step an entry stays in context, i.e. SI), not the one-shot independent "
        f"cascade; write rule = {DEPRECATED_RULES[rule]!r} for the same behaviour or rule = "
        "'one_shot_cascade' for one trial per reader and author"
    )


class ContagionSpec(BaseModel):
    """Parameters of the classical contagion policy.

    Attributes:
        kind: Always "contagion".
        rule: "repeated_exposure" (probability ``beta`` per exposure per step: SI),
            "one_shot_cascade" (independent cascade: one trial with probability ``beta``
            per reader and author, at the reader's first exposure), or "threshold" (at
            least ``threshold`` distinct carrying authors in context).
            "independent_cascade" is the deprecated name of "repeated_exposure" (warns).
        beta: Adoption probability per trial, in [0, 1].
        threshold: Distinct carrying authors needed to adopt, for the threshold rule.
        gamma: Recovery probability per step of an agent holding a meme, in [0, 1]
            (0: no recovery, SI).
        recovery: After recovering, "sis": susceptible again; "sir": immune for the rest
            of the run.
        recovered_entries: What happens to a recovering agent's carrying entries:
            "remove" (retracted from every bank at the recovery step) or "inactive" (they
            stay in memory but the rule ignores them while their author does not hold
            the meme).
        write_to: Adopters write into "all" the banks they may write, or only "shared" ones.
        mutation_prob: Probability that an adopter's copy is edited, in [0, 1].
        importance: Importance of the entries adopters write, in [0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["contagion"] = "contagion"
    rule: Literal["repeated_exposure", "one_shot_cascade", "threshold", "independent_cascade"] = (
        "repeated_exposure"
    )
    beta: float = Field(0.1, ge=0, le=1)
    threshold: int = Field(2, ge=1)
    gamma: float = Field(0.0, ge=0, le=1)
    recovery: Literal["sis", "sir"] = "sis"
    recovered_entries: Literal["remove", "inactive"] = "remove"
    write_to: Literal["all", "shared"] = "all"
    mutation_prob: float = Field(0.0, ge=0, le=1)
    importance: float = Field(0.5, ge=0, le=1)

    @field_validator("rule")
    @classmethod
    def _warn_deprecated_rule(cls, rule: str) -> str:
        if rule in DEPRECATED_RULES:
            warnings.warn(deprecated_rule_message(rule), DeprecationWarning, stacklevel=2)
        return rule

    @property
    def resolved_rule(self) -> Literal["repeated_exposure", "one_shot_cascade", "threshold"]:
        """The rule, with deprecated names replaced by what they mean."""
        return DEPRECATED_RULES.get(self.rule, self.rule)  # type: ignore[return-value]

    def build(self, engine: Any = None) -> ContagionPolicy:
        """The policy this spec describes (it uses no engine)."""
        return ContagionPolicy(self)


class ContagionPolicy:
    """Rule-based adoption, recovery and copying, for all agents of a step at once (no LLM).

    The one-shot cascade rule remembers which (reader, entry) exposures it has seen;
    :meth:`state_arrays` and :meth:`load_state_arrays` carry that memory through
    checkpoints.
    """

    name = "contagion"
    #: Seeded agents start as adopters (the initially infected of SI/SIR) unless the
    #: meme's ``placement.adopt`` says otherwise.
    seeded_adopters = True

    def __init__(self, spec: ContagionSpec | None = None) -> None:
        self.spec = spec or ContagionSpec()
        # Sorted keys entry_id * n_agents + reader of the exposures seen so far.
        self._seen = np.zeros(0, dtype=np.int64)
        self._n_agents = 0

    def describe(self) -> dict[str, object]:
        """The policy's parameters (``rule`` as configured, ``resolved_rule`` as applied)."""
        return {
            "policy": self.name,
            **self.spec.model_dump(mode="json"),
            "resolved_rule": self.spec.resolved_rule,
        }

    def queries(self, step: int) -> Sequence[str] | None:
        """Contagion agents have no task text: retrieval ignores relevance."""
        return None

    def probe(self, context: StepContext) -> PolicyOutput:
        """Adoption is decided by the rule in :meth:`act`; probes change nothing."""
        return PolicyOutput()

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------ state
    def get_state(self) -> State:
        """The policy's memory between steps (see :mod:`sim.state`)."""
        return State(arrays=self.state_arrays())

    def set_state(self, state: State) -> None:
        """Restore what :meth:`get_state` returned."""
        self.load_state_arrays(state.arrays)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The policy's memory between steps (for checkpoints)."""
        return {"seen": self._seen.copy(), "n_agents": np.array([self._n_agents], np.int64)}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved."""
        self._seen = np.asarray(arrays.get("seen", np.zeros(0)), dtype=np.int64)
        self._n_agents = int(arrays.get("n_agents", np.zeros(1))[0])

    def forget_agents(self, agents: np.ndarray) -> None:
        """New agents took over these nodes (turnover): they have seen no entry yet."""
        if len(self._seen) == 0 or self._n_agents == 0:
            return
        mark = np.zeros(self._n_agents, dtype=np.bool_)
        mark[agents] = True
        self._seen = self._seen[~mark[self._seen % self._n_agents]]

    # ------------------------------------------------------------ the step
    def act(self, context: StepContext) -> PolicyOutput:
        """Apply recovery and the adoption rule to every agent; write the adopters' copies."""
        spec = self.spec
        rule = spec.resolved_rule
        retrieval = context.retrieval
        store = context.store
        tracker = context.tracker
        readers = retrieval.readers()
        entries = retrieval.entry_ids
        fresh = self._first_exposures(context)
        agent_parts, meme_parts, adopted_parts, cause_parts = [], [], [], []
        removals = []
        for meme in range(len(context.memes)):
            holders = np.flatnonzero(tracker.adopter[:, meme])
            if spec.gamma > 0 and len(holders):
                recovering = holders[context.rng.random(len(holders)) < spec.gamma]
                if len(recovering):
                    agent_parts.append(recovering.astype(np.int32))
                    meme_parts.append(np.full(len(recovering), meme, dtype=np.int32))
                    adopted_parts.append(np.zeros(len(recovering), dtype=np.bool_))
                    cause_parts.append(np.full(len(recovering), -1, dtype=np.int64))
                    if spec.recovered_entries == "remove":
                        removals.append(self._carrying_entries(recovering, meme, store))
            # Readers that may adopt: not holding the meme (nor immune, under SIR).
            open_ = ~tracker.adopter[:, meme]
            if spec.recovery == "sir":
                open_ &= ~tracker.recovered[:, meme]
            hit = retrieval.exposing(store, meme)
            # Entries of recovered agents that do not hold the meme again do not count.
            lapsed = tracker.recovered[:, meme] & ~tracker.adopter[:, meme]
            if lapsed.any():
                authors = retrieval.entry_authors(store)
                hit = hit & ((authors == ENVIRONMENT) | ~lapsed[np.maximum(authors, 0)])
            if fresh is not None:  # the one-shot cascade
                hit = hit & fresh
            rows = retrieval.rows_where(hit, open_)  # exposing rows of open readers
            exp_readers, exp_entries = readers.take(rows), entries.take(rows)
            if len(exp_readers) == 0:
                continue
            if rule == "repeated_exposure":
                agents, causes = self._cascade(exp_readers, exp_entries, context.rng)
            elif rule == "one_shot_cascade":
                agents, causes = self._one_shot(exp_readers, exp_entries, store, context.rng)
            else:
                agents, causes = self._threshold(exp_readers, exp_entries, store.author)
            agent_parts.append(agents.astype(np.int32))
            meme_parts.append(np.full(len(agents), meme, dtype=np.int32))
            adopted_parts.append(np.ones(len(agents), dtype=np.bool_))
            cause_parts.append(causes.astype(np.int64))
        removed = (
            sorted_unique(np.concatenate(removals), bound=len(store))
            if removals
            else np.zeros(0, dtype=np.int64)
        )
        if not agent_parts:
            return PolicyOutput(removals=removed)
        agents = np.concatenate(agent_parts)
        memes = np.concatenate(meme_parts)
        adopted = np.concatenate(adopted_parts)
        causes = np.concatenate(cause_parts)
        adoptions = Adoptions(agent=agents, meme=memes, adopted=adopted, cause=causes)
        writes = self._writes(agents[adopted], causes[adopted], context)
        return PolicyOutput(writes=writes, adoptions=adoptions, removals=removed)

    def _first_exposures(self, context: StepContext) -> np.ndarray | None:
        """Mark the context rows that are a reader's first exposure to a carrying entry.

        The exposures are remembered. Only the one-shot cascade needs this; for other
        rules there is no mark (None).
        """
        retrieval, store = context.retrieval, context.store
        if self.spec.resolved_rule != "one_shot_cascade":
            return None
        readers, entries = retrieval.readers(), retrieval.entry_ids
        fresh = np.zeros(len(readers), dtype=np.bool_)
        self._n_agents = context.banks.n_agents
        exposure = retrieval.foreign(store) & (retrieval.entry_memes(store) != 0)
        keys = entries[exposure].astype(np.int64) * context.banks.n_agents + readers[exposure]
        pos = np.searchsorted(self._seen, keys)
        known = np.zeros(len(keys), dtype=np.bool_)
        inside = pos < len(self._seen)
        known[inside] = self._seen[pos[inside]] == keys[inside]
        fresh[np.flatnonzero(exposure)[~known]] = True
        new = sorted_unique(keys[~known])  # (keys are unique already: one row per reader+entry)
        self._seen = np.insert(self._seen, np.searchsorted(self._seen, new), new)
        return fresh

    @staticmethod
    def _carrying_entries(agents: np.ndarray, meme: int, store) -> np.ndarray:
        """Alive entries written by ``agents`` that carry ``meme``."""
        alive = store.alive_ids()
        author = store.author[alive]
        mark = np.zeros(store.banks.n_agents, dtype=np.bool_)
        mark[agents] = True
        own = (author >= 0) & mark[np.maximum(author, 0)]
        carrying = ((store.memes[alive] >> meme) & 1).astype(bool)
        return alive[own & carrying].astype(np.int64)

    def _cascade(
        self, readers: np.ndarray, entries: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One trial per row; per reader, the cause is a uniformly chosen success.

        The cause is the success with the smallest draw (the first such row on a tie).
        """
        draws = rng.random(len(readers))
        success = np.flatnonzero(draws < self.spec.beta)  # (few: take, not a mask)
        readers, entries, draws = readers.take(success), entries.take(success), draws.take(success)
        if len(readers) > 1 and not bool(np.all(readers[1:] >= readers[:-1])):
            order = np.lexsort((draws, readers))
            readers, entries, draws = readers[order], entries[order], draws[order]
        # Readers ascending (as rows are): each reader's smallest draw, without a sort.
        first = run_starts(readers)
        smallest = np.minimum.reduceat(draws, first) if len(first) else draws
        is_min = draws == np.repeat(smallest, np.diff(np.append(first, len(readers))))
        at_min = np.flatnonzero(is_min)
        chosen = at_min[run_starts(readers.take(at_min))]
        return readers.take(chosen), entries.take(chosen)

    def _one_shot(
        self, readers: np.ndarray, entries: np.ndarray, store, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One trial per (reader, author) among first exposures (the best-ranked entry)."""
        authors = store.author[entries].astype(np.int64)
        key = readers.astype(np.int64) * (store.banks.n_agents + 1) + (authors + 1)
        _, first = np.unique(key, return_index=True)  # first = best-ranked occurrence
        return self._cascade(readers[first], entries[first], rng)

    def _threshold(
        self, readers: np.ndarray, entries: np.ndarray, author: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        authors = author[entries]
        pairs = np.unique(np.stack([readers, authors], axis=1), axis=0)
        agents_all, n_sources = np.unique(pairs[:, 0], return_counts=True)
        agents = agents_all[n_sources >= self.spec.threshold]
        # Cause: the best-ranked exposure (readers are grouped, best first).
        first = run_starts(readers)
        best = dict(zip(readers[first].tolist(), entries[first].tolist(), strict=True))
        return agents, np.array([best[a] for a in agents.tolist()], dtype=np.int64)

    def _writes(
        self, agents: np.ndarray, causes: np.ndarray, context: StepContext
    ) -> WriteProposals:
        if len(agents) == 0:
            return WriteProposals.empty()
        banks = context.banks
        store = context.store
        texts = store.texts.take(store.text_id[causes])
        if self.spec.mutation_prob > 0:
            mutate = context.rng.random(len(agents)) < self.spec.mutation_prob
            for i in np.flatnonzero(mutate).tolist():
                texts[i] = mutate_text(texts[i], context.rng)
        counts = np.diff(banks.write_indptr)[agents]
        target = banks.write_banks[expand_ranges(banks.write_indptr[agents], counts)]
        owner = np.repeat(np.arange(len(agents)), counts)
        if self.spec.write_to == "shared":
            keep = banks.shared[target]
            target, owner = target[keep], owner[keep]
        return WriteProposals(
            author=agents[owner].astype(np.int32),
            bank=target.astype(np.int32),
            text=[texts[i] for i in owner.tolist()],
            importance=np.full(len(owner), self.spec.importance, dtype=np.float32),
            cause=causes[owner],
        )
