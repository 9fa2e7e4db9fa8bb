"""The columnar, append-only memory store: every entry of every bank of a run.

Banks are partitions of one store (the ``bank`` column), not separate object graphs, so
retrieval, eviction and forgetting are vectorised numpy operations over rows. Rows are
never removed: an evicted or forgotten entry keeps its row with ``alive = False``, so
provenance (parent entry ids) always resolves.

Texts are bounded by what is alive: the store counts, per text, the alive entries that
refer to it, and releases a text from memory (:meth:`sim.texts.TextTable.release`) as
soon as its count drops to zero. A released text stays readable (the ``memories`` table
and checkpoints still hold every entry's text); only the numeric columns grow with the
number of entries ever written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from sim.state import State
from sim.texts import TextTable
from topologies.banks import Banks, Eviction

#: The code of LRU banks in :attr:`Banks.eviction` (the codes belong to :class:`Eviction`).
LRU_CODE = Eviction.LRU.code

#: Author id of entries injected by the experimenter rather than written by an agent.
ENVIRONMENT = -1


@dataclass(frozen=True)
class NewEntries:
    """A batch of entries to append, column by column (all arrays of equal length).

    Attributes:
        bank: Bank id of each entry.
        author: Agent id of the writer, or ``ENVIRONMENT`` for injected entries.
        text_id: Id in the store's text table.
        importance: Importance in [0, 1], used by retrieval scoring.
        parent_indptr: CSR offsets (length ``len(bank) + 1``) into ``parent_ids``.
        parent_ids: Entry ids that were in the writer's context, best-ranked first.
    """

    bank: np.ndarray
    author: np.ndarray
    text_id: np.ndarray
    importance: np.ndarray
    parent_indptr: np.ndarray
    parent_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.bank)


class _Column:
    """A growable 1-D numpy column with amortised O(1) appends."""

    def __init__(self, dtype: np.dtype | type, capacity: int = 1024) -> None:
        self.data = np.zeros(capacity, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        needed = self.size + len(values)
        if needed > len(self.data):
            grown = np.zeros(max(needed, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : needed] = values
        self.size = needed

    def view(self) -> np.ndarray:
        return self.data[: self.size]


class MemoryStore:
    """Append-only columnar store of all memory entries of one model.

    Columns (each a numpy array with one row per entry, entry id = row index):
    ``bank``, ``author``, ``step`` (when written), ``text_id``, ``memes`` (int64 bit mask
    of the memes the text carries, bit ``i`` for meme index ``i``), ``importance``,
    ``last_access`` (step of the last retrieval, initially the write step),
    ``strength`` (Ebbinghaus memory strength, grows with each recall) and ``alive``.
    Parents are stored in CSR form (``parent_indptr``, ``parent_ids``).

    Args:
        banks: The run's banks (capacity and eviction policy per bank).
        initial_strength: Memory strength of a new entry, in steps (decay forgetting).
    """

    def __init__(self, banks: Banks, initial_strength: float = 1.0) -> None:
        self.banks = banks
        self.initial_strength = float(initial_strength)
        self.texts = TextTable()
        self.text_memes = _Column(np.int64)
        self._text_refs = _Column(np.int32)  # per text id: alive entries referring to it
        self._bank = _Column(np.int32)
        self._author = _Column(np.int32)
        self._step = _Column(np.int32)
        self._text_id = _Column(np.int32)
        self._memes = _Column(np.int64)
        self._importance = _Column(np.float32)
        self._last_access = _Column(np.int32)
        self._strength = _Column(np.float32)
        self._alive = _Column(np.bool_)
        self._parent_indptr = _Column(np.int64)
        self._parent_indptr.extend(np.zeros(1, dtype=np.int64))
        self._parent_ids = _Column(np.int64)
        self._evicted_step = _Column(np.int32)

    # ------------------------------------------------------------------ columns
    def __len__(self) -> int:
        return self._bank.size

    @property
    def bank(self) -> np.ndarray:
        """Bank id per entry."""
        return self._bank.view()

    @property
    def author(self) -> np.ndarray:
        """Author agent id per entry (``ENVIRONMENT`` for injected entries)."""
        return self._author.view()

    @property
    def step(self) -> np.ndarray:
        """Step at which each entry was written."""
        return self._step.view()

    @property
    def text_id(self) -> np.ndarray:
        """Text id per entry."""
        return self._text_id.view()

    @property
    def memes(self) -> np.ndarray:
        """Bit mask of the memes each entry carries."""
        return self._memes.view()

    @property
    def importance(self) -> np.ndarray:
        """Importance per entry, in [0, 1]."""
        return self._importance.view()

    @property
    def last_access(self) -> np.ndarray:
        """Step of the last retrieval (or the write step) per entry."""
        return self._last_access.view()

    @property
    def strength(self) -> np.ndarray:
        """Ebbinghaus memory strength per entry, in steps."""
        return self._strength.view()

    @property
    def alive(self) -> np.ndarray:
        """Whether each entry is still in its bank (not evicted or forgotten)."""
        return self._alive.view()

    @property
    def removed_step(self) -> np.ndarray:
        """Step at which each entry was evicted or forgotten (-1 while alive)."""
        return self._evicted_step.view()

    def parents(self, entry_id: int) -> np.ndarray:
        """Parent entry ids of one entry, best-ranked first."""
        indptr = self._parent_indptr.data
        return self._parent_ids.data[indptr[entry_id] : indptr[entry_id + 1]]

    @property
    def parent_indptr(self) -> np.ndarray:
        """CSR offsets of the parents column (length ``len(store) + 1``)."""
        return self._parent_indptr.view()

    @property
    def parent_ids(self) -> np.ndarray:
        """CSR values of the parents column."""
        return self._parent_ids.view()

    def text(self, entry_id: int) -> str:
        """The text of one entry."""
        return self.texts.get(int(self._text_id.data[entry_id]))

    def alive_ids(self) -> np.ndarray:
        """Ids of all alive entries, ascending."""
        return np.flatnonzero(self.alive)

    # ------------------------------------------------------------------ writing
    def register_texts(self, texts: list[str], memes_of: np.ndarray) -> np.ndarray:
        """Intern texts and record, for new ones, which memes they carry.

        Args:
            texts: The texts.
            memes_of: Meme bit mask of each text (as computed by the detectors).

        Returns:
            The text ids, in input order.
        """
        ids = np.empty(len(texts), dtype=np.int32)
        for i, text in enumerate(texts):
            before = len(self.texts)
            ids[i] = self.texts.intern(text)
            if ids[i] == before:
                self.text_memes.extend(np.asarray([memes_of[i]], dtype=np.int64))
        return ids

    def append(self, new: NewEntries, step: int) -> np.ndarray:
        """Append entries written at ``step``; returns their ids.

        Capacity is not enforced here: call :meth:`enforce_capacity` once all writes of
        the step are appended (the synchronous commit).
        """
        n = len(new)
        first = len(self)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if len(new.parent_indptr) != n + 1:
            raise ValueError("parent_indptr must have one more element than the entries")
        self._bank.extend(new.bank.astype(np.int32, copy=False))
        self._author.extend(new.author.astype(np.int32, copy=False))
        self._step.extend(np.full(n, step, dtype=np.int32))
        self._text_id.extend(new.text_id.astype(np.int32, copy=False))
        self._memes.extend(self.text_memes.view()[new.text_id])
        self._importance.extend(new.importance.astype(np.float32, copy=False))
        self._last_access.extend(np.full(n, step, dtype=np.int32))
        self._strength.extend(np.full(n, self.initial_strength, dtype=np.float32))
        self._alive.extend(np.ones(n, dtype=np.bool_))
        self._evicted_step.extend(np.full(n, -1, dtype=np.int32))
        base = self._parent_ids.size
        self._parent_ids.extend(new.parent_ids.astype(np.int64, copy=False))
        self._parent_indptr.extend(base + new.parent_indptr[1:].astype(np.int64, copy=False))
        refs = self._refs()
        np.add.at(refs, new.text_id.astype(np.int64, copy=False), 1)
        return np.arange(first, first + n, dtype=np.int64)

    def _refs(self) -> np.ndarray:
        """The per-text count of alive entries, grown to cover every text id."""
        missing = len(self.texts) - self._text_refs.size
        if missing > 0:
            self._text_refs.extend(np.zeros(missing, dtype=np.int32))
        return self._text_refs.view()

    def touch(self, entry_ids: np.ndarray, step: int, recall_boost: float = 1.0) -> None:
        """Mark entries as retrieved at ``step`` (recency, LRU, and memory strength)."""
        if len(entry_ids) == 0:
            return
        mark = np.zeros(len(self), dtype=np.bool_)
        mark[entry_ids] = True
        touched = np.flatnonzero(mark)  # each entry once, however many readers
        self._last_access.data[touched] = step
        self._strength.data[touched] += np.float32(recall_boost)

    def remove(self, entry_ids: np.ndarray, step: int) -> None:
        """Mark entries as no longer alive (evicted or forgotten) at ``step``.

        Texts that no alive entry refers to any more are released from memory.
        """
        if len(entry_ids) == 0:
            return
        ids = np.unique(np.asarray(entry_ids, dtype=np.int64))
        dying = ids[self._alive.data[ids]]
        self._alive.data[entry_ids] = False
        self._evicted_step.data[entry_ids] = step
        if len(dying):
            refs = self._refs()
            text_ids = self._text_id.data[dying].astype(np.int64)
            np.subtract.at(refs, text_ids, 1)
            unused = np.unique(text_ids[refs[text_ids] == 0])
            self.texts.release(unused.tolist())

    # ------------------------------------------------------------------ bounds
    def bank_counts(self) -> np.ndarray:
        """Number of alive entries per bank."""
        alive = self.alive_ids()
        return np.bincount(self.bank[alive], minlength=self.banks.n_banks)

    def enforce_capacity(self, step: int) -> np.ndarray:
        """Evict entries from every bank over capacity; returns the evicted ids.

        FIFO banks drop their oldest entries (lowest entry id); LRU banks drop the entries
        retrieved least recently (ties: oldest first).
        """
        alive = self.alive_ids()
        banks_of = self.bank[alive]
        counts = np.bincount(banks_of, minlength=self.banks.n_banks)
        over = counts > self.banks.capacity
        if not over.any():
            return np.zeros(0, dtype=np.int64)
        candidates = alive[over[banks_of]]
        cand_banks = self.bank[candidates]
        is_lru = self.banks.eviction[cand_banks] == LRU_CODE
        key = np.where(is_lru, self.last_access[candidates], 0)
        order = np.lexsort((candidates, key, cand_banks))
        candidates = candidates[order]
        cand_banks = cand_banks[order]
        starts = np.searchsorted(cand_banks, cand_banks, side="left")
        rank = np.arange(len(candidates)) - starts
        excess = counts[cand_banks] - self.banks.capacity[cand_banks]
        evicted = candidates[rank < excess]
        self.remove(evicted, step)
        return evicted

    # ------------------------------------------------------------------ export
    def to_frame(self, meme_ids: list[str]) -> pl.DataFrame:
        """The ``memories`` table: every entry with its provenance.

        Columns: entry_id, bank_id, author_id, step, text, memes (list of meme ids the
        text carries), parents (list of entry ids in the writer's context), importance,
        last_access, strength, alive, removed_step.
        """
        n = len(self)
        texts = self.texts.all()
        memes = self.memes
        meme_lists = [
            [meme_ids[b] for b in range(len(meme_ids)) if mask >> b & 1]
            for mask in self.text_memes.view().tolist()
        ]
        parents = pa.ListArray.from_arrays(
            pa.array(self.parent_indptr.astype(np.int32)), pa.array(self.parent_ids)
        )
        text_ids = self.text_id
        frame = pl.DataFrame(
            {
                "entry_id": np.arange(n, dtype=np.int64),
                "bank_id": self.bank,
                "author_id": self.author,
                "step": self.step,
                "text": pl.Series([texts[i] for i in text_ids.tolist()], dtype=pl.String),
                "memes": pl.Series(
                    [meme_lists[i] for i in text_ids.tolist()], dtype=pl.List(pl.String)
                ),
                "meme_mask": memes,
                "parents": pl.Series(pl.from_arrow(parents)).cast(pl.List(pl.Int64)),
                "importance": self.importance,
                "last_access": self.last_access,
                "strength": self.strength,
                "alive": self.alive,
                "removed_step": self.removed_step,
            }
        )
        return frame

    # ------------------------------------------------------------------ state
    def get_state(self) -> State:
        """Every column and every text (see :mod:`sim.state`)."""
        return State(arrays=self.state_arrays(), values={"texts": self.texts.all()})

    def set_state(self, state: State) -> None:
        """Restore what :meth:`get_state` returned (the store must be empty)."""
        self.load_state_arrays(state.arrays, state.values["texts"])

    def state_arrays(self) -> dict[str, np.ndarray]:
        """All columns as plain arrays (for checkpoints; no pickling needed)."""
        return {
            "bank": self.bank.copy(),
            "author": self.author.copy(),
            "step": self.step.copy(),
            "text_id": self.text_id.copy(),
            "memes": self.memes.copy(),
            "importance": self.importance.copy(),
            "last_access": self.last_access.copy(),
            "strength": self.strength.copy(),
            "alive": self.alive.copy(),
            "removed_step": self.removed_step.copy(),
            "parent_indptr": self.parent_indptr.copy(),
            "parent_ids": self.parent_ids.copy(),
            "text_memes": self.text_memes.view().copy(),
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray], texts: list[str]) -> None:
        """Restore columns saved by :meth:`state_arrays` (the store must be empty)."""
        if len(self) or len(self.texts):
            raise RuntimeError("load_state_arrays needs an empty store")
        for text in texts:
            self.texts.intern(text)
        self.text_memes.extend(arrays["text_memes"])
        self._bank.extend(arrays["bank"])
        self._author.extend(arrays["author"])
        self._step.extend(arrays["step"])
        self._text_id.extend(arrays["text_id"])
        self._memes.extend(arrays["memes"])
        self._importance.extend(arrays["importance"])
        self._last_access.extend(arrays["last_access"])
        self._strength.extend(arrays["strength"])
        self._alive.extend(arrays["alive"])
        self._evicted_step.extend(arrays["removed_step"])
        self._parent_ids.extend(arrays["parent_ids"])
        self._parent_indptr.extend(arrays["parent_indptr"][1:])
        # The same texts are in memory as in the run that saved the state: those that an
        # alive entry refers to.
        refs = np.bincount(self.text_id[self.alive], minlength=len(self.texts)).astype(np.int32)
        self._text_refs.extend(refs)
        self.texts.release(np.flatnonzero(refs == 0).tolist())
