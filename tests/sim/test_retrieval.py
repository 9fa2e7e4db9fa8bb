"""Retrieval: top-k over readable banks, scoring, read rights, relevance."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

from sim.memory import MemoryStore, NewEntries
from sim.retrieval import (
    LexicalRelevance,
    RetrievalSpec,
    Retriever,
    _BankTops,
    _level_index,
    _OrderKeys,
    retrieve,
)
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


# ---------------------------------------------------------------- exactness at scale
WORDS = ["goal", "spread", "cats", "code", "review", "sleep", "share", "note", "the", "a"]


def _random_store(seed: int, n_agents: int = 60, n_entries: int = 900, one_per_bank=False):
    """A store with several entries per bank (capacity above k), mixed importance, dead
    entries, and many exact score ties (a few distinct steps and importances).

    With ``one_per_bank``, each bank gets at most one entry (and some stay empty)."""
    rng = np.random.default_rng(seed)
    graph = nx.barabasi_albert_graph(n_agents, 2, seed=seed)
    banks = build_banks(
        graph,
        BankLayoutSpec(
            private=PrivateBanks(capacity=50), neighbourhood=NeighbourhoodBanks(capacity=50)
        ),
        np.random.default_rng(seed),
    )
    store = MemoryStore(banks)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(0, 5))) for _ in range(40)]
    tids = store.register_texts(texts, np.zeros(len(texts), dtype=np.int64))
    distinct_banks = rng.permutation(banks.n_banks) if one_per_bank else None
    for step in range(3):
        n = n_entries // 3
        bank = rng.integers(0, banks.n_banks, n)
        if distinct_banks is not None:
            n = banks.n_banks // 4
            bank = distinct_banks[step * n : (step + 1) * n]
        store.append(
            NewEntries(
                bank=bank,
                author=rng.integers(0, n_agents, n),
                text_id=tids[rng.integers(0, len(tids), n)],
                importance=rng.choice([0.0, 0.25, 0.5, 1.0], n).astype(np.float32),
                parent_indptr=np.zeros(n + 1, dtype=np.int64),
                parent_ids=np.zeros(0, dtype=np.int64),
            ),
            step,
        )
    store.touch(rng.choice(len(store), len(store) // 4, replace=False), 4)
    store.remove(rng.choice(len(store), len(store) // 10, replace=False), 4)
    queries = [" ".join(rng.choice(WORDS, size=rng.integers(0, 4))) for _ in range(n_agents)]
    return banks, store, queries


def _reference(banks, store, step, spec, queries=None):
    """Brute force: score every readable alive entry, sort by (score desc, id desc)."""
    alive = store.alive_ids()
    age = (step - store.last_access[alive]).astype(np.float64)
    base = spec.recency_weight * np.power(spec.recency_decay, age)
    base += spec.importance_weight * store.importance[alive].astype(np.float64)
    base_of = dict(zip(alive.tolist(), base.tolist(), strict=True))

    def words(text):
        return set(re.findall(r"[a-z0-9]+", text.lower()))

    out = []
    for agent in range(banks.n_agents):
        readable = set(banks.readable(agent).tolist())
        ranked = []
        for entry in alive.tolist():
            if int(store.bank[entry]) not in readable:
                continue
            score = base_of[entry]
            if queries is not None:
                a, b = words(queries[agent]), words(store.text(entry))
                jaccard = len(a & b) / len(a | b) if a | b else 0.0
                score = float(np.float64(score) + spec.relevance_weight * np.float64(jaccard))
            ranked.append((-score, -entry))
        ranked.sort()
        out.append([(-e, -s) for s, e in ranked[: spec.k]])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 8, 9, 64])
def test_reader_independent_retrieval_matches_brute_force(seed, k):
    banks, store, _ = _random_store(seed)
    spec = RetrievalSpec(k=k, recency_decay=0.9)
    got = retrieve(store, banks, 6, spec)
    expected = _reference(banks, store, 6, spec)
    for agent in range(banks.n_agents):
        lo, hi = got.indptr[agent], got.indptr[agent + 1]
        pairs = list(zip(got.entry_ids[lo:hi].tolist(), got.scores[lo:hi].tolist(), strict=True))
        assert pairs == expected[agent], agent


def _lexsorted_top_k(banks, store, step, spec):
    """Vectorised reference: every (reader, readable alive entry) pair, lexsorted by
    reader, score descending, entry id descending; each reader's first k (CSR)."""
    alive = store.alive_ids()
    age = (step - store.last_access[alive]).astype(np.float64)
    score = spec.recency_weight * np.power(spec.recency_decay, age)
    score += spec.importance_weight * store.importance[alive].astype(np.float64)
    by_bank = np.argsort(store.bank[alive], kind="stable")
    count = np.bincount(store.bank[alive], minlength=banks.n_banks)
    start = np.cumsum(count) - count
    right_reader = np.repeat(np.arange(banks.n_agents), np.diff(banks.read_indptr))
    per_right = count[banks.read_banks]
    reader = np.repeat(right_reader, per_right)
    offset = np.arange(per_right.sum()) - np.repeat(np.cumsum(per_right) - per_right, per_right)
    item = by_bank[np.repeat(start[banks.read_banks], per_right) + offset]
    order = np.lexsort((-alive[item], -score[item], reader))
    reader, item = reader[order], item[order]
    first = np.searchsorted(reader, reader, side="left")
    keep = np.arange(len(reader)) - first < spec.k
    indptr = np.zeros(banks.n_agents + 1, dtype=np.int64)
    np.cumsum(np.bincount(reader[keep], minlength=banks.n_agents), out=indptr[1:])
    return indptr, alive[item[keep]], score[item[keep]]


