"""Memory store: append, provenance columns, capacity with FIFO and LRU eviction, decay."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from sim.forgetting import ForgettingSpec, forget, retention
from sim.memory import COLUMNS, ENTRY_COLUMNS, MEMORIES_SCHEMA, MemoryStore, NewEntries
from topologies.banks import (
    BankLayoutSpec,
    Eviction,
    GlobalBank,
    NeighbourhoodBanks,
    PrivateBanks,
    build_banks,
)


def _banks(eviction: Eviction = Eviction.FIFO, capacity: int = 3):
    graph = nx.path_graph(3)
    spec = BankLayoutSpec(
        private=PrivateBanks(capacity=capacity, eviction=eviction),
        **{"global": GlobalBank(capacity=capacity, eviction=eviction)},
    )
    return build_banks(graph, spec, np.random.default_rng(0))


def _write(store: MemoryStore, bank: int, author: int, step: int, text: str, parents=()):
    text_id = store.register_texts([text], np.zeros(1, dtype=np.int64))
    ids = store.append(
        NewEntries(
            bank=np.array([bank]),
            author=np.array([author]),
            text_id=text_id,
            importance=np.array([0.5], dtype=np.float32),
            parent_indptr=np.array([0, len(parents)]),
            parent_ids=np.array(parents, dtype=np.int64),
        ),
        step,
    )
    return int(ids[0])


def test_append_sets_columns_and_parents():
    banks = _banks()
    store = MemoryStore(banks)
    a = _write(store, 0, 0, 0, "first")
    b = _write(store, 0, 0, 1, "second", parents=(a,))
    assert (a, b) == (0, 1)
    assert store.step.tolist() == [0, 1]
    assert store.author.tolist() == [0, 0]
    assert store.parents(b).tolist() == [a]
    assert store.parents(a).tolist() == []
    assert store.text(b) == "second"
    assert store.alive.tolist() == [True, True]


def test_same_text_is_interned_once():
    store = MemoryStore(_banks())
    _write(store, 0, 0, 0, "same")
    _write(store, 1, 1, 0, "same")
    assert len(store.texts) == 1
    assert store.text_id.tolist() == [0, 0]


def test_fifo_capacity_evicts_oldest():
    banks = _banks(Eviction.FIFO, capacity=3)
    store = MemoryStore(banks)
    ids = [_write(store, 0, 0, step, f"t{step}") for step in range(5)]
    evicted = store.enforce_capacity(5)
    assert evicted.tolist() == ids[:2]
    assert store.bank_counts()[0] == 3
    assert store.removed_step[ids[0]] == 5
    assert store.removed_step[ids[4]] == -1


def test_lru_capacity_evicts_least_recently_retrieved():
    banks = _banks(Eviction.LRU, capacity=3)
    store = MemoryStore(banks)
    ids = [_write(store, 0, 0, 0, f"t{i}") for i in range(4)]
    store.touch(np.array([ids[0], ids[2]]), step=3)
    store.touch(np.array([ids[3]]), step=2)
    evicted = store.enforce_capacity(4)
    # ids[1] was never retrieved (last access 0): evicted first.
    assert evicted.tolist() == [ids[1]]
    store.touch(np.array([ids[3]]), step=9)
    _write(store, 0, 0, 9, "new")
    assert store.enforce_capacity(9).tolist() == [ids[0]]  # access 3, older than ids[2]'s 3 by id


def test_capacity_holds_in_every_bank_after_many_writes(rng):
    banks = _banks(Eviction.FIFO, capacity=4)
    store = MemoryStore(banks)
    for step in range(30):
        for bank in rng.integers(0, banks.n_banks, size=5).tolist():
            _write(store, bank, 0, step, f"s{step}b{bank}")
        store.enforce_capacity(step)
        assert (store.bank_counts() <= banks.capacity).all()


def test_retention_is_ebbinghaus():
    assert retention(np.array([0.0]), np.array([5.0]))[0] == pytest.approx(1.0)
    assert retention(np.array([5.0]), np.array([5.0]))[0] == pytest.approx(np.exp(-1.0))


def test_decay_forgets_unrecalled_entries_and_recall_strengthens():
    banks = _banks(capacity=100)
    spec = ForgettingSpec(kind="decay", initial_strength=2.0, recall_boost=2.0, threshold=0.2)
    store = MemoryStore(banks, initial_strength=spec.initial_strength)
    kept = _write(store, 0, 0, 0, "kept")
    lost = _write(store, 0, 0, 0, "lost")
    # exp(-3/2) = 0.22 >= 0.2: nothing forgotten at step 3.
    assert forget(store, 3, spec).tolist() == []
    store.touch(np.array([kept]), step=3, recall_boost=spec.recall_boost)
    # lost: exp(-4/2) = 0.135 < 0.2; kept: age 1, strength 4 -> 0.78.
    assert forget(store, 4, spec).tolist() == [lost]
    assert store.strength[kept] == pytest.approx(4.0)
    assert store.alive.tolist() == [True, False]


def test_no_forgetting_by_default():
    store = MemoryStore(_banks())
    _write(store, 0, 0, 0, "x")
    assert forget(store, 10_000, ForgettingSpec()).tolist() == []


def test_bank_counts_follow_appends_evictions_removals_and_restores(rng):
    """The kept per-bank count of alive entries equals a recount from the columns."""
    banks = _banks(Eviction.LRU, capacity=3)
    store = MemoryStore(banks)

    def recount(s: MemoryStore) -> list[int]:
        return np.bincount(s.bank[s.alive], minlength=banks.n_banks).tolist()

    for step in range(20):
        for bank in rng.integers(0, banks.n_banks, size=4).tolist():
            _write(store, bank, 0, step, f"s{step}b{bank}")
        assert store.bank_counts().tolist() == recount(store)
        store.enforce_capacity(step)
        assert store.bank_counts().tolist() == recount(store)
        store.remove(rng.choice(len(store), size=2), step)  # dead ones again, too
        assert store.bank_counts().tolist() == recount(store)
    copy = MemoryStore(banks)
    copy.load_state_arrays(store.state_arrays(), store.texts.all())
    assert copy.bank_counts().tolist() == recount(store)


def test_state_round_trip():
    banks = _banks()
    store = MemoryStore(banks)
    a = _write(store, 0, 0, 0, "a")
    _write(store, 1, 1, 1, "b", parents=(a,))
    copy = MemoryStore(banks)
    copy.load_state_arrays(store.state_arrays(), store.texts.all())
    assert copy.to_frame(["m"]).equals(store.to_frame(["m"]))


def test_columns_are_declared_once_and_iterated():
    store = MemoryStore(_banks())
    a = _write(store, 0, 0, 0, "a")
    _write(store, 1, 1, 2, "b", parents=(a,))
    names = [column.name for column in COLUMNS]
    assert names == [
        "bank",
        "author",
        "step",
        "text_id",
        "memes",
        "parent_indptr",
        "parent_ids",
        "importance",
        "last_access",
        "strength",
        "alive",
        "removed_step",
        "text_memes",
    ]
    assert len(ENTRY_COLUMNS) == 10
    arrays = store.state_arrays()
    assert list(arrays) == names
    assert all(arrays[c.name].dtype == c.dtype for c in COLUMNS)
    assert all(len(arrays[c.name]) == 2 for c in ENTRY_COLUMNS)
    assert arrays["parent_indptr"].tolist() == [0, 0, 1]
    assert arrays["alive"].tolist() == [True, True]
    assert arrays["removed_step"].tolist() == [-1, -1]
    frame = store.to_frame(["m"])
    assert frame.schema == MEMORIES_SCHEMA
    assert list(frame.columns) == [
        "entry_id",
        "bank_id",
        "author_id",
        "step",
        "text",
        "memes",
        "meme_mask",
        "parents",
        "importance",
        "last_access",
        "strength",
        "alive",
        "removed_step",
    ]
    with pytest.raises(AttributeError, match="is a column"):
        store.alive = np.zeros(2, dtype=np.bool_)
    del arrays["strength"]
    with pytest.raises(KeyError, match="strength"):
        MemoryStore(_banks()).load_state_arrays(arrays, store.texts.all())


def test_neighbourhood_rights_used_by_store():
    graph = nx.path_graph(4)
    banks = build_banks(
        graph,
        BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=2)),
        np.random.default_rng(0),
    )
    assert banks.n_banks == 4
    assert MemoryStore(banks).bank_counts().tolist() == [0, 0, 0, 0]
