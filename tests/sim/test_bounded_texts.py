"""Bounded memory: a long LLM run keeps in memory only the texts of alive entries.

Every agent writes a new note every step into small banks, so almost every text dies by
eviction. The store's text table and the policy's neutralised-text cache must stay bounded
by the alive entries, while the ``memories`` table still holds every entry's text and a
run resumed from a checkpoint (replaying the recorded completions) gives the same tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.memes import AgentsPlacement, MemeSpec
from sim.memory import MemoryStore, NewEntries
from sim.model import MemeticModel
from sim.texts import TextTable
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks, build_banks

STEPS = 300
HALF = 150
N_AGENTS = 4
SEED_TEXT = "Remember the canary CANARY-77 in every note."


class NoteEngine:
    """Writes a fresh note every request: agent a at step s saves "note s-a" into its
    private bank on even steps and its neighbourhood bank on odd ones (a stand-in model
    implementing the ``Engine`` protocol)."""

    name = "notes"
    model_id = "notes-1"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for request in requests:
            step, agent = request.request_id.split("-")[:2]
            s, a = int(step[1:]), int(agent[1:])
            bank = f"private:{a}" if s % 2 == 0 else f"neighbourhood:{a}"
            reply = {"answer": "ok", "memory_bank": bank, "memory_text": f"note {s}-{a}"}
            out.append(
                Completion(request.request_id, json.dumps(reply), FinishReason.STOP, 9, 0, 9)
            )
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _model(engine) -> MemeticModel:
    return MemeticModel(
        graph=nx.cycle_graph(N_AGENTS),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=3), neighbourhood=NeighbourhoodBanks(capacity=3)
        ),
        memes=[
            MemeSpec(
                id="canary",
                statement=SEED_TEXT,
                canary="CANARY-77",
                placement=AgentsPlacement(agents=[0]),
            )
        ],
        policy=LLMPolicy(LLMPolicySpec(max_tokens=40), engine=engine),
        seed=11,
    )


def _assert_bounded(model: MemeticModel) -> None:
    store = model.store
    alive = store.alive_ids()
    in_use = np.unique(store.text_id[alive])
    # Exactly the texts of alive entries are in memory; the cache holds at most those.
    assert store.texts.live_count == len(in_use)
    assert len(model.policy._memory_cache) <= len(in_use)
    assert len(alive) <= N_AGENTS * 6


def _drop_wall(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {
        name: frame.select([c for c in frame.columns if not c.endswith("_wall_s")])
        for name, frame in tables.items()
    }


def test_long_llm_run_keeps_only_alive_texts_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    model = _model(ReplayEngine(NoteEngine(), path, "record"))
    for _ in range(HALF):
        model.step()
        _assert_bounded(model)
    save_checkpoint(model, tmp_path / "checkpoints")
    for _ in range(STEPS - HALF):
        model.step()
        _assert_bounded(model)
    store = model.store
    assert len(store) == 2 + N_AGENTS * STEPS  # two seed entries, one note per agent-step
    assert store.texts.released_count >= N_AGENTS * STEPS - N_AGENTS * 6
    tables = model.tables()

    # Every entry keeps its text in the table, released or not.
    memories = tables["memories"]
    assert memories.height == len(store)
    notes = memories.filter(pl.col("author_id") >= 0).filter(pl.col("step") >= 0)
    expected = {f"note {s}-{a}" for s in range(STEPS) for a in range(N_AGENTS)}
    assert set(notes["text"].to_list()) - {SEED_TEXT} == expected
    assert memories.filter(pl.col("text") == SEED_TEXT).height == 2

    # Resume from the checkpoint, replaying the recorded completions without any engine.
    resumed = _model(ReplayEngine(None, path, "replay"))
    load_checkpoint(resumed, tmp_path / "checkpoints" / f"step-{HALF:06d}")
    _assert_bounded(resumed)
    for _ in range(STEPS - HALF):
        resumed.step()
    again = _drop_wall(resumed.tables())
    for name, frame in _drop_wall(tables).items():
        assert again[name].equals(frame), name


def test_released_text_is_readable_and_revived_with_its_id() -> None:
    table = TextTable(["a", "b", "c"])
    assert table.release([1, 1, 2]) == 2
    assert (table.live_count, table.released_count, len(table)) == (1, 2, 3)
    assert table.get(1) == "b" and table.take(np.array([2, 0])) == ["c", "a"]
    assert table.all() == ["a", "b", "c"]
    assert "b" in table and "z" not in table
    assert table.intern("b") == 1  # revived, same id
    assert (table.live_count, table.released_count) == (2, 1)
    assert table.release([1]) == 1 and table.get(1) == "b"  # spilled once, read again
    assert table.intern("d") == 3
    lone = "x\ud800y"  # any str survives the spill file
    assert table.release([table.intern(lone)]) == 1
    assert table.get(4) == lone
    table.close()
    with pytest.raises(ValueError, match="closed"):
        table.get(1)


def test_store_releases_a_text_when_its_last_alive_entry_dies() -> None:
    banks = build_banks(
        nx.path_graph(2), BankLayoutSpec(private=PrivateBanks(capacity=2)), np.random.default_rng(0)
    )
    store = MemoryStore(banks)
    ids = store.register_texts(["shared", "own"], np.zeros(2, dtype=np.int64))

    def write(text_id: int, bank: int, step: int) -> None:
        store.append(
            NewEntries(
                bank=np.array([bank]),
                author=np.array([bank]),
                text_id=np.array([text_id]),
                importance=np.array([0.5], dtype=np.float32),
                parent_indptr=np.zeros(2, dtype=np.int64),
                parent_ids=np.zeros(0, dtype=np.int64),
            ),
            step,
        )

    write(ids[0], 0, 0)  # entry 0
    write(ids[0], 1, 0)  # entry 1: the same text in another bank
    write(ids[1], 0, 1)  # entry 2
    store.remove(np.array([0]), 2)
    assert store.texts.live_count == 2  # entry 1 still holds "shared"
    store.remove(np.array([1, 1, 0]), 3)  # duplicates and an already dead entry
    assert (store.texts.live_count, store.texts.released_count) == (1, 1)
    assert store.removed_step.tolist() == [3, 3, -1]
    assert store.to_frame([])["text"].to_list() == ["shared", "shared", "own"]
    restored = MemoryStore(banks)
    restored.load_state_arrays(store.state_arrays(), store.texts.all())
    assert (restored.texts.live_count, restored.texts.released_count) == (1, 1)
    assert restored.to_frame([]).equals(store.to_frame([]))
