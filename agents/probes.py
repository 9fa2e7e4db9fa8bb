"""Adoption probes: which memes an agent's own words express.

Every probe asks each agent :data:`agents.prompts.PROBE_QUESTION` plus any extra questions;
every meme's detector classifies every answer, and an agent adopts a meme exactly when
at least one of its answers carries it. Decisions are returned for ALL (agent, meme)
pairs, so a probe can also revoke an adoption.

The text classified for one answer is the parsed ``answer`` when the reply parsed
(``OK``); for a ``TRUNCATED`` or ``MALFORMED`` reply it is the raw completion text (what
the agent did say), without a leading reasoning block (thinking mode: the agent's
reasoning is not its answer, see :func:`agents.parsing.reply_text`); an ``EMPTY`` or
``ENGINE_ERROR`` reply says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.llm.base import Completion
from agents.parsing import ParsedOutput, ParseStatus, reply_text
from agents.prompts import PROBE_QUESTION
from sim.memebook import MemeBook
from sim.policy import Adoptions


def probe_questions(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The questions of a probe: the fixed priority question, then ``extra`` in order."""
    return (PROBE_QUESTION, *extra)


def answer_text(parsed: ParsedOutput, completion: Completion) -> str:
    """The text a probe reply contributes to adoption (see the module docstring)."""
    if parsed.status is ParseStatus.OK:
        return parsed.answer
    if parsed.status in (ParseStatus.TRUNCATED, ParseStatus.MALFORMED):
        return reply_text(completion.text)
    return ""


def adoptions_from_answers(answers: Sequence[str], n_agents: int, memes: MemeBook) -> Adoptions:
    """Adoption decisions for all (agent, meme) pairs from agent-major probe answers.

    Args:
        answers: ``n_agents * q`` answer texts, agent-major (agent 0's q answers first).
        n_agents: Number of agents.
        memes: The run's memes and detectors.

    Returns:
        One decision per (agent, meme), agent-major; ``cause`` is -1.

    Raises:
        ValueError: ``len(answers)`` is not a multiple of ``n_agents``.
    """
    m = len(memes)
    if n_agents == 0 or len(answers) % n_agents:
        raise ValueError(
            f"answers: {len(answers)} texts for n_agents = {n_agents}; need q * n_agents"
        )
    q = len(answers) // n_agents
    adopted = np.zeros((n_agents, m), dtype=np.bool_)
    for meme, detector in enumerate(memes.detectors):
        carries = np.asarray(detector.carries(list(answers)), dtype=np.bool_)
        adopted[:, meme] = carries.reshape(n_agents, q).any(axis=1)
    return Adoptions(
        agent=np.repeat(np.arange(n_agents, dtype=np.int32), m),
        meme=np.tile(np.arange(m, dtype=np.int32), n_agents),
        adopted=adopted.ravel(),
        cause=np.full(n_agents * m, -1, dtype=np.int64),
    )
