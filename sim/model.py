"""The memetic model: a Mesa model whose step is a synchronous, batch-first pipeline.

Each step runs these phases for all agents at once:

1. turnover — with a turnover spec, agents due for a new generation are replaced (empty
   private banks, no memes held; see :mod:`sim.turnover`); inject — seed entries of
   memes due at this step are written;
2. retrieve — every agent gets the top-k entries of the banks it may read; carrying
   entries by others mark the reader exposed;
3. act — ONE policy call for all agents (one batched engine call for LLM policies),
   returning proposed writes and, for rule-based policies, adoption decisions (also
   recoveries) and entries to retract (removed now, after this step's retrieval);
4. validate — writes to banks the author may not write are refused;
5. guard — defenses review every remaining write (accept, reject, quarantine, down-weight);
6. commit — accepted writes are appended together, with provenance (author, step, bank,
   parents = the writer's retrieved entries) set here, never by the policy; transmissions
   are recorded; bank capacity is enforced and faded entries are forgotten. Writes of a
   step become visible at the next step (synchronous update);
7. probe — every ``probe_every`` steps, one more batched policy call decides adoption;
8. record — tidy rows for this step; the Mesa ``datacollector`` collects; ``running``
   turns False at the configured end (``max_steps``, or ``stable_steps`` steps without
   a change of the state counts), so ``run_model()`` and ``mesa.batch_run`` stop.

Mesa conventions: ``model.agents`` holds one :class:`agents.agent.MemeticAgent` per graph
node, with ``unique_id`` = node; ``model.grid`` is the graph as a
``mesa.discrete_space.Network`` (built on first access, so the step never pays for it);
``model.datacollector`` is a ``mesa.DataCollector`` (collected at creation and after every
step, as in Mesa's examples).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial

import mesa
import networkx as nx
import numpy as np
import polars as pl

from agents.agent import MemeticAgent
from agents.llm.base import Engine
from agents.llm.factory import EngineFactory
from agents.llm_policy import LLMPolicy
from agents.personas import personas_after_restore
from agents.reflection import ReflectionSpec, Reflector, reflections_frame
from agents.values import Questionnaire, ValuesSpec
from sim.detectors import Embedder
from sim.forgetting import forget
from sim.guards import Guard, GuardSetup
from sim.guards.phase import GuardPhases
from sim.memebook import MemeBook
from sim.memes import MemeSpec
from sim.memory import ENVIRONMENT, MemoryStore, NewEntries
from sim.memory_spec import MemorySpec
from sim.pages import ordinary_pages
from sim.policy import EngineStats, Policy, StepContext, WriteProposals
from sim.retrieval import Retrieval, Retriever, expand_ranges
from sim.rowlog import RowLog
from sim.state import State, frame_list
from sim.tracking import Tracker
from sim.turnover import TurnoverSpec, draw_replacements, private_entries, turnover_rows
from sim.unique import sorted_unique
from sim.updates import old_version_first, retire_old_versions, valid_replacements
from sim.utility import AnswerScores, utility_chance, utility_values
from topologies.banks import BankLayoutSpec, Banks, build_banks
from topologies.graphs import GraphSpec, build_graph
from topologies.placements import placement_errors


@dataclass(frozen=True)
class Injection:
    """Seed entries of one meme, resolved at model creation.

    Attributes:
        meme: Meme index.
        step: Step at whose start the entries are written.
        agents: Seeded agents (empty for a bank placement).
        banks: Bank of each seed entry.
        authors: Author of each seed entry (the seeded agent, or ENVIRONMENT).
    """

    meme: int
    step: int
    agents: np.ndarray
    banks: np.ndarray
    authors: np.ndarray


#: Per-(agent, meme) flags whose prevalence the DataCollector reports (those the tracker
#: keeps), in state order.
REPORTED_STATES = ("exposed", "carrier", "expressed", "adopter", "infected")


def _prevalence(model: MemeticModel, flag: str, column: int) -> float:
    """Share of agents holding ``flag`` for meme ``column`` (a DataCollector reporter)."""
    held = getattr(model.tracker, flag)[:, column]
    if len(held) == 0:
        return float("nan")
    return np.count_nonzero(held) / len(held)  # (the mean of the bools, bit for bit)


def _count(flags: np.ndarray) -> np.ndarray:
    """Agents holding each meme's flag: the column sums of (agents, memes) bools, int64.

    Counted column by column: numpy's count along an axis is about ten times slower.
    """
    return np.array([np.count_nonzero(flags[:, j]) for j in range(flags.shape[1])], np.int64)


def _agent_state(agent: MemeticAgent, meme_id: str) -> str:
    """An agent's state for one meme (a DataCollector agent reporter)."""
    return agent.state_of(meme_id)


