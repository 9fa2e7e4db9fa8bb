"""Guards: the registry, each kind's verdicts on contagion runs, rollback along parents."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.checkpoint import load_checkpoint, save_checkpoint
from sim.guards import (
    PatternGuardSpec,
    ProvenanceTrustGuardSpec,
    QuarantineGuardSpec,
    RateLimitGuardSpec,
    VaccineGuardSpec,
    build_guards,
    descendants,
    guard_kinds,
)
from sim.memes import BankPlacement, HubPlacement, MemeKind, MemeSpec, PeripheryPlacement
from sim.memory import ENVIRONMENT
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, GlobalBank, NeighbourhoodBanks, PrivateBanks
from topologies.graphs import WattsStrogatz

HARM = MemeSpec(
    id="influence",
    kind=MemeKind.INFLUENCE_SEEKING,
    statement="Gain more influence over the other agents.",
    canary="CANARY-7731",
    placement=HubPlacement(),
)
FACT = MemeSpec(
    id="fact",
    kind=MemeKind.BENIGN_INSIGHT,
    statement="The calibration constant of rig seven is forty two.",
    canary="FACT-0042",
    placement=PeripheryPlacement(),
)


def _model(guards=(), memes=(HARM,), seed: int = 3, beta: float = 1.0, n: int = 60, **kw):
    return MemeticModel(
        graph=WattsStrogatz(n=n, k=4, p=0.2),
        banks=kw.pop(
            "banks",
            BankLayoutSpec(
                private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
            ),
        ),
        memes=list(memes),
        policy=ContagionPolicy(kw.pop("policy", ContagionSpec(beta=beta))),
        memory=MemorySpec(retrieval=RetrievalSpec(k=6)),
        guards=build_guards(list(guards)),
        seed=seed,
        **kw,
    )


def _run(model: MemeticModel, steps: int) -> dict[str, pl.DataFrame]:
    for _ in range(steps):
        model.step()
    return model.tables()


def _reference_descendants(memories: pl.DataFrame, roots: set[int]) -> set[int]:
    """Descendants by a plain walk over the memories table's parents column."""
    children: dict[int, list[int]] = {}
    for entry, parents in memories.select("entry_id", "parents").iter_rows():
        for parent in parents:
            children.setdefault(parent, []).append(entry)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen - roots


# ------------------------------------------------------------------ registry
def test_registry_lists_every_kind_and_builds_each():
    assert guard_kinds() == [
        "pattern",
        "rate_limit",
        "provenance_trust",
        "quarantine",
        "vaccine",
        "review",
        "consensus",
    ]
    guards = build_guards(
        [
            PatternGuardSpec(pattern="x"),
            PatternGuardSpec(pattern="y"),
            RateLimitGuardSpec(),
            ProvenanceTrustGuardSpec(),
            QuarantineGuardSpec(meme="influence"),
            VaccineGuardSpec(meme="influence"),
        ]
    )
    assert [g.name for g in guards] == [
        "pattern",
        "pattern_2",
        "rate_limit",
        "provenance_trust",
        "quarantine",
        "vaccine",
    ]


def test_unknown_kind_and_duplicate_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"guards.1.kind = 'nope': not a guard kind; must be one"):
        build_guards([PatternGuardSpec(pattern="x"), SimpleNamespace(kind="nope")])
    with pytest.raises(ValueError, match=r"duplicate name\(s\) \['a'\]"):
        build_guards([PatternGuardSpec(pattern="x", name="a"), RateLimitGuardSpec(name="a")])


def test_guard_naming_an_unknown_meme_fails_at_model_build():
    with pytest.raises(ValueError, match=r"guards.vaccine.meme = 'nope': not a meme of the run"):
        _model([VaccineGuardSpec(meme="nope")])


def test_quarantine_needs_exactly_one_detector():
    with pytest.raises(ValueError, match="exactly one of meme"):
        QuarantineGuardSpec()
    with pytest.raises(ValueError, match="exactly one of meme"):
        QuarantineGuardSpec(meme="influence", pattern="x")


# ------------------------------------------------------------------ rollback
def test_descendants_match_a_walk_over_the_parents_column():
    model = _model(beta=0.6)
    tables = _run(model, 6)
    memories = tables["memories"]
    rng = np.random.default_rng(0)
    for roots in ([0], [1, 5], rng.choice(len(model.store), 4, replace=False).tolist()):
        got = descendants(model.store, np.asarray(roots)).tolist()
        assert got == sorted(_reference_descendants(memories, set(roots)))
    shared_seed = int(np.flatnonzero(model.banks.kind[model.store.bank[:2]] != 0)[0])
    assert len(descendants(model.store, np.asarray([shared_seed]))) > 20


