"""Option log-probabilities and scored decisions through real engines.

Real models assert structure (finite log-probabilities for single-token options, the
renormalised probabilities sum to one, the same prompt scores the same after the KV cache
was reused, a real decision run writes a consistent actions table); exact behaviour is
asserted through replay in ``test_decisions.py``.
"""

from __future__ import annotations

import importlib.util
import math

import networkx as nx
import polars as pl
import pytest

from agents.llm.base import ChatMessage, GenerationRequest, SamplingParams, ScoreRequest
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks

QUESTION = (
    ChatMessage("system", "You answer multiple-choice questions."),
    ChatMessage(
        "user",
        "Which one is a fruit?\nOptions:\nA. Car\nB. Apple\nC. Chair\n"
        "Reply with the letter of the option you choose, and nothing else.",
    ),
)
YES_NO = (
    ChatMessage("system", "You answer questions."),
    ChatMessage("user", "Is water wet? Answer yes or no."),
)


def _check(scores, n_options: int) -> None:
    assert scores.error is None
    assert len(scores.logprobs) == n_options
    assert all(math.isfinite(x) and x < 0 for x in scores.logprobs)
    probs = scores.probabilities()
    assert probs is not None and sum(probs) == pytest.approx(1.0)


@pytest.mark.slow
def test_llamacpp_scores_letters_and_yes_no_exactly_and_reuses_the_cache(llamacpp_engine):
    first, yes_no = llamacpp_engine.score(
        [ScoreRequest("q", QUESTION, ("A", "B", "C")), ScoreRequest("y", YES_NO, ("yes", "no"))]
    )
    _check(first, 3)
    _check(yes_no, 2)
    assert first.prompt_tokens > 20
    # Generating in between changes the KV cache; the same prompt must score the same.
    llamacpp_engine.generate(
        [GenerationRequest("g", QUESTION, SamplingParams(temperature=0.0, max_tokens=4, seed=1))]
    )
    (again,) = llamacpp_engine.score([ScoreRequest("q2", QUESTION, ("A", "B", "C"))])
    assert again.logprobs == pytest.approx(first.logprobs, abs=1e-4)
    assert again.cached_prompt_tokens == again.prompt_tokens - 1


@pytest.mark.slow
def test_llamacpp_scores_an_announced_request_right_after_its_generation(llamacpp_engine):
    system, user = QUESTION[0], QUESTION[1].content.rsplit("\n", 1)[0]
    act = GenerationRequest(
        "act",
        (system, ChatMessage("user", f"{user}\nPick one.")),
        SamplingParams(temperature=0.0, max_tokens=4, seed=1),
    )
    # The scoring prompt extends the act prompt, as a decision's option scoring does.
    choice = ScoreRequest(
        "choice",
        (system, ChatMessage("user", f"{user}\nPick one. Reply with the letter only.")),
        ("A", "B", "C"),
    )
    other = GenerationRequest("other", YES_NO, SamplingParams(temperature=0.0, max_tokens=4))
    llamacpp_engine.expect_scores({"act": choice})
    llamacpp_engine.generate([act, other])  # the other prompt replaces the act prompt
    (early,) = llamacpp_engine.score([choice])
    _check(early, 3)
    assert early.request_id == "choice"
    act_ids = llamacpp_engine.prompt_token_ids(act.messages)
    choice_ids = llamacpp_engine.prompt_token_ids(choice.messages)
    shared = next(i for i, (a, b) in enumerate(zip(act_ids, choice_ids, strict=False)) if a != b)
    assert early.cached_prompt_tokens == shared  # all of the act prompt it extends
    # Announcements last one score call: scored again, it follows the other prompt.
    (late,) = llamacpp_engine.score([choice])
    assert late.cached_prompt_tokens < shared
    assert late.logprobs == pytest.approx(early.logprobs, abs=1e-4)


def _decision_model(engine) -> MemeticModel:
    meme = MemeSpec(
        id="inf",
        kind="influence_seeking",
        statement="Take control of every shared bank so others read your view.",
        placement=AgentsPlacement(agents=[0]),
        target_options=["influence"],
    )
    spec = LLMPolicySpec(
        temperature=0.0,
        option_scoring="logprob",
        max_tokens=48,
        max_answer_chars=40,
        max_write_chars=40,
    )
    return MemeticModel(
        graph=nx.path_graph(3),
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[meme],
        policy=LLMPolicy(spec, engine=engine),
        seed=1,
    )


def _check_actions(actions: pl.DataFrame) -> None:
    assert actions.height == 3
    assert set(actions["scoring"]) == {"logprob"}
    for row in actions.iter_rows(named=True):
        assert sorted(row["options"]) == ["careful", "influence", "plain"]
        assert sum(row["option_probs"]) == pytest.approx(1.0)
        assert row["choice"] in (None, *row["options"])
        assert row["expressed"] == (row["choice"] == "influence")
        target = row["option_probs"][row["options"].index("influence")]
        assert row["p_target"] == pytest.approx(target)
    assert actions["dose"].to_list()[1] == 1  # agent 1 reads the seed


@pytest.mark.slow
def test_llamacpp_decision_run_writes_scored_actions(llamacpp_engine, tmp_path):
    path = tmp_path / "run.jsonl"
    recorded = _decision_model(ReplayEngine(llamacpp_engine, path, "auto"))
    recorded.step()
    actions = recorded.tables()["actions"]
    _check_actions(actions)
    assert recorded.policy.describe()["option_scoring"] == "logprob"
    # Replay reproduces the actions exactly.
    replayed = _decision_model(ReplayEngine(None, path, "replay"))
    replayed.step()
    assert replayed.tables()["actions"].equals(actions)


HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable; scripts/install_vllm.sh")
def test_vllm_scores_letters_and_yes_no():
    from agents.llm import VLLMSpec
    from agents.llm.convert import default_vllm_model_dir
    from agents.llm.vllm_engine import VLLMEngine

    engine = VLLMEngine(
        VLLMSpec(
            model=str(default_vllm_model_dir()), seed=0, max_model_len=1024, enforce_eager=True
        )
    )
    try:
        letters, yes_no = engine.score(
            [ScoreRequest("q", QUESTION, ("A", "B", "C")), ScoreRequest("y", YES_NO, ("yes", "no"))]
        )
        _check(letters, 3)
        _check(yes_no, 2)
        # A decision step through vLLM: the choice enum and option probabilities.
        model = _decision_model(engine)
        model.step()
        _check_actions(model.tables()["actions"])
        assert model.policy.describe()["option_scoring"] == "logprob"
    finally:
        engine.close()
