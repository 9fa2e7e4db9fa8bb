"""A record/replay cache around an engine, for exact reproduction and cheap re-analysis.

Completions are keyed by ``GenerationRequest.cache_key(model_id)`` (model, messages,
sampling with seed, schema; not the request id) and stored in an append-only JSONL file:

* line 1, the header: ``{"type": "header", "format": "memespread-replay/1",
  "engine": <inner name>, "model_id": <inner model id>}``, plus ``"model_fingerprint"``
  when the inner engine has one (llama.cpp: its model id names the GGUF file only, so
  the fingerprint of the file's content tells two models of the same file name apart);
* then one line per completion: ``{"type": "completion", "key": ...}`` plus every field of
  :class:`~agents.llm.base.Completion` (``request_id``, ``text``, ``finish_reason``,
  ``prompt_tokens``, ``cached_prompt_tokens``, ``completion_tokens``, ``error``, ...);
  a field missing from an older file takes its default;
* one line per option scoring (``ScoreRequest``, scored decisions and probes):
  ``{"type": "scores", "key": ..., "request_id": ..., "logprobs": [... or null for
  -inf], "prompt_tokens": ..., "cached_prompt_tokens": ..., "error": ...}``.

Each completion is appended, flushed and fsynced as soon as its request finishes, when the
inner engine reports finished requests (the ``on_complete`` callback of
``Engine.generate``: llama.cpp and OpenAI-compatible servers); otherwise as soon as the
batch returns (offline vLLM). A process killed in the middle of a batch thus loses only
the requests in flight, and a resumed run in mode ``"auto"`` is served the recorded ones.
A final line cut short by a killed process is ignored on load (and cut off before the
next append); a later record of the same key supersedes an earlier one.

Before a completion is stored or served, credential-shaped strings (``Bearer ...``,
``api_key=...``, ``sk-...``) are redacted from its text and error
(:func:`agents.llm.redaction.redact`; engines redact their own key values themselves) and
lone surrogates are dropped from both (they cannot be encoded as UTF-8).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from agents.containment import drop_surrogates
from agents.llm.base import (
    Completion,
    CompletionCallback,
    Engine,
    EngineError,
    EngineSpecBase,
    FinishReason,
    GenerationRequest,
    OptionScores,
    ScoreRequest,
    accepts_on_complete,
    can_score,
)
from agents.llm.redaction import redact
from sim.files import file_problem

if TYPE_CHECKING:
    # Every registered kind but this one. The registry (agents.llm) holds this spec, so
    # this module cannot import it: the registry completes ``ReplaySpec.inner`` with
    # ``model_rebuild``.
    InnerEngineSpec = EngineSpecBase

REPLAY_FORMAT = "memespread-replay/1"
ReplayMode = Literal["record", "replay", "auto"]
_MODES = ("record", "replay", "auto")


class ReplaySpec(EngineSpecBase):
    """A record/replay cache around another engine.

    Attributes:
        path: The JSONL cache file (a relative path in a config file is relative to that
            file's folder).
        mode: ``"record"`` always calls the inner engine and stores; ``"replay"`` serves
            only from the file (a miss raises); ``"auto"`` serves hits and sends misses.
        inner: The wrapped engine, any registered kind but ``replay``; required for
            ``record`` and ``auto``.
    """

    kind: Literal["replay"] = "replay"
    path: str = Field(min_length=1)
    mode: Literal["record", "replay", "auto"]
    inner: InnerEngineSpec | None = None

    @model_validator(mode="after")
    def _check_inner(self) -> ReplaySpec:
        if self.mode != "replay" and self.inner is None:
            raise ValueError(f"ReplaySpec.mode={self.mode!r} needs an inner engine spec")
        return self

    def build(self) -> ReplayEngine:
        """The cache, with its inner engine built too (closing the cache closes it)."""
        inner = self.inner.build() if self.inner is not None else None
        return ReplayEngine(inner, self.path, self.mode)

    def unavailable(self) -> str | None:
        """The file to replay is missing, or the inner engine is unavailable."""
        if self.mode == "replay" and not Path(self.path).is_file():
            return f"replay file {self.path!r} does not exist"
        if self.inner is not None:
            return self.inner.unavailable()
        return None

    def resource_errors(self, key: str) -> list[str]:
        """The file to replay must be a readable JSONL file; the inner engine's files too."""
        errors = []
        if self.mode == "replay":
            problem = file_problem(Path(self.path), "JSONL")
            if problem is not None:
                errors.append(f"{key}.path = {self.path!r}: {problem} (mode 'replay' reads it)")
        if self.inner is not None:
            errors += self.inner.resource_errors(f"{key}.inner")
        return errors


class ReplayEngine:
    """Serve completions from a JSONL cache, calling the inner engine as the mode says.

    Modes:
        ``"record"``: every request goes to the inner engine; every completion is stored.
        ``"replay"``: every request must be in the file (the inner engine may be None);
            a miss raises ``EngineError`` naming the request id and key.
        ``"auto"``: hits are served from the file; the misses go to the inner engine in
            one batch and are stored. A stored ERROR completion (or failed score) counts
            as a miss here when ``retry_errors`` is true (a transient failure is retried;
            the default), and is served as recorded when it is false (a resumed run that
            must see what the interrupted one saw); ``"replay"`` always serves it as
            recorded.

    The returned completions carry the current requests' ids, in input order.

    Attributes:
        name: The inner engine's name (from the file header when replaying without one).
        model_id: The inner engine's model id (likewise).
        mode: The mode.
        path: The JSONL file.
        retry_errors: In mode ``"auto"``, whether stored failures are generated again.
        hits: Requests served from the file so far (by this object).
        misses: Requests sent to the inner engine so far (by this object).
    """

    def __init__(
        self,
        inner: Engine | None,
        path: str | os.PathLike[str],
        mode: ReplayMode,
        *,
        retry_errors: bool = True,
    ) -> None:
        """Open (or start) the cache file.

        Raises:
            EngineError: If the mode is unknown, the mode needs an inner engine and has
                none, replay mode has neither an inner engine nor a header to identify the
                model, the header's model id differs from the inner engine's, or a line
                other than the last is corrupt.
        """
        if mode not in _MODES:
            raise EngineError(f"ReplayEngine mode={mode!r}; allowed: {list(_MODES)}")
        if inner is None and mode != "replay":
            raise EngineError(f"ReplayEngine mode={mode!r} needs an inner engine")
        self.inner = inner
        self.mode: ReplayMode = mode
        self.retry_errors = retry_errors
        self.path = Path(path)
        self._records: dict[str, Completion] = {}
        self._scores: dict[str, OptionScores] = {}
        self.hits = 0
        self.misses = 0
        header = self._load()
        if inner is not None:
            self.name = inner.name
            self.model_id = inner.model_id
            if header is not None and header.get("model_id") != inner.model_id:
                raise EngineError(
                    f"replay file {self.path} was recorded with model_id="
                    f"{header.get('model_id')!r}, but the inner engine serves {inner.model_id!r}"
                )
            recorded, serving = _fingerprint(header), _fingerprint(inner)
            if recorded is not None and serving is not None and recorded != serving:
                raise EngineError(
                    f"replay file {self.path} was recorded with another model file of the "
                    f"same name ({inner.model_id!r}: fingerprint {recorded}, the inner engine's "
                    f"is {serving}); its completions are not this model's"
                )
        elif header is not None:
            self.name = str(header["engine"])
            self.model_id = str(header["model_id"])
        else:
            raise EngineError(
                f"replay file {self.path} is missing or has no header, and there is no "
                "inner engine to say which model it is for"
            )
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"ReplayEngine(mode={self.mode!r}, path={str(self.path)!r}, "
            f"model_id={self.model_id!r}, records={len(self._records)})"
        )

    def __len__(self) -> int:
        """Return the number of distinct keys on file."""
        return len(self._records)

    def _load(self) -> dict[str, Any] | None:
        """Read the file into ``self._records``; return the header (None if no file)."""
        if not self.path.exists():
            return None
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        # The element after the last newline is empty for a complete file; anything there
        # is a line cut short by a killed process, ignored even if it happens to parse.
        complete, header = lines[:-1], None
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:  # JSON and Unicode errors
                raise EngineError(
                    f"replay file {self.path} line {number} is corrupt: {exc}"
                ) from None
            if not isinstance(record, dict):
                raise EngineError(f"replay file {self.path} line {number} is not an object")
            if record.get("type") == "header":
                if record.get("format") != REPLAY_FORMAT:
                    raise EngineError(
                        f"replay file {self.path} has format={record.get('format')!r}; "
                        f"expected {REPLAY_FORMAT!r}"
                    )
                header = record
            elif record.get("type") == "scores":
                self._scores[record["key"]] = _scores_from_record(record)
            elif record.get("type") == "completion":
                try:
                    self._records[str(record["key"])] = _completion_from_record(record)
                except (KeyError, ValueError, TypeError) as exc:
                    raise EngineError(
                        f"replay file {self.path} line {number} is corrupt: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
            else:
                raise EngineError(
                    f"replay file {self.path} line {number} has unknown type={record.get('type')!r}"
                )
        return header

    @contextmanager
    def _appender(self) -> Iterator[IO[bytes]]:
        """Open the file for appending (writing the header if it is new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_partial_line()
        with open(self.path, "ab") as fh:
            if fh.tell() == 0:
                header = {
                    "type": "header",
                    "format": REPLAY_FORMAT,
                    "engine": self.name,
                    "model_id": self.model_id,
                }
                fingerprint = _fingerprint(self.inner)
                if fingerprint is not None:
                    header["model_fingerprint"] = fingerprint
                _write_line(fh, header)
            yield fh

    def _store(self, fh: IO[bytes], key: str, completion: Completion) -> None:
        """Append one completion, flush and fsync it, and keep it in memory."""
        _write_line(fh, _record_from_completion(key, completion))
        self._records[key] = completion

    def _drop_partial_line(self) -> None:
        """Cut off a final line without newline (left by a killed process), if any."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            data = self.path.read_bytes()
            fh.truncate(data.rfind(b"\n") + 1)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        """Serve the batch as the mode says; see the class docstring.

        ``on_complete`` (if given) is called for every request: for those served from the
        file at once, for the others as soon as each is stored.

        Raises:
            EngineError: In replay mode, on the first request whose key is not on file;
                or if the engine is closed.
        """
        if self._closed:
            raise EngineError("ReplayEngine is closed")
        requests = list(requests)
        keys = [r.cache_key(self.model_id) for r in requests]
        results: dict[int, Completion] = {}
        if self.mode == "replay":
            for i, (request, key) in enumerate(zip(requests, keys, strict=True)):
                if key not in self._records:
                    raise EngineError(
                        f"replay miss: request_id={request.request_id!r} key={key} is not in "
                        f"{self.path}"
                    )
                results[i] = self._records[key]
        else:
            for i, key in enumerate(keys):
                stored = self._records.get(key)
                if (
                    self.mode == "auto"
                    and stored is not None
                    and (stored.finish_reason is not FinishReason.ERROR or not self.retry_errors)
                ):
                    results[i] = stored
        self.hits += len(results)
        if on_complete is not None:
            for i, completion in sorted(results.items()):
                on_complete(i, dataclasses.replace(completion, request_id=requests[i].request_id))
        if len(results) < len(requests):
            # Requests with equal keys are generated once and share the completion, as a
            # replay serves them (the file holds one completion per key).
            missing = [i for i in range(len(requests)) if i not in results]
            misses, duplicates = _distinct_requests(keys, missing)
            self.misses += len(misses)

            def forward(index: int, completion: Completion) -> None:
                if on_complete is not None:
                    on_complete(misses[index], completion)

            fresh = self._generate_misses(
                [requests[i] for i in misses], [keys[i] for i in misses], forward
            )
            for i, completion in zip(misses, fresh, strict=True):
                results[i] = completion
            for i, source in duplicates.items():
                results[i] = results[source]
                if on_complete is not None:
                    on_complete(
                        i, dataclasses.replace(results[i], request_id=requests[i].request_id)
                    )
        return [
            dataclasses.replace(results[i], request_id=r.request_id) for i, r in enumerate(requests)
        ]

    def _generate_misses(
        self,
        requests: list[GenerationRequest],
        keys: list[str],
        on_stored: CompletionCallback,
    ) -> list[Completion]:
        """Send ``requests`` to the inner engine, storing each completion as it finishes.

        After storing one, ``on_stored`` is called with its index in ``requests``.
        """
        inner = self.inner
        assert inner is not None  # guaranteed by __init__
        stored: dict[int, Completion] = {}
        with self._appender() as fh:

            def record(index: int, completion: Completion) -> None:
                if index in stored or not 0 <= index < len(requests):
                    return
                stored[index] = _scrubbed(completion)
                self._store(fh, keys[index], stored[index])
                on_stored(index, stored[index])

            if accepts_on_complete(inner):
                returned = inner.generate(requests, on_complete=record)
            else:
                returned = inner.generate(requests)
            if len(returned) != len(requests):
                raise EngineError(
                    f"inner engine {self.name!r} returned {len(returned)} completions for "
                    f"{len(requests)} requests"
                )
            for index, completion in enumerate(returned):
                record(index, completion)  # whatever the engine did not report yet
        return [stored[i] for i in range(len(requests))]

    @property
    def supports_scoring(self) -> bool:
        """Whether ``score`` can serve.

        True when the inner engine scores, or (replay without an inner engine) when the
        file holds option scores.
        """
        if self.inner is None:
            return bool(self._scores)
        return can_score(self.inner)

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """Serve option scores as the mode says (keyed by ``ScoreRequest.cache_key``).

        Raises:
            EngineError: In replay mode, on a request not on file; if closed; or if a
                miss must go to an inner engine that reports no log-probabilities.
        """
        if self._closed:
            raise EngineError("ReplayEngine is closed")
        requests = list(requests)
        keys = [r.cache_key(self.model_id) for r in requests]
        results: dict[int, OptionScores] = {}
        misses = []
        for i, (request, key) in enumerate(zip(requests, keys, strict=True)):
            stored = self._scores.get(key)
            if self.mode == "replay":
                if stored is None:
                    raise EngineError(
                        f"replay miss: score request_id={request.request_id!r} key={key} is "
                        f"not in {self.path}"
                    )
                results[i] = stored
            elif (
                self.mode == "auto"
                and stored is not None
                and (stored.error is None or not self.retry_errors)
            ):
                results[i] = stored
            else:
                misses.append(i)
        if misses:  # requests with equal keys are scored once, as a replay serves them
            misses, duplicates = _distinct_requests(keys, misses)
            if self.inner is None or not can_score(self.inner):
                raise EngineError(f"inner engine {self.name!r} reports no log-probabilities")
            fresh = self.inner.score([requests[i] for i in misses])  # type: ignore[attr-defined]
            with self._appender() as fh:
                for i, scores in zip(misses, fresh, strict=True):
                    _write_line(fh, _record_from_scores(keys[i], scores))
                    self._scores[keys[i]] = scores
                    results[i] = scores
            for i, source in duplicates.items():
                results[i] = results[source]
        return [
            dataclasses.replace(results[i], request_id=r.request_id) for i, r in enumerate(requests)
        ]

    def close(self) -> None:
        """Close the inner engine (this engine owns it); later ``generate`` calls raise."""
        if self.inner is not None:
            self.inner.close()
        self._closed = True


def _fingerprint(source: Any) -> str | None:
    """The model fingerprint of an engine or a header dict, if it has a string one."""
    if isinstance(source, dict):
        value = source.get("model_fingerprint")
    else:
        value = getattr(source, "model_fingerprint", None)
    return value if isinstance(value, str) else None


def _distinct_requests(
    keys: Sequence[str], indices: Sequence[int]
) -> tuple[list[int], dict[int, int]]:
    """Split request indices into the first of each key and the duplicates of those.

    Returns:
        ``(firsts, duplicates)``: the indices (in order) whose key no earlier index of
        ``indices`` has, and for every other index the first index with its key.
    """
    first: dict[str, int] = {}
    duplicates: dict[int, int] = {}
    for i in indices:
        source = first.setdefault(keys[i], i)
        if source != i:
            duplicates[i] = source
    return list(first.values()), duplicates


def _write_line(fh: IO[bytes], record: dict[str, Any]) -> None:
    """Append one JSON line (ASCII: lone surrogates are escaped), flush and fsync."""
    fh.write((json.dumps(record, sort_keys=True) + "\n").encode("ascii"))
    fh.flush()
    os.fsync(fh.fileno())


def _scrubbed(completion: Completion) -> Completion:
    """Return ``completion`` with credential-shaped strings redacted from text and error.

    Lone surrogates (not encodable as UTF-8, so no table could hold them) are dropped too.
    """
    text = redact(drop_surrogates(completion.text))
    error = None if completion.error is None else redact(drop_surrogates(completion.error))
    if text == completion.text and error == completion.error:
        return completion
    return dataclasses.replace(completion, text=text, error=error)


def _record_from_completion(key: str, completion: Completion) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "completion", "key": key}
    for field in dataclasses.fields(completion):
        value = getattr(completion, field.name)
        record[field.name] = value.value if isinstance(value, enum.Enum) else value
    return record


def _record_from_scores(key: str, scores: OptionScores) -> dict[str, Any]:
    return {
        "type": "scores",
        "key": key,
        "request_id": scores.request_id,
        # JSON has no -inf: an option the engine did not report is stored as null.
        "logprobs": [None if math.isinf(x) else x for x in scores.logprobs],
        "prompt_tokens": scores.prompt_tokens,
        "cached_prompt_tokens": scores.cached_prompt_tokens,
        "error": scores.error,
    }


def _scores_from_record(record: dict[str, Any]) -> OptionScores:
    return OptionScores(
        request_id=str(record["request_id"]),
        logprobs=tuple(float("-inf") if x is None else float(x) for x in record["logprobs"]),
        prompt_tokens=int(record["prompt_tokens"]),
        cached_prompt_tokens=int(record["cached_prompt_tokens"]),
        error=record.get("error"),
    )


def _completion_from_record(record: dict[str, Any]) -> Completion:
    values = {
        field.name: record[field.name]
        for field in dataclasses.fields(Completion)
        if field.name in record
    }
    values["finish_reason"] = FinishReason(values["finish_reason"])
    return _scrubbed(Completion(**values))
