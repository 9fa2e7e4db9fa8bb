"""The JSON output format of an LLM agent, and the JSON schemas for constrained decoding.

An agent answers a task with one flat JSON object (flat keys parse far more reliably
than nested ones with small models such as SmolLM2-135M)::

    {"answer": "...", "choice": "<letter>" or "", "memory_bank": "<bank name>" or "",
     "memory_text": "..." or ""}

An empty ``memory_bank`` or ``memory_text`` means "write nothing". ``choice`` is the
letter of the option picked in a decision task (``""`` for an open task); its schema is
an ``enum`` of the letters shown, for every engine that constrains decoding. A probe
answer is ``{"answer": "..."}``.

For constrained decoding the string fields are limited by a ``pattern`` of at most N
characters without quotes, backslashes or newlines: llama.cpp's grammar enforces a
pattern's repetition bound (it ignores ``maxLength``), so a bounded answer always closes
its JSON within the token budget. The bank field is an ``enum`` of the bank names the
agent can see (and ``""``): the model may still pick a bank it can read but not write,
and the simulator refuses that write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

#: The output format, described to the model in the shared system text.
ACT_FORMAT = '{"answer": "...", "choice": "...", "memory_bank": "...", "memory_text": "..."}'
#: The probe output format.
PROBE_FORMAT = '{"answer": "..."}'


class AgentOutput(BaseModel):
    """One agent's parsed reply.

    Attributes:
        answer: The answer to the task (or to a probe question).
        memory_bank: Name of the bank to write into; "" for no write.
        memory_text: The memory to write; "" for no write.
        choice: The letter of the option picked in a decision task; "" for none.
        forward: The number of a shown memory to pass on unchanged into ``memory_bank``
            (with ``allow_forward``); "" for none.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    answer: str
    memory_bank: str = ""
    memory_text: str = ""
    choice: str = ""
    forward: str = ""


def _bounded_string(max_chars: int) -> dict[str, object]:
    # No '"', '\' or newline: the grammar then cannot emit escapes, and the bound holds.
    return {"type": "string", "pattern": f'^[^"\\\\\\n]{{0,{max_chars}}}$'}


def act_schema_dict(
    bank_names: Sequence[str] | None,
    max_answer_chars: int,
    max_write_chars: int,
    choices: Sequence[str] | None = None,
    n_memories: int | None = None,
) -> dict[str, object]:
    """The JSON schema of a task reply.

    Args:
        bank_names: Bank names the model may name (``""`` is always allowed); None for
            any string.
        max_answer_chars: Upper bound of the answer's length.
        max_write_chars: Upper bound of the memory text's length.
        choices: Option letters of a decision task: the reply then has a required
            ``choice`` that must be one of them. None for an open task (no ``choice``).
        n_memories: With forwarding allowed, the number of memories shown: the reply then
            has a required ``forward``, ``""`` or one of ``"1"``..``"n"``. None: no field.
    """
    bank: dict[str, object] = {"type": "string"}
    if bank_names is not None:
        bank["enum"] = ["", *sorted(set(bank_names) - {""})]
    properties: dict[str, object] = {
        "answer": _bounded_string(max_answer_chars),
        "memory_bank": bank,
        "memory_text": _bounded_string(max_write_chars),
    }
    required = ["answer", "memory_bank", "memory_text"]
    if choices is not None:
        properties["choice"] = {"type": "string", "enum": list(choices)}
        required.insert(1, "choice")
    if n_memories is not None:
        properties["forward"] = {
            "type": "string",
            "enum": ["", *(str(i) for i in range(1, n_memories + 1))],
        }
        required.append("forward")
    return {"type": "object", "properties": properties, "required": required}


def probe_schema_dict(max_answer_chars: int) -> dict[str, object]:
    """The JSON schema of a probe reply: ``{"answer": ...}``."""
    return {
        "type": "object",
        "properties": {"answer": _bounded_string(max_answer_chars)},
        "required": ["answer"],
    }


def dump_schema(schema: dict[str, object]) -> str:
    """Serialise a schema canonically (sorted keys), as ``GenerationRequest`` expects."""
    return json.dumps(schema, sort_keys=True)


def json_schema(max_answer_chars: int = 200, max_write_chars: int = 300) -> str:
    """The generic task-reply schema (any bank name), serialised with sorted keys."""
    return dump_schema(act_schema_dict(None, max_answer_chars, max_write_chars))
