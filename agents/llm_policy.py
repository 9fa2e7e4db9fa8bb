"""The LLM policy: every agent is an LLM instance, and a step is ONE batched engine call.

``act`` builds one chat request per agent (shared system text first, agent text last; see
:mod:`agents.prompts`), sends the whole batch with a single ``engine.generate`` call,
parses every reply (:mod:`agents.parsing`) and turns the ``OK`` replies that ask to save a
note into write proposals. The simulator validates them (a bank the agent may not write,
or an unknown bank name, is refused and counted) and sets provenance itself.

``probe`` asks every agent the adoption probe question(s), again in one batched call,
and decides adoption with the memes' detectors (:mod:`agents.probes`).

Seeds: each ``act`` (and each ``probe``) draws one seed per request from the model's
generator, as one array, before building any request; requests and therefore replay
cache keys depend only on the run's seed and state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.containment import ELLIPSIS, neutralise
from agents.llm.base import (
    Completion,
    Engine,
    EngineError,
    EngineSpec,
    GenerationRequest,
    LlamaCppSpec,
    SamplingParams,
)
from agents.output_schema import act_schema_dict, dump_schema, probe_schema_dict
from agents.parsing import ParsedOutput, ParseStatus, parse_output
from agents.personas import Persona, load_personas, persona_of
from agents.probes import adoptions_from_answers, answer_text, probe_questions
from agents.prompts import (
    DEFAULT_SCENARIO,
    MemoryLine,
    WritableBank,
    act_messages,
    probe_messages,
    prompt_sha256,
    shared_text,
)
from agents.tasks import StepTasks, TaskStream, load_tasks
from sim.memory import MemoryStore
from sim.policy import EngineStats, PolicyOutput, StepContext, WriteProposals
from topologies.banks import BankKind

#: Importance of every note an LLM agent writes.
WRITE_IMPORTANCE = 0.5
#: Longest bank name kept in the generations table.
MAX_BANK_NAME_CHARS = 64
_SEED_BOUND = 2**31 - 1
_MIN_CHARS = len(ELLIPSIS) + 1

GENERATIONS_SCHEMA = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "kind": pl.String,
    "question": pl.String,
    "request_id": pl.String,
    "prompt_sha256": pl.String,
    "completion": pl.String,
    "finish_reason": pl.String,
    "error": pl.String,
    "prompt_tokens": pl.Int64,
    "cached_prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "parse_status": pl.String,
    "bank_requested": pl.String,
}


class LLMPolicySpec(BaseModel):
    """Parameters of the LLM policy.

    Attributes:
        kind: Always "llm".
        engine: The inference engine (default: embedded llama.cpp with SmolLM2-135M).
        temperature: Sampling temperature (>= 0).
        top_p: Nucleus-sampling mass, in (0, 1].
        max_tokens: Token budget of a task reply.
        probe_max_tokens: Token budget of a probe reply.
        scenario: The scenario text, part of the shared system text.
        system_prompt: Replaces the default system text (the scenario is still appended).
        personas_file: JSON file of personas (default: the packaged set).
        tasks_file: JSON file of tasks (default: the packaged stream).
        max_memory_chars: Each memory is neutralised and cut to this many characters in a
            prompt.
        max_write_chars: Each written note is neutralised and cut to this many characters
            (and bounded so in the JSON schema).
        max_answer_chars: Bound on the answer's length in the JSON schema.
        probe_questions: Questions asked in every probe after the fixed priority question.
        json_mode: Constrain decoding to the output JSON schema (where the engine can).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["llm"] = "llm"
    engine: EngineSpec = LlamaCppSpec()
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(160, ge=1)
    probe_max_tokens: int = Field(64, ge=1)
    scenario: str = Field(DEFAULT_SCENARIO, min_length=1)
    system_prompt: str | None = None
    personas_file: str | None = None
    tasks_file: str | None = None
    max_memory_chars: int = Field(300, ge=_MIN_CHARS)
    max_write_chars: int = Field(300, ge=_MIN_CHARS)
    max_answer_chars: int = Field(160, ge=1)
    probe_questions: list[str] = []
    json_mode: bool = True

    @model_validator(mode="after")
    def _check_questions(self) -> LLMPolicySpec:
        for i, question in enumerate(self.probe_questions):
            if not question.strip():
                raise ValueError(f"probe_questions.{i} = {question!r}: must be non-empty")
        return self


