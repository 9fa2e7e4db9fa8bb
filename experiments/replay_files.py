"""The replay caches of a run directory: one per engine the run builds.

Every engine of a run with a run directory sits behind a
:class:`~agents.llm.replay.ReplayEngine` over a JSONL file in that directory, so a
resumed run or a fork is served the completions of the steps it repeats and reproduces
the uninterrupted run exactly, whatever the engine (hosted, sampling):

* ``completions.jsonl`` — the LLM policy's engine (and everything that uses the run's
  engine: reflection, probes, guards and judges without an engine of their own); built by
  :func:`experiments.runner.build_run_engine`;
* ``completions-<key>.jsonl`` — the own engine of a guard (``key`` =
  ``guards.<name>``) or of a judge detector (``memes.<id>.detector``), built by
  :class:`RunReplays` on first use. A key longer than the name limit is shortened with a
  hash suffix (:func:`experiments.names.bounded_name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.names import bounded_name

if TYPE_CHECKING:
    from agents.llm.base import Engine, EngineSpecBase
    from agents.llm.replay import ReplayMode

#: The replay cache of the run's own engine (the LLM policy's), inside its run directory.
COMPLETIONS_FILE = "completions.jsonl"

#: The config keys an own engine is built under (``guards.<name>``,
#: ``memes.<id>.detector``): dotted names, no path separator.
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def own_completions_file(key: str) -> str:
    """The file name of the replay cache of the own engine built under ``key``.

    Raises:
        ValueError: ``key`` is not a dotted config key (it would not be one path component).
    """
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"engine key {key!r}: not a config key such as 'guards.review'")
    return f"completions-{bounded_name([key])}.jsonl"


def replay_files(run_dir: str | Path) -> list[Path]:
    """The replay caches in ``run_dir``: ``completions.jsonl`` first, then the own engines'.

    Only regular files of these names count (what a fork copies into its run directory).
    """
    run_dir = Path(run_dir)
    found = [run_dir / COMPLETIONS_FILE, *sorted(run_dir.glob("completions-*.jsonl"))]
    return [path for path in found if path.is_file() and not path.is_symlink()]


@dataclass(frozen=True)
class RunReplays:
    """The engine factory of a run directory: own engines behind a replay cache there.

    Passed to the model as its ``engines`` (:class:`agents.llm.factory.EngineFactory`);
    each guard or judge with an engine of its own gets a
    :class:`~agents.llm.replay.ReplayEngine` over ``directory/completions-<key>.jsonl``.

    Attributes:
        directory: The run directory holding the caches.
        mode: ``"auto"`` (a run, a resume, a fork's own steps: hits served, misses
            generated and recorded) or ``"replay"`` (a fork re-simulating its parent:
            served from the parent's files only, nothing built, nothing written).
        retry_errors: In mode ``"auto"``, whether requests recorded as failed are sent
            again (default: served as failed, as the run's own engine does; see
            :func:`experiments.runner.build_run_engine`).
    """

    directory: Path
    mode: ReplayMode = "auto"
    retry_errors: bool = False

    def __call__(self, spec: EngineSpecBase, key: str) -> Engine:
        """The own engine of ``key``: ``spec`` built (unless replaying) behind its cache.

        Raises:
            EngineError: The engine cannot be built, or (mode ``"replay"``) its cache file
                is missing.
            ValueError: ``key`` is not a config key.
        """
        from agents.llm import build_engine
        from agents.llm.replay import ReplayEngine

        path = Path(self.directory) / own_completions_file(key)
        if self.mode == "replay":
            return ReplayEngine(None, path, "replay")
        inner = build_engine(spec)
        try:
            return ReplayEngine(inner, path, self.mode, retry_errors=self.retry_errors)
        except BaseException:
            inner.close()
            raise
