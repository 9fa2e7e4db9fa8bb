"""How a run builds the engines that guards and detectors name themselves ("own engines").

An LLM guard or a judge detector with an ``engine`` spec of its own does not use the
run's engine: it asks an :class:`EngineFactory` for one, giving its spec and its config
key (``guards.<name>``, ``memes.<id>.detector``). The run decides what that means: a run
with a run directory wraps every own engine in a replay cache there
(:class:`experiments.replay_files.RunReplays`), so a resumed or forked run is served the
completions of the steps it repeats; without a factory (a model built directly, no run
directory) the spec is simply built (:func:`build_own_engine`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agents.llm.base import Engine, EngineSpecBase


class EngineFactory(Protocol):
    """Builds the own engine of one guard or detector (the caller closes it)."""

    def __call__(self, spec: EngineSpecBase, key: str) -> Engine:
        """A ready engine for ``spec``.

        Args:
            spec: The engine spec the guard or detector names.
            key: Its config key (``guards.<name>`` or ``memes.<id>.detector``): unique in
                the run, letters, digits, ``_``, ``-`` and ``.`` only.

        Raises:
            EngineError: The engine cannot be built.
        """
        ...


def build_own_engine(spec: EngineSpecBase, key: str) -> Engine:
    """The plain factory: ``build_engine(spec)``, nothing recorded (``key`` is unused)."""
    from agents.llm import build_engine

    return build_engine(spec)


class OwnEngine:
    """The own engine of one guard or detector: built by a factory on first use, closable.

    Args:
        spec: The engine spec the guard or detector names.
        key: Its config key (``guards.<name>``, ``memes.<id>.detector``), under which the
            factory builds it (a run with a run directory records it in
            ``completions-<key>.jsonl``).
        factory: The run's engine factory (:func:`build_own_engine` without one).
    """

    def __init__(self, spec: EngineSpecBase, key: str, factory: EngineFactory) -> None:
        self.spec = spec
        self.key = key
        self.factory = factory
        self._engine: Engine | None = None

    def __call__(self) -> Engine:
        """The engine (built now if not built yet)."""
        if self._engine is None:
            self._engine = self.factory(self.spec, self.key)
        return self._engine

    def close(self) -> None:
        """Close the engine if it was built (a later call builds it again)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
