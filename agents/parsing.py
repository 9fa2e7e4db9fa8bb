r"""Tolerant parsing of model output into an explicit status; never raises on model text.

Only an ``OK`` parse may lead to a memory write. The status is decided in this order:

* ``ENGINE_ERROR`` — the engine reported a failure for the request;
* ``TRUNCATED`` — generation hit ``max_tokens`` (finish reason ``length``), whatever the
  text looks like;
* ``EMPTY`` — the text is blank, or is only an unfinished reasoning block;
* ``MALFORMED`` — neither the text nor its first balanced ``{...}`` block is a JSON object
  matching :class:`agents.output_schema.AgentOutput`;
* ``OK`` otherwise.

A nested ``{"answer": ..., "memory": {"bank": ..., "text": ...}}`` (or ``"memory": null``)
is accepted as well as the flat format. The optional fields (``memory_bank``,
``memory_text``, ``choice``, ``forward``) may be ``null``, which means "" (none), and
``forward`` may be a JSON integer: small models write both when no schema constrains them,
and the rest of such a reply (its answer, its choice) is still the agent's.

A reasoning block that a model in thinking mode writes before its reply
(``<think>...</think>``, see :func:`reply_text`) is not part of the reply: a draft JSON
object inside it is never read as the action.

No model text makes the parser raise: integer literals longer than
:data:`MAX_INT_DIGITS` digits become floats (``inf``) instead of hitting Python's limit on
int-string conversion, nesting too deep for the JSON decoder is MALFORMED, and lone
surrogates (``\ud800`` escapes, which cannot be encoded as UTF-8) are dropped from the
parsed fields.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

from pydantic import ValidationError

from agents.containment import drop_surrogates
from agents.llm.base import Completion, FinishReason
from agents.output_schema import AgentOutput

#: Integer literals with more digits than this parse as floats (Python refuses to convert
#: strings of more than 4,300 digits to int by default).
MAX_INT_DIGITS = 1000
#: A memory number (``forward``, ``update``) has at most this many digits.
MAX_NUMBER_DIGITS = 6

_JSON_SPECIAL = re.compile(r'[{}"\\]')


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
        choice: The option letter picked in a decision task ("" for none, and unless OK).
        forward: The number of a memory to pass on unchanged ("" for none, and unless OK).
    """

    status: ParseStatus
    answer: str = ""
    bank_name: str = ""
    text: str = ""
    choice: str = ""
    forward: str = ""

    @property
    def wants_write(self) -> bool:
        """Whether this output proposes a memory write: OK, a bank, a text or a forward."""
        return (
            self.status is ParseStatus.OK
            and bool(self.bank_name)
            and bool(self.text or self.forward)
        )


def first_json_object(text: str) -> str | None:
    """The leftmost balanced ``{...}`` block of ``text``, or None (one linear pass).

    Braces inside JSON strings are ignored (string state is tracked from the first ``{``).
    Only braces, quotes and backslashes are visited, so long runs of other characters
    (a 20,000-digit number, prose) cost one regex scan.
    """
    start = text.find("{")
    if start == -1:
        return None
    stack: list[int] = []
    best: tuple[int, int] | None = None
    in_string, escaped_at = False, -1
    for match in _JSON_SPECIAL.finditer(text, start):
        i = match.start()
        if i == escaped_at:  # the character after a backslash inside a string
            continue
        ch = text[i]
        if in_string:
            if ch == "\\":
                escaped_at = i + 1
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


def _parse_int(literal: str) -> int | float:
    """A JSON integer literal as an int, or as a float when it is too long for ``int``."""
    return int(literal) if len(literal) <= MAX_INT_DIGITS else float(literal)


def _load_object(text: str) -> dict[str, object] | None:
    for candidate in (text.strip(), first_json_object(text)):
        if candidate is None:
            continue
        try:
            value = json.loads(candidate, strict=False, parse_int=_parse_int)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            continue
        if isinstance(value, dict):
            return value
    return None


#: Reply fields that may be absent; ``null`` means the same.
_OPTIONAL_FIELDS = ("memory_bank", "memory_text", "choice", "forward")


