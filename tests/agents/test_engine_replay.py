"""The record/replay cache, the request cache key, the specs and the factory.

Most tests wrap ``EchoEngine``, a deterministic stand-in for a model that implements the
``Engine`` protocol (no class of ours is mocked) and records every batch it is sent; one
slow test records a real llama.cpp batch and replays it without a model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.llm import (
    ChatMessage,
    Completion,
    Engine,
    EngineError,
    FinishReason,
    GenerationRequest,
    LlamaCppSpec,
    OpenAISpec,
    ReplaySpec,
    Role,
    SamplingParams,
    VLLMSpec,
    build_engine,
    parse_engine_spec,
)
from agents.llm.redaction import REDACTED
from agents.llm.replay import REPLAY_FORMAT, ReplayEngine


class EchoEngine:
    """Answers each request with its last message reversed; fails requests saying 'FAIL'.

    Its ``generate`` takes no ``on_complete``, on purpose: it stands for an engine written
    before that parameter, whose batch the replay cache stores when it returns
    (:class:`StreamingEngine` reports as it goes).
    """

    name = "echo"

    def __init__(self, model_id: str = "echo-1") -> None:
        self.model_id = model_id
        self.batches: list[list[str]] = []
        self.closed = False

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.batches.append([r.request_id for r in requests])
        out = []
        for r in requests:
            text = r.messages[-1].content
            if text == "FAIL":
                out.append(Completion.failed(r.request_id, "asked to fail"))
            else:
                out.append(Completion(r.request_id, text[::-1], FinishReason.STOP, 5, 2, 3))
        return out

    def close(self) -> None:
        self.closed = True


def _req(request_id: str, text: str, seed: int | None = 1) -> GenerationRequest:
    return GenerationRequest(
        request_id, (ChatMessage(Role.USER, text),), SamplingParams(max_tokens=8, seed=seed)
    )


def test_cache_key_covers_content_and_seed_not_request_id() -> None:
    a = _req("a", "hello")
    assert a.cache_key("m") == _req("b", "hello").cache_key("m")
    assert a.cache_key("m") != a.cache_key("other-model")
    assert a.cache_key("m") != _req("a", "hello", seed=2).cache_key("m")
    assert a.cache_key("m") != _req("a", "hello!").cache_key("m")
    with_schema = GenerationRequest("a", a.messages, a.sampling, json_schema='{"type": "object"}')
    assert with_schema.cache_key("m") != a.cache_key("m")
    assert len(a.cache_key("m")) == 64


def test_request_validation_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match="max_tokens=0"):
        SamplingParams(max_tokens=0)
    with pytest.raises(ValueError, match="role='robot'"):
        ChatMessage("robot", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="json_schema"):
        GenerationRequest("a", (ChatMessage(Role.USER, "x"),), json_schema="[1]")
    assert ChatMessage("user", "x").role is Role.USER  # type: ignore[arg-type]


def test_record_then_replay_without_inner(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = EchoEngine()
    recorder = ReplayEngine(inner, path, "record")
    requests = [_req("a", "one"), _req("b", "FAIL"), _req("c", "three")]
    recorded = recorder.generate(requests)
    assert [c.text for c in recorded] == ["eno", "", "eerht"]
    header = json.loads(path.read_text().splitlines()[0])
    assert header == {
        "engine": "echo",
        "format": REPLAY_FORMAT,
        "model_id": "echo-1",
        "type": "header",
    }

    player = ReplayEngine(None, path, "replay")
    assert (player.name, player.model_id) == ("echo", "echo-1")
    assert player.generate(requests) == recorded  # errors are replayed as recorded too
    renamed = player.generate([_req("z", "three")])
    assert renamed == [Completion("z", "eerht", FinishReason.STOP, 5, 2, 3)]


def test_replay_miss_raises_naming_request_and_key(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    ReplayEngine(EchoEngine(), path, "record").generate([_req("a", "one")])
    player = ReplayEngine(None, path, "replay")
    missing = _req("new-id", "never seen")
    with pytest.raises(EngineError, match="new-id") as info:
        player.generate([_req("a", "one"), missing])
    assert missing.cache_key("echo-1") in str(info.value)


def test_auto_sends_only_misses_in_one_batch_in_order(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = EchoEngine()
    ReplayEngine(inner, path, "record").generate([_req("a", "one"), _req("c", "FAIL")])
    auto = ReplayEngine(inner, path, "auto")
    out = auto.generate([_req("x", "two"), _req("y", "one"), _req("z", "FAIL"), _req("w", "3")])
    assert inner.batches[-1] == ["x", "z", "w"]  # hit "one" served; stored ERROR retried
    assert [c.request_id for c in out] == ["x", "y", "z", "w"]
    assert [c.text for c in out] == ["owt", "eno", "", "3"]
    again = auto.generate([_req("p", "two"), _req("q", "3")])
    assert len(inner.batches) == 2  # all hits: the inner engine was not called
    assert [c.text for c in again] == ["owt", "3"]
    assert ReplayEngine(None, path, "replay").generate([_req("r", "two")])[0].text == "owt"


def test_auto_without_retry_serves_a_stored_failure_as_failed(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = EchoEngine()
    ReplayEngine(inner, path, "record").generate([_req("a", "FAIL")])
    exact = ReplayEngine(inner, path, "auto", retry_errors=False)
    out = exact.generate([_req("b", "FAIL"), _req("c", "new")])
    assert inner.batches[-1] == ["c"]  # the stored failure was not sent again
    assert out[0].finish_reason is FinishReason.ERROR and out[0].request_id == "b"
    assert (exact.hits, exact.misses) == (1, 1)


def test_truncated_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = EchoEngine()
    ReplayEngine(inner, path, "record").generate([_req("a", "one"), _req("b", "two")])
    complete = path.read_bytes()
    last = complete.rstrip(b"\n").split(b"\n")[-1]
    path.write_bytes(complete + last[: len(last) // 2])  # a killed writer's partial line
    auto = ReplayEngine(inner, path, "auto")
    assert len(auto) == 2
    auto.generate([_req("c", "three")])
    lines = path.read_text().splitlines()
    assert len(lines) == 4  # header + 3 records, the partial line cut off
    assert all(json.loads(line) for line in lines)
    assert len(ReplayEngine(None, path, "replay")) == 3


def test_corrupt_middle_line_and_model_mismatch_raise(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    ReplayEngine(EchoEngine(), path, "record").generate([_req("a", "one")])
    with pytest.raises(EngineError, match="model_id='echo-1'"):
        ReplayEngine(EchoEngine("other-model"), path, "auto")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(EngineError, match="line 2 is corrupt"):
        ReplayEngine(None, path, "replay")


def test_replay_needs_a_model_identity(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no inner engine"):
        ReplayEngine(None, tmp_path / "absent.jsonl", "replay")
    with pytest.raises(EngineError, match="needs an inner engine"):
        ReplayEngine(None, tmp_path / "absent.jsonl", "auto")


def test_close_closes_inner(tmp_path: Path) -> None:
    inner = EchoEngine()
    engine = ReplayEngine(inner, tmp_path / "c.jsonl", "auto")
    assert isinstance(engine, Engine) and isinstance(inner, Engine)
    engine.close()
    assert inner.closed
    with pytest.raises(EngineError, match="closed"):
        engine.generate([_req("a", "x")])


def test_specs_parse_by_kind(tmp_path: Path) -> None:
    spec = parse_engine_spec(
        {"kind": "replay", "path": "c.jsonl", "mode": "auto", "inner": {"kind": "llamacpp"}}
    )
    assert isinstance(spec, ReplaySpec) and spec.inner == LlamaCppSpec()
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    vllm = {"kind": "vllm", "model": str(model_dir)}
    assert parse_engine_spec(vllm) == VLLMSpec(model=str(model_dir))
    openai = parse_engine_spec({"kind": "openai", "base_urls": ["http://h/v1"], "model": "m"})
    assert isinstance(openai, OpenAISpec) and openai.max_concurrency == 8
    with pytest.raises(ValidationError, match="needs an inner engine spec"):
        ReplaySpec(path="c.jsonl", mode="record")
    with pytest.raises(ValidationError, match=r"llamacpp\.n_ctxx"):
        parse_engine_spec({"kind": "llamacpp", "n_ctxx": 10})
    with pytest.raises(ValidationError, match="Input tag 'tpu'"):
        parse_engine_spec({"kind": "tpu"})

    path = tmp_path / "cache.jsonl"
    ReplayEngine(EchoEngine(), path, "record").generate([_req("a", "one")])
    built = build_engine(ReplaySpec(path=str(path), mode="replay"))
    assert built.generate([_req("b", "one")])[0].text == "eno"


@pytest.mark.slow
def test_real_llamacpp_batch_replays_identically(llamacpp_engine, tmp_path: Path) -> None:
    path = tmp_path / "real.jsonl"
    recorder = ReplayEngine(llamacpp_engine, path, "record")  # not closed: shared engine
    requests = [
        GenerationRequest(
            f"r{i}",
            (ChatMessage(Role.SYSTEM, "You are brief."), ChatMessage(Role.USER, q)),
            SamplingParams(max_tokens=12, seed=i),
        )
        for i, q in enumerate(["Say hi.", "Name a tree.", "Name a river."])
    ]
    recorded = recorder.generate(requests)
    assert all(c.finish_reason is not FinishReason.ERROR for c in recorded)
    player = ReplayEngine(None, path, "replay")
    assert player.model_id == llamacpp_engine.model_id
    assert player.name == "llamacpp"
    assert player.generate(requests) == recorded


class StreamingEngine(EchoEngine):
    """Reports each request as it finishes; stops dead (like a killed process) when a
    request says 'DIE', after reporting the requests before it."""

    def generate(self, requests: Sequence[GenerationRequest], on_complete=None) -> list[Completion]:
        self.batches.append([r.request_id for r in requests])
        out = []
        for index, r in enumerate(requests):
            if r.messages[-1].content == "DIE":
                raise KeyboardInterrupt
            completion = Completion(
                r.request_id, r.messages[-1].content[::-1], FinishReason.STOP, 5, 2, 3
            )
            out.append(completion)
            if on_complete is not None:
                on_complete(index, completion)
        return out


def test_each_completion_is_on_file_as_soon_as_it_finishes(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = StreamingEngine()
    engine = ReplayEngine(inner, path, "auto")
    with pytest.raises(KeyboardInterrupt):
        engine.generate([_req("a", "one"), _req("b", "two"), _req("c", "DIE"), _req("d", "x")])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["header", "completion", "completion"]
    assert [line["text"] for line in lines[1:]] == ["eno", "owt"]

    # The "resumed" batch is served the two recorded completions; only the rest is sent.
    resumed = ReplayEngine(inner, path, "auto")
    out = resumed.generate([_req("a", "one"), _req("b", "two"), _req("c", "three"), _req("d", "x")])
    assert [c.text for c in out] == ["eno", "owt", "eerht", "x"]
    assert inner.batches[-1] == ["c", "d"]
    assert (resumed.hits, resumed.misses) == (2, 2)
    assert len(path.read_text().splitlines()) == 5  # header + 4 records, none twice


def test_on_complete_reports_hits_and_fresh_completions(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    inner = EchoEngine()  # no on_complete parameter: its batch is stored when it returns
    ReplayEngine(inner, path, "record").generate([_req("a", "one")])
    seen: list[tuple[int, str, str]] = []
    out = ReplayEngine(inner, path, "auto").generate(
        [_req("x", "two"), _req("y", "one")],
        on_complete=lambda i, c: seen.append((i, c.request_id, c.text)),
    )
    assert sorted(seen) == [(0, "x", "owt"), (1, "y", "eno")]
    assert [c.text for c in out] == ["owt", "eno"]


class LeakyEngine(EchoEngine):
    """Replies with a bearer token and a lone surrogate, whatever it is asked."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        reply = "Use Bearer 1234567890abcdef now\ud800."
        return [Completion(r.request_id, reply, FinishReason.STOP, 5, 2, 3) for r in requests]


