"""Each reader's top k over the banks it may read, merged in one compiled pass.

Retrieval ranks, for every agent, the entries of the banks it may read. Done with numpy,
that is a sort of every (reader, entry) pair followed by a cut to k per reader. Here it
is one pass over the read rights in reader order, compiled with numba, that keeps each
reader's best k in a small sorted buffer: no array of all pairs is built or sorted, the
work is linear in the read rights, and every output array is written once, in order.

Candidates are int64 order keys, smaller is better (:class:`sim.retrieval._OrderKeys`:
score level first, then the newer entry), unique per reader, so the result is the one
exact answer whatever order the candidates come in. For ``k <= 8`` (the default k is 8)
the best keys are eight scalars and a key goes in through a fixed min/max network
instead of a search: data-dependent branches mispredict about once per key, which costs
more than the whole network.

The functions are pure: they read their inputs and fill the output arrays they are given
(sized by the caller, who may keep their memory from step to step), and return how much
of them they filled. numba compiles each kernel on its first call (a few seconds) and
keeps the machine code in ``__pycache__`` beside this file (or numba's user cache
directory), so later processes only load it (about 0.4 s, once per process); with no
writable place, each process compiles them (:mod:`sim.kernels`).
"""

from __future__ import annotations

import numpy as np

from sim.kernels import kernel


def merge_bank_keys(
    read_indptr: np.ndarray,
    read_banks: np.ndarray,
    bank_key: np.ndarray,
    k: int,
    keys: np.ndarray,
    readers: np.ndarray,
    indptr: np.ndarray,
) -> int:
    """Each reader's k smallest order keys, when every bank holds at most one entry.

    Args:
        read_indptr: Read rights CSR offsets (int64, ``n_agents + 1``).
        read_banks: The bank of each read right.
        bank_key: The order key of each bank's entry (below ``2**62``), or -1 for an
            empty bank (int32 or int64).
        k: Keys kept per reader at most.
        keys: Output, at least ``min(pairs, n_agents * k)`` int64: the kept keys, reader
            by reader, ascending within a reader.
        readers: Output, as long as ``keys`` (int32): the reader of each kept key.
        indptr: Output, ``n_agents + 1`` int64: the CSR offsets of the kept keys.

    Returns:
        The number of kept keys (the filled part of ``keys`` and ``readers``).
    """
    _check_outputs(read_indptr, keys, readers, indptr)
    # Each right's key first, in one plain pass of independent loads (many memory
    # accesses in flight: at 10^6 agents the bank table outgrows the caches), then the
    # merge reads them in order.
    right_key = np.empty(len(read_banks), dtype=bank_key.dtype)
    _gather(bank_key, read_banks, right_key)  # (raises on a bank beyond bank_key)
    merge = _merge_bank_keys_up_to_8 if k <= 8 else _merge_bank_keys
    return int(merge(read_indptr, right_key, k, keys, readers, indptr))


def merge_bank_lists(
    read_indptr: np.ndarray,
    read_banks: np.ndarray,
    bank_start: np.ndarray,
    bank_count: np.ndarray,
    bank_keys: np.ndarray,
    k: int,
    keys: np.ndarray,
    readers: np.ndarray,
    indptr: np.ndarray,
) -> int:
    """Each reader's k smallest order keys, from each bank's own ascending key list.

    Bank ``b``'s keys are ``bank_keys[bank_start[b] : bank_start[b] + bank_count[b]]``,
    ascending (best first), so a reader stops reading a bank at its first key that does
    not make its top k. Outputs and result as :func:`merge_bank_keys`.
    """
    _check_outputs(read_indptr, keys, readers, indptr)
    if len(bank_count) != len(bank_start) or (
        len(bank_start) and int((bank_start + bank_count).max()) > len(bank_keys)
    ):
        raise ValueError("top-k merge: bank_start and bank_count do not fit bank_keys")
    return int(
        _merge_bank_lists(
            read_indptr, read_banks, bank_start, bank_count, bank_keys, k, keys, readers, indptr
        )
    )


