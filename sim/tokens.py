"""Tokenising many strings at once: each string's distinct word ids, with polars.

:func:`sim.texts.words` on one string after another costs about 3 microseconds of Python
per string (0.35 s for the task texts of 10^5 agents, once per relevance run). Here
polars lowercases the strings and finds their words (the same pattern,
:data:`sim.texts.WORD_PATTERN`, in Rust), and only the distinct words pass through Python.
Polars lowercases as Python's ``str.lower`` does (full Unicode case mapping, e.g. ``İ`` to
``i̇`` and the Kelvin sign to ``k``), so the words are the same.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sim.texts import WORD_PATTERN
from sim.unique import sorted_unique


def distinct_word_ids(strings: list[str], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each string's distinct word ids, ascending, as (count per string, ids).

    Words not in ``vocab`` are added to it, numbered on from ``len(vocab)`` in order of
    first appearance, as :func:`sim.texts.words` applied string after string would add
    them.

    Raises:
        UnicodeEncodeError: A string holds a lone surrogate (polars takes UTF-8 only);
            ``vocab`` is then unchanged.
    """
    found = pl.Series(strings, dtype=pl.String).str.to_lowercase().str.extract_all(WORD_PATTERN)
    frame = pl.DataFrame({"word": found}).with_row_index("owner").explode("word")
    frame = frame.drop_nulls("word")
    distinct = frame["word"].unique(maintain_order=True).to_list()
    new = [word for word in distinct if word not in vocab]
    vocab.update(zip(new, range(len(vocab), len(vocab) + len(new)), strict=True))
    ids = pl.DataFrame(
        {"word": distinct, "id": list(map(vocab.__getitem__, distinct))},
        schema={"word": pl.String, "id": pl.Int64},
    )
    pairs = frame.join(ids, on="word", how="left", maintain_order="left")
    owner = pairs["owner"].to_numpy().astype(np.int64)
    keys = sorted_unique((owner << 32) | pairs["id"].to_numpy())  # per string, ascending
    counts = np.bincount(keys >> 32, minlength=len(strings))
    return counts, keys & 0xFFFFFFFF
