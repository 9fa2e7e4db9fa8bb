"""How LLM guards reach an engine and ask it about notes (shared by ``review`` and ``consensus``).

A guard with an ``engine`` spec has the run's engine factory build its own engine on
first use, under the key ``guards.<name>`` (a run with a run directory records it in
``completions-guards.<name>.jsonl`` there, so a resume or fork replays its judgments; see
:mod:`agents.llm.factory`), and closes it with :meth:`EngineHolder.close`. Without an
``engine`` spec it uses the run's engine (the LLM policy's, behind the run's replay cache,
so its judgments are recorded and replayed with the run's). A guard with neither cannot
be built: the error names the guard.

Notes are agent-written, untrusted text: they are neutralised (control tokens and
chat-template markup made inert, length bounded) before they enter a reviewer's prompt,
and so are the related memories shown next to a note (:func:`note_requests`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agents.llm.factory import OwnEngine, build_own_engine
from agents.parsing import reply_text
from sim.guards.base import GuardSetup, RunEngine

#: Longest note text shown to a reviewer (characters).
NOTE_CHARS = 600
#: Longest text of each related memory shown next to a note (characters).
RELATED_CHARS = 300


class EngineHolder:
    """The engine of one LLM guard: its own (built on first use) or the run's.

    Args:
        spec: The guard's engine spec (None: the run's engine).
        key: The guard's config key, for messages (e.g. ``guards.review``).
    """

    def __init__(self, spec: Any, key: str) -> None:
        self.spec = spec
        self.key = key
        self._run: RunEngine = None
        self._own = None if spec is None else OwnEngine(spec, key, build_own_engine)

    def bind(self, setup: GuardSetup, name: str) -> None:
        """Learn the run's engine provider and engine factory.

        Args:
            setup: What the guard learns from the model (``run_engine``, ``engines``).
            name: The guard's name in the run; its own engine is built under the key
                ``guards.<name>``.

        Raises:
            ValueError: No engine spec and the run has no engine.
        """
        if self.spec is None and setup.run_engine is None:
            raise ValueError(
                f"{self.key}: needs an engine: set {self.key}.engine, or use an LLM policy "
                "(the guard then uses the run's engine)"
            )
        self._run = setup.run_engine
        if self.spec is not None:
            self.close()
            self._own = OwnEngine(self.spec, f"guards.{name}", setup.engines or build_own_engine)

    def __call__(self) -> Any:
        """The engine (built now if it is the guard's own and not built yet).

        Raises:
            ValueError: The guard's own engine cannot be built (the message says why).
        """
        if self._own is None:
            assert self._run is not None
            return self._run()
        from agents.llm.base import EngineError

        try:
            return self._own()
        except (EngineError, ValueError, OSError, ImportError) as err:
            raise ValueError(f"{self.key}.engine: cannot be built: {err}") from err

    def close(self) -> None:
        """Close the guard's own engine if it was built (the run's engine belongs to the run)."""
        if self._own is not None:
            self._own.close()


def _inline(text: str, max_chars: int) -> str:
    """``text`` neutralised, capped at ``max_chars`` and on one line."""
    from agents.containment import neutralise

    return neutralise(text, max_chars).replace("\n", " ")


def note_text(note: str, related: Sequence[str] | None = None) -> str:
    """The user message about one note: ``Note: ...``, then its related memories if given.

    With ``related`` (a list, possibly empty) a numbered ``Related memories:`` block
    follows the note (``Related memories: (none)`` when empty). Every text is neutralised,
    capped (:data:`NOTE_CHARS`, :data:`RELATED_CHARS`) and put on one line, so no text
    can fake further lines of the prompt.
    """
    out = "Note: " + _inline(note, NOTE_CHARS)
    if related is None:
        return out
    if not related:
        return out + "\n\nRelated memories: (none)"
    lines = [f"{i}. {_inline(t, RELATED_CHARS)}" for i, t in enumerate(related, start=1)]
    return out + "\n\nRelated memories:\n" + "\n".join(lines)


def note_requests(
    system: str,
    texts: Sequence[str],
    field: str,
    choices: Sequence[str],
    *,
    prefix: str,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | Sequence[int] = 0,
    related: Sequence[Sequence[str]] | None = None,
) -> list[Any]:
    """One chat request per note: ``system``, then the note (:func:`note_text`); JSON reply.

    Args:
        system: The system message.
        texts: The notes.
        field: The reply's JSON field; its value is one of ``choices``.
        choices: The allowed answers.
        prefix: Request ids are ``{prefix}-{i}``.
        max_tokens: Token budget per reply.
        temperature: Sampling temperature.
        seed: One sampling seed for every request, or one per note.
        related: Per note, the related memories shown after it (None: none shown, no block).
    """
    from agents.llm.base import ChatMessage, GenerationRequest, Role, SamplingParams

    schema = json.dumps(
        {
            "type": "object",
            "properties": {field: {"type": "string", "enum": list(choices)}},
            "required": [field],
        },
        sort_keys=True,
    )
    seeds = [int(s) for s in seed] if isinstance(seed, Sequence) else [int(seed)] * len(texts)
    if len(seeds) != len(texts) or (related is not None and len(related) != len(texts)):
        raise ValueError("note_requests: one seed and one related list per note")
    return [
        GenerationRequest(
            request_id=f"{prefix}-{i}",
            messages=(
                ChatMessage(Role.SYSTEM, system),
                ChatMessage(Role.USER, note_text(t, None if related is None else related[i])),
            ),
            sampling=SamplingParams(
                temperature=temperature,
                top_p=1.0 if temperature == 0 else 0.95,
                max_tokens=max_tokens,
                seed=seeds[i],
            ),
            json_schema=schema,
        )
        for i, t in enumerate(texts)
    ]


def parse_choice(text: str, field: str, choices: Sequence[str], default: str) -> str:
    """The choice in a reply: the JSON ``field``, else the first choice word, else ``default``.

    A leading reasoning block (thinking mode) is left out first.
    """
    text = reply_text(text)
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get(field) in choices:
            return str(data[field])
    except (json.JSONDecodeError, TypeError):
        pass
    lowered = text.lower()
    found = [(lowered.find(c), c) for c in choices if c in lowered]
    return min(found)[1] if found else default


def ask(
    engine: Callable[[], Any],
    requests: list[Any],
    field: str,
    choices: Sequence[str],
    default: str,
) -> tuple[list[str], int]:
    """Send ``requests`` as ONE batch; each reply's choice (``default`` for failed requests).

    Returns:
        The choices and the number of failed requests.
    """
    if not requests:
        return [], 0
    completions = engine().generate(requests)
    out, failed = [], 0
    for completion in completions:
        if completion.error is not None:
            failed += 1
            out.append(default)
        else:
            out.append(parse_choice(completion.text, field, choices, default))
    return out, failed
