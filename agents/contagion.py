"""The classical contagion policy: the null model that LLM runs are compared with.

It runs the same memory pipeline as an LLM policy (retrieval, capacity, provenance) but
decides by rule instead of by a language model:

* independent cascade — every retrieved entry carrying meme m, written by someone else,
  is one exposure; each exposure independently makes a non-adopter adopt with
  probability ``beta``. Trials repeat at every step an entry stays in the context, so
  with persistent entries the dynamics are SI-like (an adopter's entry keeps exposing
  its readers); the adoption's cause is a uniformly chosen successful exposure.
* threshold (complex contagion) — a non-adopter adopts when carrying entries from at
  least ``threshold`` distinct authors are in its context; the cause is the best-ranked
  of them.

An agent that adopts writes, in the same step, one entry carrying the meme into each
bank it may write (or each shared bank): a copy of the cause's text, edited with
probability ``mutation_prob`` (the detector then decides whether the edit still carries
the meme).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.mutation import mutate_text
from sim.policy import Adoptions, PolicyOutput, StepContext, WriteProposals
from sim.retrieval import expand_ranges
from sim.tracking import run_starts
from topologies.banks import BankKind


class ContagionSpec(BaseModel):
    """Parameters of the classical contagion policy.

    Attributes:
        kind: Always "contagion".
        rule: "independent_cascade" (probability ``beta`` per exposure per step) or
            "threshold" (at least ``threshold`` distinct carrying authors in context).
        beta: Adoption probability per exposure, in [0, 1].
        threshold: Distinct carrying authors needed to adopt, for the threshold rule.
        write_to: Adopters write into "all" the banks they may write, or only "shared" ones.
        mutation_prob: Probability that an adopter's copy is edited, in [0, 1].
        importance: Importance of the entries adopters write, in [0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["contagion"] = "contagion"
    rule: Literal["independent_cascade", "threshold"] = "independent_cascade"
    beta: float = Field(0.1, ge=0, le=1)
    threshold: int = Field(2, ge=1)
    write_to: Literal["all", "shared"] = "all"
    mutation_prob: float = Field(0.0, ge=0, le=1)
    importance: float = Field(0.5, ge=0, le=1)


class ContagionPolicy:
    """Rule-based adoption and copying, for all agents of a step at once (no LLM)."""

    name = "contagion"

    def __init__(self, spec: ContagionSpec | None = None) -> None:
        self.spec = spec or ContagionSpec()

    def describe(self) -> dict[str, object]:
        """The policy's parameters."""
        return {"policy": self.name, **self.spec.model_dump(mode="json")}

    def queries(self, step: int) -> Sequence[str] | None:
        """Contagion agents have no task text: retrieval ignores relevance."""
        return None

    def probe(self, context: StepContext) -> PolicyOutput:
        """Adoption is decided by the rule in :meth:`act`; probes change nothing."""
        return PolicyOutput()

    def close(self) -> None:
        """Nothing to release."""

    def act(self, context: StepContext) -> PolicyOutput:
        """Apply the adoption rule to every agent's context and write the adopters' copies."""
        retrieval = context.retrieval
        store = context.store
        readers = retrieval.readers()
        entries = retrieval.entry_ids
        masks = store.memes[entries]
        foreign = store.author[entries] != readers
        adopt_agents, adopt_memes, adopt_causes = [], [], []
        for meme in range(len(context.memes)):
            hit = foreign & ((masks >> meme) & 1).astype(bool)
            hit &= ~context.tracker.adopter[readers, meme]
            exp_readers, exp_entries = readers[hit], entries[hit]
            if len(exp_readers) == 0:
                continue
            if self.spec.rule == "independent_cascade":
                agents, causes = self._cascade(exp_readers, exp_entries, context.rng)
            else:
                agents, causes = self._threshold(exp_readers, exp_entries, store.author)
            adopt_agents.append(agents)
            adopt_memes.append(np.full(len(agents), meme, dtype=np.int32))
            adopt_causes.append(causes)
        if not adopt_agents:
            return PolicyOutput()
        agents = np.concatenate(adopt_agents).astype(np.int32)
        memes = np.concatenate(adopt_memes)
        causes = np.concatenate(adopt_causes).astype(np.int64)
        adoptions = Adoptions(
            agent=agents, meme=memes, adopted=np.ones(len(agents), dtype=np.bool_), cause=causes
        )
        return PolicyOutput(writes=self._writes(agents, causes, context), adoptions=adoptions)

    def _cascade(
        self, readers: np.ndarray, entries: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        draws = rng.random(len(readers))
        success = draws < self.spec.beta
        readers, entries, draws = readers[success], entries[success], draws[success]
        order = np.lexsort((draws, readers))
        readers, entries = readers[order], entries[order]
        first = run_starts(readers)
        return readers[first], entries[first]

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
            keep = banks.kind[target] != int(BankKind.PRIVATE)
            target, owner = target[keep], owner[keep]
        return WriteProposals(
            author=agents[owner].astype(np.int32),
            bank=target.astype(np.int32),
            text=[texts[i] for i in owner.tolist()],
            importance=np.full(len(owner), self.spec.importance, dtype=np.float32),
            cause=causes[owner],
        )
