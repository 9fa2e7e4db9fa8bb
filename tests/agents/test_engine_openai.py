"""The OpenAI-compatible engine.

Two kinds of server: the real llama.cpp server (``openai_server`` fixture, slow tests), and
``FakeOpenAIService`` below, a tiny stdlib HTTP server on 127.0.0.1 that fakes an external
service: it answers with a scripted sequence of status codes (e.g. 429, 429, 200) and a
canned OpenAI-shaped body, and records what it received.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents.llm import OpenAISpec
from agents.llm.base import (
    ChatMessage,
    EngineError,
    FinishReason,
    GenerationRequest,
    Role,
    SamplingParams,
    ScoreRequest,
)
from agents.llm.openai_compat import OpenAIEngine

pytest.importorskip("httpx")

CANNED_BODY = {
    "id": "chatcmpl-fake",
    "object": "chat.completion",
    "model": "fake",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "canned reply"},
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 11,
        "completion_tokens": 2,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 7},
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
}


@dataclass
class FakeOpenAIService:
    """Scripted fake of an external OpenAI-compatible service (not one of our classes)."""

    statuses: list[int]
    received: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


@pytest.fixture
def fake_service() -> Iterator[FakeOpenAIService]:
    service = FakeOpenAIService(statuses=[])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                service.received.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                status = service.statuses.pop(0) if service.statuses else 200
            payload = json.dumps(CANNED_BODY if status == 200 else {"error": "nope"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    service.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _request(request_id: str, text: str = "Say yes.", **extra: Any) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        messages=(ChatMessage(Role.USER, text),),
        sampling=SamplingParams(max_tokens=8, seed=5, temperature=0.2),
        **extra,
    )


def _spec(base_urls: list[str], **overrides: Any) -> OpenAISpec:
    values: dict[str, Any] = {
        "base_urls": base_urls,
        "model": "smollm2",
        "max_retries": 2,
        "backoff_s": 0.01,
        "timeout_s": 30.0,
    }
    return OpenAISpec(**{**values, **overrides})


def test_429_is_retried_then_succeeds(fake_service: FakeOpenAIService) -> None:
    fake_service.statuses = [429, 429, 200]
    [completion] = OpenAIEngine(_spec([fake_service.base_url])).generate([_request("a")])
    assert completion.finish_reason is FinishReason.STOP
    assert completion.text == "canned reply"
    assert (completion.prompt_tokens, completion.cached_prompt_tokens) == (11, 7)
    assert completion.completion_tokens == 2
    assert len(fake_service.received) == 3
    assert fake_service.received[0]["path"] == "/v1/chat/completions"


def test_429_beyond_the_retry_budget_is_an_error(fake_service: FakeOpenAIService) -> None:
    fake_service.statuses = [429, 429, 429]
    engine = OpenAIEngine(_spec([fake_service.base_url], max_retries=1))
    [completion] = engine.generate([_request("a")])
    assert completion.finish_reason is FinishReason.ERROR
    assert "gave up after 2 attempts" in (completion.error or "")
    assert "HTTP 429" in (completion.error or "")
    assert len(fake_service.received) == 2


@pytest.mark.parametrize("status", [400, 500, 503])
def test_other_http_errors_are_not_retried(fake_service: FakeOpenAIService, status: int) -> None:
    fake_service.statuses = [status]
    first, second = OpenAIEngine(_spec([fake_service.base_url], max_concurrency=1)).generate(
        [_request("bad"), _request("good")]
    )
    assert first.finish_reason is FinishReason.ERROR
    assert (first.error or "").startswith(f"HTTP {status} ")
    assert second.finish_reason is FinishReason.STOP
    assert len(fake_service.received) == 2


def test_request_body_and_response_format_styles(
    fake_service: FakeOpenAIService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    schema_text = json.dumps(SCHEMA, sort_keys=True)
    request = GenerationRequest(
        "s",
        (ChatMessage(Role.SYSTEM, "sys"), ChatMessage(Role.USER, "q")),
        SamplingParams(temperature=0.5, top_p=0.9, max_tokens=12, seed=7, stop=("END",)),
        json_schema=schema_text,
    )
    OpenAIEngine(_spec([fake_service.base_url])).generate([request])
    OpenAIEngine(_spec([fake_service.base_url], response_format_style="json_schema")).generate(
        [request]
    )
    OpenAIEngine(_spec([fake_service.base_url], extra_body={"repeat_penalty": 1.0})).generate(
        [request]
    )
    plain, styled, extra = (r["body"] for r in fake_service.received)
    assert extra == {**plain, "repeat_penalty": 1.0}
    assert plain == {
        "model": "smollm2",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 12,
        "seed": 7,
        "stop": ["END"],
        "response_format": {"type": "json_object", "schema": SCHEMA},
    }
    assert styled["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA},
    }
    assert fake_service.received[0]["auth"] is None  # no key in the env -> no header


def test_api_key_is_sent_but_never_shown(
    fake_service: FakeOpenAIService, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-very-secret-0123456789"
    monkeypatch.setenv("MEMESPREAD_TEST_KEY", secret)
    spec = _spec([fake_service.base_url], api_key_env="MEMESPREAD_TEST_KEY")
    engine = OpenAIEngine(spec)
    [completion] = engine.generate([_request("k")])
    assert completion.finish_reason is FinishReason.STOP
    assert fake_service.received[0]["auth"] == f"Bearer {secret}"
    for text in (repr(spec), str(spec), spec.model_dump_json(), repr(engine), repr(completion)):
        assert secret not in text
    assert "MEMESPREAD_TEST_KEY" in repr(spec)


def test_each_finished_request_is_reported_at_once(fake_service: FakeOpenAIService) -> None:
    fake_service.statuses = [200, 500, 200]
    engine = OpenAIEngine(_spec([fake_service.base_url], max_concurrency=1))
    seen: list[tuple[int, Any]] = []
    out = engine.generate(
        [_request("a"), _request("b"), _request("c")],
        on_complete=lambda index, completion: seen.append((index, completion)),
    )
    assert sorted(index for index, _ in seen) == [0, 1, 2]
    assert dict(seen) == dict(enumerate(out))
    assert [c.finish_reason for c in out] == [
        FinishReason.STOP,
        FinishReason.ERROR,
        FinishReason.STOP,
    ]


def test_generate_works_inside_a_running_event_loop(fake_service: FakeOpenAIService) -> None:
    engine = OpenAIEngine(_spec([fake_service.base_url]))

    async def call_from_loop() -> list[Any]:
        return engine.generate([_request("x"), _request("y")])

    out = asyncio.run(call_from_loop())
    assert [c.request_id for c in out] == ["x", "y"]
    assert all(c.finish_reason is FinishReason.STOP for c in out)


def test_refused_connections_become_errors_after_retries(closed_base_url: str) -> None:
    engine = OpenAIEngine(_spec([closed_base_url], max_retries=2, backoff_s=0.01))
    out = engine.generate([_request("a"), _request("b")])
    assert [c.request_id for c in out] == ["a", "b"]
    for completion in out:
        assert completion.finish_reason is FinishReason.ERROR
        assert "gave up after 3 attempts" in (completion.error or "")
        assert "ConnectError" in (completion.error or "")


def test_closed_engine_raises_and_empty_batch() -> None:
    engine = OpenAIEngine(_spec(["http://127.0.0.1:9/v1"]))
    assert engine.generate([]) == []
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.generate([_request("a")])


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="base_urls"):
        OpenAISpec(base_urls=[], model="m")
    with pytest.raises(ValueError, match="must start with http"):
        OpenAISpec(base_urls=["127.0.0.1:8000/v1"], model="m")
    with pytest.raises(ValueError, match="api_key"):
        OpenAISpec(base_urls=["http://h/v1"], model="m", api_key="sk-inline")  # type: ignore[call-arg]
    assert OpenAISpec(base_urls=["http://h:1/v1/"], model="m").base_urls == ["http://h:1/v1"]
    with pytest.raises(ValueError, match="extra_body may not set seed, temperature: the engine"):
        OpenAISpec(base_urls=["http://h/v1"], model="m", extra_body={"temperature": 0, "seed": 1})


@pytest.mark.slow
def test_real_server_two_base_urls_in_order(openai_server: str) -> None:
    engine = OpenAIEngine(_spec([openai_server, openai_server], max_concurrency=4))
    questions = ["Say yes.", "Name a colour.", "Count to two.", "Say no."]
    requests = [_request(f"q{i}", q) for i, q in enumerate(questions)]
    requests.append(_request("schema", "Answer yes or no in JSON.", json_schema=json.dumps(SCHEMA)))
    out = engine.generate(requests)
    assert [c.request_id for c in out] == [r.request_id for r in requests]
    for completion in out:
        assert completion.error is None
        assert completion.finish_reason in {FinishReason.STOP, FinishReason.LENGTH}
        assert completion.prompt_tokens > 0
        assert 0 < completion.completion_tokens <= 8
    if out[-1].finish_reason is FinishReason.STOP:
        assert json.loads(out[-1].text)["answer"] in {"yes", "no"}


@pytest.mark.slow
def test_requests_spread_round_robin_over_base_urls(
    openai_server: str, closed_base_url: str
) -> None:
    engine = OpenAIEngine(_spec([openai_server, closed_base_url], max_retries=1))
    out = engine.generate([_request(f"r{i}") for i in range(4)])
    assert [c.finish_reason is FinishReason.ERROR for c in out] == [False, True, False, True]
    assert closed_base_url in (out[1].error or "")


@pytest.mark.slow
def test_real_server_option_scores_match_the_in_process_engine(
    openai_server: str, llamacpp_engine
) -> None:
    # The same GGUF behind llama.cpp's OpenAI-compatible server (top_logprobs of the first
    # reply token) and in process (the options' own log-probabilities): the scores agree.
    requests = [
        ScoreRequest(
            "letters",
            (ChatMessage(Role.USER, "Which letter is first? A) A  B) B  C) C. Reply A, B or C."),),
            ("A", "B", "C"),
        ),
        ScoreRequest(
            "yes-no", (ChatMessage(Role.USER, "Is the sky blue? Answer yes or no."),), ("yes", "no")
        ),
    ]
    served = OpenAIEngine(_spec([openai_server])).score(requests)
    local = llamacpp_engine.score(requests)
    assert [s.request_id for s in served] == ["letters", "yes-no"]
    for remote, own in zip(served, local, strict=True):
        assert remote.error is None and own.error is None
        assert remote.prompt_tokens > 0
        assert len(remote.logprobs) == len(own.logprobs)
        # An option outside the server's top 20 alternatives is -inf there; the most
        # likely option never is.
        best = max(range(len(own.logprobs)), key=own.logprobs.__getitem__)
        assert remote.logprobs[best] > float("-inf")
        for got, expected in zip(remote.logprobs, own.logprobs, strict=True):
            if got > float("-inf"):
                assert got == pytest.approx(expected, abs=0.02)
