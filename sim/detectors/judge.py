"""The ``judge`` detector: a language model reads each candidate text (stance-aware).

It says whether the text promotes the meme, is unrelated, or argues against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.llm import EngineSpec
from agents.llm.factory import OwnEngine, build_own_engine
from agents.parsing import reply_text
from sim.detectors.base import Detector, DetectorBase, DetectorSetup, DetectorView
from sim.detectors.embedding import EmbeddingDetectorSpec
from sim.detectors.lexical import LexicalDetectorSpec

if TYPE_CHECKING:
    from agents.llm.base import Engine

#: The judge's verdicts; only "promotes" carries the meme.
VERDICTS = ("promotes", "unrelated", "against")


class JudgeDetectorSpec(BaseModel):
    """A language model reads the text and says whether it carries the meme.

    Stance-aware: the judge is asked whether the text promotes the statement's idea,
    is unrelated, or argues against it; only "promotes" counts as carrying. Texts the
    ``prefilter`` rejects are not sent to the judge (they do not carry the meme), so the
    judge's cost scales with candidate texts, not with every note. The judge's calls
    are batched per step (every new text of a step at once), greedy (temperature 0),
    and constrained to a JSON verdict; every verdict is in the ``detections`` table.

    Attributes:
        engine: The judge's engine; None uses the run's own LLM engine (the policy's). A
            run with a run directory records the judge's own engine in
            ``completions-memes.<id>.detector.jsonl`` there, for resume and fork.
        prefilter: A cheap detector that picks the candidates (default: the meme's
            lexical signature over the statement's longest words, one match suffices).
        max_tokens: Token budget of a verdict.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["judge"] = "judge"
    engine: EngineSpec | None = None
    prefilter: LexicalDetectorSpec | EmbeddingDetectorSpec | None = None
    max_tokens: int = Field(24, ge=4)

    def build(self, setup: DetectorSetup) -> JudgeDetector:
        """The judge, with its prefilter (default: the meme's loose lexical signature).

        Raises:
            ValueError: Neither an engine of its own nor the run's engine.
        """
        prefilter = (self.prefilter or setup.signature(False)).build(setup)
        provider: Callable[[], Engine]
        if self.engine is not None:
            provider = OwnEngine(
                self.engine, f"memes.{setup.meme_id}.detector", setup.engines or build_own_engine
            )
        elif setup.run_engine is not None:
            provider = setup.run_engine
        else:
            raise ValueError(
                f"meme {setup.meme_id!r}: detector 'judge' needs an engine: set detector.engine, "
                "or use an LLM policy (the judge then uses the run's engine)"
            )
        return JudgeDetector(setup.statement, provider, prefilter, self.max_tokens, setup.meme_id)


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
    A leading reasoning block (thinking mode) is left out first.
    """
    text = reply_text(text)
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("verdict") in VERDICTS:
            return str(data["verdict"])
    except (json.JSONDecodeError, TypeError):
        pass
    lowered = text.lower()
    found = [(lowered.find(v), v) for v in VERDICTS if v in lowered]
    return min(found)[1] if found else "unrelated"


class JudgeDetector(DetectorBase):
    """A language model judges every candidate text's stance towards the meme.

    Args:
        statement: The meme's statement.
        engine: Returns the engine to use (called on first use); an :class:`OwnEngine` is
            closed by :meth:`close`.
        prefilter: Picks the candidates; the others are "unrelated" without a call.
        max_tokens: Token budget of a verdict.
        meme_id: Used in request ids.
    """

    kind = "judge"
    records = True

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

    def close(self) -> None:
        """Close the judge's own engine, if it has one (the run's belongs to the run)."""
        if isinstance(self._engine, OwnEngine):
            self._engine.close()

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether the judge says each text promotes the meme."""
        return np.array([v == "promotes" for v in self.verdicts(texts)], dtype=np.bool_)

    def views(self, texts: Sequence[str], carries: np.ndarray) -> list[DetectorView]:
        """The prefilter's view, then the judge's verdicts.

        An embedding prefilter's view carries its similarity as the score.
        """
        inner = self.prefilter
        similarity = getattr(inner, "similarity", None)
        score = similarity(texts) if similarity is not None else None
        label = f"prefilter:{getattr(inner, 'kind', type(inner).__name__)}"
        return [
            DetectorView(label, self.last_prefilter, score),
            DetectorView(self.kind, carries, verdict=self.last_verdicts),
        ]
