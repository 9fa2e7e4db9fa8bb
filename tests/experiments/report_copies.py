"""A sweep reported twice: from disk, and from its runs read once with every run file deleted.

A report that reads a run directory again after :meth:`Sweep.with_runs` read it fails
on the second copy (its run directories hold no file); one that reads each run once
writes byte for byte what the report from disk writes.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from experiments.report import SweepReport, report, report_sweep, sweep_report_reads
from sim.analysis.loading import load_sweep


@contextmanager
def files_opened(below: Path, name: str) -> Iterator[list[Path]]:
    """The files called ``name`` below ``below`` that Python opens inside the block.

    Counted with an audit hook (:func:`sys.addaudithook`, the interpreter's ``open``
    event), so nothing of the project is replaced; Parquet files that polars reads in
    its own code raise no such event, manifests read with Python's ``open`` do. An audit
    hook cannot be removed: after the block it stays, recording nothing.
    """
    seen: list[Path] = []
    recording = [True]
    root = below.resolve()

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not recording[0] or not isinstance(args[0], str | Path):
            return
        path = Path(args[0])
        if path.name == name and path.resolve().is_relative_to(root):
            seen.append(path)

    sys.addaudithook(hook)
    try:
        yield seen
    finally:
        recording[0] = False


def reported_twice(sweep_dir: Path, root: Path) -> tuple[SweepReport, SweepReport]:
    """The reports of two copies of ``sweep_dir`` under ``root`` (same directory name).

    The first is ``report`` of its directory; the second is :func:`report_sweep` of the
    second copy read with :meth:`~sim.analysis.loading.Sweep.with_runs`, after every file
    of its run directories (tables, manifests) was deleted.

    Returns:
        The two reports, from disk first.
    """
    disk, held = (root / side / sweep_dir.name for side in ("disk", "held"))
    for copy in (disk, held):
        shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report"))
    from_disk = report(disk)
    assert isinstance(from_disk, SweepReport)
    sweep = load_sweep(held).with_runs()
    for path in sorted((held / "runs").rglob("*")):
        if path.is_file():
            path.unlink()
    return from_disk, report_sweep(sweep)


def reported_from_its_reads(sweep_dir: Path, root: Path) -> tuple[SweepReport, list[str]]:
    """The report of a copy of ``sweep_dir`` holding only what the report says it reads.

    In the copy (``root/reads/<name>``: the same directory name, which figure titles
    carry) every run table not among :func:`experiments.report.sweep_report_reads`'
    tables is made unreadable (its bytes replaced: reading it fails), and a table it
    reads only some columns of is rewritten with only those.

    Returns:
        The report of the copy, and the names of the tables spoiled (sorted, unique).
    """
    reads = sweep_report_reads()
    copy = root / "reads" / sweep_dir.name
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report"))
    spoiled = set()
    for table in sorted((copy / "runs").rglob("*.parquet")):
        if table.stem not in reads.tables:
            table.write_bytes(b"not a table")
            spoiled.add(table.stem)
        elif table.stem in reads.columns:
            frame = pl.read_parquet(table, columns=list(reads.columns[table.stem]))
            frame.write_parquet(table)
    made = report(copy)
    assert isinstance(made, SweepReport)
    return made, sorted(spoiled)


def assert_same_outputs(from_disk: SweepReport, held: SweepReport) -> None:
    """Both reports wrote the same files, byte for byte, and print the same text."""
    disk_files = sorted(p.name for p in (from_disk.sweep_dir / "report").iterdir())
    held_files = sorted(p.name for p in (held.sweep_dir / "report").iterdir())
    assert disk_files == held_files
    for name in disk_files:
        data = (from_disk.sweep_dir / "report" / name).read_bytes()
        assert data == (held.sweep_dir / "report" / name).read_bytes(), name
    text = from_disk.text().replace(str(from_disk.sweep_dir), str(held.sweep_dir))
    assert held.text() == text
