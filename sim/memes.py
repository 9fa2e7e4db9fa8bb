"""Memes: the seeded goals and beliefs whose spread a run tracks, and where they start."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: At most this many memes per run (entries store the memes they carry as an int64 mask).
MAX_MEMES = 63


class MemeKind(enum.StrEnum):
    """What a meme is, for analysis (it does not change how it spreads)."""

    INFLUENCE_SEEKING = "influence_seeking"
    BENIGN_INSIGHT = "benign_insight"
    BELIEF = "belief"
    GOAL = "goal"
    OTHER = "other"


class CanaryDetectorSpec(BaseModel):
    """A text carries the meme iff it contains the meme's canary token (exact, case-sensitive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["canary"] = "canary"


class LexicalDetectorSpec(BaseModel):
    """A text carries the meme iff it contains at least ``min_matches`` of ``terms``.

    Matching is on lowercase words; a multi-word term matches as a phrase.
    ``min_matches = None`` means all terms.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["lexical"] = "lexical"
    terms: list[str] = Field(min_length=1)
    min_matches: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check_min_matches(self) -> LexicalDetectorSpec:
        if self.min_matches is not None and self.min_matches > len(self.terms):
            raise ValueError(
                f"detector.min_matches = {self.min_matches}: must be between 1 and the number "
                f"of terms ({len(self.terms)})"
            )
        return self


class EmbeddingDetectorSpec(BaseModel):
    """A text carries the meme iff its embedding is close enough to the statement's.

    Cosine similarity at least ``threshold``; needs an embedder passed to the model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["embedding"] = "embedding"
    threshold: float = Field(0.8, gt=-1, le=1)


DetectorSpec = Annotated[
    CanaryDetectorSpec | LexicalDetectorSpec | EmbeddingDetectorSpec, Field(discriminator="kind")
]


class PlacementSpec(BaseModel):
    """Where and how a meme is seeded.

    Attributes:
        strategy: "random" agents, the highest-degree "hub", the lowest-degree "periphery",
            the highest-betweenness "bridge", the named ``agents``, or the named ``bank``.
        count: Number of agents for random/hub/periphery/bridge.
        agents: Agent ids for strategy "agents".
        bank: Bank name (e.g. "global", "neighbourhood:3") for strategy "bank".
        into: Which of a seeded agent's writable banks receive the seed entry: "private",
            "shared", or "all".
        adopt: Whether seeded agents start as adopters (the contagion convention). LLM
            probes may later revise adoption.
        importance: Importance of the seed entries, in [0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["random", "hub", "periphery", "bridge", "agents", "bank"] = "random"
    count: int = Field(1, ge=1)
    agents: list[int] | None = None
    bank: str | None = None
    into: Literal["private", "shared", "all"] = "all"
    adopt: bool = True
    importance: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check_target(self) -> PlacementSpec:
        if self.strategy == "agents" and not self.agents:
            raise ValueError("placement.agents: strategy 'agents' needs a non-empty list of ids")
        if self.strategy == "bank" and not self.bank:
            raise ValueError("placement.bank: strategy 'bank' needs a bank name, e.g. 'global'")
        if self.agents is not None and self.strategy != "agents":
            raise ValueError(
                f"placement.agents is only allowed with strategy 'agents' (got '{self.strategy}')"
            )
        if self.bank is not None and self.strategy != "bank":
            raise ValueError(
                f"placement.bank is only allowed with strategy 'bank' (got '{self.strategy}')"
            )
        return self


_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class MemeSpec(BaseModel):
    """A seeded goal or belief.

    Attributes:
        id: Short identifier (letters, digits, ``_``, ``-``), unique in the run.
        statement: The text of the meme as seeded.
        kind: What the meme is (for analysis).
        canary: Optional unique token embedded in the seed text for exact detection.
        detector: How to decide whether a text carries the meme (defaults to the canary
            detector when a canary is set, else a lexical detector over the statement's
            words).
        placement: Where the meme is seeded.
        inject_step: The step at whose start the seed entries are written.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    statement: str = Field(min_length=1)
    kind: MemeKind = MemeKind.OTHER
    canary: str | None = None
    detector: DetectorSpec | None = None
    placement: PlacementSpec = PlacementSpec()
    inject_step: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> MemeSpec:
        if not _ID.match(self.id):
            raise ValueError(
                f"meme.id = {self.id!r}: must start with a letter or '_' and contain only "
                "letters, digits, '_' and '-'"
            )
        if isinstance(self.detector, CanaryDetectorSpec) and not self.canary:
            raise ValueError(f"meme {self.id!r}: detector 'canary' needs meme.canary to be set")
        if self.canary is not None and (not self.canary.strip() or len(self.canary) < 4):
            raise ValueError(
                f"meme {self.id!r}: canary = {self.canary!r} must be at least 4 visible characters"
            )
        return self

    @property
    def seed_text(self) -> str:
        """The text of the seed entries: the statement, with the canary appended if absent."""
        if self.canary and self.canary not in self.statement:
            return f"{self.statement} [{self.canary}]"
        return self.statement

    @property
    def effective_detector(
        self,
    ) -> CanaryDetectorSpec | LexicalDetectorSpec | EmbeddingDetectorSpec:
        """The detector spec in force (the default when none was given)."""
        if self.detector is not None:
            return self.detector
        if self.canary:
            return CanaryDetectorSpec()
        found = set(re.findall(r"[a-z0-9]+", self.statement.lower()))
        words = sorted(found, key=lambda w: (len(w), w))[-4:]
        return LexicalDetectorSpec(terms=words, min_matches=max(1, len(words) - 1))
