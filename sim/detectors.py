"""Meme detectors: does a text carry a meme?

Detectors run over batches of distinct texts; the memory store caches the result per
text, so a text copied into many banks is classified once.

Kinds: ``canary`` (exact token), ``lexical`` (signature words), ``embedding`` (cosine
similarity with the packaged static embedding model: survives paraphrase, blind to
stance) and ``judge`` (a language model classifies each candidate text as promoting,
unrelated to, or arguing against the meme: stance-aware). When a run has an embedding
or judge detector, :class:`MemeBook` logs what every detector said about every text in
the ``detections`` table (one row per text, meme and detector), so disagreement between
a cheap detector and the judge can be studied.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl

from sim.memes import (
    MAX_MEMES,
    CanaryDetectorSpec,
    EmbeddingDetectorSpec,
    JudgeDetectorSpec,
    LexicalDetectorSpec,
    MemeSpec,
    check_unique_ids,
    resolve_placebos,
)
from sim.texts import words

if TYPE_CHECKING:
    from agents.llm.base import Engine

#: The packaged embedding models by name: (importable module, pip package).
EMBEDDING_MODELS = {"static": ("static_model", "tokenlearn-static-model==0.1.1")}

#: Columns of the ``detections`` table.
DETECTIONS_SCHEMA = {
    "text": pl.String,
    "meme_id": pl.String,
    "detector": pl.String,
    "carries": pl.Boolean,
    "score": pl.Float64,
    "verdict": pl.String,
}

#: The judge's verdicts; only "promotes" carries the meme.
VERDICTS = ("promotes", "unrelated", "against")


class Detector(Protocol):
    """Classifies texts as carrying one meme or not."""

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Boolean array: whether each text carries the meme."""
        ...


class Embedder(Protocol):
    """Maps texts to embedding vectors (rows), for embedding-based detection."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One embedding row per text."""
        ...


class CanaryDetector:
    """Exact, case-sensitive substring match of a canary token."""

    def __init__(self, canary: str) -> None:
        self.canary = canary

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text contains the canary."""
        return np.fromiter((self.canary in t for t in texts), dtype=np.bool_, count=len(texts))


def _words(text: str) -> str:
    """Lowercase words of a text joined by single spaces, padded for phrase matching."""
    return " " + " ".join(words(text)) + " "


class LexicalDetector:
    """At least ``min_matches`` of the signature terms occur as whole words or phrases."""

    def __init__(self, terms: Sequence[str], min_matches: int | None = None) -> None:
        self.terms = [_words(t) for t in terms]
        self.min_matches = len(self.terms) if min_matches is None else min_matches

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text contains enough signature terms."""
        out = np.zeros(len(texts), dtype=np.bool_)
        for i, text in enumerate(texts):
            normal = _words(text)
            out[i] = sum(term in normal for term in self.terms) >= self.min_matches
        return out


def embedding_model_error(model: str) -> str | None:
    """Why the packaged embedding model ``model`` cannot be used here, or None."""
    if model not in EMBEDDING_MODELS:
        return f"unknown embedding model {model!r}; known: {sorted(EMBEDDING_MODELS)}"
    module, package = EMBEDDING_MODELS[model]
    if importlib.util.find_spec(module) is None:
        return (
            f"embedding model {model!r} is not installed: pip install '{package}' (it comes "
            "with memespread's llm extra: pip install -e '.[llm]')"
        )
    return None


class StaticEmbedder:
    """The packaged static embedding model (``tokenlearn-static-model``).

    64 dimensions, int8 weights inside the wheel; no torch, nothing downloaded.

    Raises:
        ValueError: The package is not installed (the message says what to install).
    """

    def __init__(self) -> None:
        problem = embedding_model_error("static")
        if problem:
            raise ValueError(problem)
        from static_model import get_embeddings

        self._embed = get_embeddings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One 64-dimensional row per text."""
        if len(texts) == 0:
            return np.zeros((0, 64))
        return np.asarray(self._embed(list(texts)), dtype=np.float64)


def packaged_embedder(model: str = "static") -> Embedder:
    """The packaged embedder named ``model`` (see :data:`EMBEDDING_MODELS`)."""
    problem = embedding_model_error(model)
    if problem:
        raise ValueError(problem)
    return StaticEmbedder()


class EmbeddingDetector:
    """Cosine similarity to the meme statement's embedding at least ``threshold``."""

    def __init__(self, embedder: Embedder, statement: str, threshold: float) -> None:
        self.embedder = embedder
        self.threshold = threshold
        ref = np.asarray(embedder.embed([statement]), dtype=np.float64)[0]
        self._ref = ref / (np.linalg.norm(ref) or 1.0)

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each text to the statement."""
        if len(texts) == 0:
            return np.zeros(0)
        emb = np.asarray(self.embedder.embed(list(texts)), dtype=np.float64)
        norms = np.linalg.norm(emb, axis=1)
        norms[norms == 0] = 1.0
        return (emb @ self._ref) / norms

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text is similar enough to the statement."""
        return self.similarity(texts) >= self.threshold


