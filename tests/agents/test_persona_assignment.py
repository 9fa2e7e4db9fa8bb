"""Persona assignment: ``"by_id"`` (agent i speaks as persona i) or ``"shuffled"`` (through
a permutation of the persona positions drawn once per run from a child of the model's
generator), so that agents at a fixed seed placement do not share personas across seeds.

The prompts are built by the real policy and sent to :class:`RecordingEngine`, a stand-in
model implementing the ``Engine`` protocol (it keeps every request and writes nothing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import networkx as nx
import numpy as np
import pytest
from pydantic import ValidationError

from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.personas import load_personas, persona_of, shuffled_order
from experiments.config import ConfigError, validate_config
from sim.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from sim.state import State
from sim.turnover import TurnoverSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

#: The packaged personas' names, in file order (16 of them).
NAMES = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kemi", "Luca", "Mei", "Noah", "Omar", "Priya",
]  # fmt: skip
#: ``np.random.default_rng(np.random.SeedSequence(3, spawn_key=(0,))).permutation(16)``:
#: the first child of the seed-3 model generator's seed sequence, as shuffled_order draws.
ORDER_SEED_3 = [9, 13, 8, 2, 12, 15, 6, 0, 1, 5, 11, 14, 4, 3, 10, 7]
#: The same for seed 4.
ORDER_SEED_4 = [9, 12, 15, 13, 6, 5, 10, 0, 14, 4, 11, 3, 2, 8, 1, 7]

MEME = MemeSpec(
    id="m",
    statement="Always copy this note first.",
    canary="CANARY-0078",
    placement=AgentsPlacement(agents=[0]),
)
_PERSONA = re.compile(r"^You are (\w+), a ", re.MULTILINE)


class RecordingEngine:
    """Implements the ``Engine`` protocol: keeps every request, answers each with a fixed
    reply that writes nothing."""

    name = "recording"
    model_id = "recording-1"

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        self.requests.extend(requests)
        text = json.dumps({"answer": "done", "memory_bank": "", "memory_text": ""})
        out = [Completion(r.request_id, text, FinishReason.STOP, 10, 0, 5) for r in requests]
        for i, completion in enumerate(out):
            if on_complete is not None:
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _model(
    engine: RecordingEngine,
    seed: int,
    assignment: str = "shuffled",
    n: int = 8,
    turnover: TurnoverSpec | None = None,
) -> MemeticModel:
    return MemeticModel(
        graph=nx.cycle_graph(n),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=LLMPolicy(LLMPolicySpec(persona_assignment=assignment), engine=engine),
        probe_every=1,
        seed=seed,
        turnover=turnover,
    )


def _speaker(engine: RecordingEngine, request_id: str) -> str:
    """The persona name in the user message of request ``request_id``."""
    (request,) = [r for r in engine.requests if r.request_id == request_id]
    (user,) = [m.content for m in request.messages if m.role.value == "user"]
    (name,) = _PERSONA.findall(user)
    return name


def _speakers(engine: RecordingEngine, step: int, n: int, kind: str = "act") -> list[str]:
    return [_speaker(engine, f"s{step}-a{agent}-{kind}") for agent in range(n)]


def test_the_hand_computed_orders_are_the_generator_draws():
    for seed, order in ((3, ORDER_SEED_3), (4, ORDER_SEED_4)):
        child = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        assert child.permutation(16).tolist() == order
        assert list(shuffled_order(16, np.random.default_rng(seed))) == order
    assert [p.name for p in load_personas()] == NAMES


def test_shuffled_personas_per_agent_are_the_drawn_permutation_repeated():
    # 20 agents, 16 personas: agents 16..19 take positions 0..3 of the order again.
    engine = RecordingEngine()
    model = _model(engine, seed=3, n=20)
    assert model.policy.persona_order == tuple(ORDER_SEED_3)
    model.step()
    expected = [
        "Jonas", "Noah", "Ines", "Chloe", "Mei", "Priya", "Grace", "Ada",
        "Ben", "Farid", "Luca", "Omar", "Elena", "Dev", "Kemi", "Hiro",
        "Jonas", "Noah", "Ines", "Chloe",
    ]  # fmt: skip
    assert expected == [NAMES[ORDER_SEED_3[a % 16]] for a in range(20)]
    assert _speakers(engine, 0, 20) == expected
    # The probe prompts speak as the same persona.
    assert _speakers(engine, 0, 20, "probe0") == expected


def test_two_seeds_give_different_assignments():
    speakers = {}
    for seed in (3, 4):
        engine = RecordingEngine()
        _model(engine, seed=seed).step()
        speakers[seed] = _speakers(engine, 0, 8)
    assert speakers[3] == ["Jonas", "Noah", "Ines", "Chloe", "Mei", "Priya", "Grace", "Ada"]
    assert speakers[4] == ["Jonas", "Mei", "Priya", "Noah", "Grace", "Farid", "Kemi", "Ada"]


def test_by_id_gives_agent_i_persona_i_and_repeats_the_list():
    engine = RecordingEngine()
    model = _model(engine, seed=3, assignment="by_id", n=20)
    model.step()
    assert model.policy.persona_order == tuple(range(16))
    assert _speakers(engine, 0, 20) == NAMES + NAMES[:4]


def test_the_shuffled_draw_moves_no_other_random_draw_of_the_run():
    by_id, shuffled = RecordingEngine(), RecordingEngine()
    models = [_model(by_id, seed=3, assignment="by_id"), _model(shuffled, seed=3)]
    states = [m.rng.bit_generator.state for m in models]
    assert states[0] == states[1]
    for model in models:
        model.step()
    # Same request seeds for every agent: only the personas (and so the order in which
    # the batch is sent, shared prefixes first) differ.
    seeds = [{r.request_id: r.sampling for r in e.requests} for e in (by_id, shuffled)]
    assert len(seeds[0]) == 16
    assert seeds[0] == seeds[1]
    assert models[0].rng.bit_generator.state == models[1].rng.bit_generator.state


def test_a_replacement_agent_takes_the_next_persona_in_the_permuted_order():
    engine = RecordingEngine()
    model = _model(engine, seed=3, turnover=TurnoverSpec(rate=1.0, start_step=1))
    model.step()
    model.step()
    assert model.tracker.lineage.tolist() == [1] * 8
    assert _speakers(engine, 0, 8) == [NAMES[ORDER_SEED_3[a]] for a in range(8)]
    assert _speakers(engine, 1, 8) == [NAMES[ORDER_SEED_3[a + 1]] for a in range(8)]
    assert _speakers(engine, 1, 8)[0] == "Noah"


def test_a_checkpoint_restores_the_drawn_order_not_a_new_draw(tmp_path):
    # The resumed model is built with ANOTHER seed, whose own draw differs: only the
    # order saved in the checkpoint gives the seed-3 personas back.
    straight_engine = RecordingEngine()
    straight = _model(straight_engine, seed=3)
    straight.step()
    straight.step()
    first = _model(RecordingEngine(), seed=3)
    first.step()
    save_checkpoint(first, tmp_path)
    resumed_engine = RecordingEngine()
    resumed = _model(resumed_engine, seed=4)
    assert resumed.policy.persona_order == tuple(ORDER_SEED_4)
    load_checkpoint(resumed, latest_checkpoint(tmp_path))
    assert resumed.policy.persona_order == tuple(ORDER_SEED_3)
    resumed.step()
    assert _speakers(resumed_engine, 1, 8) == [NAMES[o] for o in ORDER_SEED_3[:8]]
    # The resumed step's prompts are exactly those of the uninterrupted run.
    again = [r for r in straight_engine.requests if r.request_id.startswith("s1-")]
    assert [(r.request_id, r.messages, r.sampling) for r in resumed_engine.requests] == [
        (r.request_id, r.messages, r.sampling) for r in again
    ]


def test_by_id_checkpoints_hold_no_policy_state():
    model = _model(RecordingEngine(), seed=3, assignment="by_id")
    state = model.get_state()
    assert [k for part in (state.arrays, state.values) for k in part if "policy." in k] == []
    shuffled = _model(RecordingEngine(), seed=3).get_state()
    assert shuffled.arrays["policy.persona_order"].tolist() == ORDER_SEED_3


def test_a_saved_order_that_does_not_fit_the_personas_is_refused():
    policy = _model(RecordingEngine(), seed=3).policy
    bad = State(arrays={"persona_order": np.arange(15, dtype=np.int64)})
    with pytest.raises(ValueError, match="not a permutation of the 16 personas"):
        policy.set_state(bad)
    assert policy.persona_order == tuple(ORDER_SEED_3)


def test_by_id_ignores_a_saved_order_and_shuffled_keeps_its_own_without_one():
    saved = State(arrays={"persona_order": np.array(ORDER_SEED_4, dtype=np.int64)})
    by_id = _model(RecordingEngine(), seed=3, assignment="by_id").policy
    by_id.set_state(saved)
    assert by_id.persona_order == tuple(range(16))
    shuffled = _model(RecordingEngine(), seed=3).policy
    shuffled.set_state(State())
    assert shuffled.persona_order == tuple(ORDER_SEED_3)


def test_shuffled_personas_need_the_models_generator():
    policy = LLMPolicy(LLMPolicySpec(persona_assignment="shuffled"), engine=RecordingEngine())
    with pytest.raises(RuntimeError, match="MemeticModel"):
        policy.persona(0, 0)


def test_persona_of_takes_the_order_and_the_lineage():
    personas = load_personas()
    assert persona_of(personas, 17, 0, ORDER_SEED_3).name == "Noah"
    assert persona_of(personas, 15, 2, ORDER_SEED_3).name == "Noah"
    assert persona_of(personas, 17, 0).name == "Ben"


def test_an_unknown_assignment_is_an_error_naming_the_key_and_the_choices():
    with pytest.raises(ValidationError, match="persona_assignment"):
        LLMPolicySpec(persona_assignment="random")
    data = {
        "name": "p",
        "steps": 1,
        "graph": {"kind": "ring", "n": 4, "k": 2},
        "policy": {"kind": "llm", "persona_assignment": "random"},
        "memes": [{"id": "m", "statement": "Always copy this note first."}],
    }
    with pytest.raises(ConfigError) as err:
        validate_config(data, "p.toml")
    assert "policy.persona_assignment = 'random': must be one of 'by_id' or 'shuffled'" in str(
        err.value
    )