def merge_level_keys(
    read_indptr: np.ndarray,
    read_banks: np.ndarray,
    bank_of: np.ndarray,
    bank_count: np.ndarray,
    base_level: np.ndarray,
    text_column: np.ndarray,
    query_offset: np.ndarray,
    relevance_level: np.ndarray,
    level_key: np.ndarray,
    k: int,
    keys: np.ndarray,
    readers: np.ndarray,
    indptr: np.ndarray,
) -> int:
    """Each reader's k smallest order keys when the score depends on the reader.

    Items are the alive entries, ascending by id. An item's score for a reader depends
    only on its base level (the rank of its reader-independent score among the step's
    distinct values) and its relevance level (the rank of its relevance to the reader's
    query among the distinct relevance values). So its order key for reader ``a`` is
    ``level_key[base_level[i], relevance_level[query_offset[a] + text_column[i]]] |
    (n_items - 1 - i)``: ``level_key`` holds the score's rank, best first, shifted past
    the item bits.

    Args:
        read_indptr: Read rights CSR offsets (int64, ``n_agents + 1``).
        read_banks: The bank of each read right.
        bank_of: The bank of each item (each below ``len(bank_count)``).
        bank_count: The number of items of each bank (int64, one per bank): what
            :meth:`sim.memory.MemoryStore.bank_counts` holds for the alive entries, so
            that no step counts them again. Negative counts, or counts of another
            total, are refused before any kernel runs, and a bank with more items than
            its count when grouping reaches it; other mismatches give wrong keys, but
            nothing is ever read or written past an array.
        base_level: The base level of each item (int64).
        text_column: Each item's column in the relevance level table (int64).
        query_offset: Each reader's row offset in the relevance level table (int64).
        relevance_level: The flat (query x text) relevance level table (int64).
        level_key: The ``(n_base, n_rel)`` table of key prefixes (int64).
        k: Keys kept per reader at most.
        keys: Output, at least ``min(pairs, n_agents * k)`` int64: the kept keys.
        readers: Output, as long (int32): the reader of each kept key.
        indptr: Output, ``n_agents + 1`` int64: CSR offsets.

    Returns:
        The number of kept keys.
    """
    _check_outputs(read_indptr, keys, readers, indptr)
    n_banks = len(bank_count)
    _check_level_tables(
        len(read_indptr) - 1,
        bank_of,
        bank_count,
        base_level,
        text_column,
        query_offset,
        relevance_level,
        level_key,
    )
    n_items = len(bank_of)
    n_rel = level_key.shape[1]
    flat_key = np.ascontiguousarray(level_key).ravel()
    base_row = base_level * n_rel  # (the row of each item in the flat level_key)
    low = n_items - 1 - np.arange(n_items, dtype=np.int64)  # (the newer item first)
    text_bits = _bits(int(text_column.max()) if n_items else 0)
    item_bits = _bits(n_items - 1)
    row_bits = _bits(len(flat_key) - 1)
    merge_packed = _merge_packed_keys_up_to_8 if k <= 8 else _merge_packed_keys
    if n_items == 0 or (bank_count.max() <= 1 and row_bits + text_bits + item_bits <= 62):
        # At most one item per bank (small banks, the common case): each bank's item
        # packed into one int64 (-1: none), so a read right costs one memory access.
        packed = np.full(n_banks, -1, dtype=np.int64)
        item = base_row << (text_bits + item_bits)
        item |= text_column << item_bits
        item |= low
        packed[bank_of] = item
        filled = merge_packed(
            read_indptr,
            read_banks,
            packed,
            text_bits,
            item_bits,
            query_offset,
            relevance_level,
            flat_key,
            k,
            keys,
            readers,
            indptr,
        )
        return int(filled)
    bank_indptr = np.zeros(n_banks + 1, dtype=np.int64)
    np.cumsum(bank_count, out=bank_indptr[1:])
    # The items bank by bank, with what a key is made of (an (n_items, 3) int64 array,
    # row by row), so that an item costs one random memory access.
    grouped = np.empty((n_items, 3), dtype=np.int64)
    _group_by_bank(bank_of, bank_indptr, base_row, text_column, low, grouped)
    merge = _merge_level_keys_up_to_8 if k <= 8 else _merge_level_keys
    filled = merge(
        read_indptr,
        read_banks,
        bank_indptr,
        grouped,
        query_offset,
        relevance_level,
        flat_key,
        k,
        keys,
        readers,
        indptr,
    )
    return int(filled)


def _check_outputs(
    read_indptr: np.ndarray, keys: np.ndarray, readers: np.ndarray, indptr: np.ndarray
) -> None:
    """Refuse output arrays the kernels would write past (they check keys as they go)."""
    if len(indptr) != len(read_indptr) or len(readers) < len(keys):
        raise ValueError(
            f"top-k merge: indptr needs {len(read_indptr)} entries (has {len(indptr)}) and "
            f"readers at least {len(keys)} (has {len(readers)})"
        )


