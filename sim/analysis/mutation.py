"""Mutation: how far each carrying entry has drifted from the seeded statement, by hop.

Distances between an entry's text and the meme's reference text (by default the text of
the meme's seed entries):

* normalized edit distance = Levenshtein distance over characters (insert, delete,
  substitute, each cost 1) divided by the longer length; 0 for two empty texts; in [0, 1];
* token Jaccard distance = 1 - |A ∩ B| / |A ∪ B| over the sets of lower-case word tokens
  (``[a-z0-9]+``, with canary-like tokens such as ``MEME-INF-0001`` split on the hyphens);
  0 for two texts without tokens; in [0, 1].

The hop of a carrying entry: 0 for seed entries (those injected by the experimenter:
carrying entries without parents, written by the environment or by an agent seeded with
the meme at that step); the ``hop`` of the transmission edge whose ``target_entry`` it is;
otherwise (an agent re-writing a meme it already holds, with no foreign carrying entry in
context) the author's generation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from sim.analysis.infections import ENVIRONMENT, infection_times
from sim.texts import words


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (unit-cost insert, delete, substitute), one numpy row at a time."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    codes_b = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    j = np.arange(len(b) + 1, dtype=np.int64)
    row = j.copy()
    for i, ch in enumerate(a, start=1):
        code = ord(ch)
        # Deletion and substitution candidates, then insertions as a running minimum:
        # D[i, j] = min_k<=j (T[k] + j - k) = j + cummin(T - j).
        sub = row[:-1] + (codes_b != code)
        t = np.empty_like(row)
        t[0] = i
        t[1:] = np.minimum(row[1:] + 1, sub)
        row = j + np.minimum.accumulate(t - j)
    return int(row[-1])


def normalized_edit_distance(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length (0.0 for two empty strings)."""
    longest = max(len(a), len(b))
    return levenshtein(a, b) / longest if longest else 0.0


def tokens(text: str) -> set[str]:
    """The set of lower-case word tokens ``[a-z0-9]+`` of a text."""
    return set(words(text))


def token_jaccard_distance(a: str, b: str) -> float:
    """1 - Jaccard similarity of the token sets (0.0 when both have no tokens)."""
    ta, tb = tokens(a), tokens(b)
    union = ta | tb
    return 1.0 - len(ta & tb) / len(union) if union else 0.0


def entry_hops(
    memories: pl.DataFrame, transmissions: pl.DataFrame, agents: pl.DataFrame
) -> pl.DataFrame:
    """The hop of every carrying entry (one row per entry and meme it carries).

    Returns:
        Columns ``meme_id, entry_id, author_id, step, text, hop`` (hop null when none of
        the rules of the module docstring applies).
    """
    carrying = (
        memories.select(
            "entry_id",
            pl.col("author_id").cast(pl.Int64),
            pl.col("step").cast(pl.Int64),
            "text",
            pl.col("parents").list.len().alias("n_parents"),
            pl.col("memes").alias("meme_id"),
        )
        .explode("meme_id")
        .drop_nulls("meme_id")
    )
    seeded = agents.filter((pl.col("state") == "seeded") & pl.col("value")).select(
        "meme_id",
        pl.col("agent_id").cast(pl.Int64).alias("author_id"),
        pl.col("step").cast(pl.Int64),
        pl.lit(True).alias("seeded_now"),
    )
    edge_hops = transmissions.select(
        "meme_id",
        pl.col("target_entry").cast(pl.Int64).alias("entry_id"),
        pl.col("hop").cast(pl.Int64).alias("edge_hop"),
    ).unique(["meme_id", "entry_id"], keep="first")
    generations = infection_times(transmissions, agents, memories).select(
        "meme_id", pl.col("agent_id").alias("author_id"), pl.col("generation").alias("author_gen")
    )
    is_seed = (pl.col("n_parents") == 0) & (
        (pl.col("author_id") == ENVIRONMENT) | pl.col("seeded_now").fill_null(False)
    )
    return (
        carrying.join(
            seeded, on=["meme_id", "author_id", "step"], how="left", maintain_order="left"
        )
        .join(edge_hops, on=["meme_id", "entry_id"], how="left", maintain_order="left")
        .join(generations, on=["meme_id", "author_id"], how="left", maintain_order="left")
        .with_columns(
            pl.when(is_seed)
            .then(pl.lit(0, dtype=pl.Int64))
            .otherwise(pl.coalesce("edge_hop", "author_gen"))
            .alias("hop")
        )
        .select("meme_id", "entry_id", "author_id", "step", "text", "hop")
        .sort("meme_id", "entry_id")
    )


def reference_texts(memories: pl.DataFrame) -> dict[str, str]:
    """Each meme's reference text: the text of its earliest carrying entry (the seed)."""
    first = (
        memories.select("entry_id", "text", pl.col("memes").alias("meme_id"))
        .explode("meme_id")
        .drop_nulls("meme_id")
        .sort("entry_id")
        .group_by("meme_id", maintain_order=True)
        .first()
    )
    return dict(zip(first["meme_id"].to_list(), first["text"].to_list(), strict=True))


def entry_drift(
    memories: pl.DataFrame,
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    references: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Distances of every carrying entry from its meme's reference text.

    Args:
        memories: The ``memories`` table.
        transmissions: The ``transmissions`` table.
        agents: The ``agents`` table.
        references: Reference text per meme id (default :func:`reference_texts`).

    Returns:
        The columns of :func:`entry_hops` plus ``edit_distance`` and ``jaccard_distance``.
    """
    hops = entry_hops(memories, transmissions, agents)
    refs = dict(reference_texts(memories))
    refs.update(references or {})
    missing = sorted(set(hops["meme_id"].unique().to_list()) - set(refs))
    if missing:
        raise ValueError(f"references: no reference text for meme(s) {missing}")
    cache: dict[tuple[str, str], tuple[float, float]] = {}
    edit, jac = [], []
    for meme_id, text in hops.select("meme_id", "text").iter_rows():
        key = (meme_id, text)
        if key not in cache:
            ref = refs[meme_id]
            cache[key] = (normalized_edit_distance(text, ref), token_jaccard_distance(text, ref))
        e, j = cache[key]
        edit.append(e)
        jac.append(j)
    return hops.with_columns(
        pl.Series("edit_distance", edit, dtype=pl.Float64),
        pl.Series("jaccard_distance", jac, dtype=pl.Float64),
    )


def drift_by_hop(drift: pl.DataFrame) -> pl.DataFrame:
    """Per (meme, hop): number of entries and mean / standard deviation of both distances.

    Args:
        drift: Output of :func:`entry_drift`.

    Returns:
        Columns ``meme_id, hop, n_entries, edit_mean, edit_sd, jaccard_mean, jaccard_sd,
        changed`` (fraction of entries whose text differs from the reference).
    """
    return (
        drift.drop_nulls("hop")
        .group_by("meme_id", "hop")
        .agg(
            pl.len().cast(pl.Int64).alias("n_entries"),
            pl.col("edit_distance").mean().alias("edit_mean"),
            pl.col("edit_distance").std().alias("edit_sd"),
            pl.col("jaccard_distance").mean().alias("jaccard_mean"),
            pl.col("jaccard_distance").std().alias("jaccard_sd"),
            (pl.col("edit_distance") > 0).mean().alias("changed"),
        )
        .sort("meme_id", "hop")
    )