class LLMPolicy:
    """LLM agents, all of a step in one batched engine call.

    Args:
        spec: The policy parameters.
        engine: A ready engine to use. The caller keeps ownership (``close`` leaves it
            open). When None, the engine is built from ``spec.engine`` on first use and
            closed by ``close``.

    Raises:
        ValueError: The personas or tasks file is invalid.
    """

    name = "llm"

    def __init__(self, spec: LLMPolicySpec | None = None, engine: Engine | None = None) -> None:
        self.spec = spec or LLMPolicySpec()
        self._engine = engine
        self._owns_engine = engine is None
        self.personas: tuple[Persona, ...] = load_personas(self.spec.personas_file)
        self.tasks = TaskStream(load_tasks(self.spec.tasks_file))
        self.shared = shared_text(self.spec.system_prompt, self.spec.scenario)
        self._memory_cache: dict[str, str] = {}

    # ------------------------------------------------------------ protocol
    @property
    def engine(self) -> Engine:
        """The engine (built from the spec on first access unless one was given)."""
        if self._engine is None:
            from agents.llm.factory import build_engine

            self._engine = build_engine(self.spec.engine)
        return self._engine

    def describe(self) -> dict[str, object]:
        """Policy name, engine name, model id and the spec (no secrets: keys are env names)."""
        engine = self.engine
        return {
            "policy": self.name,
            "engine": engine.name,
            "model_id": engine.model_id,
            "spec": self.spec.model_dump(mode="json"),
        }

    def queries(self, step: int) -> StepTasks:
        """Each agent's task at ``step`` (indexed by agent id), used as its retrieval query."""
        return self.tasks.at_step(step)

    def close(self) -> None:
        """Close the engine if this policy built it."""
        if self._engine is not None and self._owns_engine:
            self._engine.close()
            self._engine = None

    # ------------------------------------------------------------ prompts
    def _memories(self, context: StepContext, agent: int) -> list[MemoryLine]:
        store, names = context.store, context.banks.names
        entries = context.retrieval.of(agent)
        return [
            MemoryLine(names[int(store.bank[e])], self._memory_text(store, int(e)))
            for e in entries.tolist()
        ]

    def _memory_text(self, store: MemoryStore, entry: int) -> str:
        # Many agents see the same entries: neutralise each distinct text once.
        text = store.texts.get(int(store.text_id[entry]))
        cached = self._memory_cache.get(text)
        if cached is None:
            cached = neutralise(text, self.spec.max_memory_chars)
            self._memory_cache[text] = cached
        return cached

    def _writable(self, context: StepContext, agent: int) -> list[WritableBank]:
        banks = context.banks
        return [
            WritableBank(banks.names[b], BankKind(int(banks.kind[b])))
            for b in banks.writable(agent).tolist()
        ]

    def _act_schema(self, context: StepContext, agent: int) -> str | None:
        if not self.spec.json_mode:
            return None
        banks = context.banks
        visible = np.union1d(banks.readable(agent), banks.writable(agent))
        names = [banks.names[b] for b in visible.tolist()]
        return dump_schema(
            act_schema_dict(names, self.spec.max_answer_chars, self.spec.max_write_chars)
        )

    def act_requests(self, context: StepContext) -> list[GenerationRequest]:
        """Build every agent's task request for this step (draws the step's seeds)."""
        n = context.banks.n_agents
        seeds = context.rng.integers(0, _SEED_BOUND, size=n)
        tasks = self.queries(context.step)
        requests = []
        for agent in range(n):
            messages = act_messages(
                self.shared,
                persona_of(self.personas, agent),
                self._memories(context, agent),
                self._writable(context, agent),
                tasks[agent],
                self.spec.max_memory_chars,
            )
            requests.append(
                GenerationRequest(
                    request_id=f"s{context.step}-a{agent}-act",
                    messages=messages,
                    sampling=self._sampling(self.spec.max_tokens, int(seeds[agent])),
                    json_schema=self._act_schema(context, agent),
                )
            )
        return requests

    def probe_requests(self, context: StepContext) -> list[GenerationRequest]:
        """Build every agent's probe requests, agent-major (draws the probe's seeds)."""
        n = context.banks.n_agents
        questions = probe_questions(self.spec.probe_questions)
        seeds = context.rng.integers(0, _SEED_BOUND, size=n * len(questions))
        schema = (
            dump_schema(probe_schema_dict(self.spec.max_answer_chars))
            if self.spec.json_mode
            else None
        )
        requests = []
        for agent in range(n):
            persona = persona_of(self.personas, agent)
            memories = self._memories(context, agent)
            for q, question in enumerate(questions):
                requests.append(
                    GenerationRequest(
                        request_id=f"s{context.step}-a{agent}-probe{q}",
                        messages=probe_messages(
                            self.shared, persona, memories, question, self.spec.max_memory_chars
                        ),
                        sampling=self._sampling(
                            self.spec.probe_max_tokens, int(seeds[agent * len(questions) + q])
                        ),
                        json_schema=schema,
                    )
                )
        return requests

    def _sampling(self, max_tokens: int, seed: int) -> SamplingParams:
        return SamplingParams(
            temperature=self.spec.temperature,
            top_p=self.spec.top_p,
            max_tokens=max_tokens,
            seed=seed,
        )

    # ------------------------------------------------------------ steps
    def _generate(
        self, requests: list[GenerationRequest]
    ) -> tuple[list[Completion], list[ParsedOutput], float]:
        engine = self.engine
        started = time.perf_counter()
        completions = engine.generate(requests)
        wall = time.perf_counter() - started
        if len(completions) != len(requests):
            raise EngineError(
                f"engine {engine.name!r} returned {len(completions)} completions for "
                f"{len(requests)} requests"
            )
        return completions, [parse_output(c) for c in completions], wall

    def act(self, context: StepContext) -> PolicyOutput:
        """One batched call for all agents; OK replies naming a bank and a note become writes."""
        requests = self.act_requests(context)
        completions, parsed, wall = self._generate(requests)
        writers = [a for a, p in enumerate(parsed) if p.wants_write]
        bank_ids = []
        for agent in writers:
            try:
                bank_ids.append(context.banks.bank_id(parsed[agent].bank_name))
            except KeyError:
                bank_ids.append(-1)  # unknown bank: the model refuses and counts it
        writes = WriteProposals(
            author=np.asarray(writers, dtype=np.int32),
            bank=np.asarray(bank_ids, dtype=np.int32),
            text=[neutralise(parsed[a].text, self.spec.max_write_chars) for a in writers],
            importance=np.full(len(writers), WRITE_IMPORTANCE, dtype=np.float32),
            cause=np.full(len(writers), -1, dtype=np.int64),
        )
        agents = list(range(len(requests)))
        frame = generations_frame(
            context.step, agents, "act", [None] * len(agents), requests, completions, parsed
        )
        return PolicyOutput(
            writes=writes, generations=frame, stats=_stats(completions, parsed, wall)
        )

    def probe(self, context: StepContext) -> PolicyOutput:
        """One batched call asking every agent every probe question; decide adoption."""
        n = context.banks.n_agents
        questions = probe_questions(self.spec.probe_questions)
        requests = self.probe_requests(context)
        completions, parsed, wall = self._generate(requests)
        answers = [answer_text(p, c) for p, c in zip(parsed, completions, strict=True)]
        adoptions = adoptions_from_answers(answers, n, context.memes)
        agents = [a for a in range(n) for _ in questions]
        asked = [q for _ in range(n) for q in questions]
        frame = generations_frame(
            context.step, agents, "probe", asked, requests, completions, parsed
        )
        return PolicyOutput(
            adoptions=adoptions, generations=frame, stats=_stats(completions, parsed, wall)
        )


