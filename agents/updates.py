"""The ``update`` action of LLM agents: rewrite one memory instead of adding a note.

With ``policy.allow_update = true`` the shared system text ends with
:data:`UPDATE_INSTRUCTION`, and the act reply's JSON schema gains an ``update`` field:
``""`` or the number (``"1"``..``"k"``) of one of the k memories shown. A reply that
saves a note (``memory_bank`` and ``memory_text`` set) with a valid ``update`` number
proposes to replace that memory by the note: the proposal's ``replaces`` is the memory's
entry and its bank is the memory's bank (a rewrite stays where the old version was).
The simulator decides whether the update is honoured (see :mod:`sim.updates`: the entry
must be alive, in the agent's context and in a bank it may write); the old version is
removed and becomes the new one's first parent.

The ``update`` field is read from the reply's JSON object directly (the reply format's
other fields are parsed by :mod:`agents.parsing`), so an engine that ignores the schema
and omits it simply proposes no update.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from agents.llm.base import Completion, FinishReason
from agents.parsing import first_json_object, memory_number, reply_text
from sim.policy import WriteProposals

if TYPE_CHECKING:
    from sim.policy import StepContext

#: Appended to the shared system text when updates are allowed.
UPDATE_INSTRUCTION = (
    'To rewrite one of your memories instead of adding a note, put its number in "update", '
    'the new text in "memory_text" and its bank in "memory_bank"; otherwise leave "update" '
    "empty."
)


def with_update_field(schema: str | None, n_memories: int | None) -> str | None:
    """The act schema (canonical JSON) with a required ``update`` field, or unchanged.

    Args:
        schema: The serialised act schema, or None (no constrained decoding).
        n_memories: Memories shown to the agent; None leaves the schema unchanged.
    """
    if schema is None or n_memories is None:
        return schema
    data = json.loads(schema)
    data["properties"]["update"] = {
        "type": "string",
        "enum": ["", *(str(i) for i in range(1, n_memories + 1))],
    }
    data["required"] = [*data["required"], "update"]
    return json.dumps(data, sort_keys=True)


def update_number(completion: Completion) -> int | None:
    """The memory number a reply asks to rewrite (1-based), or None.

    Only complete replies (finish reason ``stop``) whose JSON object has an ``update``
    that is a positive integer (or its ASCII digits as a string, see
    :func:`agents.parsing.memory_number`) count.
    """
    if completion.finish_reason is not FinishReason.STOP:
        return None
    block = first_json_object(reply_text(completion.text))
    if block is None:
        return None
    try:
        data = json.loads(block, strict=False)
    except (ValueError, RecursionError):
        return None
    value = data.get("update") if isinstance(data, dict) else None
    if isinstance(value, str):
        return memory_number(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


def propose_updates(
    writes: WriteProposals, completions: Sequence[Completion], context: StepContext
) -> WriteProposals:
    """The act's write proposals with ``replaces`` set from the replies' ``update`` fields.

    Args:
        writes: The proposed notes (authors index ``completions``: one reply per agent).
        completions: Every agent's act reply, in agent order.
        context: The step (the agents' retrieved memories, numbered from 1 in order).

    Returns:
        The same proposals; a note whose reply names memory i of its author's context
        replaces that entry and goes to that entry's bank.
    """
    replaces = np.full(len(writes), -1, dtype=np.int64)
    bank = writes.bank.copy()
    for i, agent in enumerate(writes.author.tolist()):
        number = update_number(completions[agent])
        entries = context.retrieval.of(agent)
        if number is None or number > len(entries):
            continue
        replaces[i] = int(entries[number - 1])
        bank[i] = int(context.store.bank[replaces[i]])
    return WriteProposals(
        author=writes.author,
        bank=bank,
        text=writes.text,
        importance=writes.importance,
        cause=writes.cause,
        replaces=replaces,
    )