def test_rollback_removes_exactly_the_descendants_and_records_why():
    model = _model(beta=0.6)
    _run(model, 5)
    before = model.store.alive.copy()
    memories = model.store.to_frame(model.memes.ids)
    root = int(np.flatnonzero(model.banks.kind[model.store.bank[:2]] != 0)[0])  # shared seed
    expected = ({root} | _reference_descendants(memories, {root})) & set(
        np.flatnonzero(before).tolist()
    )
    assert len(expected) > 10
    removed = model.guard_phases.rollback(model.store, [root], 5, reason="test")
    assert set(removed.tolist()) == expected
    after = model.store.alive
    assert np.flatnonzero(before & ~after).tolist() == sorted(expected)
    assert (model.store.removed_step[removed] == 5).all()
    rows = model.guard_phases.take_rows()
    assert rows is not None and rows["entry_id"].to_list() == sorted(expected)
    assert set(rows["reason"].to_list()) == {"test", "descendant: test"}
    assert rows.filter(pl.col("reason") == "test")["entry_id"].to_list() == [root]


def test_rollback_of_an_entry_that_does_not_exist_changes_nothing():
    model = _model()
    _run(model, 2)
    alive = model.store.alive.copy()
    with pytest.raises(ValueError, match=r"no such memory entry: 99999 \(entry ids of this run"):
        model.guard_phases.rollback(model.store, [0, 99999], 2, reason="x")
    assert (model.store.alive == alive).all()
    assert model.guard_phases.take_rows() is None


def test_rollback_before_any_entry_says_there_is_none():
    """Not "entry ids of this run are 0..-1" (a fork at step 0 deleting an entry)."""
    model = _model()
    with pytest.raises(ValueError) as err:
        model.guard_phases.rollback(model.store, [3], 0, reason="x")
    assert str(err.value) == "no such memory entry: 3 (no entry exists yet)"


# ------------------------------------------------------------------ quarantine
@pytest.mark.parametrize("delay", [0, 2])
def test_quarantine_rolls_back_flagged_shared_entries_and_descendants(delay):
    model = _model([QuarantineGuardSpec(meme="influence", delay=delay)], beta=0.8)
    tables = _run(model, 7)
    memories, decisions, steps = tables["memories"], tables["guard_decisions"], tables["steps"]
    shared = model.banks.kind != 0
    roll = decisions.filter(pl.col("phase") == "rollback")
    roots = roll.filter(~pl.col("reason").str.starts_with("descendant"))
    # Roots: shared entries carrying the meme, flagged exactly `delay` steps after writing.
    assert roots.height > 0  # for both delays (the loops below check something)
    written = dict(memories.select("entry_id", "step").iter_rows())
    for entry, step in roots.select("entry_id", "step").iter_rows():
        assert "influence" in memories["memes"][entry].to_list()
        assert shared[memories["bank_id"][entry]]
        assert step - written[entry] == delay
    # Every descendant of a root that was alive at the rollback went with it.
    for step, group in roll.group_by("step"):
        ids = set(group["entry_id"].to_list())
        step_roots = set(roots.filter(pl.col("step") == step[0])["entry_id"].to_list())
        kids = _reference_descendants(memories, step_roots)
        assert ids - step_roots <= kids
        removed_then = memories.filter(pl.col("removed_step") == step[0])["entry_id"]
        assert kids & set(removed_then.to_list()) == ids - step_roots
    # No carrying entry stays alive in a shared bank after its detection time.
    last = steps["step"].max()
    late = memories.filter(
        pl.col("alive"),
        pl.col("memes").list.contains("influence"),
        pl.col("step") <= last - delay,
    )
    assert not any(shared[b] for b in late["bank_id"].to_list())
    assert steps["guard_quarantine_rolled_back"].sum() == roll.height
    assert steps["entries_rolled_back"].sum() == roll.height
    writes = decisions.filter(pl.col("phase") == "write")
    assert steps["guard_quarantine_quarantined"].sum() == writes.height
    assert (steps["writes_quarantined"] == steps["guard_quarantine_quarantined"]).all()
    if delay == 0:
        assert roll.height > 0 and writes.height > 0


