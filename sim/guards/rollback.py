"""Rollback: the descendants of entries in the provenance DAG (the parents column).

An entry's parents are the entries that were in its writer's context when it was
written, so every parent has a smaller entry id than its child. A descendant of an entry
is any entry with a chain of parent links leading to it.
"""

from __future__ import annotations

import numpy as np

from sim.memory import MemoryStore
from sim.unique import sorted_unique


def check_entry_ids(store: MemoryStore, entry_ids: np.ndarray | list[int]) -> np.ndarray:
    """``entry_ids`` as a sorted unique int64 array of entries that exist.

    Raises:
        ValueError: An id is not an integer entry id of the store (the message lists the
            unknown ids and the valid range).
    """
    ids = np.asarray(entry_ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"entry ids must be integers, got {ids.tolist()[:5]}")
    ids = sorted_unique(ids.astype(np.int64))
    bad = ids[(ids < 0) | (ids >= len(store))]
    if len(bad):
        shown = ", ".join(str(i) for i in bad[:5].tolist())
        n = len(store)
        have = f"entry ids of this run are 0..{n - 1}" if n else "no entry exists yet"
        raise ValueError(f"no such memory entry: {shown}{' ...' if len(bad) > 5 else ''} ({have})")
    return ids


def descendants(store: MemoryStore, roots: np.ndarray) -> np.ndarray:
    """Every entry descending from ``roots`` through the parents column (roots excluded).

    Alive or not: a removed entry still links its children to its parents.

    Returns:
        Sorted entry ids.
    """
    roots = np.asarray(roots, dtype=np.int64)
    n = len(store)
    if len(roots) == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    tainted = np.zeros(n, dtype=np.bool_)
    tainted[roots] = True
    start = int(roots.min()) + 1
    if start >= n:
        return np.zeros(0, dtype=np.int64)
    indptr = store.parent_indptr
    parents = store.parent_ids[indptr[start] :]
    owner = np.repeat(np.arange(n - start, dtype=np.int64), np.diff(indptr[start:]))
    while True:  # one pass per generation of the DAG
        hit = np.bincount(owner, weights=tainted[parents], minlength=n - start) > 0
        grown = hit & ~tainted[start:]
        if not grown.any():
            break
        tainted[start:] |= hit
    tainted[roots] = False
    return np.flatnonzero(tainted)
