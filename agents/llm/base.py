"""The batch-shaped inference interface shared by every engine, and the specs' base class.

An engine takes a whole batch of chat requests and returns one completion per request,
in input order. A failure of one request never raises: it becomes a completion whose
finish reason is ``FinishReason.ERROR``; only a dead engine or a bad configuration raises
``EngineError``.

The engine specs are pydantic models with a ``kind`` discriminator (deriving from
:class:`EngineSpecBase`) so that an experiment config can name any engine; each lives in
its engine's module, which imports its inference library only when the engine is built,
so configs validate without any inference library installed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class EngineError(RuntimeError):
    """A dead engine, a bad engine configuration or a replay miss (never one bad request)."""


class Role(StrEnum):
    """The speaker of a chat message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn.

    Attributes:
        role: Who speaks; a plain string such as ``"user"`` is converted to ``Role``.
        content: The message text, passed to the chat template verbatim.
    """

    role: Role
    content: str

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            try:
                object.__setattr__(self, "role", Role(self.role))
            except ValueError:
                allowed = [r.value for r in Role]
                raise ValueError(
                    f"ChatMessage.role={self.role!r} is not a role; allowed: {allowed}"
                ) from None
        if not isinstance(self.content, str):
            raise TypeError(f"ChatMessage.content must be str, got {type(self.content).__name__}")


#: Request seeds are drawn from ``[0, SEED_BOUND)`` (non-negative int32, valid everywhere).
SEED_BOUND = 2**31 - 1


def request_seeds(rng: Any, n: int) -> Any:
    """``n`` request seeds drawn as one array from ``rng`` (a ``numpy.random.Generator``)."""
    return rng.integers(0, SEED_BOUND, size=n)


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion.

    Attributes:
        temperature: Softmax temperature, >= 0 (0 is greedy).
        top_p: Nucleus-sampling mass, in (0, 1].
        max_tokens: Upper bound on generated tokens, >= 1; hitting it gives ``LENGTH``.
        seed: Sampling seed for this request; ``None`` lets the engine derive one (see
            each engine's docs).
        stop: Extra stop strings (a list is converted to a tuple).
    """

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 128
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, int | float) and self.temperature >= 0):
            raise ValueError(f"SamplingParams.temperature={self.temperature!r}; must be >= 0")
        if not (isinstance(self.top_p, int | float) and 0 < self.top_p <= 1):
            raise ValueError(f"SamplingParams.top_p={self.top_p!r}; must be in (0, 1]")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"SamplingParams.max_tokens={self.max_tokens!r}; must be an int >= 1")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens={self.max_tokens!r}; must be >= 1")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"SamplingParams.seed={self.seed!r}; must be an int or None")
        stop = tuple(self.stop)
        if not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"SamplingParams.stop={self.stop!r}; must be non-empty strings")
        object.__setattr__(self, "stop", stop)

    def canonical(self) -> dict[str, object]:
        """Return the parameters as a JSON-ready dict (used for cache keys)."""
        return {
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True)
class GenerationRequest:
    """One chat request of a batch.

    Attributes:
        request_id: Caller's identifier, echoed in the completion; not part of the cache key.
        messages: The conversation (a list is converted to a tuple); at least one message.
        sampling: Sampling parameters.
        json_schema: A JSON-schema document serialised with ``sort_keys=True``; the engine
            constrains decoding to it where it can.
    """

    request_id: str
    messages: tuple[ChatMessage, ...]
    sampling: SamplingParams = SamplingParams()
    json_schema: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise ValueError(
                f"GenerationRequest.request_id={self.request_id!r}; must be a non-empty str"
            )
        messages = tuple(self.messages)
        if not messages or not all(isinstance(m, ChatMessage) for m in messages):
            raise ValueError(
                f"GenerationRequest.messages for {self.request_id!r} must be a non-empty "
                "sequence of ChatMessage"
            )
        object.__setattr__(self, "messages", messages)
        if self.json_schema is not None:
            try:
                schema = json.loads(self.json_schema)
            except (TypeError, json.JSONDecodeError) as exc:
                raise ValueError(
                    f"GenerationRequest.json_schema for {self.request_id!r} is not JSON: {exc}"
                ) from None
            if not isinstance(schema, dict):
                raise ValueError(
                    f"GenerationRequest.json_schema for {self.request_id!r} must be a JSON "
                    f"object, got {type(schema).__name__}"
                )

    def schema_dict(self) -> dict[str, object] | None:
        """Return the parsed JSON schema, or None when the request is unconstrained."""
        return None if self.json_schema is None else json.loads(self.json_schema)

    def cache_key(self, model_id: str) -> str:
        """Return the sha256 hex digest identifying what this request would generate.

        The digest covers the model id, the messages, every sampling parameter (seed
        included) and the JSON schema (re-serialised canonically), but not the request id:
        two requests that differ only in ``request_id`` share a key.

        Args:
            model_id: Identity of the model that serves the request.
        """
        payload = {
            "model_id": model_id,
            "messages": [[m.role.value, m.content] for m in self.messages],
            "sampling": self.sampling.canonical(),
            "json_schema": self.schema_dict(),
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # surrogatepass: a lone surrogate must not crash the key (valid text encodes as UTF-8).
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class FinishReason(StrEnum):
    """Why generation ended: a stop condition, the token budget, or a failure."""

    STOP = "stop"
    LENGTH = "length"
    ERROR = "error"


@dataclass(frozen=True)
class Completion:
    """The result of one request.

    Attributes:
        request_id: The request's id.
        text: Generated text ("" on error).
        finish_reason: STOP, LENGTH (truncated by ``max_tokens``) or ERROR.
        prompt_tokens: Tokens in the prompt (0 when unknown, e.g. on error).
        cached_prompt_tokens: Prompt tokens served from the engine's prefix/KV cache.
        completion_tokens: Generated tokens.
        error: What went wrong, set exactly when ``finish_reason`` is ERROR.
    """

    request_id: str
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    error: str | None = None

    @classmethod
    def failed(cls, request_id: str, error: str) -> Completion:
        """Return an ERROR completion for ``request_id`` carrying ``error``."""
        return cls(
            request_id=request_id,
            text="",
            finish_reason=FinishReason.ERROR,
            prompt_tokens=0,
            cached_prompt_tokens=0,
            completion_tokens=0,
            error=error,
        )


#: Called by an engine as each request of a batch finishes, with the request's index in
#: the batch and its completion (in finishing order, which may differ from input order), so
#: a caller can record it at once (see ``agents.llm.replay``). Engines that only return
#: whole batches call it for every completion when the batch returns.
CompletionCallback = Callable[[int, Completion], None]


@dataclass(frozen=True)
class ScoreRequest:
    """Ask for the log-probability of each option as the first token of the reply.

    Used for scored decisions (options labelled ``"A"``, ``"B"``...) and yes/no probe
    items (``"yes"``, ``"no"``): one forward pass over the prompt, no sampling.

    Attributes:
        request_id: Caller's identifier, echoed in the result; not part of the cache key.
        messages: The conversation; the reply starts right after it.
        options: Short labels, each meant to be one token; at least two, distinct.
    """

    request_id: str
    messages: tuple[ChatMessage, ...]
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(self.messages))
        options = tuple(self.options)
        if len(options) < 2 or len(set(options)) != len(options) or not all(options):
            raise ValueError(
                f"ScoreRequest.options={options!r} for {self.request_id!r}: need at least two "
                "distinct non-empty labels"
            )
        object.__setattr__(self, "options", options)

    def cache_key(self, model_id: str) -> str:
        """Sha256 hex digest of the model id, the messages and the options."""
        payload = {
            "model_id": model_id,
            "messages": [[m.role.value, m.content] for m in self.messages],
            "score_options": list(self.options),
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # surrogatepass: a lone surrogate must not crash the key (valid text encodes as UTF-8).
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class OptionScores:
    """The result of one :class:`ScoreRequest`.

    Attributes:
        request_id: The request's id.
        logprobs: Natural-log probability that the reply's first token is each option
            (variants with a leading space, and for words any letter case, are summed);
            ``-inf`` when the engine did not report the option (it was outside the
            top alternatives an API returns). Empty on error.
        prompt_tokens: Tokens in the prompt (0 when unknown).
        cached_prompt_tokens: Prompt tokens served from the engine's cache.
        error: What went wrong, or None.
    """

    request_id: str
    logprobs: tuple[float, ...]
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    error: str | None = None

    def probabilities(self) -> tuple[float, ...] | None:
        """The options' probabilities renormalised over the options (None: no mass/error)."""
        if self.error is not None or not self.logprobs:
            return None
        top = max(self.logprobs)
        if top == float("-inf"):
            return None
        weights = [math.exp(x - top) for x in self.logprobs]
        total = sum(weights)
        return tuple(w / total for w in weights)


def option_variants(option: str) -> tuple[str, ...]:
    """Token texts counted as ``option``.

    The option itself, with a leading space, and for words of two or more letters the
    lower-case and capitalised forms (with and without space).
    """
    forms = [option]
    if len(option) > 1:
        forms += [option.lower(), option.capitalize()]
    out = []
    for form in forms:
        for text in (form, " " + form):
            if text not in out:
                out.append(text)
    return tuple(out)


def logprobs_from_top(
    top: Sequence[tuple[str, float]], options: Sequence[str]
) -> tuple[float, ...]:
    """Per option, log of the summed probability of its variants among ``top``.

    Args:
        top: (token text, logprob) alternatives of the first reply token.
        options: The option labels.
    """
    out = []
    for option in options:
        variants = set(option_variants(option))
        hits = [lp for token, lp in top if token in variants]
        if not hits:
            out.append(float("-inf"))
            continue
        peak = max(hits)
        out.append(peak + math.log(sum(math.exp(h - peak) for h in hits)))
    return tuple(out)


def can_score(engine: object) -> bool:
    """Whether ``engine`` reports option log-probabilities (has ``score`` and says so)."""
    return callable(getattr(engine, "score", None)) and bool(
        getattr(engine, "supports_scoring", True)
    )


@runtime_checkable
class ReportsSettings(Protocol):
    """An engine that says which settings it resolved at start (e.g. vLLM's KV block size)."""

    @property
    def settings(self) -> Mapping[str, object]:
        """Setting name -> value, as the running engine has them (JSON-serialisable)."""
        ...


def engine_settings(engine: object) -> dict[str, object]:
    """The settings an engine resolved at start (:class:`ReportsSettings`), through wrappers.

    Wrappers that keep the engine they forward to as ``inner`` (the replay cache, the
    request tally) are looked through. Engines without ``settings``, and a replay cache
    with no engine behind it, give ``{}``.
    """
    for layer in _wrapped_engines(engine):
        if isinstance(layer, ReportsSettings):
            return dict(layer.settings)
    return {}


def score_announcer(engine: object) -> Callable[[Mapping[str, ScoreRequest]], None] | None:
    """The ``expect_scores`` method of ``engine`` or of an engine it wraps, or None.

    An engine with ``expect_scores(follow_ups)`` (the in-process llama.cpp engine) scores
    each announced score request right after the generation request it extends (see
    :meth:`agents.llm.llamacpp.LlamaCppEngine.expect_scores`). Wrappers that keep the
    engine they forward to as ``inner`` (the replay cache, the request tally) are looked
    through: they send the same requests on, so the announced ones still match.
    """
    for layer in _wrapped_engines(engine):
        # (the engine's own method, not one a wrapper's __getattr__ forwards)
        own = hasattr(type(layer), "expect_scores")
        announce = getattr(layer, "expect_scores", None) if own else None
        if callable(announce):
            return announce
    return None


def _wrapped_engines(engine: object) -> Iterator[object]:
    """``engine``, then the engine it forwards to (its ``inner``), and so on, each once."""
    seen: set[int] = set()
    while engine is not None and id(engine) not in seen:
        seen.add(id(engine))
        yield engine
        engine = getattr(engine, "inner", None)


@runtime_checkable
class Engine(Protocol):
    """A batch-shaped inference engine.

    Attributes:
        name: Engine kind, e.g. ``"llamacpp"``.
        model_id: Identity of the served model (part of every cache key).
    """

    name: str
    model_id: str

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        """Return one completion per request, in input order.

        A failing request yields a completion with ``FinishReason.ERROR`` and ``error`` set;
        ``EngineError`` is raised only when the engine itself is unusable. When given,
        ``on_complete`` is called once per request as it finishes (engines written before
        this parameter may lack it; callers check, see ``accepts_on_complete``).
        """
        ...

    def close(self) -> None:
        """Release the engine's resources; ``generate`` raises ``EngineError`` afterwards."""
        ...


def accepts_on_complete(engine: object) -> bool:
    """Whether ``engine.generate`` takes the ``on_complete`` keyword."""
    try:
        parameters = inspect.signature(engine.generate).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return "on_complete" in parameters


class EngineSpecBase(BaseModel):
    """What every engine spec shares: a frozen, strict pydantic model that builds its engine.

    Each engine kind is one module holding its spec (a subclass with a ``kind`` literal)
    and its engine; the spec imports the engine's inference library only inside
    :meth:`build`, so a config validates (and this package imports) without it. The
    registry of kinds is :data:`agents.llm.EngineSpec`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str

    def build(self) -> Engine:
        """Return a ready engine for this spec (the caller closes it).

        Raises:
            EngineError: If the engine cannot start (library missing, model not loadable).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")

    def unavailable(self) -> str | None:
        """Why this engine cannot be built on this machine, or None.

        Checked without loading anything (a library or package not installed, a named
        file missing); config validation reports it for engines of guards and detectors.
        """
        return None

    def resource_errors(self, key: str) -> list[str]:
        """Problems of the files this engine reads, each message starting with ``key``.

        Files are looked at as the engine would read them, nothing is loaded; the
        default reads no file.

        Args:
            key: The spec's config key, e.g. ``"policy.engine"``.
        """
        return []


def derived_seed(base_seed: int, cache_key: str) -> int:
    """Return a 31-bit seed derived from an engine seed and a request's cache key.

    Used when a request carries no seed, so that its result depends only on the engine
    seed and the request itself, never on its position in the batch.
    """
    digest = hashlib.sha256(f"{base_seed}:{cache_key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1)