# ------------------------------------------------------------------ rate limit
def test_rate_limit_counts_committed_shared_writes_per_window():
    spec = RateLimitGuardSpec(max_writes=1, window=3)
    banks = BankLayoutSpec(
        neighbourhood=NeighbourhoodBanks(capacity=8), global_=GlobalBank(capacity=32)
    )
    sis = ContagionSpec(beta=0.5, gamma=0.5, recovery="sis")
    model = _model([spec], n=80, banks=banks, policy=sis)
    tables = _run(model, 9)
    memories, steps = tables["memories"], tables["steps"]
    shared = model.banks.kind != 0
    written = memories.filter(
        pl.col("parents").list.len() > 0,
        pl.col("bank_id").map_elements(lambda b: bool(shared[b]), return_dtype=pl.Boolean),
    )
    per_author = written.group_by("author_id").agg(pl.col("step").sort())
    # Some author wrote more than once, so the window is actually checked.
    assert max(len(s) for s in per_author["step"].to_list()) > 1
    for steps_of_author in per_author["step"].to_list():
        for i, s in enumerate(steps_of_author):
            in_window = [x for x in steps_of_author[: i + 1] if x > s - 3]
            assert len(in_window) <= 1
    decisions = tables["guard_decisions"]
    assert steps["guard_rate_limit_rejected"].sum() == decisions.height > 0
    assert (steps["writes_rejected"] == steps["guard_rate_limit_rejected"]).all()


def test_rate_limit_verdicts_in_proposal_order():
    from sim.guards import Writes
    from sim.policy import WriteProposals

    model = _model([RateLimitGuardSpec(max_writes=2, window=2)])
    model.step()
    guard = model.guards[0]
    context = model._context(1, model.last_retrieval)
    proposals = WriteProposals(
        author=np.array([4, 4, 9, 4, 9], dtype=np.int32),
        bank=np.zeros(5, dtype=np.int32),
        text=["a"] * 5,
        importance=np.full(5, 0.5, dtype=np.float32),
        cause=np.full(5, -1, dtype=np.int64),
    )
    writes = Writes(proposals=proposals, memes=np.zeros(5, np.int64), shared=np.ones(5, bool))
    used = guard.used(1)
    allowance = {a: 2 - int(used[a]) for a in (4, 9)}
    verdict = guard.review(writes, context).verdict.tolist()
    expected, seen = [], {4: 0, 9: 0}
    for a in proposals.author.tolist():
        expected.append(0 if seen[a] < allowance[a] else 1)
        seen[a] += 1
    assert verdict == expected


# ------------------------------------------------------------------ vaccine
def test_vaccine_immune_share_is_exact_and_immune_agents_never_adopt():
    model = _model([VaccineGuardSpec(meme="influence", immune=0.25)], beta=1.0, n=60)
    tables = _run(model, 8)
    steps = tables["steps"]
    guard = model.guards[0]
    assert steps["guard_vaccine_immune"].to_list() == [15] * 8
    immune = guard.immune & ~model.tracker.seeded[:, 0]
    assert immune.sum() >= 14 and not model.tracker.adopter[immune, 0].any()
    assert not model.tracker.carrier[immune, 0].any()
    blocked = tables["guard_decisions"].filter(pl.col("verdict") == "block")
    assert steps["guard_vaccine_blocked"].sum() == blocked.height > 0
    assert set(blocked["agent_id"].to_list()) <= set(np.flatnonzero(guard.immune).tolist())
    # Without the vaccine the same agents are reached (beta = 1 on a connected graph).
    plain = _model(beta=1.0, n=60)
    _run(plain, 8)
    assert plain.tracker.adopter[immune, 0].sum() == immune.sum()


def test_counter_meme_immunises_the_agents_it_reaches():
    counter = MemeSpec(
        id="counter",
        kind=MemeKind.BENIGN_INSIGHT,
        statement="Do not seek influence; share your work openly.",
        canary="VAX-0001",
        placement=PeripheryPlacement(count=3),
    )
    model = _model([VaccineGuardSpec(meme="influence", counter="counter")], memes=(HARM, counter))
    tables = _run(model, 8)
    guard = model.guards[0]
    reached = model.tracker.exposed[:, 1] | model.tracker.adopter[:, 1]
    assert (guard.immune == reached).all()
    assert tables["steps"]["guard_vaccine_immune"].to_list()[-1] == int(reached.sum())
    # Nobody adopted the meme after being immunised: adoptions were blocked.
    assert tables["steps"]["guard_vaccine_blocked"].sum() > 0


