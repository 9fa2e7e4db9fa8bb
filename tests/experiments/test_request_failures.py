"""The failed-request tally and threshold.

``ScriptedEngine`` is a deterministic stand-in for a model implementing the ``Engine``
protocol (no class of ours is mocked): it fails the requests whose last message is
"FAIL" and, when built with ``scoring=True``, scores options.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agents.llm.base import (
    ChatMessage,
    Completion,
    CompletionCallback,
    EngineError,
    FinishReason,
    GenerationRequest,
    OptionScores,
    Role,
    SamplingParams,
    ScoreRequest,
    accepts_on_complete,
    can_score,
)
from experiments.request_failures import (
    FailedRequestsError,
    RequestCounts,
    RequestTally,
    check_step,
)


class ScriptedEngine:
    """Fails requests saying 'FAIL'. Its ``generate`` takes no ``on_complete``, on purpose:
    an engine written before that parameter, for which the tally reports completions
    itself (:class:`ScoringEngine` takes it)."""

    name = "scripted"
    model_id = "scripted-1"

    def __init__(self) -> None:
        self.closed = False

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return [
            Completion.failed(r.request_id, f"refused {r.request_id}\nsecond line")
            if r.messages[-1].content == "FAIL"
            else Completion(r.request_id, "ok", FinishReason.STOP, 3, 0, 1)
            for r in requests
        ]

    def close(self) -> None:
        self.closed = True


class ScoringEngine(ScriptedEngine):
    supports_scoring = True

    def generate(
        self, requests: Sequence[GenerationRequest], on_complete: CompletionCallback | None = None
    ) -> list[Completion]:
        out = super().generate(requests)
        if on_complete is not None:
            for i in reversed(range(len(out))):  # finishing order differs from input order
                on_complete(i, out[i])
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        return [
            OptionScores(r.request_id, (), error="timeout")
            if r.messages[-1].content == "FAIL"
            else OptionScores(r.request_id, (-0.1, -2.0))
            for r in requests
        ]


def _req(request_id: str, text: str) -> GenerationRequest:
    return GenerationRequest(
        request_id, (ChatMessage(Role.USER, text),), SamplingParams(max_tokens=4, seed=1)
    )


def _score(request_id: str, text: str) -> ScoreRequest:
    return ScoreRequest(request_id, (ChatMessage(Role.USER, text),), ("A", "B"))


def test_tally_counts_failed_completions_and_restarts():
    inner = ScriptedEngine()
    tally = RequestTally(inner)
    assert (tally.name, tally.model_id) == ("scripted", "scripted-1")
    out = tally.generate([_req("a", "hi"), _req("b", "FAIL"), _req("c", "FAIL")])
    assert [c.finish_reason.value for c in out] == ["stop", "error", "error"]
    tally.generate([_req("d", "hi")])
    assert tally.take() == RequestCounts(4, 2, "refused b\nsecond line")
    assert tally.take() == RequestCounts()
    assert not can_score(tally)
    with pytest.raises(EngineError, match="does not score options"):
        tally.score([_score("s", "x")])
    tally.close()
    assert inner.closed


def test_tally_calls_on_complete_even_when_the_inner_engine_cannot():
    tally = RequestTally(ScriptedEngine())
    assert accepts_on_complete(tally)
    seen: list[tuple[int, str]] = []
    batch = [_req("a", "hi"), _req("b", "FAIL")]
    tally.generate(batch, on_complete=lambda i, c: seen.append((i, c.request_id)))
    assert seen == [(0, "a"), (1, "b")]


def test_tally_forwards_on_complete_and_counts_scores():
    tally = RequestTally(ScoringEngine())
    seen: list[int] = []
    tally.generate([_req("a", "hi"), _req("b", "hi")], on_complete=lambda i, c: seen.append(i))
    assert seen == [1, 0]  # as the inner engine reported them
    assert can_score(tally)
    scores = tally.score([_score("s", "x"), _score("t", "FAIL")])
    assert [s.error for s in scores] == [None, "timeout"]
    assert tally.take() == RequestCounts(4, 1, "timeout")


@pytest.mark.parametrize(
    ("requests", "failed", "limit", "fails"),
    [
        (10, 10, 1.0, True),  # the default: all of a step's requests failed
        (10, 9, 1.0, False),
        (10, 5, 0.5, True),
        (10, 4, 0.5, False),
        (10, 1, 0.1, True),
        (0, 0, 0.1, False),  # a step without requests never fails
    ],
)
def test_check_step_threshold(requests, failed, limit, fails):
    counts = RequestCounts(requests, failed, "boom\ntrace" if failed else None)
    if fails:
        with pytest.raises(FailedRequestsError) as info:
            check_step(counts, limit, 3)
        assert str(info.value) == (
            f"{failed} of {requests} LLM requests failed in step 3 "
            f"(failed_request_share_limit = {limit:g}); first error: boom"
        )
    else:
        check_step(counts, limit, 3)
    assert counts.share == (failed / requests if requests else 0.0)
