"""Retrieval: the top-k entries each agent may read, scored as in Generative Agents.

score = w_recency * decay ** (step - last_access)
      + w_importance * importance
      + w_relevance * relevance(query of the reader, entry text)

Scores are computed for every (reader, entry) pair at once with numpy. When relevance is
off, the score does not depend on the reader, so each bank is first cut to its own top k
(an entry outside its bank's top k cannot be in any reader's top k): the work is then
proportional to the read rights, not to the number of entries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.memory import MemoryStore
from topologies.banks import Banks


class RetrievalSpec(BaseModel):
    """How agents retrieve memories.

    Attributes:
        k: Number of entries each agent retrieves per step (over all banks it may read).
        recency_weight: Weight of recency, ``recency_decay ** (steps since last access)``.
        importance_weight: Weight of the entry's importance (0..1).
        relevance_weight: Weight of relevance to the reader's query (0 disables it).
        recency_decay: Per-step decay factor of recency, in (0, 1].
        relevance: The relevance scorer: "lexical" (token Jaccard) or "none".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(8, ge=1, le=4096)
    recency_weight: float = Field(1.0, ge=0)
    importance_weight: float = Field(1.0, ge=0)
    relevance_weight: float = Field(0.0, ge=0)
    recency_decay: float = Field(0.99, gt=0, le=1)
    relevance: Literal["lexical", "none"] = "lexical"


class RelevanceScorer(Protocol):
    """Scores how relevant each entry text is to each reader's query, in [0, 1]."""

    def score(self, queries: Sequence[str], texts: Sequence[str], pairs: np.ndarray) -> np.ndarray:
        """Relevance of ``texts[pairs[i, 1]]`` to ``queries[pairs[i, 0]]`` for each row i."""
        ...


_WORD = re.compile(r"[a-z0-9]+")


class LexicalRelevance:
    """Jaccard overlap of lowercase word sets; token sets are cached per text."""

    def __init__(self) -> None:
        self._cache: dict[str, frozenset[str]] = {}

    def _tokens(self, text: str) -> frozenset[str]:
        tokens = self._cache.get(text)
        if tokens is None:
            tokens = frozenset(_WORD.findall(text.lower()))
            self._cache[text] = tokens
        return tokens

    def score(self, queries: Sequence[str], texts: Sequence[str], pairs: np.ndarray) -> np.ndarray:
        """Jaccard similarity of the word sets of each (query, text) pair."""
        out = np.zeros(len(pairs), dtype=np.float64)
        for row, (q, t) in enumerate(pairs.tolist()):
            a, b = self._tokens(queries[q]), self._tokens(texts[t])
            union = len(a | b)
            out[row] = len(a & b) / union if union else 0.0
        return out


@dataclass(frozen=True)
class Retrieval:
    """What each agent retrieved in one step, in CSR form over agents.

    Attributes:
        indptr: Offsets, length ``n_agents + 1``; agent ``a`` retrieved
            ``entry_ids[indptr[a]:indptr[a + 1]]``, best first.
        entry_ids: Retrieved entry ids (int64).
        scores: Retrieval score of each retrieved entry.
    """

    indptr: np.ndarray
    entry_ids: np.ndarray
    scores: np.ndarray

    @property
    def n_agents(self) -> int:
        """Number of agents."""
        return len(self.indptr) - 1

    def of(self, agent: int) -> np.ndarray:
        """Entry ids retrieved by one agent, best first."""
        return self.entry_ids[self.indptr[agent] : self.indptr[agent + 1]]

    def readers(self) -> np.ndarray:
        """The reader agent of each retrieved entry (parallel to ``entry_ids``)."""
        return np.repeat(np.arange(self.n_agents, dtype=np.int32), np.diff(self.indptr))

    def ranks(self) -> np.ndarray:
        """The 0-based rank of each retrieved entry within its reader's list."""
        counts = np.diff(self.indptr)
        return np.arange(len(self.entry_ids)) - np.repeat(self.indptr[:-1], counts)


def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + c)`` for each (start, count) pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


