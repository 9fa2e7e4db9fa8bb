"""One engine per sweep: the runs of a sweep share the engines they have in common.

A sweep run one run at a time in this process (local backend, ``jobs = 1``) builds each
distinct engine spec of its LLM runs once (the model is loaded once) and lends it to
every run that uses it (:class:`SharedEngines`). A sweep whose runs execute in several
processes (``jobs > 1``, or Ray tasks on this machine) starts one managed local server
per distinct llama.cpp engine spec instead (:class:`SharedServers`, see
:mod:`experiments.managed_server`), and each run talks to it through the ``openai``
engine (:func:`served_engine`). Either way each run still wraps the engine in its own
replay cache (``RUN_DIR/completions.jsonl``) and failed-request tally, so runs stay
reproducible through their replay keys (which name the model, never the engine or
transport), and resume works as for a run of its own. Sampling does not depend on which
runs went before: every request carries a seed drawn from its run's generator (and
engines derive one from the request key otherwise, see :mod:`agents.llm.llamacpp`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from experiments.config import RunConfig
    from experiments.managed_server import ManagedServer

#: ``engine spec key -> openai engine spec (JSON data)`` of the runs a shared server
#: serves; passed to worker processes and Ray tasks (plain data, so it pickles).
Served = dict[str, dict[str, Any]]


def engine_key(config: RunConfig) -> str | None:
    """The key of ``config``'s LLM engine spec (its JSON); None for other policies."""
    from agents.llm_policy import LLMPolicySpec

    spec = config.policy
    if not isinstance(spec, LLMPolicySpec):
        return None
    return spec.engine.model_dump_json()


class BorrowedEngine:
    """An engine lent to one run, built when the run first uses it.

    Everything is the lender's, except that ``close`` does nothing (the sweep closes the
    engine after its last run). The shared engine is asked for on first use, so a run
    that fails while building its model (graph, banks, seeds) loads no model.

    Args:
        provide: Returns the shared engine (building it the first time).
    """

    def __init__(self, provide: Callable[[], Engine]) -> None:
        self._provide = provide
        self._inner: Engine | None = None

    @property
    def inner(self) -> Engine:
        """The shared engine (asked for on first use)."""
        if self._inner is None:
            self._inner = self._provide()
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (e.g. while unpickling): no delegation
            raise AttributeError(name)
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

        The engine is built when a run first uses it (then kept for the next runs), and
        its :class:`agents.llm.base.EngineError` is raised there if it cannot start.
        """
        from agents.llm_policy import LLMPolicySpec

        key = engine_key(config)
        if key is None:
            return None
        spec = config.policy
        assert isinstance(spec, LLMPolicySpec)

        def provide() -> Engine:
            if key not in self._engines:
                from agents.llm import build_engine

                self._engines[key] = build_engine(spec.engine)
                self.built += 1
            return self._engines[key]

        return BorrowedEngine(provide)

    def close(self) -> None:
        """Close every engine built."""
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()

    def __enter__(self) -> SharedEngines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SharedServers:
    """The managed servers of a multi-process sweep, one per distinct llama.cpp spec.

    Use as a context manager; :meth:`start` starts a server for every distinct
    ``llamacpp`` engine spec among the given runs (runs with other engines, or no LLM,
    are left to build their own engine) and returns what :func:`served_engine` needs.

    Args:
        log_dir: Where each server's log goes (``shared-server-<i>.log``).
        lock_path: The sweep directory's lock file; each server holds it (shared) while
            it lives, so a rerun is refused until it is gone. None: no lock.
        lock: The sweep's lock function (``fd, exclusive=...``).

    Attributes:
        servers: The servers started, in start order (kept after :meth:`close`).
    """

    def __init__(
        self,
        log_dir: Path,
        lock_path: Path | None = None,
        lock: Callable[..., bool] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.lock_path = lock_path
        self.lock = lock
        self.servers: list[ManagedServer] = []
        self._served: Served = {}
        self._fds: list[int] = []

    @property
    def started(self) -> int:
        """How many servers were started."""
        return len(self.servers)

    def start(self, configs: Iterable[RunConfig]) -> Served:
        """Start one server per distinct llama.cpp engine spec of ``configs``.

        Returns:
            ``engine spec key -> openai engine spec data`` for :func:`served_engine`.

        Raises:
            agents.llm.base.EngineError: A server cannot start (its log's tail is in the
                message); the servers already started are stopped.
        """
        from agents.llm.llamacpp import LlamaCppSpec
        from experiments.managed_server import ManagedServer

        try:
            for config in configs:
                key = engine_key(config)
                engine = getattr(config.policy, "engine", None)
                if key is None or key in self._served or not isinstance(engine, LlamaCppSpec):
                    continue
                log_path = self.log_dir / f"shared-server-{len(self.servers)}.log"
                server = ManagedServer(engine, log_path, self._lock_fd())
                self.servers.append(server)
                server.start()
                self._served[key] = server.openai_spec().model_dump(mode="json")
        except BaseException:
            self.close()
            raise
        return dict(self._served)

    def _lock_fd(self) -> int | None:
        """A new descriptor of the sweep's lock file, locked shared (for a server)."""
        if self.lock_path is None:
            return None
        fd = os.open(self.lock_path, os.O_RDWR)
        if self.lock is not None:
            self.lock(fd, exclusive=False)
        self._fds.append(fd)
        return fd

    def describe(self) -> list[dict[str, Any]]:
        """What the sweep manifest records: one entry per server started."""
        return [server.describe() for server in self.servers]

    def close(self) -> None:
        """Stop every server and release their lock descriptors (``servers`` stays)."""
        for server in self.servers:
            server.stop()
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)
        self._served = {}

    def __enter__(self) -> SharedServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def served_engine(config: RunConfig, served: Served | None) -> Engine | None:
    """The ``openai`` engine through which ``config``'s run uses a shared server.

    None when no server serves the run's engine spec (other engines, other policies, or
    no servers): the run then builds its own engine.
    """
    key = engine_key(config)
    if not served or key is None or key not in served:
        return None
    from agents.llm.openai_compat import OpenAIEngine, OpenAISpec

    return OpenAIEngine(OpenAISpec.model_validate(served[key]))
