"""Interned text table: every distinct memory text is stored once and referred to by id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class TextTable:
    """An append-only table of distinct strings.

    Memory entries refer to their text by an integer id, so copying a text into many
    banks (the common case in contagion runs) costs one int per entry, and detectors run
    once per distinct text rather than once per entry.
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._texts: list[str] = []
        self._ids: dict[str, int] = {}
        for text in texts:
            self.intern(text)

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, text: object) -> bool:
        return text in self._ids

    def intern(self, text: str) -> int:
        """Return the id of ``text``, adding it if it is new."""
        text_id = self._ids.get(text)
        if text_id is None:
            text_id = len(self._texts)
            self._texts.append(text)
            self._ids[text] = text_id
        return text_id

    def intern_many(self, texts: Sequence[str]) -> np.ndarray:
        """Intern each text; returns their ids (int32) in input order."""
        return np.fromiter((self.intern(t) for t in texts), dtype=np.int32, count=len(texts))

    def get(self, text_id: int) -> str:
        """The text with id ``text_id``."""
        return self._texts[text_id]

    def take(self, text_ids: np.ndarray) -> list[str]:
        """The texts for an array of ids, in order."""
        texts = self._texts
        return [texts[i] for i in text_ids.tolist()]

    def all(self) -> list[str]:
        """All texts, indexed by id (a copy)."""
        return list(self._texts)
