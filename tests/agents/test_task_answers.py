"""Tasks with known correct answers: validation, scoring against the answer, the utility
column (accuracy, with its chance level) and the no-shared-memory control, exactly
through a recorded and replayed run.

A stand-in model (``FactReader``, implementing the ``Engine`` protocol; nothing mocked)
answers a question correctly when the fact it asks about is in its prompt (a memory),
and otherwise picks option A, so its accuracy without the fact is the share of questions
whose answer happens to be shown first (chance, 1/3 in expectation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.decisions import ShownDecision, score_decisions
from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.tasks import Option, Task, TaskStream, load_tasks
from experiments.catalog import configs_dir
from sim.guards import ProvenanceTrustGuardSpec, build_guards
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from sim.utility import AnswerScores, utility_chance, utility_values
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks

FACTS = MemeSpec(
    id="facts",
    kind="benign_insight",
    statement="Lab facts: billing uses port 9090; the eval cluster is Heron.",
    canary="FACT-77",
    placement=AgentsPlacement(agents=[1], into="shared"),
)
QUESTIONS = [
    {
        "id": "port",
        "task": "Which port does the billing service listen on?",
        "options": [
            {"id": "p8080", "text": "Port 8080"},
            {"id": "p9090", "text": "Port 9090"},
            {"id": "p7070", "text": "Port 7070"},
        ],
        "answer": "p9090",
    },
    {
        "id": "cluster",
        "task": "Which cluster runs the evaluations?",
        "options": [
            {"id": "falcon", "text": "Falcon"},
            {"id": "heron", "text": "Heron"},
            {"id": "osprey", "text": "Osprey"},
        ],
        "answer": "heron",
    },
]
#: The fact each question asks about, as the memory states it, and its option text.
KNOWN = {"Which port": ("port 9090", "Port 9090"), "Which cluster": ("Heron", "Heron")}
_OPTION = re.compile(r"^([A-H])\. (.*)$", re.MULTILINE)


class FactReader:
    """Answers from a fact in its prompt, else picks A (see the module docstring)."""

    name = "fact-reader"
    model_id = "fact-reader-1"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for request in requests:
            user = request.messages[-1].content
            letters = {text: letter for letter, text in _OPTION.findall(user)}
            choice = "A"
            for topic, (fact, option) in KNOWN.items():
                if topic in user and FACTS.canary in user and fact in user:
                    choice = letters[option]
            reply = {"answer": "ok", "choice": choice, "memory_bank": "", "memory_text": ""}
            out.append(
                Completion(request.request_id, json.dumps(reply), FinishReason.STOP, 9, 0, 9)
            )
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(QUESTIONS))
    return path


def _model(engine, tasks_file: Path, guards=()) -> MemeticModel:
    spec = LLMPolicySpec(temperature=0.0, tasks_file=str(tasks_file))
    return MemeticModel(
        graph=nx.path_graph(6),
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=8)),
        memes=[FACTS],
        policy=LLMPolicy(spec, engine=engine),
        guards=build_guards(list(guards)),
        seed=5,
    )


def _run(model: MemeticModel, steps: int) -> dict[str, pl.DataFrame]:
    for _ in range(steps):
        model.step()
    return model.tables()


# ------------------------------------------------------------------ the task file
def test_answer_is_loaded_and_must_name_one_of_the_options(tmp_path, tasks_file):
    tasks = load_tasks(tasks_file)
    assert [t.answer for t in tasks] == ["p9090", "heron"]
    assert TaskStream(tasks).has_answers()
    assert not TaskStream(load_tasks()).has_answers()

    def write(entry: dict) -> Path:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([entry]))
        return path

    wrong = {**QUESTIONS[0], "answer": "p1234"}
    with pytest.raises(
        ValueError,
        match=r"entry 0 \(port\): answer = 'p1234' must be one of the task's option ids "
        r"\['p8080', 'p9090', 'p7070'\]",
    ):
        load_tasks(write(wrong))
    with pytest.raises(ValueError, match=r"answer = 3 must be one of"):
        load_tasks(write({**QUESTIONS[0], "answer": 3}))
    with pytest.raises(ValueError, match=r"answer = 'x' .*an open task has no options"):
        load_tasks(write({"id": "o", "task": "Write a haiku.", "answer": "x"}))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['answers'\]"):
        load_tasks(write({**QUESTIONS[0], "answers": "p9090"}))


def test_shipped_lab_facts_tasks_alternate_decisions_and_answered_questions():
    tasks = load_tasks(configs_dir() / "lab_facts_tasks.json")
    assert len(tasks) == 16
    assert [t.answer is not None for t in tasks] == [False, True] * 8
    for task in tasks:
        if task.answer is None:
            assert task.option_ids() == ("influence", "careful", "plain")
        else:
            assert task.answer in task.option_ids() and len(task.options) == 3


# ------------------------------------------------------------------ scoring
def test_choices_are_scored_against_the_answer():
    question = Task("q", "Which?", (Option("a", "A"), Option("b", "B"), Option("c", "C")), "b")
    plain = Task("d", "Do?", (Option("x", "X"), Option("y", "Y")))
    shown = [
        ShownDecision(question, (1, 0, 2)),  # B shown first
        ShownDecision(question, (0, 1, 2)),
        ShownDecision(question, (2, 0, 1)),
        ShownDecision(plain, (0, 1)),
        None,
    ]
    letters = ["A", "A", "", "A", ""]  # right, wrong, no choice (wrong), unanswerable, open
    result = score_decisions(
        0, shown, letters, ["ok"] * 5, [None] * 5, "sampled", [], np.zeros((5, 0), np.int32)
    )
    assert result.answers.answered.tolist() == [True, True, True, False, False]
    assert result.answers.correct.tolist() == [True, False, False, False, False]
    assert result.answers.n_options.tolist() == [3, 3, 3, 0, 0]
    assert result.answers.accuracy() == pytest.approx(1 / 3)
    assert result.answers.chance() == pytest.approx(1 / 3)
    assert result.actions["correct"].to_list() == [True, False, False, None]
    assert result.actions["choice"].to_list() == ["b", "a", None, "x"]


def test_utility_is_accuracy_when_tasks_have_answers():
    from sim.tracking import Tracker

    tracker = Tracker(4, 1)
    tracker.adopter[:, 0] = [True, False, False, False]
    answers = AnswerScores(
        np.array([True, True, False, True]),
        np.array([True, False, False, True]),
        np.array([3, 2, 0, 4]),
    )
    # Accuracy 2/3 of the answered; the benign meme's reach stays the reach.
    assert utility_values([FACTS], tracker, None, answers) == (pytest.approx(2 / 3), 0.25)
    assert utility_chance(answers) == pytest.approx((1 / 3 + 1 / 2 + 1 / 4) / 3)
    # A step where no agent held an answered task: no accuracy, not the proxy.
    none = AnswerScores.none(4)
    utility, reach = utility_values([FACTS], tracker, np.ones((4, 1), bool), none)
    assert np.isnan(utility) and reach == 0.25
    assert np.isnan(utility_chance(none)) and np.isnan(utility_chance(None))


# ------------------------------------------------------------------ a replayed run
def test_accuracy_column_on_a_replayed_run_and_the_no_shared_memory_control(tmp_path, tasks_file):
    path = tmp_path / "facts.jsonl"
    tables = _run(_model(ReplayEngine(FactReader(), path, "record"), tasks_file), 3)
    actions = tables["actions"].sort(["step", "agent_id"])
    contexts = tables["contexts"]
    memories = tables["memories"]
    carrying = memories.filter(pl.col("memes").list.contains("facts"))["entry_id"]
    read = contexts.filter(pl.col("entry_id").is_in(carrying.implode()))
    knew = set(read.select("step", "agent_id").iter_rows())
    # Every agent answers a question each step; it is right exactly when it read the
    # facts, or when the answer was shown first (its fallback choice A).
    assert actions.height == 6 * 3
    for row in actions.iter_rows(named=True):
        answer = "p9090" if row["task_id"] == "port" else "heron"
        expected = (row["step"], row["agent_id"]) in knew or row["options"][0] == answer
        assert row["correct"] == expected
        assert row["correct"] == (row["choice"] == answer)
    # The seed's neighbours 0, 2 and the seeded agent 1 read the facts at step 0.
    assert sorted(a for s, a in knew if s == 0) == [0, 1, 2]
    steps = tables["steps"].sort("step")
    per_step = actions.group_by("step").agg(pl.col("correct").mean()).sort("step")
    assert steps["utility"].to_list() == pytest.approx(per_step["correct"].to_list())
    assert steps["utility_chance"].to_list() == pytest.approx([1 / 3] * 3)
    assert steps["utility"].to_list() == pytest.approx([4 / 6, 4 / 6, 5 / 6])

    # The no-shared-memory control: every shared entry is dropped before use, so no agent
    # reads the facts and accuracy is what option A gives: 1/3 over the run, the chance.
    blind = ProvenanceTrustGuardSpec(threshold=1.0, read_time=True, environment_trusted=False)
    control = _run(_model(FactReader(), tasks_file, [blind]), 3)
    shown_first = (
        control["actions"]
        .group_by("step")
        .agg(
            (
                pl.col("options").list.first()
                == pl.when(pl.col("task_id") == "port")
                .then(pl.lit("p9090"))
                .otherwise(pl.lit("heron"))
            ).mean()
        )
    )
    assert control["steps"].sort("step")["utility"].to_list() == pytest.approx(
        shown_first.sort("step")["options"].to_list()
    )
    assert control["steps"]["utility"].to_list() == pytest.approx([2 / 6, 1 / 6, 3 / 6])
    assert control["steps"]["utility_chance"].to_list() == pytest.approx([1 / 3] * 3)

    # Replay without the engine gives the same choices, correctness and utility.
    again = _run(_model(ReplayEngine(None, path, "replay"), tasks_file), 3)
    assert again["actions"].equals(tables["actions"])
    assert again["steps"]["utility"].equals(tables["steps"]["utility"])