def _stats(
    completions: Sequence[Completion], parsed: Sequence[ParsedOutput], wall: float
) -> EngineStats:
    """Totals of one batched call; ``failures`` counts replies that did not parse OK."""
    return EngineStats(
        requests=len(completions),
        prompt_tokens=sum(c.prompt_tokens for c in completions),
        cached_prompt_tokens=sum(c.cached_prompt_tokens for c in completions),
        completion_tokens=sum(c.completion_tokens for c in completions),
        failures=sum(p.status is not ParseStatus.OK for p in parsed),
        wall_s=wall,
    )


def generations_frame(
    step: int,
    agents: Sequence[int],
    kind: str,
    questions: Sequence[str | None],
    requests: Sequence[GenerationRequest],
    completions: Sequence[Completion],
    parsed: Sequence[ParsedOutput],
) -> pl.DataFrame:
    """Rows of the ``generations`` table, one per request (see :data:`GENERATIONS_SCHEMA`)."""
    return pl.DataFrame(
        {
            "step": [step] * len(requests),
            "agent_id": list(agents),
            "kind": [kind] * len(requests),
            "question": list(questions),
            "request_id": [r.request_id for r in requests],
            "prompt_sha256": [prompt_sha256(r.messages) for r in requests],
            "completion": [c.text for c in completions],
            "finish_reason": [c.finish_reason.value for c in completions],
            "error": [c.error for c in completions],
            "prompt_tokens": [c.prompt_tokens for c in completions],
            "cached_prompt_tokens": [c.cached_prompt_tokens for c in completions],
            "completion_tokens": [c.completion_tokens for c in completions],
            "parse_status": [p.status.value for p in parsed],
            "bank_requested": [p.bank_name[:MAX_BANK_NAME_CHARS] for p in parsed],
        },
        schema=GENERATIONS_SCHEMA,
    )