def _flatten(data: dict[str, object]) -> dict[str, object] | None:
    """The flat form of a reply; None when ``memory`` is neither an object nor null.

    Optional fields that are ``null`` are left out (so they are ""), and an integer
    ``forward`` becomes its decimal digits.
    """
    flat = {k: v for k, v in data.items() if k != "memory"}
    if "memory" in data:
        memory = data["memory"]
        if isinstance(memory, dict):
            flat.setdefault("memory_bank", memory.get("bank", ""))
            flat.setdefault("memory_text", memory.get("text", ""))
        elif memory is not None:
            return None
    for key in _OPTIONAL_FIELDS:
        if key in flat and flat[key] is None:
            del flat[key]
    forward = flat.get("forward")
    if isinstance(forward, int) and not isinstance(forward, bool):
        flat["forward"] = str(forward)
    return flat


def memory_number(value: str) -> int | None:
    """The positive number a reply field names a shown memory by, or None.

    Only ASCII decimal digits (at most :data:`MAX_NUMBER_DIGITS`, surrounding whitespace
    ignored) count, as in the schema's ``"1"``..``"k"``: ``str.isdigit`` also accepts
    superscripts and circled digits (``"²"``, ``"①"``), which ``int`` rejects, and the
    digits of other scripts (``"٣"``), so a test with it alone lets model text crash a
    run. ``"0"`` is None (memories are numbered from 1).
    """
    digits = value.strip()
    if not (0 < len(digits) <= MAX_NUMBER_DIGITS and digits.isascii() and digits.isdigit()):
        return None
    number = int(digits)
    return number if number >= 1 else None


#: The tags of the reasoning block a model in thinking mode writes before its reply.
REASONING_OPEN, REASONING_CLOSE = "<think>", "</think>"


def reply_text(text: str) -> str:
    """``text`` without the reasoning block a model in thinking mode writes first.

    A completion that starts (after whitespace) with ``<think>`` is reasoning up to the
    first ``</think>``; the reply is what follows it, or "" when the block never closes.
    A ``</think>`` with no ``<think>`` before it ends reasoning that the chat template
    opened in the prompt (some templates do), so the reply is likewise what follows it.
    Any other text is returned unchanged. Recorded completions keep the whole text; only
    what is read as the reply (the action, a probe answer, a verdict) leaves it out.
    """
    close = text.find(REASONING_CLOSE)
    if text.lstrip().startswith(REASONING_OPEN):
        return "" if close == -1 else text[close + len(REASONING_CLOSE) :]
    if close != -1 and REASONING_OPEN not in text[:close]:
        return text[close + len(REASONING_CLOSE) :]
    return text


def parse_text(text: str) -> ParsedOutput:
    """Parse a reply text that was not truncated (EMPTY, MALFORMED or OK).

    A leading reasoning block is left out first (:func:`reply_text`).
    """
    text = reply_text(text)
    if not text.strip():
        return ParsedOutput(ParseStatus.EMPTY)
    data = _load_object(text)
    flat = None if data is None else _flatten(data)
    if flat is None:
        return ParsedOutput(ParseStatus.MALFORMED)
    try:
        output = AgentOutput.model_validate(flat)
    except (ValidationError, RecursionError):
        return ParsedOutput(ParseStatus.MALFORMED)
    bank = drop_surrogates(output.memory_bank).strip()
    memory = drop_surrogates(output.memory_text).strip()
    forward = output.forward.strip()
    if not bank or not (memory or forward):
        bank, memory, forward = "", "", ""
    answer = drop_surrogates(output.answer).strip()
    return ParsedOutput(ParseStatus.OK, answer, bank, memory, output.choice.strip(), forward)


def parse_output(completion: Completion) -> ParsedOutput:
    """Parse one completion (see the module docstring for the statuses)."""
    if completion.finish_reason is FinishReason.ERROR:
        return ParsedOutput(ParseStatus.ENGINE_ERROR)
    if completion.finish_reason is FinishReason.LENGTH:
        return ParsedOutput(ParseStatus.TRUNCATED)
    return parse_text(completion.text)