def _check_level_tables(
    n_readers: int,
    bank_of: np.ndarray,
    bank_count: np.ndarray,
    base_level: np.ndarray,
    text_column: np.ndarray,
    query_offset: np.ndarray,
    relevance_level: np.ndarray,
    level_key: np.ndarray,
) -> None:
    """Refuse tables the kernels of :func:`merge_level_keys` would read past.

    A pass over the items and the readers, not over the read rights (the kernels check
    each right's bank). The relevance levels themselves (ranks below
    ``level_key.shape[1]``) are trusted: checking them is a pass over the whole relevance
    table every step.
    """
    n_items = len(bank_of)
    n_banks = len(bank_count)
    total = int(bank_count.sum())
    if total != n_items or (n_banks and int(bank_count.min()) < 0):
        # (Counts >= 0 totalling the items keep every bank's slice of the grouped items
        # inside them; the grouping kernel checks that no bank overflows its slice.)
        raise ValueError(
            f"top-k merge: bank counts totalling {total} (min "
            f"{int(bank_count.min()) if n_banks else 0}) for {n_items} items (counts of "
            "another store, or of another step)"
        )
    if len(query_offset) < n_readers:
        raise ValueError(f"top-k merge: {len(query_offset)} query offsets for {n_readers} readers")
    if len(base_level) != n_items or len(text_column) != n_items:
        raise ValueError("top-k merge: base_level and text_column need one value per item")
    if n_items and (
        int(bank_of.min()) < 0
        or int(bank_of.max()) >= n_banks
        or int(base_level.min()) < 0
        or int(base_level.max()) >= level_key.shape[0]
        or int(text_column.min()) < 0
    ):
        raise ValueError("top-k merge: an item's bank or base level is out of range")
    if n_items and n_readers:
        offsets = query_offset[:n_readers]
        if int(offsets.min()) < 0 or int(offsets.max()) + int(text_column.max()) >= len(
            relevance_level
        ):
            raise ValueError("top-k merge: a query row and text column beyond relevance_level")


def _bits(value: int) -> int:
    """Bits needed to hold the non-negative int ``value`` (at least 1)."""
    return max(int(value).bit_length(), 1)


#: The error of a kernel whose output arrays cannot hold its result (a caller's bug: it
#: sized them from counts that do not match the inputs). Checked, never written past.
_SHORT = "top-k merge: the output arrays are shorter than the result"

#: The error of a read right naming a bank beyond the bank tables (checked, never read).
_BANK = "top-k merge: a read right names a bank beyond the bank tables"

#: The error of bank counts below a bank's items (checked as they are grouped, never
#: written past).
_COUNT = "top-k merge: a bank holds more items than its count"

#: "No key": above every order key (keys are below 2**62).
_NO_KEY = np.iinfo(np.int64).max


@kernel(inline="always")
def _insert8(best, key):  # pragma: no cover
    """``best`` (8 ascending keys) with ``key`` inserted and the largest dropped."""
    b0, b1, b2, b3, b4, b5, b6, b7 = best
    return (
        min(b0, key),
        min(b1, max(b0, key)),
        min(b2, max(b1, key)),
        min(b3, max(b2, key)),
        min(b4, max(b3, key)),
        min(b5, max(b4, key)),
        min(b6, max(b5, key)),
        min(b7, max(b6, key)),
    )


@kernel(inline="always")
def _emit8(best, k, reader, keys, readers, filled):  # pragma: no cover
    """Write the first ``k`` real keys of ``best``; returns how many were written."""
    n = 0
    for key in best:
        if n < k and key != _NO_KEY:
            if filled + n >= len(keys):
                raise IndexError(_SHORT)
            keys[filled + n] = key
            readers[filled + n] = reader
            n += 1
    return n


@kernel(inline="always")
def _insert(best, n, k, key):  # pragma: no cover
    """Insert ``key`` into ``best[:n]`` (ascending, at most ``k``); returns the new n.

    A key that would not make the top ``k`` leaves ``best`` as it is (check
    ``key < best[k - 1]`` first to tell).
    """
    if n == k:
        if key >= best[k - 1]:
            return n
        n -= 1
    slot = n
    while slot > 0 and best[slot - 1] > key:
        best[slot] = best[slot - 1]
        slot -= 1
    best[slot] = key
    return n + 1


@kernel(inline="always")
def _emit(best, n, reader, keys, readers, filled):  # pragma: no cover
    if filled + n > len(keys):
        raise IndexError(_SHORT)
    for j in range(n):
        keys[filled + j] = best[j]
        readers[filled + j] = reader


