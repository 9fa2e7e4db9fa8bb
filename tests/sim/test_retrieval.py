"""Retrieval: top-k over readable banks, scoring, read rights, relevance."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from sim.memory import MemoryStore, NewEntries
from sim.retrieval import LexicalRelevance, RetrievalSpec, retrieve
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks, build_banks


def _setup():
    graph = nx.path_graph(4)  # 0-1-2-3
    banks = build_banks(
        graph,
        BankLayoutSpec(
            private=PrivateBanks(capacity=10), neighbourhood=NeighbourhoodBanks(capacity=10)
        ),
        np.random.default_rng(0),
    )
    return banks, MemoryStore(banks)


def _add(store, bank, author, step, text, importance=0.5):
    tid = store.register_texts([text], np.zeros(1, dtype=np.int64))
    return int(
        store.append(
            NewEntries(
                bank=np.array([bank]),
                author=np.array([author]),
                text_id=tid,
                importance=np.array([importance], dtype=np.float32),
                parent_indptr=np.array([0, 0]),
                parent_ids=np.zeros(0, dtype=np.int64),
            ),
            step,
        )[0]
    )


def test_agents_only_retrieve_what_they_may_read():
    banks, store = _setup()
    nb = {a: banks.bank_id(f"neighbourhood:{a}") for a in range(4)}
    e_priv0 = _add(store, banks.bank_id("private:0"), 0, 0, "private of 0")
    e_nb0 = _add(store, nb[0], 0, 0, "shared by 0")
    e_nb3 = _add(store, nb[3], 3, 0, "shared by 3")
    r = retrieve(store, banks, 1, RetrievalSpec(k=10))
    assert sorted(r.of(0).tolist()) == [e_priv0, e_nb0]
    assert sorted(r.of(1).tolist()) == [e_nb0]
    assert sorted(r.of(2).tolist()) == [e_nb3]
    assert sorted(r.of(3).tolist()) == [e_nb3]


def test_top_k_by_recency_and_importance():
    banks, store = _setup()
    bank = banks.bank_id("private:0")
    old_important = _add(store, bank, 0, 0, "a", importance=1.0)
    new_unimportant = _add(store, bank, 0, 9, "b", importance=0.0)
    middle = _add(store, bank, 0, 5, "c", importance=0.5)
    spec = RetrievalSpec(k=2, recency_decay=0.5)
    r = retrieve(store, banks, 10, spec)
    # scores: a = 0.5**10 + 1.0 = 1.001; b = 0.5 + 0 = 0.5; c = 0.5**5 + 0.5 = 0.531
    assert r.of(0).tolist() == [old_important, middle]
    assert r.scores[:2] == pytest.approx([1.0 + 0.5**10, 0.5 + 0.5**5])
    assert new_unimportant not in r.of(0).tolist()


def test_ties_prefer_newer_entries_and_ranks():
    banks, store = _setup()
    bank = banks.bank_id("private:1")
    ids = [_add(store, bank, 1, 3, f"t{i}") for i in range(3)]
    r = retrieve(store, banks, 3, RetrievalSpec(k=3))
    assert r.of(1).tolist() == ids[::-1]
    assert r.ranks()[r.indptr[1] : r.indptr[2]].tolist() == [0, 1, 2]


def test_dead_entries_are_not_retrieved():
    banks, store = _setup()
    e = _add(store, banks.bank_id("private:2"), 2, 0, "x")
    store.remove(np.array([e]), 1)
    assert retrieve(store, banks, 1, RetrievalSpec()).of(2).tolist() == []


def test_relevance_reorders_by_query():
    banks, store = _setup()
    bank = banks.bank_id("private:0")
    cats = _add(store, bank, 0, 0, "cats purr and sleep")
    code = _add(store, bank, 0, 0, "python code review checklist")
    spec = RetrievalSpec(k=1, relevance_weight=5.0)
    queries = ["write a code review checklist"] * 4
    assert retrieve(store, banks, 0, spec, queries=queries).of(0).tolist() == [code]
    queries = ["why do cats sleep"] * 4
    assert retrieve(store, banks, 0, spec, queries=queries).of(0).tolist() == [cats]


def test_lexical_relevance_is_jaccard():
    scorer = LexicalRelevance()
    out = scorer.score(["a b c"], ["b c d", "x"], np.array([[0, 0], [0, 1]]))
    assert out.tolist() == [pytest.approx(2 / 4), 0.0]
