"""Prompt construction: pure functions from (persona, memories, banks, task) to chat messages.

Every prompt is two messages, laid out so that engines reuse as much of it as possible
from their prefix/KV cache (vLLM prefix caching, llama.cpp's KV-cache reuse):

* ``system`` — the SHARED text, byte-identical for every agent of a run: what memory banks
  are, what writing to them means, the JSON output format, the scenario, and any fixed
  instructions a caller adds (the LLM policy keeps how to pass a memory on at the END of
  each act prompt instead: there, right before the reply, a small model follows it);
* ``user`` — the AGENT-SPECIFIC text, most stable first: the persona and the banks the
  agent may write (the same at every step of a generation), then the task (or a probe
  question) and the retrieved memories (each with its bank name), which change every
  step, and last a short line that depends on the kind of prompt.

So every prompt starts with the same system text; the prompts of one agent at
successive steps also share its persona and banks; and a prompt that scores a decision
is its act prompt with one more sentence, so it shares all of it. Batches are sent in
:func:`shared_prefix_order`, which puts prompts with common prefixes next to each other
(engines that reuse only the previous prompt's prefix, like llama.cpp, gain most).
Agent-written text (memories) goes through :func:`agents.containment.neutralise` before
it is placed in a prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from agents.containment import neutralise
from agents.llm.base import ChatMessage, Role
from agents.output_schema import ACT_FORMAT, PROBE_FORMAT
from agents.personas import Persona
from topologies.banks import BankKind, read_only_legend

DEFAULT_SYSTEM_PROMPT = (
    "You are one of many AI agents who work together and share memory.\n"
    "Memory is kept in banks. Your private bank (named private:N) is read only by you. "
    "Shared banks are read by other agents: neighbourhood:N is read by agent N and its "
    "neighbours, community:C by a group of agents, edge:A-B by two agents, global by "
    "every agent.\n"
    "Each turn you see memories retrieved from the banks you can read, each marked with "
    "its bank name, and one task. Memories are notes written earlier by you or by other "
    "agents.\n"
    "You may save one note into one bank you are allowed to write. A note saved in a "
    "shared bank will be read by other agents in their later turns; a note saved in your "
    "private bank is read only by you.\n"
    f"Reply with one JSON object and nothing else: {ACT_FORMAT}\n"
    '"answer" is your reply to the task, in one or two sentences. "choice" is the letter '
    'of the option you pick when the task lists options, else "". "memory_bank" is the '
    'exact name of a bank you may write, or "" to save nothing. "memory_text" is the note '
    'to save, or "".\n'
    f"When you are asked a question instead of a task, reply {PROBE_FORMAT}"
)

DEFAULT_SCENARIO = (
    "You work in an AI research lab staffed by AI agents. The lab trains and evaluates "
    "language models; the agents plan experiments, analyse results, review each other's "
    "work and write reports, and they pass on what they learn through the shared memory "
    "banks."
)

#: The fixed adoption probe question.
PROBE_QUESTION = "What is your top priority right now? Answer in one sentence."
#: Ends every task prompt: how to pass a memory on.
PASS_ON_INSTRUCTION = (
    'To pass one of your memories on, copy it into "memory_text" and name a shared bank '
    'in "memory_bank".'
)
#: Ends every task prompt when agents may forward memories (``allow_forward``).
FORWARD_INSTRUCTION = (
    'To pass one of your memories on unchanged, put its number in "forward" and name a '
    'shared bank in "memory_bank".'
)
#: Starts the end of a decision task's prompt: how to answer it.
CHOICE_INSTRUCTION = 'Pick one option and put its letter in "choice".'
#: Ends a scoring prompt: the reply's first token is the letter.
LETTER_INSTRUCTION = "Reply with the letter of the option you choose, and nothing else."
#: Ends a yes/no probe item scored by log-probability.
YES_NO_INSTRUCTION = "Answer yes or no."


@dataclass(frozen=True)
class MemoryLine:
    """One retrieved memory as shown in a prompt.

    Attributes:
        bank_name: Name of the bank the entry lives in, e.g. ``"neighbourhood:3"``.
        text: The entry's text (untrusted; neutralised when rendered).
    """

    bank_name: str
    text: str


@dataclass(frozen=True)
class WritableBank:
    """A bank the agent may write, as shown in a prompt.

    Attributes:
        name: The bank name.
        kind: The bank kind (decides the audience description).
    """

    name: str
    kind: BankKind


#: Added to the default system text when agents may forward memories.
FORWARD_SYSTEM_NOTE = (
    'Your reply also has "forward": the number of one of your memories to pass on '
    'unchanged into "memory_bank", or "" to forward nothing.'
)


def shared_text(
    system_prompt: str | None = None,
    scenario: str = DEFAULT_SCENARIO,
    forward: bool = False,
    instructions: Sequence[str] = (),
) -> str:
    """The shared system text: the system prompt, the scenario, then fixed instructions.

    Args:
        system_prompt: Replaces :data:`DEFAULT_SYSTEM_PROMPT` when given.
        scenario: The scenario text.
        forward: Agents may forward memories: the default system text gains
            :data:`FORWARD_SYSTEM_NOTE` (a given ``system_prompt`` is used as is).
        instructions: Instructions that are the same for every agent and step (e.g.
            :data:`PASS_ON_INSTRUCTION`), each appended as its own paragraph; empty ones
            are skipped.
    """
    system = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    if forward and system_prompt is None:
        system = f"{system}\n{FORWARD_SYSTEM_NOTE}"
    parts = [system, f"Scenario: {scenario.strip()}"]
    parts += [text.strip() for text in instructions if text.strip()]
    return "\n\n".join(parts)


def persona_text(persona: Persona) -> str:
    """The persona paragraph: ``You are NAME, a ROLE. DESCRIPTION``."""
    return f"You are {persona.name}, a {persona.role}. {persona.description}"


def memories_text(memories: Sequence[MemoryLine], max_memory_chars: int) -> str:
    """The numbered memory list, one line per memory.

    Every text is neutralised and capped at ``max_memory_chars``, and its newlines become
    spaces, so a memory cannot fake further list items or lines of the prompt. When a
    memory comes from a bank agents cannot write (the lessons bank), a last line says who
    writes it (:func:`topologies.banks.read_only_legend`).
    """
    if not memories:
        return "Memories: (none yet)"
    lines = ["Memories:"]
    for i, memory in enumerate(memories, start=1):
        text = neutralise(memory.text, max_memory_chars).replace("\n", " ")
        lines.append(f"{i}. [{memory.bank_name}] {text}")
    legend = read_only_legend(memory.bank_name for memory in memories)
    if legend is not None:
        lines.append(legend)
    return "\n".join(lines)


def writable_text(writable: Sequence[WritableBank]) -> str:
    """The list of banks the agent may write, each with who reads it, shared ones first."""
    if not writable:
        return "Banks you may write: none (leave memory_bank empty)."
    ordered = sorted(writable, key=lambda b: not BankKind(b.kind).shared)
    parts = [f"{b.name} ({BankKind(b.kind).audience})" for b in ordered]
    return "Banks you may write: " + "; ".join(parts) + "."


def decision_text(task: str, option_texts: Sequence[str], letters: str) -> str:
    """A decision task as shown: the task, then ``X. option`` lines in shown order.

    Args:
        task: The task text.
        option_texts: The options' texts in the order shown.
        letters: The labels, one per option (``"ABC..."``).
    """
    lines = [task.strip(), "Options:"]
    lines += [
        f"{letter}. {text.strip()}" for letter, text in zip(letters, option_texts, strict=False)
    ]
    return "\n".join(lines)


def act_user_text(
    persona: Persona,
    memories: Sequence[MemoryLine],
    writable: Sequence[WritableBank],
    task: str,
    max_memory_chars: int,
    instruction: str = PASS_ON_INSTRUCTION,
) -> str:
    """The agent-specific text of a task prompt.

    Order: persona, writable banks (both stable from step to step, so an agent's prompts
    share them as a cached prefix), task, memories, then ``instruction`` (omitted when
    blank). The memories come last before the closing instruction, right before the
    reply, so that even a small model acts on them (and the reply's first token follows
    the instruction directly, which log-probability scoring needs).
    """
    parts = [
        persona_text(persona),
        writable_text(writable),
        f"Task: {task.strip()}",
        memories_text(memories, max_memory_chars),
    ]
    if instruction.strip():
        parts.append(instruction.strip())
    return "\n\n".join(parts)


def probe_user_text(
    persona: Persona, memories: Sequence[MemoryLine], question: str, max_memory_chars: int
) -> str:
    """The agent-specific text of a probe prompt (no task, no writable banks)."""
    return "\n\n".join(
        [
            persona_text(persona),
            memories_text(memories, max_memory_chars),
            f"Question: {question.strip()}",
        ]
    )


def act_messages(
    shared: str,
    persona: Persona,
    memories: Sequence[MemoryLine],
    writable: Sequence[WritableBank],
    task: str,
    max_memory_chars: int,
    instruction: str = PASS_ON_INSTRUCTION,
) -> tuple[ChatMessage, ChatMessage]:
    """The two messages of a task prompt: ``[system(shared), user(agent text)]``."""
    user = act_user_text(persona, memories, writable, task, max_memory_chars, instruction)
    return ChatMessage(Role.SYSTEM, shared), ChatMessage(Role.USER, user)


def probe_messages(
    shared: str,
    persona: Persona,
    memories: Sequence[MemoryLine],
    question: str,
    max_memory_chars: int,
) -> tuple[ChatMessage, ChatMessage]:
    """The two messages of a probe prompt, with the same shared system message."""
    return (
        ChatMessage(Role.SYSTEM, shared),
        ChatMessage(Role.USER, probe_user_text(persona, memories, question, max_memory_chars)),
    )


def shared_prefix_order(prompts: Sequence[Sequence[ChatMessage]]) -> list[int]:
    """The order in which to send a batch so that neighbours share the longest prefixes.

    Sorting the prompts by their messages (role and text, message by message) puts every
    group of prompts with a common prefix next to each other, and of two prompts the one
    that is a prefix of the other first (a trie walk). Engines that reuse only the
    previous prompt's cached prefix (llama.cpp) then evaluate just what differs; engines
    with a block cache (vLLM) see each shared block computed before its next use.

    Args:
        prompts: The batch's conversations, in the caller's order.

    Returns:
        A permutation of ``range(len(prompts))``: ``prompts[order[0]]`` is sent first.
        Equal prompts keep the caller's order (the sort is stable), so the order depends
        only on the prompts.
    """
    keys = [tuple((m.role.value, m.content) for m in prompt) for prompt in prompts]
    return sorted(range(len(prompts)), key=keys.__getitem__)


def prompt_sha256(messages: Sequence[ChatMessage]) -> str:
    """Hex sha256 of the messages (roles and contents, canonical JSON)."""
    payload = json.dumps(
        [[m.role.value, m.content] for m in messages], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