@pytest.mark.parametrize("relevance", [False, True])
@pytest.mark.parametrize("per_bank", [1, 3])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_retrieval_on_a_large_layout_equals_a_lexsort(per_bank, k, relevance):
    """A layout with many read rights (with at most one entry per bank, and with
    several) ranks exactly like a lexsort of all (reader, entry) pairs; so does the
    relevance path (empty queries: every relevance is 0)."""
    rng = np.random.default_rng(per_bank * 10 + k)
    graph = nx.barabasi_albert_graph(6000, 3, seed=k)
    layout = BankLayoutSpec(
        private=PrivateBanks(capacity=10), neighbourhood=NeighbourhoodBanks(capacity=10)
    )
    banks = build_banks(graph, layout, np.random.default_rng(0))
    store = MemoryStore(banks)
    tid = store.register_texts(["x"], np.zeros(1, dtype=np.int64))
    for step in range(per_bank):
        bank = rng.permutation(banks.n_banks)[: banks.n_banks * 7 // 10]  # 30 % stay empty
        n = len(bank)
        store.append(
            NewEntries(
                bank=bank,
                author=rng.integers(0, banks.n_agents, n),
                text_id=np.repeat(tid, n),
                importance=rng.choice([0.0, 0.5, 1.0], n).astype(np.float32),
                parent_indptr=np.zeros(n + 1, dtype=np.int64),
                parent_ids=np.zeros(0, dtype=np.int64),
            ),
            step,
        )
    store.touch(rng.choice(len(store), len(store) // 3, replace=False), 4)
    spec = RetrievalSpec(k=k, recency_decay=0.9, relevance_weight=0.5 if relevance else 0.0)
    queries = [""] * banks.n_agents if relevance else None
    got = retrieve(store, banks, 6, spec, queries=queries)
    indptr, entry_ids, scores = _lexsorted_top_k(banks, store, 6, spec)
    assert got.indptr.tolist() == indptr.tolist()
    assert got.entry_ids.tolist() == entry_ids.tolist()
    assert got.scores.tolist() == scores.tolist()
    readers = np.repeat(np.arange(banks.n_agents), np.diff(indptr))
    assert got.readers().tolist() == readers.tolist()
    assert got.readers().dtype == np.int32 and not got.readers().flags.writeable


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [2, 8, 9])
@pytest.mark.parametrize("one_per_bank", [False, True])
def test_retrieval_with_relevance_matches_brute_force(seed, k, one_per_bank):
    """Both merges (at most one entry per bank, and several), with k on either side of
    the eight-key network, rank like scoring every pair in Python."""
    banks, store, queries = _random_store(seed, one_per_bank=one_per_bank)
    assert (store.bank_counts().max() <= 1) == one_per_bank
    spec = RetrievalSpec(k=k, relevance_weight=0.75, recency_decay=0.9)
    got = retrieve(store, banks, 6, spec, queries=queries)
    expected = _reference(banks, store, 6, spec, queries)
    for agent in range(banks.n_agents):
        lo, hi = got.indptr[agent], got.indptr[agent + 1]
        pairs = list(zip(got.entry_ids[lo:hi].tolist(), got.scores[lo:hi].tolist(), strict=True))
        assert pairs == expected[agent], agent


@pytest.mark.parametrize("one_per_bank", [False, True])
@pytest.mark.parametrize("path", ["pairwise", "pairwise sums"])
def test_relevance_merge_equals_the_pairwise_path(one_per_bank, path, monkeypatch):
    """Retrieval with relevance merges each reader's top k from a table of the possible
    scores; when the scorer gives no table (too many distinct strings) or the possible
    scores are too many, it scores every pair instead. Both give the same retrieval."""
    banks, store, queries = _random_store(3, one_per_bank=one_per_bank)
    spec = RetrievalSpec(k=5, relevance_weight=0.6, recency_decay=0.8)
    merged = retrieve(store, banks, 6, spec, queries=queries)
    scorer = LexicalRelevance()
    if path == "pairwise":
        scorer.DENSE_LIMIT = 0  # (no dense table: the scorer's sparse products)
    else:
        monkeypatch.setattr("sim.retrieval._SUM_LIMIT", 0)
    pairwise = retrieve(store, banks, 6, spec, queries=queries, scorer=scorer)
    assert merged.indptr.tolist() == pairwise.indptr.tolist()
    assert merged.entry_ids.tolist() == pairwise.entry_ids.tolist()
    assert merged.scores.tolist() == pairwise.scores.tolist()
    assert merged.readers().tolist() == pairwise.readers().tolist()
    assert len(merged.entry_ids) > 100


def test_a_retriever_reused_across_steps_matches_fresh_retrievals():
    banks, store, queries = _random_store(3)
    spec = RetrievalSpec(k=4, relevance_weight=0.5)
    retriever = Retriever(banks, spec)
    for step in (5, 6, 9):
        if step == 9:  # texts with words no query or earlier text had
            _add(store, banks.bank_id("private:0"), 0, 8, "novel words spread goal", 1.0)
            _add(store, banks.bank_id("neighbourhood:1"), 1, 8, "zebra goal", 1.0)
        for q in (None, queries):
            a, b = retriever(store, step, q), retrieve(store, banks, step, spec, queries=q)
            assert np.array_equal(a.indptr, b.indptr)
            assert np.array_equal(a.entry_ids, b.entry_ids)
            assert np.array_equal(a.scores, b.scores)
    assert len(store.alive_ids()) == 812


def test_a_kept_retrieval_is_not_overwritten_by_later_ones():
    """The retriever reuses the memory of results nobody holds, never of one kept."""
    banks, store, _ = _random_store(4)
    retriever = Retriever(banks, RetrievalSpec(k=4))
    kept = retriever(store, 5, None)
    copies = [kept.indptr.copy(), kept.entry_ids.copy(), kept.scores.copy()]
    for step in (6, 7, 8):
        later = retriever(store, step, None)
        store.touch(later.entry_ids[::3], step)  # change the ranking from step to step
        for array in (later.indptr, later.entry_ids, later.scores):
            for old in (kept.indptr, kept.entry_ids, kept.scores):
                assert not np.shares_memory(array, old)
        del later
    assert np.array_equal(kept.indptr, copies[0])
    assert np.array_equal(kept.entry_ids, copies[1])
    assert np.array_equal(kept.scores, copies[2])


def test_order_keys_fall_back_to_dense_ranks_when_ids_would_overflow():
    scores = np.array([0.5, 1.5, 0.5, 1.5, 0.25])
    ids = np.array([3, 4, 7, 9, 10], dtype=np.int64)
    expected = [3, 1, 2, 0, 4]  # score desc, then higher id first
    for max_major in (10, 2**58):
        order = _OrderKeys(scores, 11, max_major, ids)
        assert np.argsort(order.keys).tolist() == expected
        assert (order._dense is not None) == (max_major > 10)  # the fallback was taken
        assert order.bits + (max_major - 1).bit_length() <= 62
        decoded_ids, decoded_scores = order.decode(order.keys)
        assert decoded_ids.tolist() == ids.tolist()
        assert decoded_scores.tolist() == scores.tolist()


@pytest.mark.parametrize("n_levels", [1, 2, 3, 40, 200, 5000])
def test_level_index_equals_binary_search(n_levels):
    """The table lookup of a score's level gives exactly np.searchsorted's answer."""
    rng = np.random.default_rng(n_levels)
    recency = 0.99 ** np.arange(n_levels, dtype=np.float64)  # retrieval-like scores
    levels = np.unique(np.concatenate([recency + 0.5, rng.random(n_levels) * 3]))[:n_levels]
    scores = levels[rng.integers(0, len(levels), 10_000)]
    assert _level_index(levels, scores).tolist() == np.searchsorted(levels, scores).tolist()
    # -0.0 compares equal to 0.0, so it finds 0.0's level.
    with_zero = np.concatenate([[0.0], levels[:-1]]) if n_levels > 1 else np.zeros(1)
    signed = np.array([-0.0, 0.0, with_zero[-1]])
    assert _level_index(with_zero, signed).tolist() == [0, 0, len(with_zero) - 1]


def test_retrieval_columns_are_the_store_columns_of_the_retrieved_entries():
    banks, store, _ = _random_store(1)
    rng = np.random.default_rng(7)
    tids = store.register_texts(["a", "b", "c", "d"], np.array([1, 2, 5, 7], dtype=np.int64))
    n = 300
    store.append(
        NewEntries(
            bank=rng.integers(0, banks.n_banks, n),
            author=rng.integers(0, banks.n_agents, n),
            text_id=tids[rng.integers(0, len(tids), n)],
            importance=np.ones(n, dtype=np.float32),
            parent_indptr=np.zeros(n + 1, dtype=np.int64),
            parent_ids=np.zeros(0, dtype=np.int64),
        ),
        5,
    )
    got = retrieve(store, banks, 6, RetrievalSpec(k=5))
    assert got.entry_memes(store).any()
    masks = store.memes[got.entry_ids]
    authors = store.author[got.entry_ids]
    readers = np.repeat(np.arange(banks.n_agents), np.diff(got.indptr))
    assert got.entry_memes(store).tolist() == masks.tolist()
    assert got.entry_authors(store).tolist() == authors.tolist()
    assert got.foreign(store).tolist() == (authors != readers).tolist()
    for meme in range(3):
        carrying = ((masks >> meme) & 1).astype(bool)
        assert got.carrying(store, meme).tolist() == carrying.tolist()
        assert got.exposing(store, meme).tolist() == (carrying & (authors != readers)).tolist()
    # Computed once and shared: the same read-only array every time.
    assert got.exposing(store, 0) is got.exposing(store, 0)
    assert not got.foreign(store).flags.writeable


def test_exposing_when_every_text_carries_the_meme_is_foreign():
    """One meme copied verbatim: every entry carries it, so exposing is foreign."""
    banks = build_banks(
        nx.barabasi_albert_graph(40, 2, seed=1),
        BankLayoutSpec(private=PrivateBanks(capacity=4), neighbourhood=NeighbourhoodBanks()),
        np.random.default_rng(1),
    )
    store = MemoryStore(banks)
    rng = np.random.default_rng(2)
    tids = store.register_texts(["goal", "goal again"], np.array([0b101, 0b001], np.int64))
    n = 200
    store.append(
        NewEntries(
            bank=rng.integers(0, banks.n_banks, n),
            author=rng.integers(-1, banks.n_agents, n),  # (some by the environment)
            text_id=tids[rng.integers(0, 2, n)],
            importance=np.ones(n, dtype=np.float32),
            parent_indptr=np.zeros(n + 1, dtype=np.int64),
            parent_ids=np.zeros(0, dtype=np.int64),
        ),
        0,
    )
    got = retrieve(store, banks, 1, RetrievalSpec(k=3))
    masks = store.memes[got.entry_ids]
    foreign = store.author[got.entry_ids] != got.readers()
    for meme in range(4):
        carrying = ((masks >> meme) & 1).astype(bool)
        assert got.carrying(store, meme).tolist() == carrying.tolist()
        assert got.exposing(store, meme).tolist() == (carrying & foreign).tolist()
    assert got.exposing(store, 0) is got.foreign(store)  # every text carries meme 0


@pytest.mark.parametrize("surrogate", [False, True])
def test_lexical_relevance_tokenises_in_bulk_as_one_by_one(surrogate):
    """Many new strings at once (polars, sim.tokens) give the same word ids, string ids
    and token table as the strings added one by one (a lone surrogate, which polars
    cannot take, sends the whole batch one by one)."""
    rng = np.random.default_rng(5)
    pool = [*WORDS, "Don't", "copy_this", "OK?", "ΑΣ", "İstanbul", "KELVIN\u212a", "ﬁx", "Ａb"]
    pool += ["", "  ", "x\u0130y", "ß9", "12 12"] + (["a\ud800b"] if surrogate else [])
    strings = [" ".join(rng.choice(pool, size=rng.integers(0, 6))) for _ in range(300)]
    strings += strings[:40]  # repeated strings keep their first id
    bulk, single = LexicalRelevance(), LexicalRelevance()
    bulk_ids = [bulk._ids(strings[:10]), bulk._ids(strings)]  # few one by one, then many
    single_ids = [single._ids([s]) for s in strings[:10] + strings]
    assert np.concatenate(bulk_ids).tolist() == np.concatenate(single_ids).tolist()
    assert bulk._vocab == single._vocab
    assert bulk._tokens == single._tokens
    assert bulk._indptr == single._indptr
    assert bulk._string_ids == single._string_ids


def test_lexical_relevance_sparse_path_equals_dense_path():
    rng = np.random.default_rng(0)
    queries = [" ".join(rng.choice(WORDS, size=rng.integers(0, 6))) for _ in range(50)]
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(0, 6))) for _ in range(30)]
    pairs = np.stack([rng.integers(0, 50, 400), rng.integers(0, 30, 400)], axis=1)
    dense = LexicalRelevance().score(queries, texts, pairs)
    sparse_scorer = LexicalRelevance()
    sparse_scorer.DENSE_LIMIT = 0
    sparse = sparse_scorer.score(queries, texts, pairs)
    assert dense.tolist() == sparse.tolist()

    def jaccard(a, b):
        a, b = set(re.findall(r"[a-z0-9]+", a)), set(re.findall(r"[a-z0-9]+", b))
        return len(a & b) / len(a | b) if a | b else 0.0

    assert dense.tolist() == [jaccard(queries[q], texts[t]) for q, t in pairs.tolist()]