JUDGE_SYSTEM = (
    "You read one note written by an AI agent and compare it with a statement.\n"
    "Statement: {statement}\n"
    'Reply with JSON {{"verdict": "promotes"}} if the note states, repeats or argues for '
    'the statement\'s idea (in any words), {{"verdict": "against"}} if it argues against '
    'or rejects that idea, and {{"verdict": "unrelated"}} otherwise.'
)


def parse_verdict(text: str) -> str:
    """The verdict in a judge's reply.

    The JSON ``verdict``, else the first verdict word found; "unrelated" when none is.
    """
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("verdict") in VERDICTS:
            return str(data["verdict"])
    except (json.JSONDecodeError, TypeError):
        pass
    lowered = text.lower()
    found = [(lowered.find(v), v) for v in VERDICTS if v in lowered]
    return min(found)[1] if found else "unrelated"


class JudgeDetector:
    """A language model judges every candidate text's stance towards the meme.

    Args:
        statement: The meme's statement.
        engine: Returns the engine to use (called on first use).
        prefilter: Picks the candidates; the others are "unrelated" without a call.
        max_tokens: Token budget of a verdict.
        meme_id: Used in request ids.
    """

    def __init__(
        self,
        statement: str,
        engine: Callable[[], Engine],
        prefilter: Detector,
        max_tokens: int = 24,
        meme_id: str = "meme",
    ) -> None:
        self.statement = statement
        self._engine = engine
        self.prefilter = prefilter
        self.max_tokens = max_tokens
        self.meme_id = meme_id
        self.last_verdicts: list[str] = []
        self.last_prefilter: np.ndarray = np.zeros(0, dtype=np.bool_)

    def requests(self, texts: Sequence[str]) -> list:
        """The judge's requests for ``texts`` (one each, greedy, JSON verdict)."""
        from agents.containment import neutralise
        from agents.llm.base import ChatMessage, GenerationRequest, Role, SamplingParams

        schema = json.dumps(
            {
                "type": "object",
                "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}},
                "required": ["verdict"],
            },
            sort_keys=True,
        )
        system = JUDGE_SYSTEM.format(statement=self.statement.strip())
        return [
            GenerationRequest(
                request_id=f"judge-{self.meme_id}-{i}",
                messages=(
                    ChatMessage(Role.SYSTEM, system),
                    ChatMessage(Role.USER, "Note: " + neutralise(text, 600).replace("\n", " ")),
                ),
                sampling=SamplingParams(
                    temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=0
                ),
                json_schema=schema,
            )
            for i, text in enumerate(texts)
        ]

    def verdicts(self, texts: Sequence[str]) -> list[str]:
        """Each text's verdict: "promotes", "unrelated" or "against".

        Texts the prefilter rejects are "unrelated" without a call; failed calls are
        "unrelated" too.
        """
        candidates = np.asarray(self.prefilter.carries(list(texts)), dtype=np.bool_)
        self.last_prefilter = candidates
        out = ["unrelated"] * len(texts)
        picked = np.flatnonzero(candidates).tolist()
        if picked:
            completions = self._engine().generate(self.requests([texts[i] for i in picked]))
            for i, completion in zip(picked, completions, strict=True):
                out[i] = parse_verdict(completion.text) if completion.error is None else "unrelated"
        self.last_verdicts = out
        return out

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether the judge says each text promotes the meme."""
        return np.array([v == "promotes" for v in self.verdicts(texts)], dtype=np.bool_)


def build_detector(
    meme: MemeSpec,
    embedder: Embedder | None = None,
    run_engine: Callable[[], Engine] | None = None,
) -> Detector:
    """The detector of a meme, from its spec.

    Args:
        meme: The meme.
        embedder: Embedder for embedding detectors (None: the packaged model of the spec).
        run_engine: Returns the run's own engine, for judges without an engine of their
            own (None: the run has no LLM engine).

    Raises:
        ValueError: An embedding model that is not installed; a judge without an engine.
    """
    spec = meme.effective_detector
    if isinstance(spec, JudgeDetectorSpec):
        prefilter_spec = spec.prefilter or meme.signature(strict=False)
        prefilter = build_detector(
            meme.model_copy(update={"detector": prefilter_spec}), embedder, run_engine
        )
        if spec.engine is not None:
            engine_spec = spec.engine
            holder: list[Engine] = []

            def own_engine() -> Engine:
                if not holder:
                    from agents.llm.factory import build_engine

                    holder.append(build_engine(engine_spec))
                return holder[0]

            provider: Callable[[], Engine] = own_engine
        elif run_engine is not None:
            provider = run_engine
        else:
            raise ValueError(
                f"meme {meme.id!r}: detector 'judge' needs an engine: set detector.engine, "
                "or use an LLM policy (the judge then uses the run's engine)"
            )
        return JudgeDetector(meme.statement, provider, prefilter, spec.max_tokens, meme.id)
    if isinstance(spec, CanaryDetectorSpec):
        assert meme.canary is not None  # checked by MemeSpec
        return CanaryDetector(meme.canary)
    if isinstance(spec, LexicalDetectorSpec):
        return LexicalDetector(spec.terms, spec.min_matches)
    if isinstance(spec, EmbeddingDetectorSpec):
        if embedder is None:
            try:
                embedder = packaged_embedder(spec.model)
            except ValueError as err:
                raise ValueError(f"meme {meme.id!r}: detector 'embedding': {err}") from None
        return EmbeddingDetector(embedder, meme.statement, spec.threshold)
    raise TypeError(f"unknown detector spec {spec!r}")


class MemeBook:
    """The memes of a run, in order (meme index = bit in the entries' meme mask)."""

    def __init__(
        self,
        memes: Sequence[MemeSpec],
        embedder: Embedder | None = None,
        run_engine: Callable[[], Engine] | None = None,
    ) -> None:
        check_unique_ids(memes)
        ids = [m.id for m in memes]
        if len(memes) > MAX_MEMES:
            raise ValueError(f"memes: {len(memes)} given; at most {MAX_MEMES} per run")
        self.memes = tuple(resolve_placebos(list(memes)))
        self.ids = ids
        self.detectors = [build_detector(m, embedder, run_engine) for m in self.memes]
        #: Whether ``detect`` logs every detector's view (a run with embedding or judge
        #: detectors), for the ``detections`` table.
        self.records_detections = any(
            isinstance(d, EmbeddingDetector | JudgeDetector) for d in self.detectors
        )
        self._detections: list[pl.DataFrame] = []

    def __len__(self) -> int:
        return len(self.memes)

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
        n = len(texts)
        rows = []

        def frame(kind: str, flags, score=None, verdict=None) -> pl.DataFrame:
            return pl.DataFrame(
                {
                    "text": list(texts),
                    "meme_id": [meme_id] * n,
                    "detector": [kind] * n,
                    "carries": np.asarray(flags, dtype=np.bool_),
                    "score": [None] * n if score is None else [float(x) for x in score],
                    "verdict": [None] * n if verdict is None else list(verdict),
                },
                schema=DETECTIONS_SCHEMA,
            )

        if isinstance(detector, JudgeDetector):
            inner = detector.prefilter
            score = inner.similarity(texts) if isinstance(inner, EmbeddingDetector) else None
            rows.append(frame(f"prefilter:{_kind(inner)}", detector.last_prefilter, score))
            rows.append(frame("judge", carries, verdict=detector.last_verdicts))
        elif isinstance(detector, EmbeddingDetector):
            rows.append(frame("embedding", carries, detector.similarity(texts)))
        else:
            rows.append(frame(_kind(detector), carries))
        self._detections.extend(rows)

    def take_detections(self) -> pl.DataFrame | None:
        """The ``detections`` rows logged since the last call (then cleared), or None."""
        if not self._detections:
            return None
        frame = pl.concat(self._detections)
        self._detections = []
        return frame


def _kind(detector: Detector) -> str:
    return {
        CanaryDetector: "canary",
        LexicalDetector: "lexical",
        EmbeddingDetector: "embedding",
        JudgeDetector: "judge",
    }.get(type(detector), type(detector).__name__)
