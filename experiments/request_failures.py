"""The failed-request threshold of a run: count failed LLM requests per step, stop early.

A *failed request* is a completion whose finish reason is ``ERROR``, or an option scoring
with an ``error``: the engine could not serve it (server unreachable, timeout, prompt
rejected). Replies that arrive but do not parse are not failed requests (they are
counted in ``steps.generation_failures``). A run whose step has at least
``failed_request_share_limit`` of its requests failed stops with
:class:`FailedRequestsError` instead of completing on answers that never came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.llm.base import EngineError, FinishReason, accepts_on_complete, can_score

if TYPE_CHECKING:
    from agents.llm.base import (
        Completion,
        CompletionCallback,
        Engine,
        GenerationRequest,
        OptionScores,
        ScoreRequest,
    )


class FailedRequestsError(RuntimeError):
    """A step's share of failed LLM requests reached the configured limit."""


@dataclass(frozen=True)
class RequestCounts:
    """Requests and failed requests over some calls.

    Attributes:
        requests: Requests sent.
        failed: Requests that failed (finish reason ``ERROR``).
        first_error: The error text of the first failed request (None if none failed).
    """

    requests: int = 0
    failed: int = 0
    first_error: str | None = None

    @property
    def share(self) -> float:
        """``failed / requests`` (0.0 when no request was sent)."""
        return self.failed / self.requests if self.requests else 0.0


class RequestTally:
    """An engine that forwards to another and counts requests and failed requests.

    It has the inner engine's interface: ``generate`` (with its optional ``on_complete``
    callback) and ``score`` (where the inner engine scores options) are counted and
    forwarded, every other attribute (``name``, ``model_id``, ...) is the inner engine's.
    :meth:`take` returns the counts since the last call and starts over, so a runner takes
    it once per step. Closing it closes the inner engine.

    Args:
        inner: The engine to forward to.
    """

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self._counts = RequestCounts()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"RequestTally({self.inner!r})"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        """Forward the batch to the inner engine and count its completions.

        ``on_complete`` is passed on when the inner engine takes it; otherwise it is
        called for every completion once the batch returns.
        """
        if on_complete is not None and accepts_on_complete(self.inner):
            completions = self.inner.generate(requests, on_complete=on_complete)
        else:
            completions = self.inner.generate(requests)
            if on_complete is not None:
                for index, completion in enumerate(completions):
                    on_complete(index, completion)
        errors = [c.error or "error" for c in completions if c.finish_reason == FinishReason.ERROR]
        self._count(len(completions), errors)
        return completions

    @property
    def supports_scoring(self) -> bool:
        """Whether the inner engine scores options (see ``agents.llm.base.can_score``)."""
        return can_score(self.inner)

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """Forward option scorings to the inner engine and count those with an error.

        Raises:
            EngineError: The inner engine does not score options.
        """
        if not can_score(self.inner):
            raise EngineError(f"engine {self.inner!r} does not score options")
        scores = self.inner.score(requests)  # type: ignore[attr-defined]
        self._count(len(scores), [s.error for s in scores if s.error is not None])
        return scores

    def _count(self, requests: int, errors: list[str]) -> None:
        counts = self._counts
        self._counts = RequestCounts(
            requests=counts.requests + requests,
            failed=counts.failed + len(errors),
            first_error=counts.first_error or (errors[0] if errors else None),
        )

    def take(self) -> RequestCounts:
        """The counts since the previous call (or since creation); the tally restarts."""
        counts, self._counts = self._counts, RequestCounts()
        return counts

    def close(self) -> None:
        """Close the inner engine."""
        self.inner.close()


def check_step(counts: RequestCounts, limit: float, step: int) -> None:
    """Raise when a step's share of failed requests reached ``limit``.

    Args:
        counts: The step's requests (from :meth:`RequestTally.take`).
        limit: ``failed_request_share_limit`` of the run config, in (0, 1].
        step: The step's number (for the message).

    Raises:
        FailedRequestsError: ``counts.failed / counts.requests >= limit`` (a step with
            no requests never fails).
    """
    if counts.requests and counts.failed >= limit * counts.requests:
        error = (counts.first_error or "").splitlines()[0][:200] if counts.first_error else ""
        raise FailedRequestsError(
            f"{counts.failed} of {counts.requests} LLM requests failed in step {step} "
            f"(failed_request_share_limit = {limit:g}); first error: {error or 'unknown'}"
        )