@kernel()
def _merge_bank_keys(read_indptr, right_key, k, keys, readers, indptr):  # pragma: no cover
    best = np.empty(k, dtype=np.int64)
    filled = 0
    indptr[0] = 0
    for reader in range(len(read_indptr) - 1):
        n = 0
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            key = np.int64(right_key[right])
            if key >= 0:
                n = _insert(best, n, k, key)
        _emit(best, n, reader, keys, readers, filled)
        filled += n
        indptr[reader + 1] = filled
    return filled


@kernel()
def _merge_bank_keys_up_to_8(read_indptr, right_key, k, keys, readers, indptr):  # pragma: no cover
    filled = 0
    indptr[0] = 0
    for reader in range(len(read_indptr) - 1):
        best = (_NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY)
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            key = np.int64(right_key[right])
            if key >= 0:  # (a branch on empty banks: predictable early and late in a spread)
                best = _insert8(best, key)
        filled += _emit8(best, k, reader, keys, readers, filled)
        indptr[reader + 1] = filled
    return filled


@kernel()
def _gather(table, index, out):  # pragma: no cover
    n = len(table)
    for i in range(len(index)):
        at = index[i]
        if at < 0 or at >= n:
            raise IndexError(_BANK)
        out[i] = table[at]


@kernel()
def _merge_bank_lists(
    read_indptr, read_banks, bank_start, bank_count, bank_keys, k, keys, readers, indptr
):  # pragma: no cover
    best = np.empty(k, dtype=np.int64)
    filled = 0
    indptr[0] = 0
    n_banks = len(bank_start)
    for reader in range(len(read_indptr) - 1):
        n = 0
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            bank = read_banks[right]
            if bank < 0 or bank >= n_banks:
                raise IndexError(_BANK)
            start = bank_start[bank]
            for at in range(start, start + bank_count[bank]):
                key = np.int64(bank_keys[at])
                if n == k and key >= best[k - 1]:
                    break  # the bank's later keys are larger still
                n = _insert(best, n, k, key)
        _emit(best, n, reader, keys, readers, filled)
        filled += n
        indptr[reader + 1] = filled
    return filled


@kernel()
def _group_by_bank(bank_of, bank_indptr, base_row, text_column, low, grouped):  # pragma: no cover
    at = bank_indptr[:-1].copy()
    for item in range(len(bank_of)):
        bank = bank_of[item]
        slot = at[bank]
        if slot >= bank_indptr[bank + 1]:
            raise IndexError(_COUNT)
        grouped[slot, 0] = base_row[item]
        grouped[slot, 1] = text_column[item]
        grouped[slot, 2] = low[item]
        at[bank] = slot + 1


@kernel(inline="always")
def _level_key(grouped, at, row, relevance_level, level_key):  # pragma: no cover
    prefix = level_key[grouped[at, 0] + relevance_level[row + grouped[at, 1]]]
    return prefix | grouped[at, 2]


@kernel()
def _merge_level_keys(
    read_indptr,
    read_banks,
    bank_indptr,
    grouped,
    query_offset,
    relevance_level,
    level_key,
    k,
    keys,
    readers,
    indptr,
):  # pragma: no cover
    best = np.empty(k, dtype=np.int64)
    filled = 0
    n_banks = len(bank_indptr) - 1
    indptr[0] = 0
    for reader in range(len(read_indptr) - 1):
        n = 0
        row = query_offset[reader]
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            bank = read_banks[right]
            if bank < 0 or bank >= n_banks:
                raise IndexError(_BANK)
            for at in range(bank_indptr[bank], bank_indptr[bank + 1]):
                n = _insert(best, n, k, _level_key(grouped, at, row, relevance_level, level_key))
        _emit(best, n, reader, keys, readers, filled)
        filled += n
        indptr[reader + 1] = filled
    return filled


@kernel()
def _merge_level_keys_up_to_8(
    read_indptr,
    read_banks,
    bank_indptr,
    grouped,
    query_offset,
    relevance_level,
    level_key,
    k,
    keys,
    readers,
    indptr,
):  # pragma: no cover
    filled = 0
    n_banks = len(bank_indptr) - 1
    indptr[0] = 0
    for reader in range(len(read_indptr) - 1):
        best = (_NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY)
        row = query_offset[reader]
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            bank = read_banks[right]
            if bank < 0 or bank >= n_banks:
                raise IndexError(_BANK)
            for at in range(bank_indptr[bank], bank_indptr[bank + 1]):
                best = _insert8(best, _level_key(grouped, at, row, relevance_level, level_key))
        filled += _emit8(best, k, reader, keys, readers, filled)
        indptr[reader + 1] = filled
    return filled


