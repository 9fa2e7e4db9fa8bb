"""Memory evolution: writes that rewrite an existing entry, with versioned provenance.

A write proposal may name an entry it *replaces* (``WriteProposals.replaces``, set by
the LLM policy's ``update`` action, see :mod:`agents.updates`). At commit the model
honours it only when the entry

* is alive,
* was in the writer's context this step (so the agent saw what it rewrites), and
* lives in the bank the write goes to (which the writer may write: writes to other
  banks are refused before this check);

otherwise the write is committed as an ordinary note (nothing is removed). An honoured
update appends the new version as a new entry whose FIRST parent is the old version
(the rest of its parents are the writer's other context entries, in rank order), and
removes the old version at this step (``memories.removed_step``; its row stays). Guards
review the new text like any write; a rejected update removes nothing. The new version
is tracked like every write: when it carries a meme that came from another agent's
entry, that is a transmission edge.

The ``updates`` table has one row per honoured update: step, agent_id, bank_id,
old_entry_id, new_entry_id. Follow an entry's versions by chaining
``old_entry_id -> new_entry_id`` (:func:`version_chains`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sim.memory import MemoryStore
from sim.policy import WriteProposals
from sim.retrieval import Retrieval

#: Columns of the ``updates`` table.
UPDATES_SCHEMA = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "bank_id": pl.Int32,
    "old_entry_id": pl.Int64,
    "new_entry_id": pl.Int64,
}


def valid_replacements(
    writes: WriteProposals, retrieval: Retrieval, store: MemoryStore
) -> np.ndarray:
    """Per write, the entry it replaces when the update may be honoured, else -1.

    See the module docstring for the conditions. At most one write per old entry is
    honoured (the first, in proposal order).
    """
    replaces = writes.replaced()
    out = np.full(len(writes), -1, dtype=np.int64)
    taken: set[int] = set()
    for i in np.flatnonzero(replaces >= 0).tolist():
        old = int(replaces[i])
        if old >= len(store) or not store.alive[old] or old in taken:
            continue
        if int(store.bank[old]) != int(writes.bank[i]):
            continue
        if old not in retrieval.of(int(writes.author[i])):
            continue
        out[i] = old
        taken.add(old)
    return out


def old_version_first(
    parent_indptr: np.ndarray, parent_ids: np.ndarray, replaces: np.ndarray
) -> np.ndarray:
    """The parents with each update's old version moved to the front of its list.

    Args:
        parent_indptr: CSR offsets of the writes' parents.
        parent_ids: The parents (each write's context, best first).
        replaces: The validated replaced entry per write (-1: not an update); a
            validated entry is always among its write's parents.
    """
    if not (replaces >= 0).any():
        return parent_ids
    out = parent_ids.copy()
    for i in np.flatnonzero(replaces >= 0).tolist():
        start, end = int(parent_indptr[i]), int(parent_indptr[i + 1])
        segment = out[start:end]
        rest = segment[segment != replaces[i]]
        out[start:end] = np.concatenate([[replaces[i]], rest])
    return out


def retire_old_versions(
    store: MemoryStore, entry_ids: np.ndarray, replaces: np.ndarray, step: int
) -> dict[str, pl.DataFrame]:
    """Remove the replaced entries at ``step``; return the ``updates`` rows (if any).

    Args:
        store: The memory store (the new versions are already appended).
        entry_ids: The committed entries, parallel to ``replaces``.
        replaces: The validated replaced entry per committed entry (-1: none).
        step: The current step.
    """
    hit = replaces >= 0
    if not hit.any():
        return {}
    old = replaces[hit]
    new = entry_ids[hit]
    store.remove(old, step)
    frame = pl.DataFrame(
        {
            "step": np.full(len(old), step, dtype=np.int32),
            "agent_id": store.author[new].astype(np.int32),
            "bank_id": store.bank[new].astype(np.int32),
            "old_entry_id": old.astype(np.int64),
            "new_entry_id": new.astype(np.int64),
        },
        schema=UPDATES_SCHEMA,
    )
    return {"updates": frame}


def version_chains(updates: pl.DataFrame) -> pl.DataFrame:
    """Every entry that was rewritten, with its latest version and how many rewrites.

    Returns:
        Columns first_entry_id (the original), latest_entry_id, versions (rewrites + 1),
        one row per original entry, sorted.
    """
    nxt = dict(
        zip(updates["old_entry_id"].to_list(), updates["new_entry_id"].to_list(), strict=True)
    )
    newer = set(nxt.values())
    rows = []
    for first in sorted(set(nxt) - newer):
        latest, versions = first, 1
        while latest in nxt:
            latest, versions = nxt[latest], versions + 1
        rows.append((first, latest, versions))
    return pl.DataFrame(
        rows,
        schema={"first_entry_id": pl.Int64, "latest_entry_id": pl.Int64, "versions": pl.Int32},
        orient="row",
    )
