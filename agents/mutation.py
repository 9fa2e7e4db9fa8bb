"""Text mutation for the contagion policy: small random edits of a copied text."""

from __future__ import annotations

import numpy as np

#: The edit operations, in the order their index is drawn.
OPERATIONS = ("delete", "swap", "duplicate")


def mutate_text(text: str, rng: np.random.Generator) -> str:
    """Apply one random word-level edit to ``text``.

    The operation (delete a word, swap two adjacent words, duplicate a word) and its
    position are drawn from ``rng``. Texts of fewer than two words are returned with
    their single word duplicated.

    Args:
        text: The text to mutate.
        rng: The model's generator.

    Returns:
        The edited text.
    """
    words = text.split()
    operation = OPERATIONS[int(rng.integers(len(OPERATIONS)))]
    if len(words) < 2:
        return f"{text} {text}".strip()
    if operation == "delete":
        i = int(rng.integers(len(words)))
        del words[i]
    elif operation == "swap":
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        i = int(rng.integers(len(words)))
        words.insert(i, words[i])
    return " ".join(words)
