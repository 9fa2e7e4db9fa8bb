"""An engine over OpenAI-compatible chat-completions servers (vLLM, llama.cpp, hosted APIs).

The batch is sent as concurrent HTTP requests (at most ``max_concurrency`` in flight),
spread round-robin over the configured base URLs, so several servers (GPUs, nodes) share
one step's batch. Only transport failures (connection errors, timeouts) and HTTP 429 are
retried, with exponential backoff; any other HTTP error becomes an ERROR completion at
once, carrying the status code.

Credentials never leave the engine: every completion's text and error pass through
:func:`agents.llm.redaction.redact` with the API key in use (before any truncation), so a
server that echoes the ``Authorization`` header cannot put the key into a stored record.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
from collections.abc import Coroutine, Sequence
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator

from agents.containment import drop_surrogates
from agents.llm.base import (
    Completion,
    CompletionCallback,
    EngineError,
    EngineSpecBase,
    FinishReason,
    GenerationRequest,
    OptionScores,
    SamplingParams,
    ScoreRequest,
    logprobs_from_top,
)
from agents.llm.redaction import redact

_ERROR_BODY_CHARS = 300


_T = TypeVar("_T")


#: Request body fields the engine sets itself; ``extra_body`` cannot replace them.
ENGINE_BODY_FIELDS = (
    "logprobs",
    "max_tokens",
    "messages",
    "model",
    "response_format",
    "seed",
    "stop",
    "temperature",
    "top_logprobs",
    "top_p",
)


class OpenAISpec(EngineSpecBase):
    """Any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, hosted APIs).

    Attributes:
        base_urls: One or more API roots such as ``http://127.0.0.1:8000/v1``; request i
            goes to ``base_urls[i % len(base_urls)]``.
        model: Model name sent in each request.
        api_key_env: NAME of the environment variable holding the API key (read at call
            time and sent as a Bearer token; no header when the variable is unset). The key
            itself never appears in a spec.
        max_concurrency: Requests in flight at once.
        timeout_s: Per-attempt time limit in seconds.
        max_retries: Retries after the first attempt, on transport errors and HTTP 429 only.
        backoff_s: First retry delay; it doubles on every further retry.
        response_format_style: How ``json_schema`` is sent: ``"json_object"`` sends
            ``{"type": "json_object", "schema": ...}`` (llama.cpp server); ``"json_schema"``
            sends ``{"type": "json_schema", "json_schema": {"name": "output", "schema": ...}}``
            (vLLM and OpenAI servers).
        extra_body: More fields sent in every request body, as given, for server-specific
            sampling settings (e.g. ``{repeat_penalty = 1.0}`` for llama.cpp's server, whose
            default of 1.1 differs from the in-process engine's 1.0). They may not replace
            a field the engine sets (:data:`ENGINE_BODY_FIELDS`).
    """

    kind: Literal["openai"] = "openai"
    base_urls: list[str] = Field(min_length=1)
    model: str = Field(min_length=1)
    api_key_env: str | None = "OPENAI_API_KEY"
    max_concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    response_format_style: Literal["json_object", "json_schema"] = "json_object"
    extra_body: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @field_validator("extra_body")
    @classmethod
    def _check_extra_body(
        cls, extra: dict[str, float | int | str | bool]
    ) -> dict[str, float | int | str | bool]:
        taken = sorted(set(extra) & set(ENGINE_BODY_FIELDS))
        if taken:
            raise ValueError(
                f"extra_body may not set {', '.join(taken)}: the engine sets "
                f"{', '.join(ENGINE_BODY_FIELDS)}"
            )
        return extra

    @field_validator("base_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base_urls entry {url!r} must start with http:// or https://")
        return [url.rstrip("/") for url in urls]

    def build(self) -> OpenAIEngine:
        """The engine for these servers (no connection is made until ``generate``)."""
        return OpenAIEngine(self)


class OpenAIEngine:
    """Batch-shaped engine over one or more OpenAI-compatible servers.

    The API key is read from ``os.environ[spec.api_key_env]`` on every ``generate`` call
    and sent as a Bearer token; it is never stored on the engine or the spec, so it cannot
    appear in a repr, a manifest or a log.

    Attributes:
        name: ``"openai"``.
        model_id: ``spec.model``.
        spec: The spec it was built from.
    """

    name: str = "openai"

    def __init__(self, spec: OpenAISpec) -> None:
        """Keep the spec; no connection is made until ``generate``."""
        self.spec = spec
        self.model_id = spec.model
        self._closed = False

    def __repr__(self) -> str:
        return f"OpenAIEngine(model={self.spec.model!r}, base_urls={self.spec.base_urls!r})"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        """Send the batch concurrently and return completions in input order.

        Runs its own event loop; when called from a thread that already runs one (e.g. a
        notebook), the loop runs in a helper thread. ``on_complete`` (if given) is called
        as each request finishes (in finishing order), in the thread running the loop.

        Raises:
            EngineError: If the engine is closed.
        """
        if self._closed:
            raise EngineError("OpenAIEngine is closed")
        requests = list(requests)
        if not requests:
            return []
        return _run_to_completion(self._run(requests, on_complete))

    #: Option scores come from the server's ``top_logprobs`` of the first reply token; a
    #: server that returns none gives an OptionScores with ``error`` set (no retries).
    supports_scoring = True
    #: Alternatives asked for (the OpenAI API allows at most 20).
    SCORE_TOP_K = 20

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """Log-probability of each option as the reply's first token, from the servers.

        Each request is sent concurrently (like ``generate``) with ``max_tokens = 1``,
        ``temperature = 0``, ``logprobs = true`` and ``top_logprobs = 20``; an option
        outside the returned alternatives gets ``-inf``.

        Raises:
            EngineError: If the engine is closed.
        """
        if self._closed:
            raise EngineError("OpenAIEngine is closed")
        requests = list(requests)
        if not requests:
            return []
        return _run_to_completion(self._score_all(requests))

    async def _score_all(self, requests: list[ScoreRequest]) -> list[OptionScores]:
        import httpx

        semaphore = asyncio.Semaphore(self.spec.max_concurrency)
        key = self._api_key()
        secrets = (key,) if key else ()
        limits = httpx.Limits(max_connections=self.spec.max_concurrency)

        async def one(index: int, request: ScoreRequest) -> OptionScores:
            url = f"{self.spec.base_urls[index % len(self.spec.base_urls)]}/chat/completions"
            sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=1)
            body = self._body(GenerationRequest(request.request_id, request.messages, sampling))
            body.update(logprobs=True, top_logprobs=self.SCORE_TOP_K)
            async with semaphore:
                try:
                    response = await asyncio.wait_for(
                        client.post(url, json=body), timeout=self.spec.timeout_s
                    )
                except (httpx.TransportError, TimeoutError) as exc:
                    error = redact(f"{type(exc).__name__}: {exc} ({url})", secrets)
                    return OptionScores(request.request_id, (), error=error)
            text = redact(drop_surrogates(response.text), secrets)[:_ERROR_BODY_CHARS]
            if response.status_code >= 400:
                error = f"HTTP {response.status_code} from {url}: {text}"
                return OptionScores(request.request_id, (), error=error)
            try:
                data = response.json()
                first = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                top = [(str(t["token"]), float(t["logprob"])) for t in first]
                usage = data.get("usage") or {}
                details = usage.get("prompt_tokens_details") or {}
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                error = f"no logprobs in the response from {url}: {text!r}"
                return OptionScores(request.request_id, (), error=error)
            return OptionScores(
                request.request_id,
                logprobs_from_top(top, request.options),
                int(usage.get("prompt_tokens") or 0),
                int(details.get("cached_tokens") or 0),
            )

        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.spec.timeout_s), limits=limits, headers=self._headers(key)
        ) as client:
            return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    def close(self) -> None:
        """Mark the engine closed (it holds no connection between calls)."""
        self._closed = True

    def _api_key(self) -> str | None:
        """The API key from the environment (read on every call), or None."""
        if self.spec.api_key_env:
            return os.environ.get(self.spec.api_key_env) or None
        return None

    @staticmethod
    def _headers(key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            **self.spec.extra_body,
            "model": self.spec.model,
            "messages": [{"role": m.role.value, "content": m.content} for m in request.messages],
            "temperature": float(sampling.temperature),
            "top_p": float(sampling.top_p),
            "max_tokens": sampling.max_tokens,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        schema = request.schema_dict()
        if schema is not None:
            if self.spec.response_format_style == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema},
                }
            else:
                body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def _run(
        self, requests: list[GenerationRequest], on_complete: CompletionCallback | None
    ) -> list[Completion]:
        import httpx

        semaphore = asyncio.Semaphore(self.spec.max_concurrency)
        key = self._api_key()
        secrets = (key,) if key else ()
        limits = httpx.Limits(max_connections=self.spec.max_concurrency)

        async def finish(index: int, request: GenerationRequest) -> Completion:
            completion = _redacted(
                await self._one(client, semaphore, index, request, secrets), secrets
            )
            if on_complete is not None:
                on_complete(index, completion)
            return completion

        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.spec.timeout_s), limits=limits, headers=self._headers(key)
        ) as client:
            tasks = [finish(i, request) for i, request in enumerate(requests)]
            return list(await asyncio.gather(*tasks))

    async def _one(
        self,
        client: Any,
        semaphore: asyncio.Semaphore,
        index: int,
        request: GenerationRequest,
        secrets: tuple[str, ...],
    ) -> Completion:
        import httpx

        base_url = self.spec.base_urls[index % len(self.spec.base_urls)]
        url = f"{base_url}/chat/completions"
        body = self._body(request)
        attempts = self.spec.max_retries + 1
        last_error = ""
        for attempt in range(attempts):
            if attempt > 0:
                await asyncio.sleep(self.spec.backoff_s * 2 ** (attempt - 1))
            async with semaphore:
                try:
                    response = await asyncio.wait_for(
                        client.post(url, json=body), timeout=self.spec.timeout_s
                    )
                except (httpx.TransportError, TimeoutError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                    continue
            if response.status_code == 429:
                last_error = f"HTTP 429 from {url}"
                continue
            if response.status_code >= 400:
                reply = redact(response.text, secrets)[:_ERROR_BODY_CHARS]
                return Completion.failed(
                    request.request_id, f"HTTP {response.status_code} from {url}: {reply}"
                )
            return self._parse(request.request_id, url, response, secrets)
        return Completion.failed(
            request.request_id, f"gave up after {attempts} attempts to {url}: {last_error}"
        )

    @staticmethod
    def _parse(request_id: str, url: str, response: Any, secrets: tuple[str, ...]) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
            details = usage.get("prompt_tokens_details") or {}
            reason = (
                FinishReason.LENGTH
                if choice.get("finish_reason") == "length"
                else FinishReason.STOP
            )
            return Completion(
                request_id=request_id,
                text=text,
                finish_reason=reason,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                cached_prompt_tokens=int(details.get("cached_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return Completion.failed(
                request_id,
                f"malformed response from {url}: {type(exc).__name__}: {exc}; "
                f"body starts {redact(response.text, secrets)[:_ERROR_BODY_CHARS]!r}",
            )


def _redacted(completion: Completion, secrets: tuple[str, ...]) -> Completion:
    r"""Return ``completion`` with credentials redacted from its text and error.

    Lone surrogates (a JSON body may hold ``\ud800`` escapes) are dropped from both.
    """
    text = redact(drop_surrogates(completion.text), secrets)
    error = None if completion.error is None else redact(drop_surrogates(completion.error), secrets)
    if text == completion.text and error == completion.error:
        return completion
    return dataclasses.replace(completion, text=text, error=error)


def _run_to_completion(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to completion from synchronous code and return its result.

    Uses a fresh event loop; when the calling thread already runs one (e.g. a notebook),
    the loop runs in a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