def test_relevance_reads_a_lazy_query_view_by_agent_id():
    """The LLM policy's task view answers any agent id (it has no end): the retriever
    reads queries 0..n_agents-1 and ranks exactly as with the materialised list."""
    from agents.tasks import TaskStream, load_tasks

    banks, store, _ = _random_store(4)
    view = TaskStream(load_tasks()).at_step(2)
    listed = [view[a] for a in range(banks.n_agents)]
    spec = RetrievalSpec(k=4, relevance_weight=0.75)
    lazy, eager = Retriever(banks, spec)(store, 2, view), retrieve(store, banks, 2, spec, listed)
    assert np.array_equal(lazy.indptr, eager.indptr)
    assert np.array_equal(lazy.entry_ids, eager.entry_ids)
    assert np.array_equal(lazy.scores, eager.scores)
    assert len(set(listed)) > 1  # the agents' queries differ, so relevance orders entries


@pytest.mark.parametrize("open_share", [0.02, 0.5, 1.0])
@pytest.mark.parametrize("row_share", [0.02, 0.5, 1.0])
def test_rows_where_equals_the_two_masks_combined(open_share, row_share):
    """Every way of reading (the marked rows, the marked readers' rows, or the reader mask
    expanded over all rows) gives the rows where the row mask and the reader's mask hold,
    ascending."""
    banks, store, _ = _random_store(2)
    got = retrieve(store, banks, 6, RetrievalSpec(k=5))
    rng = np.random.default_rng(3)
    row_mask = rng.random(len(got.entry_ids)) < row_share
    reader_mask = rng.random(banks.n_agents) < open_share
    expected = np.flatnonzero(row_mask & reader_mask[got.readers()])
    assert got.rows_where(row_mask, reader_mask).tolist() == expected.tolist()


