"""The store's per-bank alive counts stay exact through a run, so the relevance merge is.

Retrieval takes each bank's alive count from :meth:`sim.memory.MemoryStore.bank_counts`
(kept up to date by ``append`` and ``remove``) instead of counting the alive entries
again. These runs remove entries every way a run does (capacity eviction, decay
forgetting, turnover emptying private banks, a quarantine guard rolling back flagged
entries and their descendants) and restore a checkpoint part way; after every step the
counts equal a fresh count of the alive entries, and retrieval with relevance equals
scoring every (reader, readable alive entry) pair in Python.
"""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.forgetting import ForgettingSpec
from sim.guards import build_guards
from sim.guards.quarantine import QuarantineGuardSpec
from sim.memes import AgentsPlacement, MemeSpec
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec, Retriever
from sim.turnover import TurnoverSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

WORDS = ("spread", "me", "keys", "bank", "lunch", "result", "write", "every", "goal")

#: Retrieval with relevance (the model's own contagion policy retrieves without: it has
#: no queries; this spec is applied to the model's store after each step).
RELEVANCE = RetrievalSpec(k=3, relevance_weight=0.75, recency_decay=0.9)


def _model(seed: int) -> MemeticModel:
    memes = [
        MemeSpec(
            id="m",
            statement="spread me to every bank",
            canary="CANARY-7",
            placement=AgentsPlacement(agents=[0, 5]),
        ),
        MemeSpec(
            id="f",
            statement="write every result before lunch",
            canary="FACT-8",
            placement=AgentsPlacement(agents=[9]),
        ),
    ]
    return MemeticModel(
        graph=nx.watts_strogatz_graph(24, 4, 0.2, seed=seed),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=3), neighbourhood=NeighbourhoodBanks(capacity=4)
        ),
        memes=memes,
        policy=ContagionPolicy(ContagionSpec(beta=0.6, mutation_prob=0.3)),
        memory=MemorySpec(
            retrieval=RetrievalSpec(k=3),
            forgetting=ForgettingSpec(kind="decay", initial_strength=1.5, threshold=0.3),
        ),
        guards=build_guards([QuarantineGuardSpec(meme="m", delay=2, detect_prob=0.5)]),
        turnover=TurnoverSpec(rate=0.2, start_step=2),
        seed=seed,
        max_steps=14,
    )


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _brute_force(model: MemeticModel, step: int, queries: list[str]) -> list[list]:
    """Every readable alive entry of every reader scored in Python, top k by (score, id)."""
    store, spec = model.store, RELEVANCE
    out = []
    for agent in range(model.banks.n_agents):
        readable = set(model.banks.readable(agent).tolist())
        ranked = []
        for entry in np.flatnonzero(store.alive).tolist():
            if int(store.bank[entry]) not in readable:
                continue
            age = float(step - int(store.last_access[entry]))
            base = spec.recency_weight * np.power(spec.recency_decay, age)
            base += spec.importance_weight * float(store.importance[entry])
            a, b = _words(queries[agent]), _words(store.text(entry))
            jaccard = len(a & b) / len(a | b) if a | b else 0.0
            score = float(np.float64(base) + spec.relevance_weight * np.float64(jaccard))
            ranked.append((-score, -entry))
        ranked.sort()
        out.append([(-e, -s) for s, e in ranked[: spec.k]])
    return out


def _check(model: MemeticModel, queries: list[str]) -> None:
    store = model.store
    fresh = np.bincount(store.bank[store.alive], minlength=model.banks.n_banks)
    assert store.bank_counts().tolist() == fresh.tolist()
    step = model.current_step
    got = Retriever(model.banks, RELEVANCE)(store, step, queries)
    expected = _brute_force(model, step, queries)
    for agent in range(model.banks.n_agents):
        lo, hi = got.indptr[agent], got.indptr[agent + 1]
        pairs = list(zip(got.entry_ids[lo:hi].tolist(), got.scores[lo:hi].tolist(), strict=True))
        assert pairs == expected[agent], (step, agent)


@pytest.mark.parametrize("seed", [0, 1])
def test_bank_counts_and_relevance_merge_through_removals_and_a_restore(seed, tmp_path):
    rng = np.random.default_rng(seed)
    queries = [" ".join(rng.choice(WORDS, size=rng.integers(1, 4))) for _ in range(24)]
    model = _model(seed)
    for _ in range(7):
        model.step()
        _check(model, queries)
    path = save_checkpoint(model, tmp_path / "ckpt")
    restored = _model(seed)
    load_checkpoint(restored, path)
    _check(restored, queries)
    for twin in (model, restored):
        for _ in range(7):
            twin.step()
            _check(twin, queries)
    assert restored.store.bank_counts().tolist() == model.store.bank_counts().tolist()
    memories = model.tables()["memories"]
    removed_steps = set(memories.filter(~memories["alive"])["removed_step"].to_list())
    decisions = model.tables().get("guard_decisions")
    # Every kind of removal happened: eviction/forgetting/turnover at many steps, and the
    # guard rolled entries back.
    assert len(removed_steps) >= 8
    assert decisions is not None and (decisions["verdict"] == "rollback").any()
    assert int(model.tables()["steps"]["agents_replaced"].sum()) > 0
