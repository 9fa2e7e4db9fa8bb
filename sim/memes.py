"""Memes: the seeded goals and beliefs whose spread a run tracks, and where they start."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.detectors import CanaryDetectorSpec as CanaryDetectorSpec
from sim.detectors import DetectorSpec as DetectorSpec
from sim.detectors import EmbeddingDetectorSpec as EmbeddingDetectorSpec
from sim.detectors import JudgeDetectorSpec as JudgeDetectorSpec
from sim.detectors import LexicalDetectorSpec as LexicalDetectorSpec
from sim.texts import words
from topologies.placements import AgentsPlacement as AgentsPlacement
from topologies.placements import BankPlacement as BankPlacement
from topologies.placements import BridgePlacement as BridgePlacement
from topologies.placements import HubPlacement as HubPlacement
from topologies.placements import PeripheryPlacement as PeripheryPlacement
from topologies.placements import PlacementSpec as PlacementSpec
from topologies.placements import RandomPlacement as RandomPlacement

#: At most this many memes per run (entries store the memes they carry as an int64 mask).
MAX_MEMES = 63
#: Importance of a note an agent writes; seed entries get it too unless set.
NOTE_IMPORTANCE = 0.5
#: Longest run of consecutive words a probe item may share with the meme's statement.
MAX_SHARED_WORDS = 3


class MemeKind(enum.StrEnum):
    """What a meme is, for analysis (it does not change how it spreads)."""

    INFLUENCE_SEEKING = "influence_seeking"
    BENIGN_INSIGHT = "benign_insight"
    BELIEF = "belief"
    GOAL = "goal"
    PLACEBO = "placebo"
    OTHER = "other"


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
        target_options: Option ids of decision tasks whose choice expresses the meme
            (the agent acted on it). A list applies to every task that offers such an
            option; a table ``{task_id = [option ids]}`` names them per task. Empty: the
            meme's expression is not scored. A placebo inherits its pair's targets when
            it has none, so both arms measure the same behaviour.
        placebo_of: For ``kind = "placebo"``: the id of the meme this one controls for
            (same form, length, placement and copy instruction, but no goal).
        probe_items: Yes/no questions whose "yes" endorses the meme, asked by probes
            with ``probe_style = "logprob"``. They must not repeat the statement's
            wording (at most :data:`MAX_SHARED_WORDS` consecutive words in common), so a
            "yes" is not mere parroting of the seed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    statement: str = Field(min_length=1)
    kind: MemeKind = MemeKind.OTHER
    canary: str | None = None
    detector: DetectorSpec | None = None
    placement: PlacementSpec = RandomPlacement()
    inject_step: int = Field(0, ge=0)
    target_options: list[str] | dict[str, list[str]] = []
    placebo_of: str | None = None
    probe_items: list[str] = []

    @model_validator(mode="after")
    def _check(self) -> MemeSpec:
        if (self.kind is MemeKind.PLACEBO) != (self.placebo_of is not None):
            raise ValueError(
                f"meme {self.id!r}: kind 'placebo' and placebo_of go together (kind = "
                f"{self.kind.value!r}, placebo_of = {self.placebo_of!r})"
            )
        for i, item in enumerate(self.probe_items):
            shared = shared_run(item, self.statement)
            if not item.strip() or shared > MAX_SHARED_WORDS:
                raise ValueError(
                    f"meme {self.id!r}: probe_items.{i} = {item!r}: must be non-empty and "
                    f"share at most {MAX_SHARED_WORDS} consecutive words with the statement "
                    f"(shares {shared}); rephrase it so a yes is not an echo of the seed"
                )
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

    def targets_for(self, task_id: str) -> frozenset[str]:
        """Option ids that express this meme in task ``task_id`` (empty: none)."""
        if isinstance(self.target_options, dict):
            return frozenset(self.target_options.get(task_id, ()))
        return frozenset(self.target_options)

    def all_targets(self) -> frozenset[str]:
        """Every option id named as a target, over all tasks."""
        if isinstance(self.target_options, dict):
            return frozenset(o for opts in self.target_options.values() for o in opts)
        return frozenset(self.target_options)

    @property
    def seed_importance(self) -> float:
        """The importance of the seed entries: ``placement.importance`` or a note's."""
        importance = self.placement.importance
        return NOTE_IMPORTANCE if importance is None else importance

    @property
    def seed_text(self) -> str:
        """The text of the seed entries: the statement, with the canary appended if absent."""
        if self.canary and self.canary not in self.statement:
            return f"{self.statement} [{self.canary}]"
        return self.statement

    @property
    def effective_detector(self) -> DetectorSpec:
        """The detector spec in force (the default when none was given)."""
        if self.detector is not None:
            return self.detector
        if self.canary:
            return CanaryDetectorSpec()
        return self.signature(strict=True)

    def signature(self, strict: bool) -> LexicalDetectorSpec:
        """The lexical signature of the statement: its four longest words.

        All but one of them are required when ``strict``, else any one.
        """
        found = set(words(self.statement))
        longest = sorted(found, key=lambda w: (len(w), w))[-4:]
        return LexicalDetectorSpec(
            terms=longest, min_matches=max(1, len(longest) - 1) if strict else 1
        )


def shared_run(a: str, b: str) -> int:
    """Length of the longest run of consecutive lowercase words common to ``a`` and ``b``."""
    wa = words(a)
    wb = words(b)
    best = 0
    prev = [0] * (len(wb) + 1)
    for x in wa:
        cur = [0] * (len(wb) + 1)
        for j, y in enumerate(wb, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def check_unique_ids(memes: Sequence[MemeSpec]) -> None:
    """The one check that every meme id of a run is unique.

    Raises:
        ValueError: Some ids repeat (the message lists them).
    """
    ids = [m.id for m in memes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"memes: duplicate id(s) {dupes}; every meme id must be unique")


def resolve_placebos(memes: list[MemeSpec] | tuple[MemeSpec, ...]) -> list[MemeSpec]:
    """Memes with every placebo's empty ``target_options`` filled from its pair.

    Raises:
        ValueError: A placebo names an unknown meme or another placebo.
    """
    by_id = {m.id: m for m in memes}
    out = []
    for meme in memes:
        if meme.placebo_of is not None:
            pair = by_id.get(meme.placebo_of)
            if pair is None or pair.placebo_of is not None:
                raise ValueError(
                    f"meme {meme.id!r}: placebo_of = {meme.placebo_of!r} must name a non-placebo "
                    f"meme of the run (memes: {sorted(by_id)})"
                )
            if not meme.target_options:
                meme = meme.model_copy(update={"target_options": pair.target_options})
        out.append(meme)
    return out
