"""The LLM policy: every agent is an LLM instance, and a step is ONE batched engine call.

``act`` builds one chat request per agent (shared system text first, agent text last; see
:mod:`agents.prompts`), sends the whole batch with a single ``engine.generate`` call,
parses every reply (:mod:`agents.parsing`) and turns the ``OK`` replies that ask to save a
note into write proposals. The simulator validates them (a bank the agent may not write,
or an unknown bank name, is refused and counted) and sets provenance itself.

``probe`` asks every agent the adoption probe question(s), again in one batched call,
and decides adoption with the memes' detectors (:mod:`agents.probes`).

Decision tasks: when an agent's task has options, they are shown under letters in an
order drawn from the model's generator (:mod:`agents.decisions`), the reply's JSON schema
requires a ``choice`` among the letters, and the choice is scored against every meme's
``target_options`` (the *expressed* state). With ``option_scoring = "logprob"`` and an
engine that reports log-probabilities, a second, batched scoring call records the
probability of every shown option (one forward pass each, nothing sampled); engines
without log-probabilities fall back to the sampled choice alone, and ``describe()`` (the
run's manifest) says which was used.

Probes: ``probe_style = "sampled"`` asks the priority question (and any extra questions)
and classifies the sampled answers with the memes' detectors; ``probe_style = "logprob"``
asks each meme's yes/no ``probe_items`` and scores P(yes) by log-probability (adopted:
mean P(yes) >= 0.5), recorded in the ``probes`` table.

Seeds: each ``act`` (and each ``probe``) draws one seed per request from the model's
generator, as one array, before building any request, then one option permutation per
decision in agent order; requests and therefore replay cache keys depend only on the
run's seed and state.

Personas: with ``persona_assignment = "by_id"`` agent ``i`` (generation ``g``) speaks as
persona ``(i + g) mod P`` of the personas file; with ``"shuffled"`` through a permutation
of the P persona positions that the model draws when it binds the policy
(:meth:`LLMPolicy.bind`, :func:`agents.personas.shuffled_order`) and that checkpoints
save, so a resumed or forked run keeps it. The model records the assignment in the
``personas`` table (:meth:`LLMPolicy.persona_rows`).

Batch order: every engine call sends its requests in
:func:`agents.prompts.shared_prefix_order` (prompts with common prefixes next to each
other, so the engine's prefix/KV cache serves more of each prompt) and puts the results
back in agent order; the order depends only on the prompts, so runs stay reproducible.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.containment import MIN_CHARS, neutralise
from agents.decisions import (
    ShownDecision,
    check_targets,
    context_doses,
    matching_source,
    score_decisions,
    shuffle_decisions,
)
from agents.llm import EngineSpec, LlamaCppSpec
from agents.llm.base import (
    ChatMessage,
    Completion,
    Engine,
    EngineError,
    GenerationRequest,
    OptionScores,
    SamplingParams,
    ScoreRequest,
    can_score,
    engine_settings,
    request_seeds,
    score_announcer,
)
from agents.output_schema import act_schema_dict, dump_schema, probe_schema_dict
from agents.parsing import ParsedOutput, ParseStatus, memory_number, parse_output
from agents.personas import (
    Persona,
    PersonaAssignment,
    check_order,
    load_personas,
    persona_of,
    personas_frame,
    shuffled_order,
)
from agents.probes import adoptions_from_answers, answer_text, probe_questions
from agents.prompts import (
    CHOICE_INSTRUCTION,
    DEFAULT_SCENARIO,
    FORWARD_INSTRUCTION,
    LETTER_INSTRUCTION,
    PASS_ON_INSTRUCTION,
    YES_NO_INSTRUCTION,
    MemoryLine,
    WritableBank,
    act_messages,
    decision_text,
    probe_messages,
    prompt_sha256,
    shared_prefix_order,
    shared_text,
)
from agents.tasks import StepTasks, TaskStream, load_tasks
from agents.updates import UPDATE_INSTRUCTION, propose_updates, with_update_field
from sim.memes import NOTE_IMPORTANCE
from sim.memory import MemoryStore
from sim.policy import Adoptions, EngineStats, PolicyOutput, StepContext, WriteProposals
from sim.state import State
from sim.utility import AnswerScores
from topologies.banks import BankKind

_R = TypeVar("_R")

#: Importance of every note an LLM agent writes (seed entries get the same by default).
WRITE_IMPORTANCE = NOTE_IMPORTANCE
#: Longest bank name kept in the generations table.
MAX_BANK_NAME_CHARS = 64

#: Columns of the ``probes`` table (log-probability probes): P(yes) per item.
PROBES_SCHEMA = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "meme_id": pl.String,
    "item": pl.String,
    "p_yes": pl.Float64,
    "error": pl.String,
}

#: Columns of the ``prompts`` table (``record_prompts``): every rendered prompt.
PROMPTS_SCHEMA = {
    "step": pl.Int32,
    "request_id": pl.String,
    "prompt_sha256": pl.String,
    "messages": pl.String,
}

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
        personas_file: JSON file of personas (default: the packaged set): a non-empty
            list of ``{"name", "role", "description"}`` objects; agent ``i`` gets persona
            ``i`` modulo their number (a replacement agent the next one), in the order
            ``persona_assignment`` sets. Relative paths in a config file are relative to
            its folder.
        persona_assignment: ``"by_id"``: agent ``i`` gets persona ``i`` of the file (modulo
            their number); ``"shuffled"``: persona ``order[i mod P]`` for a permutation ``order``
            of the personas' positions drawn once per run from a child of the model's
            generator (a function of the seed; the run's other random draws stay as with
            ``"by_id"``; checkpoints keep it), so agents at a fixed seed placement do not
            have the same personas in every seed. Replacement agents take the next
            persona in that order.
        tasks_file: JSON file of tasks (default: the packaged stream): a non-empty list of
            open tasks (strings) and decisions, ``{"id", "task", "options": [{"id",
            "text"}, ...]}`` with 2-8 options and optionally ``"answer"`` (an option id);
            see :mod:`agents.tasks`. Relative paths as for ``personas_file``.
        max_memory_chars: Each memory is neutralised and cut to this many characters in a
            prompt.
        max_write_chars: Each written note is neutralised and cut to this many characters
            (and bounded so in the JSON schema).
        max_answer_chars: Bound on the answer's length in the JSON schema.
        probe_questions: Questions asked in every probe after the fixed priority question.
        json_mode: Constrain decoding to the output JSON schema (where the engine can).
        option_scoring: ``"sampled"``: a decision's outcome is the sampled choice only;
            ``"logprob"``: also record the probability of every shown option by
            log-probability (one extra forward pass per decision; falls back to
            ``"sampled"`` when the engine reports no log-probabilities).
        probe_style: ``"sampled"``: adoption from detectors on sampled probe answers;
            ``"logprob"``: adoption from P(yes) to each meme's ``probe_items`` (memes
            without items are then never adopted by probes).
        record_prompts: Store every rendered prompt in the ``prompts`` table (Parquet,
            compressed) for audit; off by default (prompts are large).
        allow_update: Agents may rewrite one memory they can write (memory evolution):
            the reply gains an ``update`` field (the number of a memory shown, or "");
            the note then replaces that memory in its bank (the old version is removed
            and becomes the new one's first parent; see :mod:`agents.updates`).
        allow_forward: Agents may pass a memory on unchanged: the reply gains a
            ``forward`` field (the number of a memory shown, or "") and the note written
            into ``memory_bank`` is then that memory's exact text, caused by it. Small
            models rarely reproduce a note word for word; forwarding separates the
            decision to pass a note on from the skill of copying it.
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
    persona_assignment: PersonaAssignment = "by_id"
    tasks_file: str | None = None
    max_memory_chars: int = Field(300, ge=MIN_CHARS)
    max_write_chars: int = Field(300, ge=MIN_CHARS)
    max_answer_chars: int = Field(160, ge=1)
    probe_questions: list[str] = []
    json_mode: bool = True
    option_scoring: Literal["sampled", "logprob"] = "sampled"
    probe_style: Literal["sampled", "logprob"] = "sampled"
    record_prompts: bool = False
    allow_update: bool = False
    allow_forward: bool = False

    @model_validator(mode="after")
    def _check_questions(self) -> LLMPolicySpec:
        for i, question in enumerate(self.probe_questions):
            if not question.strip():
                raise ValueError(f"probe_questions.{i} = {question!r}: must be non-empty")
        return self

    def build(self, engine: Engine | None = None) -> LLMPolicy:
        """The policy this spec describes.

        Args:
            engine: A ready engine (the caller keeps ownership); None: the policy builds
                (and owns) the configured engine on first use.
        """
        return LLMPolicy(self, engine=engine)


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
    #: The model records every agent's retrieved context (the ``contexts`` table).
    records_contexts = True
    #: Seeded agents start as adopters only when the meme's placement says so.
    seeded_adopters = False

    def __init__(self, spec: LLMPolicySpec | None = None, engine: Engine | None = None) -> None:
        self.spec = spec or LLMPolicySpec()
        self._engine = engine
        self._owns_engine = engine is None
        #: The personas in file order (see :meth:`persona` for who speaks as which).
        self.personas: tuple[Persona, ...] = load_personas(self.spec.personas_file)
        # "shuffled": drawn by ``bind``; None until then. "by_id": the identity.
        self._persona_order: tuple[int, ...] | None = (
            tuple(range(len(self.personas))) if self.spec.persona_assignment == "by_id" else None
        )
        self.tasks = TaskStream(load_tasks(self.spec.tasks_file))
        # How to pass a memory on ends every act prompt, right before the reply: moved
        # into the shared text (better cached), the 135M demo model wrote far fewer notes.
        self.pass_on = FORWARD_INSTRUCTION if self.spec.allow_forward else PASS_ON_INSTRUCTION
        self.shared = shared_text(
            self.spec.system_prompt, self.spec.scenario, self.spec.allow_forward
        )
        if self.spec.allow_update:
            self.shared = f"{self.shared}\n\n{UPDATE_INSTRUCTION}"
        self._memory_cache: dict[str, str] = {}
        self._targets_checked = False

    # ------------------------------------------------------------ protocol
    @property
    def engine(self) -> Engine:
        """The engine (built from the spec on first access unless one was given)."""
        if self._engine is None:
            from agents.llm import build_engine

            self._engine = build_engine(self.spec.engine)
        return self._engine

    def use_engine(self, engine: Engine) -> None:
        """Take a ready engine (the caller keeps ownership) instead of building one.

        The runner builds the model first, so that a config that fails only when its
        graph, banks or seeds are built fails before any model loads, and then hands the
        policy its run engine (behind the run's replay cache).

        Raises:
            RuntimeError: The policy already has an engine.
        """
        if self._engine is not None:
            raise RuntimeError("the LLM policy already has an engine")
        self._engine = engine
        self._owns_engine = False

    @property
    def scores_options(self) -> bool:
        """Whether log-probability scoring is on (asked for, and the engine can)."""
        wants = self.spec.option_scoring == "logprob" or self.spec.probe_style == "logprob"
        return wants and can_score(self.engine)

    def describe(self) -> dict[str, object]:
        """Identity for the manifest: policy, engine, model, scoring used, spec.

        ``persona_order`` (``"shuffled"`` persona assignment only) lists the persona
        positions in assignment order: agent ``i`` of generation 0 speaks as persona
        ``persona_order[i % P]`` of the personas file.

        ``engine_settings`` (only for engines that report them, e.g. vLLM) holds what the
        running engine resolved: for vLLM the context length and the KV block size that
        decide its prefix-cache hits, whichever the spec left unset.

        How decisions and probes were scored says "sampled (...)" when log-probability
        scoring was asked for but the engine cannot give it. No secrets: keys are env
        names.
        """
        engine = self.engine
        scored = can_score(engine)

        def used(style: str) -> str:
            if style == "logprob" and not scored:
                return "sampled (the engine reports no log-probabilities)"
            return style

        described: dict[str, object] = {
            "policy": self.name,
            "engine": engine.name,
            "model_id": engine.model_id,
            "option_scoring": used(self.spec.option_scoring),
            "probe_style": used(self.spec.probe_style),
            "spec": self.spec.model_dump(mode="json"),
        }
        if self.spec.persona_assignment == "shuffled":
            described["persona_order"] = list(self.persona_order)
        settings = engine_settings(engine)
        if settings:
            described["engine_settings"] = settings
        return described

    def bind(self, rng: np.random.Generator) -> None:
        """Take what the policy draws once per run from the model's generator ``rng``.

        The model calls it once, when it is built. With ``persona_assignment =
        "shuffled"`` it draws the persona order (:func:`agents.personas.shuffled_order`:
        from a child of ``rng``, so ``rng``'s state does not move); with ``"by_id"`` it
        draws nothing.
        """
        if self.spec.persona_assignment == "shuffled":
            self._persona_order = shuffled_order(len(self.personas), rng)

    @property
    def persona_order(self) -> tuple[int, ...]:
        """Persona positions in assignment order.

        Agent ``i`` of generation ``g`` speaks as ``personas[persona_order[(i + g) % P]]``.

        Raises:
            RuntimeError: ``"shuffled"`` assignment before :meth:`bind`.
        """
        if self._persona_order is None:
            raise RuntimeError(
                'policy.persona_assignment = "shuffled" draws the persona order from the '
                "model's generator: use the policy in a MemeticModel (which calls bind)"
            )
        return self._persona_order

    def persona(self, agent: int, lineage: int) -> Persona:
        """The persona agent ``agent`` of generation ``lineage`` on its node speaks as."""
        return persona_of(self.personas, agent, lineage, self.persona_order)

    def persona_rows(self, step: int, agents: np.ndarray, generations: np.ndarray) -> pl.DataFrame:
        """Rows of the ``personas`` table for ``agents`` from ``step`` on.

        ``agents[i]`` of generation ``generations[i]`` speaks as :meth:`persona` says (see
        :func:`agents.personas.personas_frame`).
        """
        return personas_frame(self.personas, self.persona_order, step, agents, generations)

    def queries(self, step: int) -> StepTasks:
        """Each agent's task at ``step`` (indexed by agent id), used as its retrieval query."""
        return self.tasks.at_step(step)

    def close(self) -> None:
        """Close the engine if this policy built it."""
        if self._engine is not None and self._owns_engine:
            self._engine.close()
            self._engine = None

    # ------------------------------------------------------------ state
    def get_state(self) -> State:
        """The policy's state between steps (for checkpoints).

        The persona order of ``"shuffled"`` assignment; nothing for ``"by_id"``, whose
        checkpoints are as before.
        """
        if self.spec.persona_assignment == "by_id":
            return State()
        return State(arrays={"persona_order": np.asarray(self.persona_order, dtype=np.int64)})

    def set_state(self, state: State) -> None:
        """Restore what :meth:`get_state` saved.

        With ``"shuffled"`` assignment a saved persona order replaces the one drawn at
        :meth:`bind`; a state without one (e.g. a ``"by_id"`` parent forked into
        ``"shuffled"``) keeps the drawn order. ``"by_id"`` ignores a saved order.

        Raises:
            ValueError: The saved order is not a permutation of this policy's personas.
        """
        saved = state.arrays.get("persona_order")
        if saved is None or self.spec.persona_assignment == "by_id":
            return
        self._persona_order = check_order(saved.tolist(), len(self.personas))

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

    def _act_schema(
        self, context: StepContext, agent: int, shown: ShownDecision | None
    ) -> str | None:
        if not self.spec.json_mode:
            return None
        banks = context.banks
        visible = np.union1d(banks.readable(agent), banks.writable(agent))
        names = [banks.names[b] for b in visible.tolist()]
        choices = None if shown is None else list(shown.letters)
        n_memories = len(context.retrieval.of(agent)) if self.spec.allow_forward else None
        return dump_schema(
            act_schema_dict(
                names, self.spec.max_answer_chars, self.spec.max_write_chars, choices, n_memories
            )
        )

    def _instruction(self, shown: ShownDecision | None) -> str:
        """The line ending an act prompt: how to choose (decisions), then how to pass notes on.

        It stays at the end of the prompt, next to the reply, where a small model follows
        it; everything before it is shared or stable, so it costs little cache.
        """
        return self.pass_on if shown is None else f"{CHOICE_INSTRUCTION} {self.pass_on}"

    @staticmethod
    def _task_text(task: str, shown: ShownDecision | None) -> str:
        if shown is None:
            return task
        return decision_text(task, shown.option_texts, shown.letters)

    def _act_messages(
        self,
        context: StepContext,
        agent: int,
        task: str,
        shown: ShownDecision | None,
        instruction: str,
    ) -> tuple[ChatMessage, ...]:
        return act_messages(
            self.shared,
            self.persona(agent, int(context.tracker.lineage[agent])),
            self._memories(context, agent),
            self._writable(context, agent),
            self._task_text(task, shown),
            self.spec.max_memory_chars,
            instruction,
        )

    def _act_batch(
        self, context: StepContext
    ) -> tuple[list[GenerationRequest], list[ShownDecision | None]]:
        # The neutralised-text cache holds only this step's context texts, so it stays
        # bounded by the alive entries however long the run.
        self._memory_cache.clear()
        n = context.banks.n_agents
        seeds = request_seeds(context.rng, n)
        tasks = self.queries(context.step)
        shown = shuffle_decisions([tasks.task(a) for a in range(n)], context.rng)
        requests = []
        for agent in range(n):
            requests.append(
                GenerationRequest(
                    request_id=f"s{context.step}-a{agent}-act",
                    messages=self._act_messages(
                        context,
                        agent,
                        tasks[agent],
                        shown[agent],
                        self._instruction(shown[agent]),
                    ),
                    sampling=self._sampling(self.spec.max_tokens, int(seeds[agent])),
                    json_schema=with_update_field(
                        self._act_schema(context, agent, shown[agent]),
                        len(context.retrieval.of(agent)) if self.spec.allow_update else None,
                    ),
                )
            )
        return requests, shown

    def act_requests(self, context: StepContext) -> list[GenerationRequest]:
        """Build every agent's task request (draws the step's seeds and option orders)."""
        return self._act_batch(context)[0]

    def choice_score_requests(
        self, context: StepContext, shown: Sequence[ShownDecision | None]
    ) -> list[ScoreRequest]:
        """One option-scoring request per decision, agents in id order.

        The prompt is the act prompt with "reply with the letter" appended to its last
        line (so the engine reuses the whole act prompt from its cache); the options
        scored are the shown letters.
        """
        tasks = self.queries(context.step)
        return [
            ScoreRequest(
                request_id=f"s{context.step}-a{agent}-choice",
                messages=self._act_messages(
                    context,
                    agent,
                    tasks[agent],
                    decision,
                    f"{self._instruction(decision)} {LETTER_INSTRUCTION}",
                ),
                options=tuple(decision.letters),
            )
            for agent, decision in enumerate(shown)
            if decision is not None
        ]

    def probe_requests(self, context: StepContext) -> list[GenerationRequest]:
        """Build every agent's probe requests, agent-major (draws the probe's seeds)."""
        n = context.banks.n_agents
        questions = probe_questions(self.spec.probe_questions)
        seeds = request_seeds(context.rng, n * len(questions))
        schema = (
            dump_schema(probe_schema_dict(self.spec.max_answer_chars))
            if self.spec.json_mode
            else None
        )
        requests = []
        for agent in range(n):
            persona = self.persona(agent, int(context.tracker.lineage[agent]))
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

    def item_score_requests(self, context: StepContext) -> tuple[list[ScoreRequest], list]:
        """Yes/no scoring requests for every (agent, meme, item), agent-major.

        Returns:
            The requests and, for each, its (agent, meme index, item).
        """
        requests, keys = [], []
        for agent in range(context.banks.n_agents):
            persona = self.persona(agent, int(context.tracker.lineage[agent]))
            memories = self._memories(context, agent)
            for m, meme in enumerate(context.memes.memes):
                for i, item in enumerate(meme.probe_items):
                    requests.append(
                        ScoreRequest(
                            request_id=f"s{context.step}-a{agent}-item{m}.{i}",
                            messages=probe_messages(
                                self.shared,
                                persona,
                                memories,
                                f"{item.strip()} {YES_NO_INSTRUCTION}",
                                self.spec.max_memory_chars,
                            ),
                            options=("yes", "no"),
                        )
                    )
                    keys.append((agent, m, item))
        return requests, keys

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
        order = shared_prefix_order([r.messages for r in requests])
        started = time.perf_counter()
        sent = engine.generate([requests[i] for i in order])
        wall = time.perf_counter() - started
        if len(sent) != len(requests):
            raise EngineError(
                f"engine {engine.name!r} returned {len(sent)} completions for "
                f"{len(requests)} requests"
            )
        completions = _unsorted(sent, order)
        return completions, [parse_output(c) for c in completions], wall

    def score_batch(self, requests: list[ScoreRequest]) -> tuple[list[OptionScores], EngineStats]:
        """Score ``requests`` in one engine call; returns the scores and the call's figures.

        Raises:
            EngineError: If the engine returns another number of scores than requests.
        """
        if not requests:
            return [], EngineStats()
        order = shared_prefix_order([r.messages for r in requests])
        started = time.perf_counter()
        sent = self.engine.score([requests[i] for i in order])  # type: ignore[attr-defined]
        if len(sent) != len(requests):
            raise EngineError(
                f"engine {self.engine.name!r} returned {len(sent)} scores for "
                f"{len(requests)} requests"
            )
        scores = _unsorted(sent, order)
        stats = EngineStats(
            requests=len(scores),
            prompt_tokens=sum(s.prompt_tokens for s in scores),
            cached_prompt_tokens=sum(s.cached_prompt_tokens for s in scores),
            failures=sum(s.error is not None for s in scores),
            wall_s=time.perf_counter() - started,
        )
        return scores, stats

    def _check_targets(self, context: StepContext) -> None:
        if not self._targets_checked:
            check_targets(context.memes.memes, self.tasks)
            self._targets_checked = True

    def _sources(self, context: StepContext, writers: list[int], texts: list[str]) -> np.ndarray:
        """Per write, the context entry its text matches: the transmission source.

        Among carrying entries by other authors in the writer's context, the one whose
        words overlap the write's most; -1 when there is none.
        """
        store = context.store
        out = np.full(len(writers), -1, dtype=np.int64)
        for i, (agent, text) in enumerate(zip(writers, texts, strict=True)):
            entries = context.retrieval.of(agent)
            keep = (store.memes[entries] != 0) & (store.author[entries] != agent)
            candidates = entries[keep].tolist()
            if candidates:
                out[i] = matching_source(
                    text, candidates, [store.texts.get(int(store.text_id[e])) for e in candidates]
                )
        return out

    def _forwards(
        self,
        context: StepContext,
        writers: list[int],
        forwards: list[str],
        texts: list[str],
        causes: np.ndarray,
    ) -> None:
        """Replace, in place, each forwarding write's text by the forwarded memory's text.

        A valid ``forward`` (1-based number of a memory in the writer's prompt) makes the
        note an unchanged copy of that memory, and that memory its cause (the
        transmission source). An invalid number forwards nothing: the note's own text
        stays (a note left empty is then dropped by :meth:`act`: no write).
        """
        store = context.store
        for i, (agent, forward) in enumerate(zip(writers, forwards, strict=True)):
            number = memory_number(forward)
            entries = context.retrieval.of(agent)
            if number is None or number > len(entries):
                continue
            entry = int(entries[number - 1])
            texts[i] = neutralise(
                store.texts.get(int(store.text_id[entry])), self.spec.max_write_chars
            )
            causes[i] = entry

    def act(self, context: StepContext) -> PolicyOutput:
        """One batched call for all agents: writes, scored choices, and option scores.

        OK replies naming a bank and a note become writes; decision choices are scored
        (and, with log-probability scoring, one more batched call records every
        option's probability).
        """
        self._check_targets(context)
        requests, shown = self._act_batch(context)
        decided = [a for a, d in enumerate(shown) if d is not None]  # agents with options
        score_logprob = (
            bool(decided) and self.spec.option_scoring == "logprob" and can_score(self.engine)
        )
        score_requests = self.choice_score_requests(context, shown) if score_logprob else []
        announce = score_announcer(self.engine) if score_requests else None
        if announce is not None:  # scored right after its act request (llama.cpp)
            announce(
                {requests[a].request_id: r for a, r in zip(decided, score_requests, strict=True)}
            )
        completions, parsed, wall = self._generate(requests)
        stats = batch_stats(completions, parsed, wall)
        writers = [a for a, p in enumerate(parsed) if p.wants_write]
        bank_ids = []
        for agent in writers:
            try:
                bank_ids.append(context.banks.bank_id(parsed[agent].bank_name))
            except KeyError:
                bank_ids.append(-1)  # unknown bank: the model refuses and counts it
        texts = [neutralise(parsed[a].text, self.spec.max_write_chars) for a in writers]
        causes = self._sources(context, writers, texts)
        if self.spec.allow_forward:
            self._forwards(context, writers, [parsed[a].forward for a in writers], texts, causes)
        writes = WriteProposals(
            author=np.asarray(writers, dtype=np.int32),
            bank=np.asarray(bank_ids, dtype=np.int32),
            text=texts,
            importance=np.full(len(writers), WRITE_IMPORTANCE, dtype=np.float32),
            cause=causes,
        )
        # A note that is empty once neutralised (only control or format characters) and
        # forwards nothing is no write: it would commit a blank memory.
        writes = writes.select(np.array([bool(text) for text in texts], dtype=np.bool_))
        if self.spec.allow_update:
            writes = propose_updates(writes, completions, context)
        agents = list(range(len(requests)))
        frame = generations_frame(
            context.step, agents, "act", [None] * len(agents), requests, completions, parsed
        )
        tables: dict[str, pl.DataFrame] = {}
        expressed = None
        # A run whose tasks have answers is scored on them at every step (see sim.utility).
        answers = AnswerScores.none(len(shown)) if self.tasks.has_answers() else None
        if decided:
            probs: list[tuple[float, ...] | None] = [None] * len(shown)
            scoring = "sampled"
            if score_logprob:
                scoring = "logprob"
                scores, score_stats = self.score_batch(score_requests)
                stats = stats + score_stats
                for agent, scored in zip(decided, scores, strict=True):
                    probs[agent] = scored.probabilities()
            retrieval, store = context.retrieval, context.store
            dose = context_doses(
                retrieval.readers(),
                store.author[retrieval.entry_ids],
                store.memes[retrieval.entry_ids],
                len(shown),
                len(context.memes),
            )
            result = score_decisions(
                context.step,
                shown,
                [p.choice for p in parsed],
                [p.answer for p in parsed],
                probs,
                scoring,
                context.memes.memes,
                dose,
            )
            expressed = result.expressed
            answers = result.answers if answers is not None else None
            tables["actions"] = result.actions
        if self.spec.record_prompts:
            tables["prompts"] = prompts_frame(context.step, requests)
        return PolicyOutput(
            writes=writes,
            generations=frame,
            stats=stats,
            expressed=expressed,
            answers=answers,
            tables=tables,
        )

    def probe(self, context: StepContext) -> PolicyOutput:
        """Decide adoption for every agent in one batched call (see the module docstring)."""
        if self.spec.probe_style == "logprob" and can_score(self.engine):
            return self._probe_logprob(context)
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
            adoptions=adoptions, generations=frame, stats=batch_stats(completions, parsed, wall)
        )

    def _probe_logprob(self, context: StepContext) -> PolicyOutput:
        n, m = context.banks.n_agents, len(context.memes)
        requests, keys = self.item_score_requests(context)
        scores, stats = self.score_batch(requests)
        p_yes = np.full(len(scores), np.nan)
        for i, result in enumerate(scores):
            probs = result.probabilities()
            if probs is not None:
                p_yes[i] = probs[0]
        total = np.zeros((n, m))
        count = np.zeros((n, m))
        for (agent, meme, _), p in zip(keys, p_yes.tolist(), strict=True):
            if not np.isnan(p):
                total[agent, meme] += p
                count[agent, meme] += 1
        mean = np.divide(total, count, out=np.zeros((n, m)), where=count > 0)
        adopted = (count > 0) & (mean >= 0.5)
        adoptions = Adoptions(
            agent=np.repeat(np.arange(n, dtype=np.int32), m),
            meme=np.tile(np.arange(m, dtype=np.int32), n),
            adopted=adopted.ravel(),
            cause=np.full(n * m, -1, dtype=np.int64),
        )
        ids = context.memes.ids
        probes = pl.DataFrame(
            {
                "step": [context.step] * len(keys),
                "agent_id": [k[0] for k in keys],
                "meme_id": [ids[k[1]] for k in keys],
                "item": [k[2] for k in keys],
                "p_yes": p_yes.tolist(),
                "error": [s.error for s in scores],
            },
            schema=PROBES_SCHEMA,
        )
        return PolicyOutput(adoptions=adoptions, stats=stats, tables={"probes": probes})


def _unsorted(results: Sequence[_R], order: Sequence[int]) -> list[_R]:
    """The results of a batch sent in ``order``, back in request order.

    ``results[j]`` answers request ``order[j]``.
    """
    out: list[_R | None] = [None] * len(order)
    for result, index in zip(results, order, strict=True):
        out[index] = result
    return out  # type: ignore[return-value]  # every slot is filled: order is a permutation


def batch_stats(
    completions: Sequence[Completion], parsed: Sequence[ParsedOutput], wall: float
) -> EngineStats:
    """Totals of one batched generation call (act, probe or reflect).

    Token counts are summed over ``completions``; ``failures`` counts the replies that
    did not parse OK; ``wall`` is the call's wall time in seconds.
    """
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


def prompts_frame(step: int, requests: Sequence[GenerationRequest]) -> pl.DataFrame:
    """Rows of the ``prompts`` table: each request's messages as JSON ``[[role, text]...]``."""
    return pl.DataFrame(
        {
            "step": [step] * len(requests),
            "request_id": [r.request_id for r in requests],
            "prompt_sha256": [prompt_sha256(r.messages) for r in requests],
            "messages": [
                json.dumps([[m.role.value, m.content] for m in r.messages], ensure_ascii=False)
                for r in requests
            ],
        },
        schema=PROMPTS_SCHEMA,
    )
