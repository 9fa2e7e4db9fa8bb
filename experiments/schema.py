"""The run config's schema: :class:`RunConfig`, one strict pydantic model per section.

Each section's spec (and each pluggable family's union of kinds) is imported from the
package that owns it; this module only assembles them. Reading, validating and the
cross-field checks live in :mod:`experiments.config` and :mod:`experiments.checks`, which
both import this module (and not each other in a circle).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.contagion import ContagionSpec
from agents.policies import PolicySpec
from agents.reflection import ReflectionSpec
from agents.values import ValuesSpec
from experiments.names import SafeName
from sim.guards import GuardSpec
from sim.memes import MemeSpec, check_unique_ids
from sim.memory_spec import MemorySpec
from sim.turnover import TurnoverSpec
from topologies.banks import BankLayoutSpec
from topologies.graphs import GraphSpec

#: Steps between checkpoints when ``checkpoint_every`` is unset.
DEFAULT_CHECKPOINT_EVERY = 10


class RunConfig(BaseModel):
    """A complete run.

    Attributes:
        name: Name of the run (its directory under ``output_dir``): 1-100 characters
            from letters, digits, ``_ . -``, starting with a letter, digit or ``_``.
        seed: Seed of every random draw of the run.
        steps: Number of steps to run.
        output_dir: Directory that receives the run directory.
        graph: The network of agents.
        banks: The memory bank layout.
        memory: Retrieval and forgetting.
        policy: What agents do: the classical contagion policy or LLM agents.
        memes: The memes to seed and track (at least one).
        probe_every: Ask the adoption probe every this many steps (LLM policies).
        guards: Defenses that review every proposed write, in order.
        turnover: Agent turnover: each agent is replaced with probability ``rate`` per
            step by a new one on the same node (empty private banks, shared banks kept,
            a fresh persona); unset: no turnover.
        reflection: Every R steps each LLM agent consolidates its top memories into a
            belief entry in a bank of the named layer (parents: those memories); unset:
            no reflection.
        values: Value-drift questionnaires every K steps (LLM policies), scored into the
            ``values`` table, optionally with and without memories (audit); unset: none.
        checkpoint_every: Save a resumable checkpoint every this many steps (0: never;
            None: every 10 steps). Resuming repeats at most that many steps; an LLM run
            repeats them without inference, replaying the recorded completions. See
            :attr:`resolved_checkpoint_every`.
        failed_request_share_limit: The run ends ``failed`` (exit 1) after the first
            step in which at least this share of the LLM requests failed (an engine
            error: server unreachable, timeout, prompt rejected; replies that do not
            parse are not failed requests). 1.0: only when every request of a step
            failed. Has no effect on policies without an engine.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SafeName = "run"
    seed: int = Field(0, ge=0)
    steps: int = Field(20, ge=1)
    output_dir: str = "runs"
    graph: GraphSpec
    banks: BankLayoutSpec = BankLayoutSpec()
    memory: MemorySpec = MemorySpec()
    policy: PolicySpec = ContagionSpec()
    memes: list[MemeSpec] = Field(min_length=1)
    probe_every: int | None = Field(None, ge=1)
    guards: list[GuardSpec] = []
    checkpoint_every: int | None = Field(None, ge=0)
    turnover: TurnoverSpec | None = None
    reflection: ReflectionSpec | None = None
    values: ValuesSpec | None = None
    failed_request_share_limit: float = Field(1.0, gt=0.0, le=1.0)

    @property
    def resolved_checkpoint_every(self) -> int:
        """``checkpoint_every``, or :data:`DEFAULT_CHECKPOINT_EVERY` when unset."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return DEFAULT_CHECKPOINT_EVERY

    @model_validator(mode="after")
    def _unique_memes(self) -> RunConfig:
        check_unique_ids(self.memes)
        return self