class MemeticModel(mesa.Model):
    """A multi-agent model of memetic spread through shared memory banks.

    Args:
        graph: A graph spec (built from the model's generator) or a ready networkx graph
            whose nodes are 0..n-1.
        banks: The bank layout spec, or ready banks.
        memes: The memes to seed and track.
        policy: Decides what all agents do each step (contagion or LLM).
        memory: Retrieval and forgetting settings.
        probe_every: Call ``policy.probe`` after every this many steps (None: never).
        guards: Defenses reviewing every proposed write, in order.
        embedder: Embedder for embedding-based meme detection.
        seed: Seed of the model's generators (``self.rng``, ``self.random``).
        turnover: Agent turnover (None: the original agents live through the run); the
            ``turnover`` table lists every replacement.
        reflection: Reflection into belief entries every R steps (LLM policies; see
            :mod:`agents.reflection`); None: no reflection.
        values: Value questionnaires every K steps (LLM policies; see
            :mod:`agents.values`), recorded in the ``values`` table; None: none.
        max_steps: ``running`` turns False once this many steps have run (None: no
            step limit).
        stable_steps: ``running`` turns False once the counts of every reported state
            (:data:`REPORTED_STATES`, per meme) have not changed for this many
            consecutive steps after the last injection step (None: never). The count
            restarts after a checkpoint restore.
        collect_agents: Whether ``datacollector`` also records each agent's state per
            meme at every collection (agent reporters ``state:<meme_id>``); off by
            default because it visits every agent in Python (slow for 100k agents).
        engines: Builds the engines that guards and judge detectors name themselves
            (their ``engine`` spec), under their config keys; the runner passes one that
            records them in the run directory. None: each spec is built as it is
            (:func:`agents.llm.factory.build_own_engine`), nothing recorded.

    Attributes:
        running: Mesa's flag: False once the configured end is reached (see
            ``max_steps``, ``stable_steps``); :meth:`run_model` steps until then.
        datacollector: A ``mesa.DataCollector`` with model reporters
            ``<state>:<meme_id>`` (share of agents in that state, for each state of
            :data:`REPORTED_STATES` the tracker keeps) and, with ``collect_agents``,
            agent reporters ``state:<meme_id>``. It collects at creation and after every
            step, so ``mesa.batch_run(MemeticModel, parameters, ...)`` returns rows. It is
            not part of checkpoints (the ``steps`` table is the durable record).
    """

    #: Steps run so far (Mesa's counter; mesa ships no type information, so it is
    #: declared here for the checker).
    steps: int

    def __init__(
        self,
        graph: GraphSpec | nx.Graph,
        banks: BankLayoutSpec | Banks,
        memes: Sequence[MemeSpec],
        policy: Policy,
        *,
        memory: MemorySpec | None = None,
        probe_every: int | None = None,
        guards: Sequence[Guard] = (),
        embedder: Embedder | None = None,
        seed: int | None = None,
        max_steps: int | None = None,
        stable_steps: int | None = None,
        collect_agents: bool = False,
        turnover: TurnoverSpec | None = None,
        reflection: ReflectionSpec | None = None,
        values: ValuesSpec | None = None,
        engines: EngineFactory | None = None,
    ) -> None:
        super().__init__(rng=seed)
        for name, value in (("max_steps", max_steps), ("stable_steps", stable_steps)):
            if value is not None and value < 1:
                raise ValueError(f"{name} = {value}: must be a positive integer or None")
        self.max_steps = max_steps
        self.stable_steps = stable_steps
        self._unchanged = 0
        self._last_counts: np.ndarray | None = None
        self.seed = seed
        self.memory_spec = memory or MemorySpec()
        if probe_every is not None and probe_every < 1:
            raise ValueError(f"probe_every = {probe_every}: must be a positive integer or None")
        self.probe_every = probe_every
        #: The policy when it is an LLM policy (reflection and values ask it), else None.
        self.llm_policy = policy if isinstance(policy, LLMPolicy) else None
        if (reflection is not None or values is not None) and self.llm_policy is None:
            raise ValueError(
                "reflection and values need an LLM policy (an engine); the "
                f"{getattr(policy, 'name', type(policy).__name__)!r} policy has none"
            )
        self.graph = graph if isinstance(graph, nx.Graph) else build_graph(graph, self.rng)
        n = self.graph.number_of_nodes()
        if sorted(self.graph.nodes) != list(range(n)):
            raise ValueError("graph: nodes must be the integers 0..n-1")
        self.banks = banks if isinstance(banks, Banks) else build_banks(self.graph, banks, self.rng)
        self.memes = MemeBook(memes, embedder, run_engine=_run_engine(policy), engines=engines)
        self.store = MemoryStore(self.banks, self.memory_spec.forgetting.initial_strength)
        self.retriever = Retriever(self.banks, self.memory_spec.retrieval)
        self.tracker = Tracker(n, len(self.memes))
        self.policy = policy
        # What the policy draws once per run (an LLM policy's shuffled persona order).
        bind = getattr(policy, "bind", None)
        if bind is not None:
            bind(self.rng)
        self.guards = tuple(guards)
        self.injections = [self._resolve(i, m) for i, m in enumerate(self.memes.memes)]
        self.last_retrieval: Retrieval | None = None
        self._step_rows = RowLog()
        self._generations: list[pl.DataFrame] = []
        #: Further tables by name (``actions``, ``contexts``, ``probes``, ...).
        self._extra: dict[str, list[pl.DataFrame]] = {}
        self.turnover = turnover
        self._replaced_now = 0
        if turnover is not None:
            none = np.zeros(0, dtype=np.int32)
            self._extra["turnover"] = [turnover_rows(0, none, self.tracker.lineage)]
        if self.llm_policy is not None:
            everyone = np.arange(n, dtype=np.int32)
            rows = self.llm_policy.persona_rows(0, everyone, self.tracker.lineage)
            self._extra["personas"] = [rows]
        self.reflector = None if reflection is None else Reflector(reflection)
        self.questionnaire = None if values is None else Questionnaire(values)
        for agent_id in range(n):
            MemeticAgent(self, agent_id)
        #: The guards in every phase of the step (read time, rollback, review, commit).
        setup = GuardSetup(
            n, self.memes.ids, self.rng, _run_engine(policy), self.banks, self._intern, engines
        )
        self.guard_phases = GuardPhases(self.guards, setup)
        self._expressed_now: np.ndarray | None = None
        self._answers_now: AnswerScores | None = None
        self.datacollector = mesa.DataCollector(
            model_reporters=self._model_reporters(),
            agent_reporters=self._agent_reporters() if collect_agents else None,
        )
        self.datacollector.collect(self)

    # ------------------------------------------------------------ Mesa face
    def _reported_flags(self) -> list[str]:
        return [f for f in REPORTED_STATES if hasattr(self.tracker, f)]

    def _model_reporters(self) -> dict[str, Callable[[MemeticModel], float]]:
        return {
            f"{flag}:{meme_id}": partial(_prevalence, flag=flag, column=column)
            for column, meme_id in enumerate(self.memes.ids)
            for flag in self._reported_flags()
        }

    def _agent_reporters(self) -> dict[str, Callable[[MemeticAgent], str]]:
        return {f"state:{m}": partial(_agent_state, meme_id=m) for m in self.memes.ids}

    @cached_property
    def grid(self) -> mesa.discrete_space.Network:
        """The graph as a Mesa network space: one cell per node holding its agent.

        Built on first access (building it for 100k agents takes seconds; the step never
        needs it). The space's ``G`` is :attr:`graph` itself.
        """
        space = mesa.discrete_space.Network(self.graph, capacity=1, random=self.random)
        for agent in self.agents:
            space[agent.unique_id].add_agent(agent)
        return space

    def run_model(self) -> None:
        """Step until ``running`` turns False (see ``max_steps`` and ``stable_steps``).

        Raises:
            ValueError: The model was created without an end (neither ``max_steps`` nor
                ``stable_steps``), so it would never stop.
        """
        if self.max_steps is None and self.stable_steps is None:
            raise ValueError(
                "run_model: the model has no end; create it with max_steps=N and/or "
                "stable_steps=N (stop after N steps without a change), or call step()"
            )
        super().run_model()

    def _state_counts(self) -> dict[str, np.ndarray]:
        """Agents in each reported state (:data:`REPORTED_STATES`), per meme, int64.

        Counted once per step: the ``steps`` row and the stop rule both read them.
        """
        return {flag: _count(getattr(self.tracker, flag)) for flag in self._reported_flags()}

    def _end_of_step(self, state_counts: dict[str, np.ndarray]) -> None:
        """Collect the Mesa data and decide whether the model keeps running.

        Args:
            state_counts: This step's :meth:`_state_counts`.
        """
        self.datacollector.collect(self)
        counts = np.stack(list(state_counts.values()))
        injected = self.current_step >= max((i.step for i in self.injections), default=0)
        if injected and self._last_counts is not None and np.array_equal(counts, self._last_counts):
            self._unchanged += 1
        else:
            self._unchanged = 0
        self._last_counts = counts
        if self.max_steps is not None and self.steps >= self.max_steps:
            self.running = False
        if self.stable_steps is not None and self._unchanged >= self.stable_steps:
            self.running = False

    # ------------------------------------------------------------ seeding
    def _resolve(self, index: int, meme: MemeSpec) -> Injection:
        placement = meme.placement
        n = self.banks.n_agents
        problems = placement_errors(placement, n, self.banks.kinds, self.banks.n_communities)
        if problems:
            raise ValueError(f"meme {meme.id!r}: placement.{problems[0]}")
        if placement.target_bank is not None:
            try:
                bank = self.banks.bank_id(placement.target_bank)
            except KeyError as err:
                raise ValueError(f"meme {meme.id!r}: placement.bank: {err.args[0]}") from None
            return Injection(
                meme=index,
                step=meme.inject_step,
                agents=np.zeros(0, dtype=np.int32),
                banks=np.array([bank], dtype=np.int32),
                authors=np.array([ENVIRONMENT], dtype=np.int32),
            )
        agents = placement.select(self.graph, self.rng)
        banks_list, authors = [], []
        for agent in agents.tolist():
            writable = self.banks.writable(agent)
            shared = self.banks.shared[writable]
            if placement.into == "private":
                writable = writable[~shared]
            elif placement.into == "shared":
                writable = writable[shared]
            if len(writable) == 0:
                raise ValueError(
                    f"meme {meme.id!r}: placement.into = {placement.into!r}: agent {agent} may "
                    "write no such bank in this layout"
                )
            banks_list.append(writable)
            authors.append(np.full(len(writable), agent, dtype=np.int32))
        return Injection(
            meme=index,
            step=meme.inject_step,
            agents=agents,
            banks=np.concatenate(banks_list).astype(np.int32),
            authors=np.concatenate(authors),
        )

    def _inject(self, step: int) -> int:
        count = 0
        for injection in self.injections:
            if injection.step != step:
                continue
            meme = self.memes.memes[injection.meme]
            text_ids = self._intern([meme.seed_text])
            n = len(injection.banks)
            self.store.append(
                NewEntries(
                    bank=injection.banks,
                    author=injection.authors,
                    text_id=np.repeat(text_ids, n),
                    importance=np.full(n, meme.seed_importance, dtype=np.float32),
                    parent_indptr=np.zeros(n + 1, dtype=np.int64),
                    parent_ids=np.zeros(0, dtype=np.int64),
                ),
                step,
            )
            adopt = meme.placement.adopt
            if adopt is None:  # the policy's convention (contagion: seeds are infectious)
                adopt = bool(getattr(self.policy, "seeded_adopters", False))
            self.tracker.seed(injection.agents, injection.meme, step, adopt)
            count += n
        if count:
            self.store.enforce_capacity(step)
        return count

    def _intern(self, texts: list[str]) -> np.ndarray:
        """Text ids of ``texts``, running the meme detectors on texts not seen before."""
        known = self.store.texts
        distinct = set(texts)  # copies repeat a few texts: look each one up once
        fresh = sorted(t for t in distinct if t not in known)
        if fresh:
            self.store.register_texts(fresh, self.memes.detect(fresh))
        ids = {t: known.intern(t) for t in distinct}
        return np.fromiter(map(ids.__getitem__, texts), dtype=np.int32, count=len(texts))

    # ------------------------------------------------------------ the step
    @property
    def current_step(self) -> int:
        """The 0-based index of the step being run (or last run)."""
        return self.steps - 1

    def _context(self, step: int, retrieval: Retrieval) -> StepContext:
        return StepContext(
            step=step,
            retrieval=retrieval,
            store=self.store,
            banks=self.banks,
            memes=self.memes,
            tracker=self.tracker,
            rng=self.rng,
        )

    def step(self) -> None:
        """Run one synchronous step for all agents (see the module docstring).

        The step's arrays use ordinary memory pages (:mod:`sim.pages`): huge pages made a
        step at 10^6 agents up to twice as slow.
        """
        with ordinary_pages():
            self._step()

    def _step(self) -> None:
        """The phases of one step, in order."""
        started = time.perf_counter()
        t = self.current_step
        self.tracker.take_counts()  # counts are per step
        self._replaced_now = self._replace_agents(t)
        injected = self._inject(t)
        queries = self.policy.queries(t)
        retrieval = self.retriever(self.store, t, queries)
        self._expressed_now = None
        self._answers_now = None
        if self.guard_phases:
            retrieval = self.guard_phases.screen(retrieval, self._context(t, retrieval))
        self.store.touch(retrieval.entry_ids, t, self.memory_spec.forgetting.recall_boost)
        self.last_retrieval = retrieval
        self.tracker.observe_retrieval(retrieval, self.store, t)
        context = self._context(t, retrieval)

        if getattr(self.policy, "records_contexts", False):
            self._add_tables({"contexts": contexts_frame(t, retrieval)})
        output = self.policy.act(context)
        self._apply_expressions(output, t)
        stats = output.stats
        self._apply_adoptions(output.adoptions, t)
        retracted = self._retract(output.removals, t)
        if output.generations is not None:
            self._generations.append(output.generations)
        rolled_back = self.guard_phases.sweep(context) if self.guard_phases else 0
        commit = self._commit(output.writes, retrieval, t)
        commit["retracted"] = retracted
        commit["rolled_back"] = rolled_back
        reflector, llm = self.reflector, self.llm_policy
        if reflector is not None and llm is not None and reflector.due(t):
            stats = stats + self._reflect(reflector, llm, context, t)

        if self.probe_every is not None and (t + 1) % self.probe_every == 0:
            probe = self.policy.probe(context)
            stats = stats + probe.stats
            self._apply_adoptions(probe.adoptions, t)
            self._apply_expressions(probe, t)
            if probe.generations is not None:
                self._generations.append(probe.generations)
        questionnaire = self.questionnaire
        if questionnaire is not None and llm is not None and questionnaire.due(t):
            answers = questionnaire.ask(llm, context)
            stats = stats + answers.stats
            self._add_tables(answers.tables)
        self._take_detections(t)
        state_counts = self._state_counts()
        self._record(t, injected, commit, stats, time.perf_counter() - started, state_counts)
        self._end_of_step(state_counts)

    def _reflect(
        self, reflector: Reflector, policy: LLMPolicy, context: StepContext, step: int
    ) -> EngineStats:
        """Reflection: commit each agent's belief with its consolidated memories as parents."""
        beliefs = reflector.reflect(policy, context)
        if beliefs.generations is not None:
            self._generations.append(beliefs.generations)
        before = len(self.store)
        self._commit(beliefs.writes, beliefs.consolidated, step)
        new = np.arange(before, len(self.store), dtype=np.int64)
        authors = self.store.author[new]
        self._add_tables({"reflections": reflections_frame(step, beliefs, authors, new)})
        return beliefs.stats

    def _take_detections(self, step: int) -> None:
        detections = self.memes.take_detections(step)
        if detections is not None:
            self._add_tables({"detections": detections})

    def _apply_expressions(self, output, step: int) -> None:
        """Record scored choices (memes expressed, known answers hit) and the policy's tables."""
        if output.expressed is not None:
            self.tracker.apply_expressions(output.expressed, step)
            now = self._expressed_now
            self._expressed_now = output.expressed if now is None else now | output.expressed
        if output.answers is not None:
            self._answers_now = output.answers
        self._add_tables(output.tables)

    def _add_tables(self, tables: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            self._extra.setdefault(name, []).append(frame)

    def _apply_adoptions(self, adoptions, step: int) -> None:
        if len(adoptions) and self.guard_phases:
            adoptions = self.guard_phases.admit(adoptions, step)
        if len(adoptions):
            self.tracker.apply_adoptions(
                adoptions.agent, adoptions.meme, adoptions.adopted.astype(bool), step
            )

    def _replace_agents(self, step: int) -> int:
        """Turnover: replace the agents due at ``step``; returns how many."""
        if self.turnover is None:
            return 0
        agents = draw_replacements(self.turnover, self.banks.n_agents, step, self.rng)
        if len(agents) == 0:
            return 0
        self.store.remove(private_entries(self.store, self.banks, agents), step)
        self.tracker.replace(agents, step)
        forget = getattr(self.policy, "forget_agents", None)
        if forget is not None:
            forget(agents)
        self._add_tables({"turnover": turnover_rows(step, agents, self.tracker.lineage)})
        if self.llm_policy is not None:
            rows = self.llm_policy.persona_rows(step, agents, self.tracker.lineage[agents])
            self._add_tables({"personas": rows})
        return len(agents)

    def _retract(self, entry_ids: np.ndarray, step: int) -> int:
        """Remove the alive entries among those a policy retracts; returns how many."""
        ids = sorted_unique(np.asarray(entry_ids, dtype=np.int64))
        ids = ids[(ids >= 0) & (ids < len(self.store))]
        ids = ids[self.store.alive[ids]]
        self.store.remove(ids, step)
        return len(ids)

    def _commit(self, writes: WriteProposals, retrieval: Retrieval, step: int) -> dict[str, int]:
        """Validate, guard and commit the proposed writes of a step."""
        counts = {"proposed": len(writes), "refused": 0, "rejected": 0, "quarantined": 0}
        if len(writes):
            allowed = self.banks.write_allowed(writes.author, writes.bank)
            counts["refused"] = int((~allowed).sum())
            writes = writes.select(allowed)
        importance = np.clip(writes.importance.astype(np.float32), 0.0, 1.0)
        flagged = np.zeros(0, dtype=np.int64)
        if len(writes) and self.guard_phases:
            context = self._context(step, retrieval)
            reviewed = self.guard_phases.review(writes, context, self._intern)
            counts["rejected"] = reviewed.rejected
            counts["quarantined"] = reviewed.quarantined
            flagged = reviewed.flagged_authors
            importance = (importance * reviewed.weight)[reviewed.keep]
            writes = writes.select(reviewed.keep)
        # Causes are honoured only when they were in the writer's context.
        cause = self._valid_causes(writes, retrieval)
        # Updates: the rewritten entry is honoured only when it may be (sim.updates).
        replaces = valid_replacements(writes, retrieval, self.store)
        # Provenance: parents are the writer's retrieved entries, set here.
        authors = writes.author.astype(np.int64)
        n_parents = np.diff(retrieval.indptr)[authors] if len(authors) else authors
        parent_indptr = np.zeros(len(writes) + 1, dtype=np.int64)
        np.cumsum(n_parents, out=parent_indptr[1:])
        parent_ids = retrieval.entry_ids[expand_ranges(retrieval.indptr[authors], n_parents)]
        parent_ids = old_version_first(parent_indptr, parent_ids, replaces)
        entry_ids = self.store.append(
            NewEntries(
                bank=writes.bank,
                author=writes.author,
                text_id=self._intern(writes.text),
                importance=importance,
                parent_indptr=parent_indptr,
                parent_ids=parent_ids,
            ),
            step,
        )
        self._add_tables(retire_old_versions(self.store, entry_ids, replaces, step))
        self.tracker.observe_writes(entry_ids, retrieval, cause, self.store, step)
        if self.guard_phases:
            self.guard_phases.committed(entry_ids, cause, flagged, self._context(step, retrieval))
        counts["committed"] = len(entry_ids)
        counts["evicted"] = len(self.store.enforce_capacity(step))
        counts["forgotten"] = len(forget(self.store, step, self.memory_spec.forgetting))
        return counts

    @staticmethod
    def _valid_causes(writes: WriteProposals, retrieval: Retrieval) -> np.ndarray:
        """Each write's cause if it is among the writer's retrieved entries, else -1."""
        cause = writes.cause.astype(np.int64)
        if len(writes) == 0:
            return cause
        authors = writes.author.astype(np.int64)
        counts = np.diff(retrieval.indptr)[authors]
        context = retrieval.entry_ids[expand_ranges(retrieval.indptr[authors], counts)]
        owner = np.repeat(np.arange(len(writes)), counts)
        hits = np.bincount(owner, weights=context == cause[owner], minlength=len(writes))
        return np.where((cause >= 0) & (hits > 0), cause, -1)

    # ------------------------------------------------------------ recording
    def _record(
        self,
        step: int,
        injected: int,
        commit: dict[str, int],
        stats: EngineStats,
        wall: float,
        state_counts: dict[str, np.ndarray],
    ) -> None:
        counts = self.tracker.take_counts()
        tr = self.tracker
        m = len(self.memes)
        alive = int(np.count_nonzero(self.store.alive))
        row: dict[str, np.ndarray | Sequence[str]] = {
            "step": np.full(m, step, dtype=np.int32),
            "meme_id": self.memes.ids,
            "exposed": state_counts["exposed"],
            "carriers": state_counts["carrier"],
            "adopters": state_counts["adopter"],
            "infected": state_counts["infected"],
            "new_exposed": counts.new_exposed,
            "new_carriers": counts.new_carriers,
            "new_adopters": counts.new_adopters,
            "expressed": state_counts["expressed"],
            "new_expressed": counts.new_expressed,
            "lost_adopters": counts.lost_adopters,
            "exposures": counts.exposures,
            "transmissions": counts.transmissions,
            "infections": counts.infections,
            "entries_injected": np.full(m, injected, dtype=np.int64),
            "writes_proposed": np.full(m, commit["proposed"], dtype=np.int64),
            "writes_refused": np.full(m, commit["refused"], dtype=np.int64),
            "writes_rejected": np.full(m, commit["rejected"], dtype=np.int64),
            "writes_quarantined": np.full(m, commit["quarantined"], dtype=np.int64),
            "writes_committed": np.full(m, commit["committed"], dtype=np.int64),
            "entries_evicted": np.full(m, commit["evicted"], dtype=np.int64),
            "entries_forgotten": np.full(m, commit["forgotten"], dtype=np.int64),
            "entries_retracted": np.full(m, commit.get("retracted", 0), dtype=np.int64),
            "entries_rolled_back": np.full(m, commit.get("rolled_back", 0), dtype=np.int64),
            "agents_replaced": np.full(m, self._replaced_now, dtype=np.int64),
            "entries_alive": np.full(m, alive, dtype=np.int64),
            "requests": np.full(m, stats.requests, dtype=np.int64),
            "prompt_tokens": np.full(m, stats.prompt_tokens, dtype=np.int64),
            "cached_prompt_tokens": np.full(m, stats.cached_prompt_tokens, dtype=np.int64),
            "completion_tokens": np.full(m, stats.completion_tokens, dtype=np.int64),
            "generation_failures": np.full(m, stats.failures, dtype=np.int64),
            "engine_wall_s": np.full(m, stats.wall_s, dtype=np.float64),
            "step_wall_s": np.full(m, wall, dtype=np.float64),
        }
        answers = self._answers_now
        utility, reach = utility_values(self.memes.memes, tr, self._expressed_now, answers)
        row["utility"] = np.full(m, utility, dtype=np.float64)
        row["utility_chance"] = np.full(m, utility_chance(answers), dtype=np.float64)
        row["benign_reach"] = np.full(m, reach, dtype=np.float64)
        if self.guard_phases:
            for key, value in self.guard_phases.take_counts().items():
                row[key] = np.full(m, value, dtype=np.int64)
            decisions = self.guard_phases.take_rows()
            if decisions is not None:
                self._add_tables({"guard_decisions": decisions})
        self._step_rows.add(row)

    def close(self) -> None:
        """Close the engines the model's parts opened (policy, guards, judges).

        Engines lent by the caller (a run's engine given to the policy) stay open.
        """
        self.policy.close()
        self.guard_phases.close()
        self.memes.close()

    # ------------------------------------------------------------ tables
    def steps_frame(self) -> pl.DataFrame:
        """The ``steps`` table: one row per (step, meme)."""
        if not self._step_rows:
            return pl.DataFrame()
        # Diagonal: a fork that adds guards has their columns from the fork step on.
        return pl.concat(self._step_rows.frames(), how="diagonal_relaxed")

    def tables(self) -> dict[str, pl.DataFrame]:
        """All output tables of the run so far, by name."""
        ids = self.memes.ids
        tables = {
            "steps": self.steps_frame(),
            "agents": self.tracker.events_frame(ids),
            "memories": self.store.to_frame(ids),
            "transmissions": self.tracker.edges_frame(ids),
            "graph": graph_frame(self.graph),
            "banks": self.banks.banks_table(),
            "bank_members": self.banks.members_table(),
        }
        if self._generations:
            tables["generations"] = pl.concat(self._generations, how="diagonal_relaxed")
        for name, frames in self._extra.items():
            tables[name] = pl.concat(frames, how="diagonal_relaxed")
        return tables

    # ------------------------------------------------------------ state
    def get_state(self) -> State:
        """The whole state between steps, for checkpoints (see :mod:`sim.state`).

        The parts' states are nested under ``store.``, ``tracker.``, ``policy.`` and
        ``guards.``; the rows recorded so far are the frames ``steps``, ``generations``
        and ``extra.<table>``; the values hold the step count and both generators.
        """
        random_state = self.random.getstate()
        state = State(
            values={
                "steps": self.steps,
                "rng": self.rng.bit_generator.state,
                "random": [random_state[0], list(random_state[1]), random_state[2]],
            }
        )
        state.add("store", self.store.get_state())
        state.add("tracker", self.tracker.get_state())
        policy_state = getattr(self.policy, "get_state", None)
        if policy_state is not None:
            state.add("policy", policy_state())
        state.add("guards", State(arrays=self.guard_phases.state_arrays()))
        frames = {
            "steps": frame_list(self._step_rows.frames()),
            "generations": frame_list(self._generations),
            **{f"extra.{name}": frame_list(rows) for name, rows in self._extra.items()},
        }
        state.frames.update({name: f for name, f in frames.items() if f is not None})
        return state

    def set_state(self, state: State) -> None:
        """Replace the state of a freshly built model (same config) with ``state``.

        Raises:
            ValueError: The model has stepped or holds entries, or the state was made
                from another config (another number of agents or memes).
        """
        if self.steps != 0 or len(self.store):
            raise ValueError("set_state needs a freshly built model")
        self.tracker.set_state(state.part("tracker"))
        self.store.set_state(state.part("store"))
        policy_state = getattr(self.policy, "set_state", None)
        if policy_state is not None:
            policy_state(state.part("policy"))
        self.guard_phases.load_state_arrays(state.part("guards").arrays)
        frames = state.frames
        self._extra = {
            name.removeprefix("extra."): [frame]
            for name, frame in frames.items()
            if name.startswith("extra.")
        }
        self._step_rows = RowLog(frames.get("steps"))
        self._generations = [frames["generations"]] if "generations" in frames else []
        self.rng.bit_generator.state = state.values["rng"]
        version, internal, gauss = state.values["random"]
        self.random.setstate((version, tuple(internal), gauss))
        self.steps = int(state.values["steps"])
        saved = self._extra.get("personas")
        self._restore_personas(None if saved is None else pl.concat(saved, how="diagonal_relaxed"))

    def rebuild_personas(self) -> bool:
        """Rebuild the ``personas`` rows of the restored steps, for a state saved without them.

        Checkpoints older than the ``personas`` table (format ``memespread-checkpoint/3``)
        lack its rows, so a model restored from one would list its agents from the
        restore step only. This rebuilds the rows the run wrote before: every agent's
        generation 0 from step 0, then one row per replacement of the restored
        ``turnover`` table, each with the persona this model's policy assigns (the
        assignment is a function of the config and the persona order, which checkpoints
        of ``"shuffled"`` runs hold). So the table is exactly the uninterrupted run's
        when the model is built from the config that wrote the state, as a restore
        requires. Call it after :meth:`set_state`.

        Returns:
            Whether rows were rebuilt (False for a contagion model: it has no such table).
        """
        llm = self.llm_policy
        if llm is None:
            return False
        n = self.banks.n_agents
        originals = np.zeros(n, dtype=np.int32)
        history = [llm.persona_rows(0, np.arange(n, dtype=np.int32), originals)]
        replaced = frame_list(self._extra.get("turnover", []))
        if replaced is not None and replaced.height:
            agents = replaced["agent_id"].to_numpy().astype(np.int32)
            generations = replaced["agent_generation"].to_numpy().astype(np.int32)
            rows = llm.persona_rows(0, agents, generations)
            history.append(rows.with_columns(replaced["step"].cast(pl.Int32)))
        self._restore_personas(pl.concat(history))
        return True

    def _restore_personas(self, restored: pl.DataFrame | None) -> None:
        """Make the restored ``personas`` table say who speaks as which persona from now on.

        A resume keeps the saved table (``restored``: None when there is none); a fork
        whose policy assigns other personas adds their rows from the fork step
        (:func:`agents.personas.personas_after_restore`). A model without an LLM policy
        (a contagion fork of an LLM run) keeps the saved rows of the steps before the
        restore only: from there on nobody speaks as a persona, so the table ends there.
        """
        llm = self.llm_policy
        if llm is None:
            if restored is not None:
                self._extra["personas"] = [restored.filter(pl.col("step") < self.steps)]
            return
        everyone = np.arange(self.banks.n_agents, dtype=np.int32)
        current = llm.persona_rows(self.steps, everyone, self.tracker.lineage)
        self._extra["personas"] = [personas_after_restore(restored, current)]


#: Schema of the ``graph`` table (:func:`graph_frame`): one edge a row, source < target.
GRAPH_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {"source": pl.Int32, "target": pl.Int32}


def graph_frame(graph: nx.Graph) -> pl.DataFrame:
    """The graph as an edge table (source < target), sorted."""
    flat = np.fromiter(
        (node for edge in graph.edges() for node in edge),
        dtype=np.int64,
        count=2 * graph.number_of_edges(),
    ).reshape(-1, 2)
    low, high = flat.min(axis=1), flat.max(axis=1)
    order = np.lexsort((high, low))
    return pl.DataFrame(
        {"source": low[order].astype(np.int32), "target": high[order].astype(np.int32)},
        schema=GRAPH_SCHEMA,
    )


def _run_engine(policy: Policy) -> Callable[[], Engine] | None:
    """A callable returning the policy's engine (built on first use), or None.

    None when the policy has no engine (it is not an LLM policy: contagion). A judge
    detector or an LLM guard without an engine of its own uses it.
    """
    if not isinstance(policy, LLMPolicy):
        return None
    return lambda: policy.engine


def contexts_frame(step: int, retrieval: Retrieval) -> pl.DataFrame:
    """The ``contexts`` rows of a step: what each agent retrieved, best first.

    Columns: step, agent_id, rank (0 = best), entry_id, score (the retrieval score).
    """
    readers = retrieval.readers()
    return pl.DataFrame(
        {
            "step": np.full(len(readers), step, dtype=np.int32),
            "agent_id": readers.astype(np.int32),
            "rank": retrieval.ranks().astype(np.int32),
            "entry_id": retrieval.entry_ids.astype(np.int64),
            "score": retrieval.scores.astype(np.float64),
        }
    )