def test_stored_records_are_scrubbed_of_credentials_and_surrogates(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    [reply] = ReplayEngine(LeakyEngine(), path, "record").generate([_req("a", "hi")])
    assert reply.text == f"Use Bearer {REDACTED} now."
    assert "1234567890abcdef" not in path.read_text()
    assert ReplayEngine(None, path, "replay").generate([_req("b", "hi")])[0].text == reply.text


class DriftingEngine(EchoEngine):
    """A stand-in for a model whose equal requests differ slightly (llama.cpp's KV-cache
    reuse changes the last bits of logits): every answer carries a call counter."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.batches.append([r.request_id for r in requests])
        n = sum(len(b) for b in self.batches) - len(requests)
        return [
            Completion(
                r.request_id, f"{r.messages[-1].content}#{n + i}", FinishReason.STOP, 5, 2, 3
            )
            for i, r in enumerate(requests)
        ]


@pytest.mark.parametrize("mode", ["record", "auto"])
def test_equal_requests_in_a_batch_are_generated_once_as_replay_serves_them(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "cache.jsonl"
    inner = DriftingEngine()
    seen: dict[int, str] = {}
    batch = [_req("a", "same"), _req("b", "other"), _req("c", "same")]
    out = ReplayEngine(inner, path, mode).generate(batch, lambda i, c: seen.update({i: c.text}))
    assert inner.batches == [["a", "b"]]  # "c" equals "a": not sent again
    assert [c.text for c in out] == ["same#0", "other#1", "same#0"]
    assert [c.request_id for c in out] == ["a", "b", "c"]
    assert seen == {0: "same#0", 1: "other#1", 2: "same#0"}
    replayed = ReplayEngine(None, path, "replay").generate(batch)
    assert [c.text for c in replayed] == [c.text for c in out]


class FileEngine(EchoEngine):
    """An engine whose model id names a file, with a fingerprint of the file's content."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__("llamacpp:model.gguf")
        self.model_fingerprint = fingerprint


def test_another_model_file_of_the_same_name_is_not_served_the_recorded_completions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.jsonl"
    ReplayEngine(FileEngine("7:aaa"), path, "record").generate([_req("a", "one")])
    assert json.loads(path.read_text().splitlines()[0])["model_fingerprint"] == "7:aaa"
    with pytest.raises(EngineError, match=r"another model file of the same name.*7:aaa.*7:bbb"):
        ReplayEngine(FileEngine("7:bbb"), path, "auto")
    same = ReplayEngine(FileEngine("7:aaa"), path, "auto")
    assert [c.text for c in same.generate([_req("b", "one")])] == ["eno"]
    assert same.hits == 1
    # An engine without a fingerprint (an OpenAI-compatible server) is checked by id only.
    assert ReplayEngine(EchoEngine("llamacpp:model.gguf"), path, "auto").hits == 0


def test_gguf_fingerprint_tells_contents_apart_not_names(tmp_path: Path) -> None:
    from agents.llm.llamacpp import FINGERPRINT_CHUNK, gguf_fingerprint

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    body = bytes(range(256)) * (3 * FINGERPRINT_CHUNK // 256)
    (tmp_path / "a" / "model.gguf").write_bytes(body)
    (tmp_path / "b" / "model.gguf").write_bytes(body[:-1] + b"\x00")  # last byte differs
    (tmp_path / "copy.gguf").write_bytes(body)
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF")
    first = gguf_fingerprint(tmp_path / "a" / "model.gguf")
    assert first.startswith(f"{len(body)}:")
    assert gguf_fingerprint(tmp_path / "b" / "model.gguf") != first
    assert gguf_fingerprint(tmp_path / "copy.gguf") == first
    assert gguf_fingerprint(tmp_path / "tiny.gguf").startswith("4:")
