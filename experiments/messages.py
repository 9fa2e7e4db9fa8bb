"""Short forms of exception messages for one-line errors shown to the user."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none).

    Third-party errors (polars, Ray) can span many lines; a one-line error names the first.
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def counted(n: int, noun: str) -> str:
    """``"1 agent"``, ``"2 agents"``: a count with its (regular) noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
