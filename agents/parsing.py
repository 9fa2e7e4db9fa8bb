"""Tolerant parsing of model output into an explicit status; never raises on model text.

Only an ``OK`` parse may lead to a memory write. The status is decided in this order:

* ``ENGINE_ERROR`` — the engine reported a failure for the request;
* ``TRUNCATED`` — generation hit ``max_tokens`` (finish reason ``length``), whatever the
  text looks like;
* ``EMPTY`` — the text is blank;
* ``MALFORMED`` — neither the text nor its first balanced ``{...}`` block is a JSON object
  matching :class:`agents.output_schema.AgentOutput`;
* ``OK`` otherwise.

A nested ``{"answer": ..., "memory": {"bank": ..., "text": ...}}`` (or ``"memory": null``)
is accepted as well as the flat format.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from pydantic import ValidationError

from agents.llm.base import Completion, FinishReason
from agents.output_schema import AgentOutput


class ParseStatus(enum.StrEnum):
    """Outcome of parsing one completion."""

    OK = "ok"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    ENGINE_ERROR = "engine_error"


@dataclass(frozen=True)
class ParsedOutput:
    """One parsed completion.

    Attributes:
        status: The parse status.
        answer: The answer ("" unless OK).
        bank_name: The bank the agent asked to write ("" for none, and unless OK).
        text: The memory text to write ("" for none, and unless OK).
    """

    status: ParseStatus
    answer: str = ""
    bank_name: str = ""
    text: str = ""

    @property
    def wants_write(self) -> bool:
        """Whether this output proposes a memory write (OK, with a bank and a text)."""
        return self.status is ParseStatus.OK and bool(self.bank_name) and bool(self.text)


def first_json_object(text: str) -> str | None:
    """The leftmost balanced ``{...}`` block of ``text``, or None (one linear pass).

    Braces inside JSON strings are ignored (string state is tracked from the first ``{``).
    """
    start = text.find("{")
    if start == -1:
        return None
    stack: list[int] = []
    best: tuple[int, int] | None = None
    in_string, escaped = False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            opened = stack.pop()
            if not stack:  # the outermost block closed: nothing can start further left
                return text[opened : i + 1]
            if best is None or opened < best[0]:
                best = (opened, i)
    return None if best is None else text[best[0] : best[1] + 1]


def _load_object(text: str) -> dict[str, object] | None:
    for candidate in (text.strip(), first_json_object(text)):
        if candidate is None:
            continue
        try:
            value = json.loads(candidate, strict=False)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _flatten(data: dict[str, object]) -> dict[str, object] | None:
    """The flat form of a reply; None when ``memory`` is neither an object nor null."""
    if "memory" not in data:
        return data
    memory = data["memory"]
    flat = {k: v for k, v in data.items() if k != "memory"}
    if isinstance(memory, dict):
        flat.setdefault("memory_bank", memory.get("bank", ""))
        flat.setdefault("memory_text", memory.get("text", ""))
    elif memory is not None:
        return None
    return flat


def parse_text(text: str) -> ParsedOutput:
    """Parse a reply text that was not truncated (EMPTY, MALFORMED or OK)."""
    if not text.strip():
        return ParsedOutput(ParseStatus.EMPTY)
    data = _load_object(text)
    flat = None if data is None else _flatten(data)
    if flat is None:
        return ParsedOutput(ParseStatus.MALFORMED)
    try:
        output = AgentOutput.model_validate(flat)
    except ValidationError:
        return ParsedOutput(ParseStatus.MALFORMED)
    bank, memory = output.memory_bank.strip(), output.memory_text.strip()
    if not bank or not memory:
        bank, memory = "", ""
    return ParsedOutput(ParseStatus.OK, output.answer.strip(), bank, memory)


def parse_output(completion: Completion) -> ParsedOutput:
    """Parse one completion (see the module docstring for the statuses)."""
    if completion.finish_reason is FinishReason.ERROR:
        return ParsedOutput(ParseStatus.ENGINE_ERROR)
    if completion.finish_reason is FinishReason.LENGTH:
        return ParsedOutput(ParseStatus.TRUNCATED)
    return parse_text(completion.text)