@kernel(inline="always")
def _packed_key(packed, row, text_bits, item_bits, relevance_level, level_key):  # pragma: no cover
    text = (packed >> item_bits) & ((1 << text_bits) - 1)
    prefix = level_key[(packed >> (text_bits + item_bits)) + relevance_level[row + text]]
    return prefix | (packed & ((1 << item_bits) - 1))


@kernel()
def _merge_packed_keys(
    read_indptr,
    read_banks,
    packed,
    text_bits,
    item_bits,
    query_offset,
    relevance_level,
    level_key,
    k,
    keys,
    readers,
    indptr,
):  # pragma: no cover
    best = np.empty(k, dtype=np.int64)
    filled = 0
    n_banks = len(packed)
    indptr[0] = 0
    for reader in range(len(read_indptr) - 1):
        n = 0
        row = query_offset[reader]
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            bank = read_banks[right]
            if bank < 0 or bank >= n_banks:
                raise IndexError(_BANK)
            item = packed[bank]
            if item >= 0:
                key = _packed_key(item, row, text_bits, item_bits, relevance_level, level_key)
                n = _insert(best, n, k, key)
        _emit(best, n, reader, keys, readers, filled)
        filled += n
        indptr[reader + 1] = filled
    return filled


@kernel()
def _merge_packed_keys_up_to_8(
    read_indptr,
    read_banks,
    packed,
    text_bits,
    item_bits,
    query_offset,
    relevance_level,
    level_key,
    k,
    keys,
    readers,
    indptr,
):  # pragma: no cover
    filled = 0
    n_banks = len(packed)
    indptr[0] = 0
    for reader in range(len(read_indptr) - 1):
        best = (_NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY, _NO_KEY)
        row = query_offset[reader]
        for right in range(read_indptr[reader], read_indptr[reader + 1]):
            bank = read_banks[right]
            if bank < 0 or bank >= n_banks:
                raise IndexError(_BANK)
            item = packed[bank]
            if item >= 0:
                key = _packed_key(item, row, text_bits, item_bits, relevance_level, level_key)
                best = _insert8(best, key)
        filled += _emit8(best, k, reader, keys, readers, filled)
        indptr[reader + 1] = filled
    return filled


def decode_keys(
    keys: np.ndarray,
    by_rank: np.ndarray,
    id_bits: int,
    top: int,
    ids: np.ndarray,
    scores: np.ndarray,
    entry_ids: np.ndarray | None = None,
) -> None:
    """Decode order keys ``(rank << id_bits) | low`` into entry ids and scores.

    The entry id of a key is ``top - low`` (or ``entry_ids[top - low]`` when given), its
    score ``by_rank[rank]``; one pass, written into ``ids`` (which may be ``keys``
    itself: each key is read before its slot is written) and ``scores``. Bits above the
    rank (a reader or bank id the keys were combined with) are ignored.

    Args:
        keys: The keys (int64).
        by_rank: The score of each rank (float64).
        id_bits: The bits of the keys' low part.
        top: What the low part counts down from.
        ids: Output, as long as ``keys`` (int64).
        scores: Output, as long as ``keys`` (float64).
        entry_ids: Optional map from ``top - low`` to the entry id (int64).
    """
    if len(ids) != len(keys) or len(scores) != len(keys):
        raise ValueError("decode_keys: ids and scores must be as long as keys")
    table = _NO_IDS if entry_ids is None else entry_ids.astype(np.int64, copy=False)
    rank_bits = _bits(len(by_rank) - 1)
    by_rank = np.ascontiguousarray(by_rank, dtype=np.float64)
    _decode_keys(keys, by_rank, id_bits, rank_bits, top, table, ids, scores)


#: No id map: the entry id is ``top - low`` itself.
_NO_IDS = np.zeros(0, dtype=np.int64)


@kernel()
def _decode_keys(
    keys, by_rank, id_bits, rank_bits, top, entry_ids, ids, scores
):  # pragma: no cover
    low_mask = (np.int64(1) << id_bits) - 1
    rank_mask = (np.int64(1) << rank_bits) - 1
    mapped = len(entry_ids) > 0
    for i in range(len(keys)):
        key = keys[i]
        item = top - (key & low_mask)
        scores[i] = by_rank[(key >> id_bits) & rank_mask]
        ids[i] = entry_ids[item] if mapped else item