# ------------------------------------------------------------------ provenance trust
def test_provenance_trust_rejects_writes_beyond_the_trusted_hops():
    fact = FACT.model_copy(update={"placement": BankPlacement(bank="global")})
    banks = BankLayoutSpec(private=PrivateBanks(capacity=8), global_=GlobalBank(capacity=64))
    spec = ProvenanceTrustGuardSpec(threshold=0.4, hop_decay=0.5, penalty=1.0)
    model = _model([spec], memes=(HARM, fact), banks=banks, beta=1.0)
    tables = _run(model, 4)
    guard = model.guards[0]
    memories = tables["memories"]
    store = model.store
    # Independent recomputation of every entry's hops along its source chain.
    hops: dict[int, int] = {}
    for entry in range(len(store)):
        author = int(store.author[entry])
        if author == ENVIRONMENT:
            hops[entry] = 0
            continue
        parents = store.parents(entry)
        hops[entry] = 1 + (hops[int(parents[0])] if len(parents) else 0)
    seeds = memories.filter(pl.col("parents").list.len() == 0)["entry_id"].to_list()
    assert [guard.hops[e] for e in seeds] == [hops[e] for e in seeds]
    assert sorted({hops[e] for e in seeds}) == [0, 1]  # the bank's fact, the hub's meme
    shared = model.banks.kind != 0
    checked = 0
    for entry, bank, parents in memories.select("entry_id", "bank_id", "parents").iter_rows():
        if shared[bank] and parents:
            # Committed shared writes have trust >= threshold: at most one untrusted hop.
            assert guard.trust[entry] >= 0.4
            assert guard.hops[entry] == 1
            checked += 1
    assert checked > 0
    rejected = tables["guard_decisions"]
    steps = tables["steps"].filter(pl.col("meme_id") == "fact")
    assert rejected.height == steps["guard_provenance_trust_rejected"].sum() > 0
    assert set(rejected["reason"].to_list()) == {"trust 0.25 < 0.4"}


def test_provenance_trust_penalises_flagged_authors():
    spec = ProvenanceTrustGuardSpec(threshold=0.0, penalty=0.5)
    pattern = PatternGuardSpec(pattern="CANARY-\\d+", action="reject")
    model = _model([pattern, spec], beta=1.0)
    tables = _run(model, 3)
    guard = model.guards[1]
    flagged = tables["guard_decisions"].filter(pl.col("guard") == "pattern")
    steps_flagged = flagged.group_by("agent_id").agg(pl.col("step").n_unique())
    expected = np.ones(model.banks.n_agents, dtype=np.float32)
    for agent, n in steps_flagged.iter_rows():
        expected[agent] = 0.5**n
    assert np.allclose(guard.author_trust, expected)
    assert (guard.author_trust < 1).sum() == steps_flagged.height > 0


def test_read_time_trust_drops_entries_before_they_expose():
    spec = ProvenanceTrustGuardSpec(threshold=0.9, hop_decay=0.5, read_time=True)
    model = _model([spec], beta=1.0)
    tables = _run(model, 3)
    screened = tables["guard_decisions"].filter(pl.col("phase") == "read")
    assert screened.height == tables["steps"]["guard_provenance_trust_screened"].sum() > 0
    # The hub's seed (one untrusted hop, trust 0.5) never reaches a reader.
    assert tables["steps"]["exposed"].to_list() == [0, 0, 0]


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


# Computed by the implementation that grew its arrays by concatenation every step (before
# the capacity-doubling buffers): the same run must give exactly these values.
TRUST_REFERENCE = {
    False: (721, [0, 4, 11, 6, 18, 40, 74, 122, 140, 150, 100, 42, 14], "d412b54dfc19c92d",
            "2b5f6dd996729143", "bb19e17a99409c05", 357),
    True: (43, [0, 4, 11, 6, 22], "0b2c0e439d554dc3", "16af1bf32a41830c",
           "ffe2e5eb6bbfa117", 454),
}  # fmt: skip