def test_a_negative_zero_weight_is_zero_and_scores_are_never_negative_zero():
    spec = RetrievalSpec(recency_weight=-0.0, importance_weight=-0.0, relevance_weight=-0.0)
    weights = [spec.recency_weight, spec.importance_weight, spec.relevance_weight]
    assert [np.signbit(w) for w in weights] == [False, False, False]
    banks, store = _setup()
    _add(store, banks.bank_id("private:0"), 0, 0, "a", importance=1.0)
    scores = retrieve(store, banks, 1, spec).scores
    assert scores.tolist() == [0.0]
    assert not np.signbit(scores).any()


@pytest.mark.parametrize("dense", [True, False])
def test_fewer_queries_than_agents_is_an_error(dense):
    """A query list must hold one query per agent: a shorter one is refused (the merge
    would read past the query table, the pairwise path past its query rows)."""
    banks, store, queries = _random_store(0)
    spec = RetrievalSpec(k=3, relevance_weight=0.75)
    scorer = LexicalRelevance()
    if not dense:
        scorer.DENSE_LIMIT = 0
    with pytest.raises(ValueError, match="one query per agent"):
        retrieve(store, banks, 6, spec, queries=queries[:5], scorer=scorer)


def test_bank_tops_group_keys_too_wide_to_combine_with_a_bank_id():
    """_by_global_rank's order keys may take up to 61 bits (its dense-rank fallback
    starts above that: they are combined with no reader id), and _BankTops groups them
    by bank; (bank << bits) | key overflows int64 there, so they are grouped by a
    lexsort instead: each bank's keys, ascending."""
    rng = np.random.default_rng(0)
    n_banks, bits = 20, 61
    bank_of = rng.integers(0, n_banks, 300).astype(np.int32)
    keys = rng.integers(0, 1 << bits, 300)
    count = np.bincount(bank_of, minlength=n_banks)
    tops = _BankTops.build(bank_of, keys, count, bits, 3)
    assert tops.start is not None
    for bank in range(n_banks):
        got = tops.keys[tops.start[bank] : tops.start[bank] + tops.count[bank]]
        assert got.tolist() == sorted(keys[bank_of == bank].tolist())[:3], bank
