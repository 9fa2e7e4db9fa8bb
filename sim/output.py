"""Atomic output files: write to a temporary file in the same directory, then rename.

A reader (or a crash) never sees a half-written table: either the previous file or the
new one is there. Files and directories made here get the permissions an ordinary
``open``/``mkdir`` would give under the process umask (``mkstemp``/``mkdtemp`` alone
would leave them private, 0600/0700), so colleagues sharing a cluster can read runs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl


def process_umask() -> int:
    """The process umask, read without changing it.

    On Linux it is read from ``/proc/self/status`` (the ``Umask:`` line), which leaves the
    umask untouched for other threads. Elsewhere it falls back to setting and restoring
    it with :func:`os.umask` (a brief window in which another thread creating a file
    would see umask 0o022).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode of a new regular file under the process umask (``0o666 & ~umask``)."""
    return 0o666 & ~process_umask()


def dir_mode() -> int:
    """The mode of a new directory under the process umask (``0o777 & ~umask``)."""
    return 0o777 & ~process_umask()


def make_temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new, uniquely named directory in ``parent`` with umask-honouring permissions.

    Like :func:`tempfile.mkdtemp` (unique, created atomically, owned by the caller), but
    its mode is that of an ordinary ``mkdir``, so it can be renamed into place as a
    shared output directory.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(dir_mode())
    return path


def _atomic(path: Path, write: Callable[[Path], object]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_parquet_atomic(frame: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a polars DataFrame to Parquet atomically."""
    return _atomic(Path(path), lambda tmp: frame.write_parquet(tmp))


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write a JSON document atomically (sorted keys, indented)."""

    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    return _atomic(Path(path), write)


def read_tables(run_dir: str | os.PathLike[str]) -> dict[str, pl.DataFrame]:
    """Every ``NAME.parquet`` table directly in ``run_dir``, by name."""
    return {p.stem: pl.read_parquet(p) for p in sorted(Path(run_dir).glob("*.parquet"))}


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write bytes atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_bytes(data))
