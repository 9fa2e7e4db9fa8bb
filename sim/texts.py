"""Interned text table: every distinct memory text is stored once and referred to by id.

Texts that no entry needs any more can be *released*: the string leaves the process's
memory and goes to an anonymous spill file (created on first use, deleted when the table
is garbage-collected or closed), from which :meth:`TextTable.get` still reads it. So a long
run keeps only the texts in use in memory, while every text stays available for the
written tables. A released text is remembered by a 16-byte digest: interning the same
text again revives its old id, so ids (and whatever was computed per id, e.g. which memes
a text carries) never depend on whether a text was released in between.

:func:`words` is the one tokeniser of the project (lexical detectors, relevance, text
similarity, meme signatures); :mod:`sim.tokens` finds the same words in many strings at
once (with polars, for the relevance of every agent's task text).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from typing import IO, cast

import numpy as np

#: The pattern of a word of a lowercase text (what :func:`words` finds).
WORD_PATTERN = r"[a-z0-9]+"
_WORD = re.compile(WORD_PATTERN)


def words(text: str) -> list[str]:
    """The words of a text, in order: the runs of ASCII letters and digits of its lowercase.

    Everything else (spaces, punctuation, ``_``, other scripts) separates words:
    ``words("Don't copy_this, OK?") == ["don", "t", "copy", "this", "ok"]``.
    """
    return _WORD.findall(text.lower())


def _encode(text: str) -> bytes:
    # surrogatepass: any Python str round-trips, even one holding a lone surrogate.
    return text.encode("utf-8", "surrogatepass")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(_encode(text), digest_size=16).digest()


class TextTable:
    """A table of distinct strings with stable integer ids.

    Memory entries refer to their text by an integer id, so copying a text into many
    banks (the common case in contagion runs) costs one int per entry, and detectors run
    once per distinct text rather than once per entry.

    Args:
        texts: Texts to intern first, in order (ids 0, 1, ...).
        spill_dir: Folder of the spill file of released texts (default: the system's
            temporary folder).
    """

    def __init__(self, texts: Iterable[str] = (), spill_dir: str | os.PathLike[str] | None = None):
        self._texts: list[str | None] = []  # None: released (read it from the spill file)
        self._ids: dict[str, int] = {}  # live texts only
        self._released: dict[bytes, int] = {}  # digest -> id of each released text
        self._spill_dir = spill_dir
        self._spill: IO[bytes] | None = None
        self._offset = np.zeros(0, dtype=np.int64)  # per id: spill offset, -1 if never spilled
        self._length = np.zeros(0, dtype=np.int64)
        self._spill_end = 0
        for text in texts:
            self.intern(text)

    def __len__(self) -> int:
        """Number of ids ever handed out (live and released texts)."""
        return len(self._texts)

    @property
    def live_count(self) -> int:
        """Number of texts held in memory (not released)."""
        return len(self._ids)

    @property
    def released_count(self) -> int:
        """Number of released texts (in the spill file only)."""
        return len(self._released)

    def __contains__(self, text: object) -> bool:
        """Whether ``text`` has an id (live or released)."""
        if not isinstance(text, str):
            return False
        return text in self._ids or (bool(self._released) and _digest(text) in self._released)

    def intern(self, text: str) -> int:
        """Return the id of ``text``, adding it if it is new (or reviving it if released)."""
        text_id = self._ids.get(text)
        if text_id is not None:
            return text_id
        text_id = self._released.pop(_digest(text), None) if self._released else None
        if text_id is None:
            text_id = len(self._texts)
            self._texts.append(text)
        else:
            self._texts[text_id] = text
        self._ids[text] = text_id
        return text_id

    def intern_many(self, texts: Sequence[str]) -> np.ndarray:
        """Intern each text; returns their ids (int32) in input order."""
        return np.fromiter((self.intern(t) for t in texts), dtype=np.int32, count=len(texts))

    def get(self, text_id: int) -> str:
        """The text with id ``text_id`` (read back from the spill file if released)."""
        text = self._texts[text_id]
        return text if text is not None else self._read(text_id)

    def take(self, text_ids: np.ndarray) -> list[str]:
        """The texts for an array of ids, in order."""
        if self._released:
            return [self.get(i) for i in text_ids.tolist()]
        # Nothing released: every id's text is in memory (no per-id method call).
        live = cast(list[str], self._texts)
        return list(map(live.__getitem__, text_ids.tolist()))

    def all(self) -> list[str]:
        """All texts, indexed by id (a new list; released texts are read back)."""
        return [self.get(i) for i in range(len(self._texts))]

    # ------------------------------------------------------------ releasing
    def release(self, text_ids: Iterable[int]) -> int:
        """Drop the given texts from memory (they stay readable); returns how many.

        Ids already released are skipped. Interning a released text again revives its id.
        """
        released = 0
        for text_id in text_ids:
            text = self._texts[int(text_id)]
            if text is None:
                continue
            self._write(int(text_id), text)
            self._texts[int(text_id)] = None
            del self._ids[text]
            self._released[_digest(text)] = int(text_id)
            released += 1
        return released

    def close(self) -> None:
        """Delete the spill file (released texts become unreadable)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _file(self) -> IO[bytes]:
        if self._spill is None:
            # Owned by the table for its whole life; closed by close() or at collection.
            self._spill = tempfile.TemporaryFile(prefix="memespread-texts-", dir=self._spill_dir)  # noqa: SIM115
            weakref.finalize(self, self._spill.close)
        return self._spill

    def _write(self, text_id: int, text: str) -> None:
        n = len(self._texts)
        if len(self._offset) < n:
            grown = max(n, 2 * len(self._offset), 1024)
            self._offset = np.concatenate(
                [self._offset, np.full(grown - len(self._offset), -1, dtype=np.int64)]
            )
            self._length = np.concatenate(
                [self._length, np.zeros(grown - len(self._length), dtype=np.int64)]
            )
        if self._offset[text_id] >= 0:
            return  # spilled before (released, revived, released again): same text
        data = _encode(text)
        spill = self._file()
        spill.seek(self._spill_end)
        spill.write(data)
        self._offset[text_id] = self._spill_end
        self._length[text_id] = len(data)
        self._spill_end += len(data)

    def _read(self, text_id: int) -> str:
        if self._spill is None:
            raise ValueError(f"text {text_id} was released and the table is closed")
        self._spill.seek(int(self._offset[text_id]))
        data = self._spill.read(int(self._length[text_id]))
        return data.decode("utf-8", "surrogatepass")
