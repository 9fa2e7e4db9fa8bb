"""Names that become directory names: run names, sweep names, grid labels and columns.

Each is a single safe path component, so no name can point outside its parent directory
or at a hidden temporary file of the tool: 1 to :data:`MAX_NAME_LENGTH` ASCII characters
from letters, digits, ``_``, ``.`` and ``-`` (labels also ``+``), starting with a letter,
digit or ``_`` (never ``.``, ``..``, ``-x``, ``a/b``, an empty string or a control
character).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator

#: Longest run or sweep name (and grid label or column); far below the 255-byte limit of
#: a file name, so ``column=label`` directory names also fit.
MAX_NAME_LENGTH = 100

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_LABEL = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*")

NAME_RULE = (
    f"must be a single directory name: 1-{MAX_NAME_LENGTH} characters from letters, "
    "digits, '_', '.', '-', starting with a letter, digit or '_'"
)
LABEL_RULE = (
    f"must be 1-{MAX_NAME_LENGTH} characters from letters, digits, '_', '.', '+', '-', "
    "not starting with '.'"
)


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a run or sweep name (or grid column), or None if it can."""
    if len(value) > MAX_NAME_LENGTH or not _NAME.fullmatch(value):
        return NAME_RULE
    return None


def label_problem(value: str) -> str | None:
    """Why ``value`` cannot be a grid label (the part after ``column=``), or None."""
    if len(value) > MAX_NAME_LENGTH or not _LABEL.fullmatch(value):
        return LABEL_RULE
    return None


def _check_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: A string field holding a run or sweep name (validated by :func:`name_problem`).
SafeName = Annotated[str, AfterValidator(_check_name)]


def bounded_name(parts: list[str]) -> str:
    """``"__".join(parts)``, shortened with a hash suffix to fit :data:`MAX_NAME_LENGTH`.

    Used for the generated names of a sweep's runs, which concatenate the sweep name and
    every ``column-label``; the hash keeps shortened names distinct.
    """
    name = "__".join(parts)
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_NAME_LENGTH - 18]}__{digest}"
