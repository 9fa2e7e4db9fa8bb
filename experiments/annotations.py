"""Reading the type annotations of the config schema's fields.

The config loader (its "did you mean" hints walk the schema) and the reference generator
(it documents every field) both look through ``Annotated[...]`` and optional unions to
the types a field accepts.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from pydantic import BaseModel


def strip_annotated(tp: Any) -> Any:
    """``tp`` without its ``Annotated[...]`` wrappers (the type itself otherwise)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def union_members(tp: Any) -> list[Any]:
    """The non-None members of a union, in order (``[tp]`` for any other type).

    ``Annotated`` wrappers are looked through, and nested unions are flattened.
    """
    tp = strip_annotated(tp)
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return [tp]
    args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
    return [member for arg in args for member in union_members(arg)]


def is_model(tp: Any) -> bool:
    """Whether ``tp`` is a pydantic model class."""
    return inspect.isclass(tp) and issubclass(tp, BaseModel)
