"""One engine per sweep: the runs of a sweep share the engines they have in common.

A sweep run one run at a time in this process (local backend, ``jobs = 1``) builds each
distinct engine spec of its LLM runs once (the model is loaded once) and lends it to
every run that uses it. Each run still wraps the engine in its own replay cache
(``RUN_DIR/completions.jsonl``) and failed-request tally, so runs stay reproducible
through their replay keys, and resume works as for a run of its own. Sampling does not
depend on which runs went before: engines derive each request's seed from its request
key (see :mod:`agents.llm.llamacpp`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from experiments.config import RunConfig


class BorrowedEngine:
    """An engine lent to one run.

    Everything is the lender's, except that ``close`` does nothing (the sweep closes the
    engine after its last run).

    Args:
        inner: The shared engine.
    """

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        """Leave the shared engine open for the next run."""


class SharedEngines:
    """The engines of a sweep's runs, each built on first use and closed at the end.

    Use as a context manager; :meth:`lend` gives a run its engine (None for runs
    without an LLM policy).

    Attributes:
        built: How many engines were built (one per distinct engine spec used).
    """

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self.built = 0

    def lend(self, config: RunConfig) -> BorrowedEngine | None:
        """The shared engine of ``config``'s LLM policy (None for other policies).

        Raises:
            agents.llm.base.EngineError: The engine cannot start.
        """
        from agents.llm_policy import LLMPolicySpec

        spec = config.policy
        if not isinstance(spec, LLMPolicySpec):
            return None
        key = spec.engine.model_dump_json()
        if key not in self._engines:
            from agents.llm import build_engine

            self._engines[key] = build_engine(spec.engine)
            self.built += 1
        return BorrowedEngine(self._engines[key])

    def close(self) -> None:
        """Close every engine built."""
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()

    def __enter__(self) -> SharedEngines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
