"""Process checks of the tests that kill a sweep: which processes still live (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reads ``/proc``)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read
        return False
    return "State:\tZ" not in status


def children(pid: int) -> set[int]:
    """The ids of the direct children of process ``pid`` (reads ``/proc``)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(c) for c in task.read_text().split()}
    return found
