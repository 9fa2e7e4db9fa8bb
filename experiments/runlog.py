"""The log file of a run: ``RUN_DIR/run.log``, written through the logging module.

While a run executes, :func:`run_log` attaches a file handler to the loggers of the
project's packages (``sim``, ``agents``, ``topologies``, ``experiments``) and removes it
afterwards; nothing is configured at import. Each resume appends to the same file, so it
tells the whole story of a run: start, checkpoints, steps, failures with tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

#: The log file inside a run directory.
LOG_FILE = "run.log"

#: Loggers whose records go to a run's log file (module loggers are their children).
PACKAGE_LOGGERS = ("sim", "agents", "topologies", "experiments")

#: The format of a log line.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def attached(handler: logging.Handler, level: int) -> Iterator[logging.Handler]:
    """Attach ``handler`` to the package loggers for the duration of the block.

    The package loggers are lowered to ``level`` if they would drop such records, and
    restored (level and handlers) on exit.
    """
    loggers = [logging.getLogger(name) for name in PACKAGE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
    try:
        yield handler
    finally:
        for logger, old in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(old)


@contextlib.contextmanager
def run_log(run_dir: str | os.PathLike[str], level: int = logging.INFO) -> Iterator[Path]:
    """Send the package loggers' records of at least ``level`` to ``run_dir/run.log``.

    Args:
        run_dir: The (existing) run directory.
        level: The lowest level written.

    Yields:
        The log file's path.
    """
    path = Path(run_dir) / LOG_FILE
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(level)
    try:
        with attached(handler, level):
            yield path
    finally:
        handler.close()
