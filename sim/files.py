"""Input files a run reads (graphs, model weights, replay caches): why one cannot be read.

One check, used by config validation for graph files and by engine specs for the files
their engines read, so every such error is worded the same way.
"""

from __future__ import annotations

from pathlib import Path

#: Bytes read to tell a text file from a binary one.
SNIFF_BYTES = 64 * 1024


def file_problem(path: Path, what: str, *, text: bool = True) -> str | None:
    """Why ``path`` cannot be read as a ``what`` file, or None.

    Args:
        path: The file.
        what: The file's format, as said in messages (``"GGUF"``, ``"JSONL"``, ...).
        text: The format is text: a NUL byte in the first :data:`SNIFF_BYTES` bytes
            makes it a binary file, which is a problem.

    Returns:
        A message fragment such as ``"no such file"`` or ``"is empty; must be a JSONL
        file"``, for the caller to put the config key in front; None if it can be read.
    """
    try:
        if not path.exists():
            return "no such file"
        if not path.is_file():
            return "not a regular file (a directory or a device)"
    except (OSError, ValueError) as err:  # a name too long
        return f"not a valid path ({getattr(err, 'strerror', None) or err})"
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not head:
        return f"is empty; must be a {what} file"
    if text and b"\x00" in head:
        return f"is a binary file; must be a {what} text file"
    return None
