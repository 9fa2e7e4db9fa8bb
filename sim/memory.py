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
from typing import overload

import numpy as np
import polars as pl
import pyarrow as pa

from sim.state import State
from sim.texts import TextTable
from sim.unique import sorted_unique
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

    @classmethod
    def of(cls, values: np.ndarray, dtype: np.dtype | type) -> _Column:
        """A column holding a copy of ``values`` (cast to ``dtype``)."""
        column = cls(dtype, capacity=max(1024, len(values)))
        column.extend(values)
        return column

    def extend(self, values: np.ndarray | float | bool, count: int | None = None) -> None:
        """Append ``count`` rows (default ``len(values)``); a scalar fills them all."""
        n = len(values) if count is None else count  # type: ignore[arg-type]
        needed = self.size + n
        if needed > len(self.data):
            grown = np.zeros(max(needed, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : needed] = values
        self.size = needed

    def view(self) -> np.ndarray:
        return self.data[: self.size]


class StoreColumn:
    """The declaration of one column of :class:`MemoryStore` (a class attribute of it).

    Declaring a column is all it takes: the store allocates it, grows it, saves and
    restores it (:meth:`MemoryStore.get_state`), exports it to the ``memories`` table and
    exposes it as a read-only-by-convention numpy view (``store.<name>``), all by
    iterating :data:`COLUMNS`.

    Args:
        dtype: The numpy dtype of the column.
        doc: What one value is (the attribute's docstring).
        per_entry: Whether the column has one row per entry (appended by
            :meth:`MemoryStore.append`); the parent CSR columns and the per-text column
            grow by their own rules.
        fill: The value every new entry gets, or None when each write supplies it.
        table: The ``memories`` table columns this column shows as (name to polars
            dtype), in table order; empty when the table does not show it.
    """

    def __init__(
        self,
        dtype: type[np.generic],
        doc: str,
        *,
        per_entry: bool = True,
        fill: int | bool | None = None,
        table: dict[str, pl.DataType | type[pl.DataType]] | None = None,
    ) -> None:
        self.name = ""
        self.dtype = dtype
        self.__doc__ = doc
        self.per_entry = per_entry
        self.fill = fill
        self.table = dict(table or {})

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, store: None, owner: type | None = None) -> StoreColumn: ...

    @overload
    def __get__(self, store: MemoryStore, owner: type | None = None) -> np.ndarray: ...

    def __get__(
        self, store: MemoryStore | None, owner: type | None = None
    ) -> StoreColumn | np.ndarray:
        if store is None:
            return self
        return store._columns[self.name].view()

    def __set__(self, store: MemoryStore, value: object) -> None:
        raise AttributeError(f"MemoryStore.{self.name} is a column: write through its view")


