"""Row order does not depend on polars' thread count.

``row_order_probe.py`` writes a contagion run, a defenses sweep, an LLM-like sweep (the
scripted stand-in server), their reports, analysis frames and the CLI's printed
summaries; it runs twice, with ``POLARS_MAX_THREADS=1`` and with polars' default, in
fresh processes (polars reads the variable once, at import). Every CSV and text file
must match byte for byte, every Parquet file row for row once the wall-clock columns
(``*_wall_s``: timings, not results) are dropped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

PROBE = Path(__file__).parent / "row_order_probe.py"
ROOT = Path(__file__).resolve().parents[2]


def _probe(out: Path, threads: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if threads is not None:
        env["POLARS_MAX_THREADS"] = threads
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(PROBE), str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".csv", ".txt")
    )


def _timeless(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    return frame.drop(c for c in frame.columns if c.endswith("_wall_s"))


def test_every_table_report_and_summary_has_the_same_rows_with_one_thread_or_many(tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    _probe(one, "1")
    _probe(many, None)
    files = _files(one)
    assert files == _files(many)
    assert sum(p.suffix == ".csv" for p in files) >= 4
    assert sum(p.suffix == ".parquet" for p in files) >= 100
    for rel in files:
        if rel.suffix == ".parquet":
            a, b = _timeless(one / rel), _timeless(many / rel)
            assert a.equals(b), rel
        else:
            assert (one / rel).read_bytes() == (many / rel).read_bytes(), rel
