"""Retrieval: the top-k entries each agent may read, scored as in Generative Agents.

score = w_recency * decay ** (step - last_access)
      + w_importance * importance
      + w_relevance * relevance(query of the reader, entry text)

Ranking is "score descending, then newer entry first". Scores become int64 order keys
``score level | reversed entry id`` (the score level is the score's rank among the
step's distinct scores), unique per reader, so each reader's top k is its k smallest
keys: one exact answer. Each reader's keys are merged in one compiled pass over the read
rights in reader order (:mod:`sim.topk`), with no array of all (reader, entry) pairs.
When relevance is off, the score does not depend on the reader, so each bank is first
cut to its own top k (an entry outside its bank's top k cannot be in any reader's top
k): the work is then proportional to the read rights, not to the number of entries. With
relevance, a score is a base value plus a weighted relevance value, each from a short
list of distinct values, so every possible sum is ranked once and an entry's key for a
reader is a table lookup. Lexical relevance is Jaccard overlap computed with sparse
matrix products over the distinct (query, text) strings, never a Python loop over
pairs; when the distinct strings or the possible sums are too many for tables, every
(reader, entry) pair is scored and sorted with numpy instead (the same result).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sim.buffers import BufferPool
from sim.memory import MemoryStore
from sim.texts import words
from sim.tokens import distinct_word_ids
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

    @field_validator("recency_weight", "importance_weight", "relevance_weight")
    @classmethod
    def _positive_zero(cls, weight: float) -> float:
        """A weight of -0.0 (which ``ge=0`` admits) is 0.0, so no score is ever -0.0."""
        return weight + 0.0


class AgentQueries(Protocol):
    """One query text per agent id: a list, or a lazy view such as the LLM policy's tasks.

    A lazy view need not know the number of agents (any id >= 0 may answer), so the
    retriever reads exactly ``queries[0..n_agents-1]`` and never iterates it.
    """

    def __getitem__(self, agent: int, /) -> str:
        """The query text of ``agent``."""
        ...


class RelevanceScorer(Protocol):
    """Scores how relevant each entry text is to each reader's query, in [0, 1].

    A scorer may also offer ``score_columns(queries, texts, query_of, text_of)``, the
    same scores with the pairs as two columns: the retriever then calls it instead and
    never builds the (pairs x 2) array (:class:`LexicalRelevance` does).
    """

    def score(self, queries: Sequence[str], texts: Sequence[str], pairs: np.ndarray) -> np.ndarray:
        """Relevance of ``texts[pairs[i, 1]]`` to ``queries[pairs[i, 0]]`` for each row i."""
        ...


class LexicalRelevance:
    """Jaccard overlap of lowercase word sets, vectorised over (query, text) pairs.

    Every distinct string (query or entry text) is tokenised once: its sorted word ids
    are kept in one growing CSR table. Per call, only the distinct (query, text) string
    pairs are scored, with sparse matrix products (no Python loop over pairs), and the
    result is exactly ``len(a & b) / len(a | b)`` (0 when both sets are empty).
    """

    #: Largest dense (distinct queries x distinct texts) overlap matrix, in cells.
    DENSE_LIMIT = 1 << 22

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._string_ids: dict[str, int] = {}
        self._indptr: list[int] = [0]
        self._tokens: list[int] = []
        self._table: tuple[np.ndarray, np.ndarray] | None = None
        self._last_queries: list[str] | None = None
        self._query_rows: tuple[np.ndarray, Any] = (np.zeros(0, dtype=np.int64), None)
        # The last dense Jaccard matrix: (query matrix it was made with, text ids, matrix).
        self._last_jaccard: tuple[Any, np.ndarray, np.ndarray] | None = None

    def _ids(self, strings: Sequence[str]) -> np.ndarray:
        """The string id of each string; strings not seen before are tokenised first.

        New strings get ids in order of first appearance; many at once (the task texts
        of every agent) are tokenised in bulk (:mod:`sim.tokens`), with the same result.
        """
        known = self._string_ids
        new = [s for s in dict.fromkeys(strings) if s not in known]
        bulk = None
        if len(new) >= _BULK_STRINGS:
            with suppress(UnicodeEncodeError):  # (a lone surrogate: one by one)
                bulk = distinct_word_ids(new, self._vocab)
        if bulk is None:
            for text in new:
                word_ids = {self._vocab.setdefault(w, len(self._vocab)) for w in words(text)}
                self._tokens.extend(sorted(word_ids))
                self._indptr.append(len(self._tokens))
        else:
            counts, ids = bulk
            self._indptr.extend((len(self._tokens) + np.cumsum(counts)).tolist())
            self._tokens.extend(ids.tolist())
        if new:
            known.update(zip(new, range(len(known), len(known) + len(new)), strict=True))
            self._table = None
        return np.fromiter(map(known.__getitem__, strings), dtype=np.int64, count=len(strings))

    def _queries(self, queries: Sequence[str]) -> tuple[np.ndarray, Any]:
        """Each query's row in the matrix of the distinct queries, and that matrix.

        Both are kept while the same query list comes back (the common case: one task
        text per agent for the whole run).
        """
        last = self._last_queries
        same = last == (queries if isinstance(queries, list) else list(queries))
        if last is None or not same:
            distinct, slot = np.unique(self._ids(queries), return_inverse=True)
            self._last_queries = list(queries)
            self._query_rows = (slot.reshape(-1), self._rows(distinct))
        return self._query_rows

    def _rows(self, string_ids: np.ndarray) -> Any:
        """The binary (string x word) CSR matrix of the given strings."""
        from scipy.sparse import csr_array

        if self._table is None:
            self._table = (
                np.asarray(self._indptr, dtype=np.int64),
                np.asarray(self._tokens, dtype=np.int64),
            )
        indptr, tokens = self._table
        counts = indptr[string_ids + 1] - indptr[string_ids]
        rows_indptr = np.zeros(len(string_ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=rows_indptr[1:])
        cols = tokens[expand_ranges(indptr[string_ids], counts)]
        data = np.ones(len(cols), dtype=np.int64)
        return csr_array(
            (data, cols, rows_indptr), shape=(len(string_ids), max(len(self._vocab), 1))
        )

    def score(self, queries: Sequence[str], texts: Sequence[str], pairs: np.ndarray) -> np.ndarray:
        """Jaccard similarity of the word sets of each (query, text) pair."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return self.score_columns(queries, texts, pairs[:, 0], pairs[:, 1])

    def score_columns(
        self,
        queries: Sequence[str],
        texts: Sequence[str],
        query_of: np.ndarray,
        text_of: np.ndarray,
    ) -> np.ndarray:
        """:meth:`score` of the pairs ``(query_of[i], text_of[i])`` (two int columns)."""
        if len(query_of) == 0:
            return np.zeros(0, dtype=np.float64)
        table = self.dense_table(queries, texts)
        if table is not None:
            # Every (distinct query, distinct text) similarity once, then one lookup per
            # pair: pairs outnumber the distinct strings by far.
            jaccard, query_row, text_column = table
            q_inv = query_row.take(query_of)
            n_t = jaccard.shape[1]
            if n_t == 1:
                return jaccard[:, 0].take(q_inv)
            flat = q_inv * n_t
            flat += text_column.take(text_of)
            return jaccard.ravel().take(flat)
        query_slot, q_rows = self._queries(queries)
        q_inv = query_slot.take(query_of)
        t_used, t_slot = np.unique(self._ids(texts), return_inverse=True)
        t_rows = self._rows(t_used)
        if q_rows.shape[1] != t_rows.shape[1]:  # new words arrived since the queries
            q_rows.resize((q_rows.shape[0], t_rows.shape[1]))
        n_t = len(t_used)
        t_inv = t_slot.reshape(-1).take(text_of)
        q_size = np.diff(q_rows.indptr)[q_inv]
        t_size = np.diff(t_rows.indptr)[t_inv]
        pair_keys, pair_of = np.unique(q_inv * n_t + t_inv, return_inverse=True)
        left = q_rows[pair_keys // n_t]
        right = t_rows[pair_keys % n_t]
        inter = np.asarray(left.multiply(right).sum(axis=1)).ravel()[pair_of.reshape(-1)]
        return _jaccard(inter, q_size + t_size - inter)

    def dense_table(
        self, queries: Sequence[str], texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Every relevance at once, as a table, when it is small enough.

        Args:
            queries: The query texts.
            texts: The entry texts.

        Returns:
            ``(jaccard, query_row, text_column)``: the relevance of ``texts[j]`` to
            ``queries[i]`` is ``jaccard[query_row[i], text_column[j]]`` (a C-contiguous
            float64 matrix over the distinct queries and texts), or None when that matrix
            would have more than :attr:`DENSE_LIMIT` cells.
        """
        query_slot, q_rows = self._queries(queries)
        t_used, t_slot = np.unique(self._ids(texts), return_inverse=True)
        if q_rows.shape[0] * len(t_used) > self.DENSE_LIMIT:
            return None
        t_rows = self._rows(t_used)
        if q_rows.shape[1] != t_rows.shape[1]:  # new words arrived since the queries
            q_rows.resize((q_rows.shape[0], t_rows.shape[1]))
        jaccard = self._dense_jaccard(q_rows, t_rows, t_used)
        return jaccard, query_slot, t_slot.reshape(-1)

    def _dense_jaccard(self, q_rows: Any, t_rows: Any, t_used: np.ndarray) -> np.ndarray:
        """The (distinct query x distinct text) Jaccard matrix.

        Kept while the same queries and texts come back (new words elsewhere in the
        vocabulary change no similarity of these strings).
        """
        last = self._last_jaccard
        if last is not None and last[0] is q_rows and np.array_equal(last[1], t_used):
            return last[2]
        overlap = (q_rows @ t_rows.T).toarray()
        union = np.diff(q_rows.indptr)[:, None] + np.diff(t_rows.indptr)[None, :] - overlap
        jaccard = _jaccard(overlap, union)
        self._last_jaccard = (q_rows, t_used, jaccard)
        return jaccard


#: :meth:`LexicalRelevance._ids` tokenises at least this many new strings in bulk.
_BULK_STRINGS = 64


def _jaccard(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """``inter / union`` elementwise, 0 where the union is empty (both sets empty)."""
    out = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
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
    # Per-step columns computed once and shared by every caller (see :meth:`_cached`).
    _cache: dict[object, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def n_agents(self) -> int:
        """Number of agents."""
        return len(self.indptr) - 1

    def of(self, agent: int) -> np.ndarray:
        """Entry ids retrieved by one agent, best first."""
        return self.entry_ids[self.indptr[agent] : self.indptr[agent + 1]]

    def keep(self, key: object, value: np.ndarray) -> None:
        """Keep ``value`` (made read-only) as the column ``key`` of :meth:`_cached`.

        For the retriever, which computes some columns along with the retrieval.
        """
        value.setflags(write=False)
        self._cache[key] = value

    def _cached(self, key: object, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, made read-only and kept: later calls with ``key`` return it."""
        value = self._cache.get(key)
        if value is None:
            value = compute()
            value.setflags(write=False)
            self._cache[key] = value
        return value

    def readers(self) -> np.ndarray:
        """The reader agent of each retrieved entry (parallel to ``entry_ids``).

        Computed once and shared by every caller of the step (read-only int32 array).
        """
        return self._cached(
            "readers",
            lambda: np.repeat(np.arange(self.n_agents, dtype=np.int32), np.diff(self.indptr)),
        )

    # The columns below describe the retrieved entries of ``store``, the store this
    # retrieval was made from. An entry's author and memes never change once it is
    # written, so the columns the step reads repeatedly (memes, foreign, exposing) are
    # gathered once (at 10^6 agents a gather over all retrieved entries costs more than
    # the arithmetic of a whole consumer) and shared by every caller of the step
    # (tracking, the contagion rule) as read-only arrays. Each is one byte per retrieved
    # entry: the caches add little to the step's peak memory.

    def entry_memes(self, store: MemoryStore) -> np.ndarray:
        """The meme bit mask of each retrieved entry (``store.memes[entry_ids]``).

        Bit ``i`` is meme ``i`` as in ``store.memes``; the dtype is the narrowest unsigned
        integer holding every mask the store's texts carry (gathering bytes out of a
        column that fits the CPU cache is several times faster than int64).
        """
        return self._cached("memes", lambda: _narrow_masks(store).take(self.entry_ids))

    def entry_authors(self, store: MemoryStore) -> np.ndarray:
        """The author of each retrieved entry (``store.author[entry_ids]``, int32; not kept)."""
        return store.author.take(self.entry_ids)

    def foreign(self, store: MemoryStore) -> np.ndarray:
        """Whether each retrieved entry was written by someone other than its reader."""

        def compute() -> np.ndarray:
            readers, entry_ids = self.readers(), self.entry_ids
            foreign = np.empty(len(entry_ids), dtype=np.bool_)
            for lo, hi in _blocks(len(entry_ids)):  # no int32 author column of full size
                np.not_equal(
                    store.author.take(entry_ids[lo:hi]), readers[lo:hi], out=foreign[lo:hi]
                )
            return foreign

        return self._cached("foreign", compute)

    def carrying(self, store: MemoryStore, meme: int) -> np.ndarray:
        """Whether each retrieved entry carries meme ``meme`` (by index; not kept)."""
        if _every_text_carries(store, meme):
            return np.ones(len(self.entry_ids), dtype=np.bool_)
        return self._carrying_by_mask(store, meme)

    def _carrying_by_mask(self, store: MemoryStore, meme: int) -> np.ndarray:
        """:meth:`carrying` from each retrieved entry's meme mask (a new array)."""
        masks = self.entry_memes(store)
        if meme >= masks.dtype.itemsize * 8:
            return np.zeros(len(masks), dtype=np.bool_)
        if masks.dtype == np.int64:  # (bit 63 set somewhere: unsigned, so 1 << 63 fits)
            masks = masks.view(np.uint64)
        return np.not_equal(masks & masks.dtype.type(1 << meme), 0)

    def exposing(self, store: MemoryStore, meme: int) -> np.ndarray:
        """Whether each retrieved entry exposes its reader to ``meme``.

        That is: the entry carries the meme and someone other than the reader wrote it.
        When every text of the store carries the meme (one meme copied verbatim), that is
        :meth:`foreign` itself (the same read-only array).
        """

        def compute() -> np.ndarray:
            if _every_text_carries(store, meme):
                return self.foreign(store)
            hit = self._carrying_by_mask(store, meme)
            hit &= self.foreign(store)
            return hit

        return self._cached(("exposing", meme), compute)

    def rows_where(self, row_mask: np.ndarray, reader_mask: np.ndarray) -> np.ndarray:
        """The rows ``i`` (ascending) with ``row_mask[i]`` whose reader has ``reader_mask``.

        Reads whichever side selects fewer rows: the marked rows, or the rows of the
        marked readers (late in a spread few readers are open and most rows expose, early
        the reverse), so neither case makes a pass that gathers every row. When both
        sides select many rows (mid-spread), one pass expands the reader mask over all
        rows instead: gathering or expanding millions of selected row indices costs more.

        Args:
            row_mask: One bool per retrieved entry.
            reader_mask: One bool per agent.
        """
        n_rows = len(row_mask)
        marked = int(np.count_nonzero(row_mask))
        # Rows of the marked readers, estimated from their number (the choice of a path
        # changes no result).
        open_rows = int(np.count_nonzero(reader_mask)) * n_rows // max(len(reader_mask), 1)
        if min(marked, open_rows) > n_rows // _DENSE_SHARE:
            mask = np.repeat(reader_mask, self._per_reader())
            mask &= row_mask
            return np.flatnonzero(mask)
        if open_rows < marked:
            open_readers = np.flatnonzero(reader_mask)
            starts = self.indptr.take(open_readers)
            counts = self.indptr.take(open_readers + 1)
            counts -= starts
            rows = expand_ranges(starts, counts)
            return rows[row_mask.take(rows)]
        rows = np.flatnonzero(row_mask)
        return rows[reader_mask.take(self.readers().take(rows))]

    def _per_reader(self) -> np.ndarray:
        """Retrieved entries of each reader (``diff(indptr)``; kept, read-only)."""
        return self._cached("per_reader", lambda: np.diff(self.indptr))

    def ranks(self) -> np.ndarray:
        """The 0-based rank of each retrieved entry within its reader's list."""
        counts = np.diff(self.indptr)
        return np.arange(len(self.entry_ids)) - np.repeat(self.indptr[:-1], counts)


#: :meth:`Retrieval.rows_where` expands the reader mask over all rows once both sides
#: select more than this share (1 / _DENSE_SHARE) of the rows.
_DENSE_SHARE = 8


def _recency(spec: RetrievalSpec, step: int, last_access: np.ndarray) -> np.ndarray:
    """``recency_weight * recency_decay ** (step - last_access)`` as float64, elementwise.

    Ages are whole steps, and few: each age's value is computed once (the same float
    operations as elementwise) and looked up.
    """
    age = step - last_access.astype(np.int64)
    if len(age) == 0:
        return np.zeros(0, dtype=np.float64)
    low, high = int(age.min()), int(age.max())
    if low < 0 or high > 4 * len(age) + 1024:  # (not whole steps since a write: elementwise)
        return spec.recency_weight * np.power(spec.recency_decay, age.astype(np.float64))
    table = spec.recency_weight * np.power(
        spec.recency_decay, np.arange(high + 1, dtype=np.float64)
    )
    return table.take(age)


def _every_text_carries(store: MemoryStore, meme: int) -> bool:
    """Whether every text of the store (so every entry) carries meme ``meme``.

    A pass over the texts, not the entries: then no entry's mask need be read.
    """
    text_masks = store.text_memes
    return len(text_masks) > 0 and 0 <= meme < 64 and bool(np.all((text_masks >> meme) & 1))


def _narrow_masks(store: MemoryStore) -> np.ndarray:
    """``store.memes`` as the narrowest unsigned integer type holding every text's mask."""
    masks = store.memes
    text_masks = store.text_memes.view()
    top = int(text_masks.max()) if len(text_masks) else 0
    if top < 0:  # bit 63 set: the int64 masks stay as they are
        return masks
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return masks.astype(dtype)
    return masks


def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + c)`` for each (start, count) pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


class Retriever:
    """Retrieval for one bank layout: the layout's read rights are expanded once.

    A model keeps one retriever for its whole run (so the relevance scorer's token cache
    and the expanded rights persist across steps); :func:`retrieve` builds a throwaway one.

    Args:
        banks: The bank layout (read rights).
        spec: Retrieval parameters.
        scorer: Relevance scorer; defaults to :class:`LexicalRelevance`.
    """

    def __init__(
        self, banks: Banks, spec: RetrievalSpec, scorer: RelevanceScorer | None = None
    ) -> None:
        self.banks = banks
        self.spec = spec
        self.scorer = scorer or LexicalRelevance()
        # The read rights transposed: the readers of each bank, bank by bank.
        rights_reader = np.repeat(
            np.arange(banks.n_agents, dtype=np.int32), np.diff(banks.read_indptr)
        )
        by_bank = np.argsort(banks.read_banks, kind="stable")
        self._bank_readers = rights_reader[by_bank]
        self._bank_n_readers = np.bincount(banks.read_banks, minlength=banks.n_banks)
        # The memory of the results of _by_global_rank (step-sized output columns).
        self._buffers = BufferPool(keep=8)
        # The last relevance table and its distinct values and ranks (_relevance_levels).
        self._last_relevance: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(
        self, store: MemoryStore, step: int, queries: AgentQueries | None = None
    ) -> Retrieval:
        """Retrieve the top-k readable entries of every agent at ``step``.

        Entries are ranked by score, ties broken by the newer entry first (higher entry
        id), so results are deterministic. Relevance counts only when
        ``spec.relevance_weight > 0``, ``spec.relevance != "none"`` and ``queries`` (one
        query text per agent) is given.
        """
        spec = self.spec
        n_agents = self.banks.n_agents
        alive = store.alive_ids()
        use_relevance = (
            spec.relevance_weight > 0 and spec.relevance != "none" and queries is not None
        )
        if len(alive) == 0:
            return Retrieval(
                np.zeros(n_agents + 1, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.float64),
            )
        base = _recency(spec, step, store.last_access[alive])
        base += spec.importance_weight * store.importance[alive].astype(np.float64)
        bank_of = store.bank.take(alive)  # (int32: every use widens it where it must)
        if use_relevance:
            assert queries is not None
            if not isinstance(queries, list | tuple):  # a lazy view: read agents' queries only
                queries = [queries[agent] for agent in range(n_agents)]
            elif len(queries) < n_agents:  # (the compiled merge reads a query per agent)
                raise ValueError(
                    f"retrieval needs one query per agent: {len(queries)} for {n_agents}"
                )
            return self._with_relevance(store, alive, base, bank_of, queries)
        return self._by_global_rank(store, alive, base, bank_of)

    def _candidates(
        self, grouped: np.ndarray, bits: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expand read rights into (reader, entry value) candidate pairs, in no set order.

        Pairs are generated bank by bank (each bank's value repeated over its readers), so
        every pass reads memory in order: at 10^6 agents random gathers over the read
        rights, not arithmetic, dominate. The final sort puts the pairs in reader order.

        Args:
            grouped: ``(bank << bits) | value`` of every alive entry, sorted (so grouped
                by bank, each bank's values ascending).
            bits: The value bits of ``grouped``.

        Returns:
            ``(readers, values, per_reader)``: the reader of each pair, the value of its
            entry, and the number of pairs of each reader.
        """
        count = np.bincount(grouped >> bits, minlength=self.banks.n_banks)
        start = np.cumsum(count) - count
        values = grouped & ((1 << bits) - 1)
        n_readers = self._bank_n_readers
        pair_readers: list[np.ndarray] = []
        pair_values: list[np.ndarray] = []
        # Layer j: the j-th entry of every bank holding more than j entries, for each of
        # the bank's readers. Layers are few: banks are small or cut to k.
        layer = 0
        deep = np.flatnonzero(count > 0)
        while len(deep):
            mask = np.zeros(len(count), dtype=np.bool_)
            mask[deep] = True
            pair_readers.append(self._bank_readers[np.repeat(mask, n_readers)])
            pair_values.append(np.repeat(values[start[deep] + layer], n_readers[deep]))
            layer += 1
            deep = deep[count[deep] > layer]
        if not pair_readers:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(self.banks.n_agents, dtype=np.int64)
        readers = np.concatenate(pair_readers) if layer > 1 else pair_readers[0]
        keys = np.concatenate(pair_values) if layer > 1 else pair_values[0]
        return readers, keys, np.bincount(readers, minlength=self.banks.n_agents)

    def _finish(
        self, pair_key: np.ndarray, per_reader: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sort pair keys (unique, reader-major) and keep each reader's first k; CSR out."""
        pair_key.sort()
        k = self.spec.k
        kept = _first_k(pair_key, per_reader, k)
        indptr = np.zeros(len(per_reader) + 1, dtype=np.int64)
        np.cumsum(per_reader, out=indptr[1:])
        return kept, indptr

    def _by_global_rank(
        self, store: MemoryStore, alive: np.ndarray, base: np.ndarray, bank_of: np.ndarray
    ) -> Retrieval:
        """Reader-independent scores: rank entries once, cut each bank to its top k.

        Each reader's top k is then merged from the tops of the banks it may read, in one
        compiled pass over the read rights in reader order (:mod:`sim.topk`): no array of
        all (reader, entry) pairs exists and nothing is sorted per reader.
        """
        from sim import topk  # (numba: imported by the first retrieval, not by the CLI)

        banks, k = self.banks, self.spec.k
        n_agents = banks.n_agents
        # (keys are never combined with a reader id here, and _BankTops groups them by
        # bank without combining when they are too wide for that: max_major 1)
        order = _OrderKeys(base, len(store), 1, alive)
        tops = _BankTops.build(bank_of, order.keys, store.bank_counts(), order.bits, k)
        # At most min(pairs, n_agents * k) entries are retrieved; the kernel fills the
        # arrays in order and the result is their filled part (pages never written are
        # never touched, so the unused tail costs no memory). They are the memory of an
        # earlier step's result once nothing refers to that any more (:mod:`sim.buffers`).
        cap = min(int(np.dot(tops.count, self._bank_n_readers)), n_agents * k)
        entry_ids = self._buffers.empty(cap, np.int64, capacity=n_agents * k)
        scores = self._buffers.empty(cap, np.float64, capacity=n_agents * k)
        indptr = self._buffers.empty(n_agents + 1, np.int64)
        # The reader of each retrieved entry (Retrieval.readers), written by the kernel
        # along with the entries: no pass over all retrieved entries after.
        readers = self._buffers.empty(cap, np.int32, capacity=n_agents * k)
        rights = (banks.read_indptr, banks.read_banks)
        if tops.start is None:
            filled = topk.merge_bank_keys(*rights, tops.keys, k, entry_ids, readers, indptr)
        else:
            filled = topk.merge_bank_lists(
                *rights, tops.start, tops.count, tops.keys, k, entry_ids, readers, indptr
            )
        kept = entry_ids[:filled]  # the order keys, decoded in place into entry ids
        order.decode_into(kept, kept, scores[:filled])
        result = Retrieval(indptr, kept, scores[:filled])
        result.keep("readers", readers[:filled])
        return result

    def _with_relevance(
        self,
        store: MemoryStore,
        alive: np.ndarray,
        base: np.ndarray,
        bank_of: np.ndarray,
        queries: Sequence[str],
    ) -> Retrieval:
        """Reader-dependent scores: every readable alive entry is a candidate of its reader."""
        # The distinct texts of the alive entries, ascending, and each entry's slot among
        # them (np.unique's answer, by marking: text ids are small integers).
        text_of = store.text_id[alive]
        used = np.zeros(int(text_of.max()) + 1, dtype=np.bool_)
        used[text_of] = True
        texts = store.texts.take(np.flatnonzero(used))
        slot_of_text = np.cumsum(used, dtype=np.int64)
        slot_of_text -= 1
        entry_slots = slot_of_text.take(text_of)
        dense_table = getattr(self.scorer, "dense_table", None)
        table = dense_table(queries, texts) if dense_table is not None else None
        merged = (
            None
            if table is None
            else self._merge_dense(alive, base, bank_of, store.bank_counts(), entry_slots, table)
        )
        if merged is not None:
            return merged
        n_alive = len(alive)
        shift = _bits(n_alive - 1)
        bank_key = _combine(bank_of, shift, np.arange(n_alive, dtype=np.int64))
        bank_key.sort()
        readers, rows, per_reader = self._candidates(bank_key, shift)
        entries = alive[rows]
        text_slots = entry_slots.take(rows)
        score_columns = getattr(self.scorer, "score_columns", None)
        if score_columns is not None:
            relevance = score_columns(queries, texts, readers, text_slots)
        else:
            relevance = self.scorer.score(queries, texts, np.stack([readers, text_slots], axis=1))
        scores = base[rows] + self.spec.relevance_weight * relevance
        order = _OrderKeys(scores, len(store), self.banks.n_agents, entries.astype(np.int64))
        pair_key = _combine(readers, order.bits, order.keys)
        kept, indptr = self._finish(pair_key, per_reader)
        kept_entries, kept_scores = order.decode(kept)
        return Retrieval(indptr, kept_entries, kept_scores)

    def _merge_dense(
        self,
        alive: np.ndarray,
        base: np.ndarray,
        bank_of: np.ndarray,
        bank_count: np.ndarray,
        entry_slots: np.ndarray,
        table: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> Retrieval | None:
        """Reader-dependent scores from a relevance table, merged reader by reader.

        A score is ``base + w * relevance``: a function of the base value and the
        relevance value, each from a short list of distinct values. Every possible sum is
        computed once (the same float operations as per pair) and ranked; an entry's
        order key for a reader is then a table lookup, and one compiled pass over the
        read rights (:func:`sim.topk.merge_level_keys`) keeps each reader's best k. The
        scores and the ranking are those of the pairwise path.

        Args:
            alive: The alive entry ids, ascending.
            base: The reader-independent score of each alive entry.
            bank_of: The bank of each alive entry.
            bank_count: The number of alive entries of each bank (the store's
                :meth:`~sim.memory.MemoryStore.bank_counts`, not counted again).
            entry_slots: Each alive entry's text, as an index into the texts the table
                was made for.
            table: ``(relevance, query_row, text_column)`` of the scorer's
                ``dense_table`` (query_row indexed by agent, text_column by text).

        Returns:
            The retrieval, or None when the possible sums are too many to rank this way
            (more than :data:`_SUM_LIMIT`) or their keys would not fit int64.
        """
        from sim import topk  # (numba: imported by the first retrieval, not by the CLI)

        banks, k = self.banks, self.spec.k
        n_agents = banks.n_agents
        relevance, query_row, text_column = table
        rel_values, rel_level = self._relevance_levels(relevance)
        base_values, base_level = _score_levels(base)
        if len(base_values) * len(rel_values) > _SUM_LIMIT:
            return None
        sums = base_values[:, None] + self.spec.relevance_weight * rel_values[None, :]
        levels, level_of = np.unique(sums, return_inverse=True)
        id_bits = _bits(len(alive) - 1)
        if _bits(len(levels) - 1) + id_bits > 62:
            return None
        level_key = np.subtract(len(levels) - 1, level_of.reshape(sums.shape), dtype=np.int64)
        level_key <<= id_bits
        pairs = int(np.dot(bank_count, self._bank_n_readers))
        cap = min(pairs, n_agents * k)
        keys = np.empty(cap, dtype=np.int64)
        readers = np.empty(cap, dtype=np.int32)
        indptr = np.empty(n_agents + 1, dtype=np.int64)
        filled = topk.merge_level_keys(
            banks.read_indptr,
            banks.read_banks,
            bank_of,
            bank_count,
            base_level.astype(np.int64, copy=False),
            text_column.astype(np.int64).take(entry_slots),
            query_row.astype(np.int64) * relevance.shape[1],
            rel_level,
            level_key,
            k,
            keys,
            readers,
            indptr,
        )
        keys = keys[:filled]
        scores = np.empty(filled, dtype=np.float64)
        topk.decode_keys(keys, levels[::-1], id_bits, len(alive) - 1, keys, scores, alive)
        result = Retrieval(indptr, keys, scores)
        result.keep("readers", readers[:filled])
        return result

    def _relevance_levels(self, relevance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct values of a relevance table, ascending, and each cell's rank.

        Kept while the scorer hands back the same table (it keeps it while the queries
        and the texts stay the same).
        """
        last = self._last_relevance
        if last is not None and last[0] is relevance:
            return last[1], last[2]
        values, rank = _score_levels(relevance.reshape(-1))
        rank = rank.astype(np.int64, copy=False)
        self._last_relevance = (relevance, values, rank)
        return values, rank


class _OrderKeys:
    """Sort keys for "score descending, then newer entry first", as int64.

    ``keys[i] < keys[j]`` exactly when item i ranks before item j: a higher score, or an
    equal score and a higher entry id. Keys use the low :attr:`bits` bits, so
    ``(major << bits) | key`` with a major id below ``max_major`` (a reader or a bank)
    sorts by major first; when the (score level, entry id) form would not fit int64 that
    way, keys fall back to the dense rank of the items. :meth:`decode` maps keys back to
    (entry id, score).

    Args:
        scores: Score of each item (no NaN).
        n_entries: Bound of the entry ids (the store's length).
        max_major: Bound of the ids the keys are combined with.
        entry_ids: Entry id of each item (int64). Keys are unique among items with
            distinct (score, entry id).
    """

    def __init__(
        self, scores: np.ndarray, n_entries: int, max_major: int, entry_ids: np.ndarray
    ) -> None:
        n = len(scores)
        self._scores = scores
        self._entry_ids = entry_ids
        self._top_id = max(n_entries, 1) - 1
        self._id_bits = _bits(self._top_id)
        levels, level_index = _score_levels(scores)
        self._levels_desc = levels[::-1].copy()
        top_level = len(levels) - 1
        self._level_bits = _bits(top_level)
        self.bits = self._level_bits + self._id_bits
        # (level << id_bits) | (top_id - entry_id), level 0 = best score, in one array:
        # the two parts share no bit, so | is +.
        keys = np.subtract(top_level, level_index, dtype=np.int64)
        keys <<= self._id_bits
        keys += self._top_id
        keys -= entry_ids
        self.keys = keys
        self._dense: np.ndarray | None = None
        if self.bits + _bits(max(max_major - 1, 0)) > 62:
            self._dense = np.argsort(self.keys)
            self.keys = np.empty(n, dtype=np.int64)
            self.keys[self._dense] = np.arange(n, dtype=np.int64)
            self.bits = _bits(max(n - 1, 0))

    @property
    def mask(self) -> int:
        """The key bits of a combined ``(major << bits) | key`` value."""
        return (1 << self.bits) - 1

    def decode(self, combined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entry id and the score of each ``(major << bits) | key`` value.

        ``combined`` (int64) is consumed: it is overwritten with the entry ids.
        """
        scores = np.empty(len(combined), dtype=np.float64)
        self.decode_into(combined, combined, scores)
        return combined, scores

    def decode_into(self, combined: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> None:
        """:meth:`decode` written into ``ids`` (int64) and ``scores`` (float64), same length.

        ``ids`` may be ``combined`` itself (it is then overwritten); otherwise ``combined``
        is left as it is. Writes go into the given arrays: at 10^6 agents these arrays
        outgrow the CPU caches and every fresh allocation costs memory bandwidth.
        """
        if self._dense is not None:
            item = self._dense.take(combined & self.mask)
            np.take(self._entry_ids, item, out=ids, mode="clip")  # (unbuffered; in range)
            np.take(self._scores, item, out=scores, mode="clip")
            return
        from sim.topk import decode_keys  # (one compiled pass; numba on first use)

        decode_keys(combined, self._levels_desc, self._id_bits, self._top_id, ids, scores)


@dataclass(frozen=True)
class _BankTops:
    """The order keys of each bank's top-k alive entries, best first, for pair expansion.

    Attributes:
        count: Number of top entries per bank (``min(alive entries, k)``), int64.
        start: Offset of each bank's keys in ``keys``, or None when every bank holds at
            most one entry (then ``keys[bank]`` is the key of the bank's entry, or -1 for
            an empty bank, in the narrowest signed integer type holding every key: one
            gather per read right, from a table half the size when keys fit int32).
        keys: The keys, grouped by bank, each bank's ascending (best first).
    """

    count: np.ndarray
    start: np.ndarray | None
    keys: np.ndarray

    @classmethod
    def build(
        cls, bank_of: np.ndarray, keys: np.ndarray, count: np.ndarray, bits: int, k: int
    ) -> _BankTops:
        """The top entries of every bank, from each alive entry's bank and order key.

        Args:
            bank_of: Bank of each alive entry (int32 or int64).
            keys: Order key of each alive entry (below ``1 << bits``).
            count: Number of alive entries of each bank (int64).
            bits: Bits of the keys.
            k: Entries kept per bank at most.
        """
        n_banks = len(count)
        if n_banks == 0 or int(count.max()) <= 1:
            # One entry per bank at most (the common case of small banks): no sort.
            top = np.full(n_banks, -1, dtype=np.int32 if bits <= 31 else np.int64)
            top[bank_of] = keys
            return cls(count, None, top)
        if bits + _bits(n_banks - 1) <= 63:
            grouped = _combine(bank_of, bits, keys)
            grouped.sort()
            grouped &= (1 << bits) - 1
        else:  # (keys too wide to share an int64 with a bank id: sorted by both)
            grouped = keys.take(np.lexsort((keys, bank_of)))
        start = np.cumsum(count) - count
        return cls(np.minimum(count, k), start, grouped)


def _first_k(keys: np.ndarray, per_reader: np.ndarray, k: int) -> np.ndarray:
    """Each reader's first ``k`` of sorted, reader-major keys.

    ``per_reader`` (int64, keys of each reader) is cut to ``k`` in place, so it counts the
    keys returned.
    """
    over = np.flatnonzero(per_reader > k)
    if len(over) == 0:
        return keys
    starts = np.cumsum(per_reader) - per_reader
    keep = np.ones(len(keys), dtype=np.bool_)
    keep[expand_ranges(starts[over] + k, per_reader[over] - k)] = False
    per_reader[over] = k
    return keys[keep]


def _score_levels(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct scores, ascending, and the index of each score among them.

    A hash set over the distinct values while they are few (:mod:`sim.levels`, one
    pass); otherwise a sort of all scores and a lookup of each one's level.
    """
    from sim.levels import distinct_ranks  # (numba: imported on first use)

    found = distinct_ranks(scores)
    if found is not None:
        return found
    levels = np.unique(scores)
    return levels, _level_index(levels, scores)


def _level_index(levels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``np.searchsorted(levels, scores)`` for scores that all equal one of ``levels``.

    ``levels`` are distinct floats, ascending (few: scores repeat). A binary search per
    score is slow, so when some window of bits of the float64 representation tells the
    levels apart, each score's level is read from a small table indexed by that window.
    Windows leave out the sign bit, so -0.0 finds the level of 0.0, as it compares equal.
    """
    n_levels = len(levels)
    if n_levels <= 1:
        return np.zeros(len(scores), dtype=np.int64)
    if n_levels <= _LEVEL_TABLE_LEVELS:
        level_bits = np.ascontiguousarray(levels, dtype=np.float64).view(np.uint64)
        for width in range(_bits(n_levels - 1) + 2, _LEVEL_TABLE_BITS + 1):
            mask = np.uint64((1 << width) - 1)
            for shift in range(0, 64 - width, 4):
                window = (level_bits >> np.uint64(shift)) & mask
                if len(np.unique(window)) < n_levels:
                    continue
                table = np.zeros(1 << width, dtype=np.int32)
                table[window.astype(np.int64)] = np.arange(n_levels, dtype=np.int32)
                # int64 view: the window excludes the sign bit, so an arithmetic shift
                # reads the same bits (and the index needs no cast).
                keys = np.ascontiguousarray(scores, dtype=np.float64).view(np.int64) >> shift
                keys &= int(mask)
                return table.take(keys)
    return np.searchsorted(levels, scores)


#: Most (base value x relevance value) sums :meth:`Retriever._merge_dense` ranks; with
#: more, retrieval with relevance scores every (reader, entry) pair instead.
_SUM_LIMIT = 1 << 20


#: Limits of the level table of :func:`_level_index`: at most this many levels, and
#: windows of at most this many bits (a table that stays in the CPU cache).
_LEVEL_TABLE_LEVELS = 1 << 8
_LEVEL_TABLE_BITS = 16


#: Elements per block of the blockwise loops: their temporaries stay a few MB (at 10^6
#: agents a fresh temporary of every pair costs more in page faults than in arithmetic).
_BLOCK = 1 << 20


def _blocks(n: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` bounds of the blocks of ``range(n)``."""
    return [(lo, min(lo + _BLOCK, n)) for lo in range(0, n, _BLOCK)]


def _combine(major: np.ndarray, bits: int, keys: np.ndarray) -> np.ndarray:
    """``(major << bits) | keys`` as a new int64 array, computed in place."""
    out = major.astype(np.int64)
    out <<= bits
    out |= keys
    return out


def _bits(value: int) -> int:
    """Bits needed to hold the non-negative int ``value`` (at least 1)."""
    return max(int(value).bit_length(), 1)


def retrieve(
    store: MemoryStore,
    banks: Banks,
    step: int,
    spec: RetrievalSpec,
    queries: AgentQueries | None = None,
    scorer: RelevanceScorer | None = None,
) -> Retrieval:
    """Retrieve the top-k readable entries of every agent (see :class:`Retriever`).

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
    return Retriever(banks, spec, scorer)(store, step, queries)
