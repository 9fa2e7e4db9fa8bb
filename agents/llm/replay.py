"""A record/replay cache around an engine, for exact reproduction and cheap re-analysis.

Completions are keyed by ``GenerationRequest.cache_key(model_id)`` (model, messages,
sampling with seed, schema; not the request id) and stored in an append-only JSONL file:

* line 1, the header: ``{"type": "header", "format": "memespread-replay/1",
  "engine": <inner name>, "model_id": <inner model id>}``;
* then one line per completion: ``{"type": "completion", "key": ..., "request_id": ...,
  "text": ..., "finish_reason": ..., "prompt_tokens": ..., "cached_prompt_tokens": ...,
  "completion_tokens": ..., "error": ...}``.

Each batch is appended, flushed and fsynced at once. A final line cut short by a killed
process is ignored on load (and cut off before the next append); a later record of the
same key supersedes an earlier one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from agents.llm.base import (
    Completion,
    Engine,
    EngineError,
    FinishReason,
    GenerationRequest,
)

REPLAY_FORMAT = "memespread-replay/1"
ReplayMode = Literal["record", "replay", "auto"]
_MODES = ("record", "replay", "auto")


class ReplayEngine:
    """Serve completions from a JSONL cache, calling the inner engine as the mode says.

    Modes:
        ``"record"``: every request goes to the inner engine; every completion is stored.
        ``"replay"``: every request must be in the file (the inner engine may be None);
            a miss raises ``EngineError`` naming the request id and key.
        ``"auto"``: hits are served from the file; the misses go to the inner engine in
            one batch and are stored. A stored ERROR completion counts as a miss here (a
            transient failure is retried), while ``"replay"`` serves it as recorded.

    The returned completions carry the current requests' ids, in input order.

    Attributes:
        name: The inner engine's name (from the file header when replaying without one).
        model_id: The inner engine's model id (likewise).
        mode: The mode.
        path: The JSONL file.
    """

    def __init__(
        self, inner: Engine | None, path: str | os.PathLike[str], mode: ReplayMode
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
        self.path = Path(path)
        self._records: dict[str, Completion] = {}
        header = self._load()
        if inner is not None:
            self.name = inner.name
            self.model_id = inner.model_id
            if header is not None and header.get("model_id") != inner.model_id:
                raise EngineError(
                    f"replay file {self.path} was recorded with model_id="
                    f"{header.get('model_id')!r}, but the inner engine serves {inner.model_id!r}"
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
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise EngineError(
                    f"replay file {self.path} line {number} is corrupt: {exc}"
                ) from None
            if record.get("type") == "header":
                if record.get("format") != REPLAY_FORMAT:
                    raise EngineError(
                        f"replay file {self.path} has format={record.get('format')!r}; "
                        f"expected {REPLAY_FORMAT!r}"
                    )
                header = record
            elif record.get("type") == "completion":
                self._records[record["key"]] = _completion_from_record(record)
            else:
                raise EngineError(
                    f"replay file {self.path} line {number} has unknown type={record.get('type')!r}"
                )
        return header

    def _append(self, items: list[tuple[str, Completion]]) -> None:
        """Append completions (and the header if the file is new), then flush and fsync."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_partial_line()
        with open(self.path, "ab") as fh:
            new_file = fh.tell() == 0
            lines = []
            if new_file:
                header = {
                    "type": "header",
                    "format": REPLAY_FORMAT,
                    "engine": self.name,
                    "model_id": self.model_id,
                }
                lines.append(json.dumps(header, sort_keys=True))
            for key, completion in items:
                lines.append(json.dumps(_record_from_completion(key, completion), sort_keys=True))
            fh.write(("\n".join(lines) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        for key, completion in items:
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

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Serve the batch as the mode says; see the class docstring.

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
            misses = []
            for i, key in enumerate(keys):
                stored = self._records.get(key)
                if (
                    self.mode == "auto"
                    and stored is not None
                    and stored.finish_reason is not FinishReason.ERROR
                ):
                    results[i] = stored
                else:
                    misses.append(i)
            if misses:
                assert self.inner is not None  # guaranteed by __init__
                fresh = self.inner.generate([requests[i] for i in misses])
                if len(fresh) != len(misses):
                    raise EngineError(
                        f"inner engine {self.name!r} returned {len(fresh)} completions for "
                        f"{len(misses)} requests"
                    )
                self._append([(keys[i], c) for i, c in zip(misses, fresh, strict=True)])
                for i, completion in zip(misses, fresh, strict=True):
                    results[i] = completion
        return [
            dataclasses.replace(results[i], request_id=r.request_id) for i, r in enumerate(requests)
        ]

    def close(self) -> None:
        """Close the inner engine (this engine owns it); later ``generate`` calls raise."""
        if self.inner is not None:
            self.inner.close()
        self._closed = True


def _record_from_completion(key: str, completion: Completion) -> dict[str, Any]:
    return {
        "type": "completion",
        "key": key,
        "request_id": completion.request_id,
        "text": completion.text,
        "finish_reason": completion.finish_reason.value,
        "prompt_tokens": completion.prompt_tokens,
        "cached_prompt_tokens": completion.cached_prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "error": completion.error,
    }


def _completion_from_record(record: dict[str, Any]) -> Completion:
    return Completion(
        request_id=str(record["request_id"]),
        text=str(record["text"]),
        finish_reason=FinishReason(record["finish_reason"]),
        prompt_tokens=int(record["prompt_tokens"]),
        cached_prompt_tokens=int(record["cached_prompt_tokens"]),
        completion_tokens=int(record["completion_tokens"]),
        error=record.get("error"),
    )