class MemoryStore:
    """Append-only columnar store of all memory entries of one model.

    Every column is a numpy array declared once below as a :class:`StoreColumn`. One row
    per entry (entry id = row index): ``bank``, ``author``, ``step`` (when written),
    ``text_id``, ``memes`` (int64 bit mask of the memes the text carries, bit ``i`` for
    meme index ``i``), ``importance``, ``last_access`` (step of the last retrieval,
    initially the write step), ``strength`` (Ebbinghaus memory strength, grows with each
    recall), ``alive`` and ``removed_step``. Parents are stored in CSR form
    (``parent_indptr``, ``parent_ids``), and ``text_memes`` holds the mask of each text.

    Args:
        banks: The run's banks (capacity and eviction policy per bank).
        initial_strength: Memory strength of a new entry, in steps (decay forgetting).
    """

    bank = StoreColumn(np.int32, "Bank id per entry.", table={"bank_id": pl.Int32})
    author = StoreColumn(
        np.int32,
        "Author agent id per entry (``ENVIRONMENT`` for injected entries).",
        table={"author_id": pl.Int32},
    )
    step = StoreColumn(np.int32, "Step at which each entry was written.", table={"step": pl.Int32})
    text_id = StoreColumn(
        np.int32,
        "Text id per entry (the table shows the text and the ids of the memes it carries).",
        table={"text": pl.String, "memes": pl.List(pl.String)},
    )
    memes = StoreColumn(
        np.int64, "Bit mask of the memes each entry carries.", table={"meme_mask": pl.Int64}
    )
    parent_indptr = StoreColumn(
        np.int64,
        "CSR offsets of the parents column (length ``len(store) + 1``).",
        per_entry=False,
        table={"parents": pl.List(pl.Int64)},
    )
    parent_ids = StoreColumn(
        np.int64, "CSR values of the parents column (best-ranked first).", per_entry=False
    )
    importance = StoreColumn(
        np.float32, "Importance per entry, in [0, 1].", table={"importance": pl.Float32}
    )
    last_access = StoreColumn(
        np.int32,
        "Step of the last retrieval (or the write step) per entry.",
        table={"last_access": pl.Int32},
    )
    strength = StoreColumn(
        np.float32,
        "Ebbinghaus memory strength per entry, in steps.",
        table={"strength": pl.Float32},
    )
    alive = StoreColumn(
        np.bool_,
        "Whether each entry is still in its bank (not evicted or forgotten).",
        fill=True,
        table={"alive": pl.Boolean},
    )
    removed_step = StoreColumn(
        np.int32,
        "Step at which each entry was evicted or forgotten (-1 while alive).",
        fill=-1,
        table={"removed_step": pl.Int32},
    )
    text_memes = StoreColumn(
        np.int64, "Meme bit mask per text id (as the detectors found it).", per_entry=False
    )

    def __init__(self, banks: Banks, initial_strength: float = 1.0) -> None:
        self.banks = banks
        self.initial_strength = float(initial_strength)
        self.texts = TextTable()
        self._columns = {column.name: _Column(column.dtype) for column in COLUMNS}
        self._columns["parent_indptr"].extend(np.zeros(1, dtype=np.int64))
        self._text_refs = _Column(np.int32)  # per text id: alive entries referring to it
        # Per bank: its alive entries (kept with every append and removal, so that the
        # capacity check of a step need not count all alive entries).
        self._bank_alive = np.zeros(banks.n_banks, dtype=np.int64)

    # ------------------------------------------------------------------ columns
    def __len__(self) -> int:
        return self._columns["bank"].size

    def parents(self, entry_id: int) -> np.ndarray:
        """Parent entry ids of one entry, best-ranked first."""
        indptr = self._columns["parent_indptr"].data
        return self._columns["parent_ids"].data[indptr[entry_id] : indptr[entry_id + 1]]

    def text(self, entry_id: int) -> str:
        """The text of one entry."""
        return self.texts.get(int(self._columns["text_id"].data[entry_id]))

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
        text_memes = self._columns["text_memes"]
        for i, text in enumerate(texts):
            before = len(self.texts)
            ids[i] = self.texts.intern(text)
            if ids[i] == before:
                text_memes.extend(np.asarray([memes_of[i]], dtype=np.int64))
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
        written = {
            "bank": new.bank,
            "author": new.author,
            "step": step,
            "text_id": new.text_id,
            "memes": self.text_memes[new.text_id],
            "importance": new.importance,
            "last_access": step,
            "strength": self.initial_strength,
        }
        for column in ENTRY_COLUMNS:
            value = written[column.name] if column.fill is None else column.fill
            self._columns[column.name].extend(value, n)
        base = self._columns["parent_ids"].size
        self._columns["parent_ids"].extend(new.parent_ids)
        self._columns["parent_indptr"].extend(base + new.parent_indptr[1:].astype(np.int64))
        refs = self._refs()
        np.add.at(refs, new.text_id.astype(np.int64, copy=False), 1)
        np.add.at(self._bank_alive, new.bank.astype(np.int64, copy=False), 1)
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
        mark[entry_ids] = True  # each entry once, however many readers
        # In-place passes over the columns (no index array of the touched rows), without
        # branches: marks fall at random, and a masked pass mispredicts a branch per row.
        # last_access += (step - last_access) * mark: exactly step where marked.
        last_access = self.last_access
        delta = np.subtract(step, last_access, dtype=np.int32)
        delta *= mark
        last_access += delta
        strength = self.strength
        boost = np.float32(recall_boost)
        if np.isfinite(boost):  # strength + 0 is strength exactly (strengths are > 0)
            added = mark.astype(np.float32)
            added *= boost
            strength += added
        else:
            np.add(strength, boost, out=strength, where=mark)

    def remove(self, entry_ids: np.ndarray, step: int) -> None:
        """Mark entries as no longer alive (evicted or forgotten) at ``step``.

        Texts that no alive entry refers to any more are released from memory.
        """
        if len(entry_ids) == 0:
            return
        ids = sorted_unique(np.asarray(entry_ids, dtype=np.int64), bound=len(self))
        alive = self.alive
        dying = ids[alive[ids]]
        alive[entry_ids] = False
        self.removed_step[entry_ids] = step
        if len(dying):
            np.subtract.at(self._bank_alive, self.bank[dying].astype(np.int64), 1)
            refs = self._refs()
            text_ids = self.text_id[dying].astype(np.int64)
            np.subtract.at(refs, text_ids, 1)
            unused = sorted_unique(text_ids[refs[text_ids] == 0], bound=len(refs))
            self.texts.release(unused.tolist())

    # ------------------------------------------------------------------ bounds
    def bank_counts(self) -> np.ndarray:
        """Number of alive entries per bank: a read-only view, current until the next write.

        A view, not a copy: retrieval reads it every step, and at 10^6 agents a copy is
        tens of MB of memory traffic per step.
        """
        counts = self._bank_alive.view()
        counts.flags.writeable = False
        return counts

    def enforce_capacity(self, step: int) -> np.ndarray:
        """Evict entries from every bank over capacity; returns the evicted ids.

        FIFO banks drop their oldest entries (lowest entry id); LRU banks drop the entries
        retrieved least recently (ties: oldest first).
        """
        counts = self._bank_alive
        over = counts > self.banks.capacity
        if not over.any():
            return np.zeros(0, dtype=np.int64)
        alive = self.alive_ids()
        banks_of = self.bank[alive]
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
        """The ``memories`` table: every entry with its provenance (:data:`MEMORIES_SCHEMA`).

        Columns: entry_id, then each column's table columns in declaration order:
        bank_id, author_id, step, text, memes (list of meme ids the text carries),
        meme_mask, parents (list of entry ids in the writer's context), importance,
        last_access, strength, alive, removed_step.
        """
        texts = self.texts.all()
        meme_lists = [
            [meme_ids[b] for b in range(len(meme_ids)) if mask >> b & 1]
            for mask in self.text_memes.tolist()
        ]
        text_ids = self.text_id.tolist()
        parents = pa.ListArray.from_arrays(
            pa.array(self.parent_indptr.astype(np.int32)), pa.array(self.parent_ids)
        )
        shown: dict[str, pl.Series | np.ndarray] = {
            "text": pl.Series([texts[i] for i in text_ids], dtype=pl.String),
            "memes": pl.Series([meme_lists[i] for i in text_ids], dtype=pl.List(pl.String)),
            "parents": pl.Series(pl.from_arrow(parents)).cast(pl.List(pl.Int64)),
        }
        data: dict[str, pl.Series | np.ndarray] = {"entry_id": np.arange(len(self), dtype=np.int64)}
        for column in COLUMNS:
            for name in column.table:
                data[name] = shown[name] if name in shown else getattr(self, column.name)
        return pl.DataFrame(data, schema=MEMORIES_SCHEMA)

    # ------------------------------------------------------------------ state
    def get_state(self) -> State:
        """Every column and every text (see :mod:`sim.state`)."""
        return State(arrays=self.state_arrays(), values={"texts": self.texts.all()})

    def set_state(self, state: State) -> None:
        """Restore what :meth:`get_state` returned (the store must be empty)."""
        self.load_state_arrays(state.arrays, state.values["texts"])

    def state_arrays(self) -> dict[str, np.ndarray]:
        """All columns as plain arrays, by column name (no pickling needed)."""
        return {column.name: getattr(self, column.name).copy() for column in COLUMNS}

    def load_state_arrays(self, arrays: dict[str, np.ndarray], texts: list[str]) -> None:
        """Restore columns saved by :meth:`state_arrays` (the store must be empty).

        Raises:
            RuntimeError: The store is not empty.
            KeyError: ``arrays`` lacks a column.
        """
        if len(self) or len(self.texts):
            raise RuntimeError("load_state_arrays needs an empty store")
        for text in texts:
            self.texts.intern(text)
        self._columns = {
            column.name: _Column.of(arrays[column.name], column.dtype) for column in COLUMNS
        }
        # The same texts are in memory as in the run that saved the state: those that an
        # alive entry refers to.
        refs = np.bincount(self.text_id[self.alive], minlength=len(self.texts)).astype(np.int32)
        self._text_refs.extend(refs)
        self._bank_alive = np.bincount(self.bank[self.alive], minlength=self.banks.n_banks)
        self.texts.release(np.flatnonzero(refs == 0).tolist())


#: Every column of the store, in declaration order.
COLUMNS: tuple[StoreColumn, ...] = tuple(
    value for value in vars(MemoryStore).values() if isinstance(value, StoreColumn)
)

#: The columns with one row per entry (what :meth:`MemoryStore.append` writes).
ENTRY_COLUMNS: tuple[StoreColumn, ...] = tuple(c for c in COLUMNS if c.per_entry)

#: Schema of the ``memories`` table (:meth:`MemoryStore.to_frame`).
MEMORIES_SCHEMA = pl.Schema(
    {"entry_id": pl.Int64, **{name: dtype for c in COLUMNS for name, dtype in c.table.items()}}
)