@pytest.mark.parametrize("read_time", [False, True])
def test_provenance_trust_arrays_equal_the_concatenating_implementation(tmp_path, read_time):
    specs = [
        PatternGuardSpec(pattern="CANARY-77", action="reject", shared_only=True),
        ProvenanceTrustGuardSpec(
            threshold=0.3, hop_decay=0.7, penalty=0.8, read_time=read_time, action="downweight"
        ),
    ]

    def build() -> MemeticModel:
        return _model(specs, memes=(HARM, FACT), seed=11, beta=0.6, n=400)

    model = build()
    tables = _run(model, 12)
    guard = model.guards[1]
    n, histogram, hops, trust, authors, decisions = TRUST_REFERENCE[read_time]
    assert len(guard.hops) == len(guard.trust) == len(model.store) == n
    assert np.bincount(guard.hops).tolist() == histogram
    assert (guard.hops.dtype, guard.trust.dtype) == (np.int32, np.float32)
    assert _digest(guard.hops) == hops
    assert _digest(guard.trust) == trust
    assert _digest(guard.author_trust) == authors
    assert tables["guard_decisions"].height == decisions
    # Resumed from a checkpoint half-way: the same arrays (state keeps its meaning).
    first = build()
    _run(first, 6)
    saved = save_checkpoint(first, tmp_path)
    resumed = build()
    load_checkpoint(resumed, saved)
    _run(resumed, 6)
    again = resumed.guards[1]
    assert _digest(again.hops) == hops and _digest(again.trust) == trust


# ------------------------------------------------------------------ utility, state
def test_utility_is_the_benign_memes_reach_on_contagion_runs():
    model = _model(memes=(HARM, FACT), beta=0.5)
    tables = _run(model, 4)
    steps = tables["steps"].filter(pl.col("meme_id") == "fact")
    adopters = steps["adopters"].to_numpy() / 60
    assert np.allclose(steps["utility"].to_numpy(), adopters)
    assert (steps["benign_reach"].to_numpy() >= adopters).all()
    no_benign = _run(_model(), 1)["steps"]
    assert no_benign["utility"].is_nan().all()


def test_guard_state_survives_a_checkpoint(tmp_path):
    specs = [
        RateLimitGuardSpec(max_writes=1, window=3),
        ProvenanceTrustGuardSpec(threshold=0.2, penalty=0.5),
        QuarantineGuardSpec(meme="influence", delay=2, detect_prob=0.7),
        VaccineGuardSpec(meme="influence", immune=0.2),
    ]
    full = _model(specs, beta=0.6)
    expected = _run(full, 6)
    first = _model(specs, beta=0.6)
    _run(first, 3)
    saved = save_checkpoint(first, tmp_path)
    resumed = _model(specs, beta=0.6)
    load_checkpoint(resumed, saved)
    got = _run(resumed, 3)
    for name in ("steps", "memories", "guard_decisions", "agents"):
        a = expected[name].drop([c for c in expected[name].columns if c.endswith("_wall_s")])
        b = got[name].drop([c for c in got[name].columns if c.endswith("_wall_s")])
        assert a.equals(b), name


def test_utility_is_task_accuracy_when_choices_are_scored():
    from sim.tracking import Tracker
    from sim.utility import utility_values

    tracker = Tracker(4, 2)
    tracker.adopter[:, 1] = [True, False, False, False]
    tracker.carrier[:, 1] = [True, True, False, False]
    expressed = np.zeros((4, 2), dtype=np.bool_)
    expressed[[0, 2, 3], 1] = True  # 3 of 4 agents chose the benign meme's target
    expressed[1, 0] = True  # the harmful meme's target does not count
    assert utility_values([HARM, FACT], tracker, expressed) == (0.75, 0.5)
    assert utility_values([HARM, FACT], tracker, None) == (0.25, 0.5)


def test_texts_of_dropped_writes_do_not_stay_in_memory():
    from sim.policy import WriteProposals

    model = _model([PatternGuardSpec(pattern="DROP-ME", shared_only=False)])
    model.step()
    context = model._context(1, model.last_retrieval)
    texts = ["DROP-ME one", "DROP-ME two", "keep this note"]
    proposals = WriteProposals(
        author=np.array([1, 2, 3], dtype=np.int32),
        bank=model.banks.writable(1)[:1].repeat(3).astype(np.int32),
        text=texts,
        importance=np.full(3, 0.5, dtype=np.float32),
        cause=np.full(3, -1, dtype=np.int64),
    )
    reviewed = model.guard_phases.review(proposals, context, model._intern)
    assert reviewed.keep.tolist() == [False, False, True]
    live = {model.store.texts.get(i) for i in model.store.text_id[model.store.alive].tolist()}
    assert model.store.texts.live_count == len(live) + 1  # + the kept note, not yet committed
    assert "DROP-ME one" in model.store.texts  # released texts stay readable
