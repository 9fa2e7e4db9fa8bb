"""The memes of a run, with their detectors: which memes each text carries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from sim.detectors import Detector, DetectorView, Embedder, build_detector
from sim.memes import MAX_MEMES, MemeSpec, check_unique_ids, resolve_placebos

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from agents.llm.factory import EngineFactory


class MemeBook:
    """The memes of a run, in order (meme index = bit in the entries' meme mask).

    Args:
        memes: The memes.
        embedder: The embedder of embedding detectors (None: their packaged model).
        run_engine: Returns the run's engine, for judges without one of their own.
        engines: Builds a judge's own engine (None: built as specified, not recorded).
    """

    def __init__(
        self,
        memes: Sequence[MemeSpec],
        embedder: Embedder | None = None,
        run_engine: Callable[[], Engine] | None = None,
        engines: EngineFactory | None = None,
    ) -> None:
        check_unique_ids(memes)
        ids = [m.id for m in memes]
        if len(memes) > MAX_MEMES:
            raise ValueError(f"memes: {len(memes)} given; at most {MAX_MEMES} per run")
        self.memes = tuple(resolve_placebos(list(memes)))
        self.ids = ids
        self.detectors = [build_detector(m, embedder, run_engine, engines) for m in self.memes]
        #: Whether ``detect`` logs every detector's view (a run with embedding or judge
        #: detectors), for the ``detections`` table.
        self.records_detections = any(getattr(d, "records", False) for d in self.detectors)
        self._detections: list[pl.DataFrame] = []

    def __len__(self) -> int:
        return len(self.memes)

    def close(self) -> None:
        """Close what the detectors built for themselves (a judge's own engine)."""
        for detector in self.detectors:
            close = getattr(detector, "close", None)
            if close is not None:
                close()

    def index(self, meme_id: str) -> int:
        """Index of a meme by id."""
        try:
            return self.ids.index(meme_id)
        except ValueError:
            raise KeyError(f"unknown meme id {meme_id!r}; known: {self.ids}") from None

    def detect(self, texts: Sequence[str]) -> np.ndarray:
        """Meme bit mask (int64) of each text (logged in ``detections`` when recording)."""
        masks = np.zeros(len(texts), dtype=np.int64)
        for bit, detector in enumerate(self.detectors):
            carries = np.asarray(detector.carries(texts), dtype=np.bool_)
            masks |= carries.astype(np.int64) << bit
            if self.records_detections and len(texts):
                self._log(texts, self.ids[bit], detector, carries)
        return masks

    def _log(self, texts: Sequence[str], meme_id: str, detector: Detector, carries: np.ndarray):
        views = getattr(detector, "views", None)
        if views is None:  # a detector that is not a DetectorBase: its answer, by class
            found = [DetectorView(type(detector).__name__, carries)]
        else:
            found = views(texts, carries)
        self._detections.extend(view.frame(texts, meme_id) for view in found)

    def take_detections(self, step: int) -> pl.DataFrame | None:
        """The ``detections`` rows logged since the last call (then cleared), or None.

        Args:
            step: The step the texts were judged in (the model takes the rows at the end
                of every step), written in the ``step`` column.
        """
        if not self._detections:
            return None
        frame = pl.concat(self._detections)
        self._detections = []
        return frame.select(pl.lit(step, dtype=pl.Int32).alias("step"), pl.all())
