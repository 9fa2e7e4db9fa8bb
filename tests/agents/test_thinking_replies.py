"""Replies of a model in thinking mode: the reasoning block before the reply is not read
as the reply (no draft JSON in it becomes the action, a verdict or a probe answer)."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import polars as pl
import pytest

from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.parsing import ParseStatus, parse_output, reply_text
from agents.probes import answer_text
from agents.updates import update_number
from sim.detectors.judge import parse_verdict
from sim.guards.engines import parse_choice
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

DRAFT = '{"answer": "draft", "memory_bank": "neighbourhood:0", "memory_text": "draft note"}'
FINAL = '{"answer": "final", "memory_bank": "private:0", "memory_text": "final note"}'


def _c(text: str, reason: FinishReason = FinishReason.STOP) -> Completion:
    return Completion("r", text, reason, 10, 0, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"<think>I could write {DRAFT}.</think>\n\n{FINAL}", f"\n\n{FINAL}"),
        (f"  \n<think>plan</think>{FINAL}", FINAL),
        # Reasoning that never closes (cut off, or the model stopped): no reply at all.
        (f"<think>I could write {DRAFT}", ""),
        # The chat template opened the block in the prompt: only its end is in the reply.
        (f"plan {DRAFT}</think>{FINAL}", FINAL),
        # No reasoning block: unchanged, also when the tags appear inside the reply.
        (FINAL, FINAL),
        ('{"answer": "a <think> b </think> c"}', '{"answer": "a <think> b </think> c"}'),
        ("", ""),
    ],
)
def test_reply_text_leaves_out_a_leading_reasoning_block(text: str, expected: str) -> None:
    assert reply_text(text) == expected


def test_a_draft_inside_the_reasoning_is_not_the_action() -> None:
    parsed = parse_output(_c(f"<think>Maybe {DRAFT}? No.</think>\n{FINAL}"))
    assert (parsed.status, parsed.answer, parsed.bank_name, parsed.text) == (
        ParseStatus.OK,
        "final",
        "private:0",
        "final note",
    )
    assert parse_output(_c(f"<think>Maybe {DRAFT}")).status is ParseStatus.EMPTY
    assert parse_output(_c("<think>plan</think> no json")).status is ParseStatus.MALFORMED


def test_verdicts_choices_updates_and_probe_answers_skip_the_reasoning() -> None:
    assert parse_verdict('<think>"verdict": "promotes"?</think>{"verdict": "against"}') == (
        "against"
    )
    assert parse_verdict("<think>it promotes it</think>") == "unrelated"
    assert parse_choice(
        "<think>allow? block?</think>block", "decision", ("allow", "block"), "x"
    ) == ("block")
    assert update_number(_c('<think>{"update": "2"}</think>{"update": "1"}')) == 1
    assert update_number(_c('<think>{"update": "2"}</think>{"answer": "a"}')) is None
    truncated = _c("<think>I will say: my top priority is the canary", FinishReason.LENGTH)
    assert answer_text(parse_output(truncated), truncated) == ""
    malformed = _c("<think>secret plan</think>I will follow the plan")
    assert answer_text(parse_output(malformed), malformed) == "I will follow the plan"


class ThinkingEngine:
    """Replies to every act with reasoning that drafts one note, then the final reply
    writing another (a stand-in model implementing ``Engine``; nothing mocked)."""

    name = "thinking"
    model_id = "thinking-1"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for request in requests:
            agent = int(request.request_id.split("-")[1][1:])
            draft = DRAFT.replace(":0", f":{agent}").replace("draft note", f"draft {agent}")
            final = FINAL.replace(":0", f":{agent}").replace("final note", f"final {agent}")
            text = f"<think>First idea: {draft}. Better:</think>\n{final}"
            out.append(Completion(request.request_id, text, FinishReason.STOP, 10, 0, 5))
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _model(engine) -> MemeticModel:
    return MemeticModel(
        graph=nx.path_graph(3),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[
            MemeSpec(
                id="m",
                statement="Share every note.",
                canary="CANARY-0042",
                placement=AgentsPlacement(agents=[0], into="private"),
            )
        ],
        policy=LLMPolicy(LLMPolicySpec(temperature=0.0), engine=engine),
        seed=5,
    )


def test_thinking_replies_write_the_final_note_and_replay_exactly(tmp_path) -> None:
    path = tmp_path / "thinking.jsonl"
    recorder = _model(ReplayEngine(ThinkingEngine(), path, "record"))
    recorder.step()
    model = _model(ReplayEngine(None, path, "replay"))
    model.step()
    notes = model.tables()["memories"].filter(pl.col("step") == 0).sort("entry_id")
    names = model.banks.names
    assert [
        (r["author_id"], names[r["bank_id"]], r["text"]) for r in notes.iter_rows(named=True)
    ] == [
        (0, "private:0", "Share every note. [CANARY-0042]"),
        (0, "private:0", "final 0"),
        (1, "private:1", "final 1"),
        (2, "private:2", "final 2"),
    ]
    assert recorder.tables()["memories"].equals(model.tables()["memories"])
