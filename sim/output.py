"""Atomic output files: write to a temporary file in the same directory, then rename.

A reader (or a crash) never sees a half-written table: either the previous file or the
new one is there.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
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
