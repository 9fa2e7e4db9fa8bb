"""Which entries of a run directory this tool wrote, and which it did not.

``--overwrite`` replaces a run directory whole (the old directory is deleted once the new
run succeeded), so it may do so only when everything in it is the tool's: a file a
researcher saved into a run directory (notes, a notebook's figure, a copy of a table
under another name) would be deleted with it. :func:`foreign_entries` lists what is not
the tool's, by name and type:

* directly in the run directory: ``manifest.json``, ``run.log``, the write lock
  ``.memespread.lock``, the tables ``NAME.parquet`` of :data:`sim.tables.OUTPUT_TABLES`,
  the replay caches ``completions.jsonl`` and ``completions-*.jsonl``, the atomic
  writers' temporary files ``.NAME.*.tmp`` (regular files), and the directories
  ``checkpoints/`` and ``report/``;
* in ``checkpoints/``: checkpoint directories ``step-*`` and unfinished ones ``.tmp-*``;
* in ``report/``: the files ``memespread report`` writes for a run (:data:`REPORT_FILES`)
  and their temporary files.

Everything else is foreign. Names are matched exactly (no case folding).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from experiments.replay_files import COMPLETIONS_FILE
from sim.tables import table_names

#: The files of a run directory this tool writes, besides tables and replay caches.
RUN_FILES = frozenset({"manifest.json", "run.log", ".memespread.lock", COMPLETIONS_FILE})

#: Name patterns of further files the tool writes directly in a run directory.
RUN_FILE_PATTERNS = ("completions-*.jsonl", ".*.tmp")

#: The files ``memespread report RUN_DIR`` writes into ``RUN_DIR/report``.
REPORT_FILES = frozenset(
    {
        "summary.csv",
        "effects.csv",
        "personas.csv",
        "prevalence.png",
        "transmissions.png",
        "funnel.png",
        "personas.png",
    }
)

#: The subdirectory holding checkpoints (``experiments.runner.CHECKPOINTS_DIR``).
CHECKPOINTS = "checkpoints"

#: The subdirectory ``memespread report`` writes.
REPORT = "report"


def foreign_entries(run_dir: str | os.PathLike[str]) -> list[str]:
    """The entries of ``run_dir`` that this tool did not write, as sorted relative paths.

    Args:
        run_dir: A run directory (one that holds a run's ``manifest.json``).

    Returns:
        Paths relative to ``run_dir`` (``notes.txt``, ``report/mine.png``); empty when
        everything in it is the tool's. A directory that is foreign is listed once, not
        its contents. Symlinks are foreign whatever their name.
    """
    root = Path(run_dir)
    found: list[str] = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_symlink():
                found.append(entry.name)
            elif entry.is_dir():
                if entry.name == CHECKPOINTS:
                    found.extend(_foreign_in(root, CHECKPOINTS, dirs=("step-*", ".tmp-*")))
                elif entry.name == REPORT:
                    found.extend(_foreign_in(root, REPORT, files=(*REPORT_FILES, ".*.tmp")))
                else:
                    found.append(entry.name)
            elif not _is_run_file(entry.name):
                found.append(entry.name)
    return sorted(found)


def _is_run_file(name: str) -> bool:
    """Whether a regular file named ``name`` directly in a run directory is the tool's."""
    if name in RUN_FILES:
        return True
    if name.endswith(".parquet") and name.removesuffix(".parquet") in table_names():
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in RUN_FILE_PATTERNS)


def _foreign_in(
    root: Path, sub: str, *, files: tuple[str, ...] = (), dirs: tuple[str, ...] = ()
) -> list[str]:
    """The entries of ``root/sub`` that match none of the file or directory patterns."""
    found = []
    with os.scandir(root / sub) as entries:
        for entry in entries:
            patterns = () if entry.is_symlink() else dirs if entry.is_dir() else files
            if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in patterns):
                found.append(f"{sub}/{entry.name}")
    return found


def describe_foreign(run_dir: str | os.PathLike[str], foreign: list[str]) -> str:
    """The one-line reason a run directory holding ``foreign`` entries is not replaced."""
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return (
        f"run directory {run_dir} holds files memespread did not write ({shown}); "
        "--overwrite replaces the whole directory and would delete them: move them out of it"
    )
