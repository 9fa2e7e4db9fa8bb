"""The memetic model: a Mesa model whose step is a synchronous, batch-first pipeline.

Each step runs these phases for all agents at once:

1. inject — seed entries of memes due at this step are written;
2. retrieve — every agent gets the top-k entries of the banks it may read; carrying
   entries by others mark the reader exposed;
3. act — ONE policy call for all agents (one batched engine call for LLM policies),
   returning proposed writes and, for rule-based policies, adoption decisions;
4. validate — writes to banks the author may not write are refused;
5. guard — defenses review every remaining write (accept, reject, quarantine, down-weight);
6. commit — accepted writes are appended together, with provenance (author, step, bank,
   parents = the writer's retrieved entries) set here, never by the policy; transmissions
   are recorded; bank capacity is enforced and faded entries are forgotten. Writes of a
   step become visible at the next step (synchronous update);
7. probe — every ``probe_every`` steps, one more batched policy call decides adoption;
8. record — tidy rows for this step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import mesa
import networkx as nx
import numpy as np
import polars as pl

from agents.agent import MemeticAgent
from sim.detectors import Embedder, MemeBook
from sim.forgetting import forget
from sim.guards import Guard, Verdict, combine
from sim.memes import MemeSpec
from sim.memory import ENVIRONMENT, MemoryStore, NewEntries
from sim.memory_spec import MemorySpec
from sim.policy import EngineStats, Policy, StepContext, WriteProposals
from sim.retrieval import Retrieval, expand_ranges, retrieve
from sim.tracking import Tracker
from topologies.banks import BankKind, BankLayoutSpec, Banks, build_banks
from topologies.graphs import GraphSpec, build_graph
from topologies.placement import select_agents


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
    """

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
    ) -> None:
        super().__init__(rng=seed)
        self.seed = seed
        self.memory_spec = memory or MemorySpec()
        if probe_every is not None and probe_every < 1:
            raise ValueError(f"probe_every = {probe_every}: must be a positive integer or None")
        self.probe_every = probe_every
        self.graph = graph if isinstance(graph, nx.Graph) else build_graph(graph, self.rng)
        n = self.graph.number_of_nodes()
        if sorted(self.graph.nodes) != list(range(n)):
            raise ValueError("graph: nodes must be the integers 0..n-1")
        self.banks = banks if isinstance(banks, Banks) else build_banks(self.graph, banks, self.rng)
        self.memes = MemeBook(memes, embedder)
        self.store = MemoryStore(self.banks, self.memory_spec.forgetting.initial_strength)
        self.tracker = Tracker(n, len(self.memes))
        self.policy = policy
        self.guards = tuple(guards)
        self.injections = [self._resolve(i, m) for i, m in enumerate(self.memes.memes)]
        self.last_retrieval: Retrieval | None = None
        self._step_rows: list[pl.DataFrame] = []
        self._generations: list[pl.DataFrame] = []
        for agent_id in range(n):
            MemeticAgent(self, agent_id)

    # ------------------------------------------------------------ seeding
    def _resolve(self, index: int, meme: MemeSpec) -> Injection:
        placement = meme.placement
        n = self.banks.n_agents
        if placement.strategy == "bank":
            try:
                bank = self.banks.bank_id(placement.bank or "")
            except KeyError as err:
                raise ValueError(f"meme {meme.id!r}: placement.bank: {err.args[0]}") from None
            return Injection(
                meme=index,
                step=meme.inject_step,
                agents=np.zeros(0, dtype=np.int32),
                banks=np.array([bank], dtype=np.int32),
                authors=np.array([ENVIRONMENT], dtype=np.int32),
            )
        if placement.strategy == "agents":
            agents = np.array(sorted(set(placement.agents or [])), dtype=np.int32)
            bad = agents[(agents < 0) | (agents >= n)]
            if len(bad):
                raise ValueError(
                    f"meme {meme.id!r}: placement.agents = {bad.tolist()}: agent ids must be in "
                    f"0..{n - 1}"
                )
        else:
            if placement.count > n:
                raise ValueError(
                    f"meme {meme.id!r}: placement.count = {placement.count}: must be at most the "
                    f"number of agents ({n})"
                )
            agents = select_agents(self.graph, placement.strategy, placement.count, self.rng)
        banks_list, authors = [], []
        private = int(BankKind.PRIVATE)
        for agent in agents.tolist():
            writable = self.banks.writable(agent)
            kinds = self.banks.kind[writable]
            if placement.into == "private":
                writable = writable[kinds == private]
            elif placement.into == "shared":
                writable = writable[kinds != private]
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
                    importance=np.full(n, meme.placement.importance, dtype=np.float32),
                    parent_indptr=np.zeros(n + 1, dtype=np.int64),
                    parent_ids=np.zeros(0, dtype=np.int64),
                ),
                step,
            )
            self.tracker.seed(injection.agents, injection.meme, step, meme.placement.adopt)
            count += n
        if count:
            self.store.enforce_capacity(step)
        return count

    def _intern(self, texts: list[str]) -> np.ndarray:
        """Text ids of ``texts``, running the meme detectors on texts not seen before."""
        known = self.store.texts
        fresh = sorted({t for t in texts if t not in known})
        if fresh:
            self.store.register_texts(fresh, self.memes.detect(fresh))
        return known.intern_many(texts)

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
        """Run one synchronous step for all agents (see the module docstring)."""
        started = time.perf_counter()
        t = self.current_step
        self.tracker.take_counts()  # counts are per step
        injected = self._inject(t)
        spec = self.memory_spec.retrieval
        queries = self.policy.queries(t)
        retrieval = retrieve(self.store, self.banks, t, spec, queries=queries)
        self.store.touch(retrieval.entry_ids, t, self.memory_spec.forgetting.recall_boost)
        self.last_retrieval = retrieval
        self.tracker.observe_retrieval(retrieval, self.store, t)
        context = self._context(t, retrieval)

        output = self.policy.act(context)
        stats = output.stats
        self._apply_adoptions(output.adoptions, t)
        if output.generations is not None:
            self._generations.append(output.generations)
        commit = self._commit(output.writes, retrieval, t)

        if self.probe_every is not None and (t + 1) % self.probe_every == 0:
            probe = self.policy.probe(context)
            stats = stats + probe.stats
            self._apply_adoptions(probe.adoptions, t)
            if probe.generations is not None:
                self._generations.append(probe.generations)
        self._record(t, injected, commit, stats, time.perf_counter() - started)

    def _apply_adoptions(self, adoptions, step: int) -> None:
        if len(adoptions):
            self.tracker.apply_adoptions(
                adoptions.agent, adoptions.meme, adoptions.adopted.astype(bool), step
            )

    def _commit(self, writes: WriteProposals, retrieval: Retrieval, step: int) -> dict[str, int]:
        """Validate, guard and commit the proposed writes of a step."""
        counts = {"proposed": len(writes), "refused": 0, "rejected": 0, "quarantined": 0}
        if len(writes):
            allowed = self.banks.write_allowed(writes.author, writes.bank)
            counts["refused"] = int((~allowed).sum())
            writes = writes.select(allowed)
        importance = np.clip(writes.importance.astype(np.float32), 0.0, 1.0)
        if len(writes) and self.guards:
            context = self._context(step, retrieval)
            decision = combine([g.review(writes, context) for g in self.guards], len(writes))
            counts["rejected"] = int((decision.verdict == Verdict.REJECT).sum())
            counts["quarantined"] = int((decision.verdict == Verdict.QUARANTINE).sum())
            keep = (decision.verdict == Verdict.ACCEPT) | (decision.verdict == Verdict.DOWNWEIGHT)
            importance = (importance * decision.weight)[keep]
            writes = writes.select(keep)
        # Causes are honoured only when they were in the writer's context.
        cause = self._valid_causes(writes, retrieval)
        # Provenance: parents are the writer's retrieved entries, set here.
        authors = writes.author.astype(np.int64)
        n_parents = np.diff(retrieval.indptr)[authors] if len(authors) else authors
        parent_indptr = np.zeros(len(writes) + 1, dtype=np.int64)
        np.cumsum(n_parents, out=parent_indptr[1:])
        parent_ids = retrieval.entry_ids[expand_ranges(retrieval.indptr[authors], n_parents)]
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
        self.tracker.observe_writes(entry_ids, retrieval, cause, self.store, step)
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
        self, step: int, injected: int, commit: dict[str, int], stats: EngineStats, wall: float
    ) -> None:
        counts = self.tracker.take_counts()
        tr = self.tracker
        m = len(self.memes)
        alive = int(self.store.alive.sum())
        row = {
            "step": np.full(m, step, dtype=np.int32),
            "meme_id": self.memes.ids,
            "exposed": tr.exposed.sum(axis=0).astype(np.int64),
            "carriers": tr.carrier.sum(axis=0).astype(np.int64),
            "adopters": tr.adopter.sum(axis=0).astype(np.int64),
            "infected": tr.infected.sum(axis=0).astype(np.int64),
            "new_exposed": counts.new_exposed,
            "new_carriers": counts.new_carriers,
            "new_adopters": counts.new_adopters,
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
            "entries_alive": np.full(m, alive, dtype=np.int64),
            "requests": np.full(m, stats.requests, dtype=np.int64),
            "prompt_tokens": np.full(m, stats.prompt_tokens, dtype=np.int64),
            "cached_prompt_tokens": np.full(m, stats.cached_prompt_tokens, dtype=np.int64),
            "completion_tokens": np.full(m, stats.completion_tokens, dtype=np.int64),
            "generation_failures": np.full(m, stats.failures, dtype=np.int64),
            "engine_wall_s": np.full(m, stats.wall_s, dtype=np.float64),
            "step_wall_s": np.full(m, wall, dtype=np.float64),
        }
        self._step_rows.append(pl.DataFrame(row))

    # ------------------------------------------------------------ tables
    def steps_frame(self) -> pl.DataFrame:
        """The ``steps`` table: one row per (step, meme)."""
        if not self._step_rows:
            return pl.DataFrame()
        return pl.concat(self._step_rows)

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
        return tables


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
        {"source": low[order].astype(np.int32), "target": high[order].astype(np.int32)}
    )
