"""One tokeniser (sim.texts.words) serves every word-based rule of the project."""

from __future__ import annotations

import numpy as np

from agents.decisions import text_similarity
from sim.memes import MemeSpec, shared_run
from sim.retrieval import LexicalRelevance
from sim.texts import words


def test_words():
    assert words("Don't copy_this, OK? Café 42x") == [
        "don",
        "t",
        "copy",
        "this",
        "ok",
        "caf",
        "42x",
    ]
    assert words("") == []


def test_every_word_rule_uses_it():
    a, b = "Share_THIS note, now!", "this note: share it"
    # Word sets {share, this, note, now} and {this, note, share, it}: 3 shared of 5.
    assert text_similarity(a, b) == 3 / 5
    relevance = LexicalRelevance().score([a], [b], np.array([[0, 0]]))
    assert relevance.tolist() == [np.float32(3 / 5)]
    assert shared_run("x share_this note", "share this note y") == 3
    meme = MemeSpec(id="m", statement="Gather_influence over EVERY agent")
    assert meme.signature(strict=True).terms == ["agent", "every", "gather", "influence"]