def retrieve(
    store: MemoryStore,
    banks: Banks,
    step: int,
    spec: RetrievalSpec,
    queries: Sequence[str] | None = None,
    scorer: RelevanceScorer | None = None,
) -> Retrieval:
    """Retrieve the top-k readable entries of every agent.

    Ties are broken by the newer entry first (higher entry id), so results are
    deterministic.

    Args:
        store: The memory store.
        banks: The bank layout (read rights).
        step: The current step (for recency).
        spec: Retrieval parameters.
        queries: One query text per agent (its task); needed when relevance is on.
        scorer: Relevance scorer; defaults to :class:`LexicalRelevance`.

    Returns:
        The retrieval of every agent.
    """
    n_agents = banks.n_agents
    alive = store.alive_ids()
    use_relevance = spec.relevance_weight > 0 and spec.relevance != "none" and queries is not None
    if len(alive) == 0:
        return Retrieval(
            np.zeros(n_agents + 1, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
        )
    age = (step - store.last_access[alive]).astype(np.float64)
    base = spec.recency_weight * np.power(spec.recency_decay, age)
    base += spec.importance_weight * store.importance[alive].astype(np.float64)
    if use_relevance:
        readers, entries, scores = _pairs_with_relevance(
            store, banks, alive, base, spec, queries, scorer or LexicalRelevance()
        )
    else:
        readers, entries, scores = _pairs_by_global_rank(store, banks, alive, base, spec.k)
    counts = np.bincount(readers, minlength=n_agents)
    indptr = np.zeros(n_agents + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Retrieval(indptr, entries.astype(np.int64), scores)


def _rights_pairs(
    banks: Banks, bank_start: np.ndarray, bank_count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expand read rights into (reader, position in the bank-sorted entry list) pairs."""
    rights_bank = banks.read_banks
    rights_reader = np.repeat(np.arange(banks.n_agents, dtype=np.int64), np.diff(banks.read_indptr))
    per_right = bank_count[rights_bank]
    keep = per_right > 0
    rights_bank, rights_reader, per_right = rights_bank[keep], rights_reader[keep], per_right[keep]
    positions = expand_ranges(bank_start[rights_bank], per_right)
    return np.repeat(rights_reader, per_right), positions


def _top_k(readers: np.ndarray, n_agents: int, k: int) -> np.ndarray:
    """Mask of the first ``k`` rows of each reader (rows sorted by reader, best first)."""
    reader_start = np.searchsorted(readers, np.arange(n_agents), side="left")
    rank = np.arange(len(readers)) - reader_start[readers]
    return rank < k


def _pairs_by_global_rank(
    store: MemoryStore, banks: Banks, alive: np.ndarray, base: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k pairs for reader-independent scores.

    Entries are ranked once, each bank is cut to its own top k, then (reader, rank) pairs
    are sorted as single int64 keys.
    """
    n_alive = len(alive)
    # Global order: score descending, newer entry first on ties (stable sort of the
    # reversed arrays keeps descending entry ids among equal scores).
    order = n_alive - 1 - np.argsort(-base[::-1], kind="stable")
    by_rank_entry, by_rank_score = alive[order], base[order]
    grank = np.empty(n_alive, dtype=np.int64)
    grank[order] = np.arange(n_alive, dtype=np.int64)
    key = store.bank[alive].astype(np.int64) * n_alive + grank
    key.sort()
    bank_sorted, grank_sorted = np.divmod(key, n_alive)
    bank_start = np.searchsorted(bank_sorted, np.arange(banks.n_banks), side="left")
    bank_count = np.minimum(np.bincount(bank_sorted, minlength=banks.n_banks), k)
    readers, positions = _rights_pairs(banks, bank_start, bank_count)
    pair_key = readers * n_alive + grank_sorted[positions]
    # Pairs come grouped by reader, each bank's entries already in rank order: the
    # stable sort (timsort) merges these runs quickly.
    pair_key.sort(kind="stable")
    readers, pair_rank = np.divmod(pair_key, n_alive)
    top = _top_k(readers, banks.n_agents, k)
    readers, pair_rank = readers[top], pair_rank[top]
    return readers, by_rank_entry[pair_rank], by_rank_score[pair_rank]


def _pairs_with_relevance(
    store: MemoryStore,
    banks: Banks,
    alive: np.ndarray,
    base: np.ndarray,
    spec: RetrievalSpec,
    queries: Sequence[str],
    scorer: RelevanceScorer,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reader-dependent scores: every readable alive entry is a candidate of its reader."""
    bank_of = store.bank[alive]
    order = np.argsort(bank_of, kind="stable")
    alive, base, bank_of = alive[order], base[order], bank_of[order]
    bank_start = np.searchsorted(bank_of, np.arange(banks.n_banks), side="left")
    bank_count = np.bincount(bank_of, minlength=banks.n_banks)
    readers, positions = _rights_pairs(banks, bank_start, bank_count)
    entries = alive[positions]
    text_ids = store.text_id[entries]
    unique_text, inverse = np.unique(text_ids, return_inverse=True)
    texts = store.texts.take(unique_text)
    pairs = np.stack([readers, inverse], axis=1)
    scores = base[positions] + spec.relevance_weight * scorer.score(queries, texts, pairs)
    order = np.lexsort((-entries, -scores, readers))
    readers, entries, scores = readers[order], entries[order], scores[order]
    top = _top_k(readers, banks.n_agents, spec.k)
    return readers[top], entries[top], scores[top]
