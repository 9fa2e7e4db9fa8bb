"""Scored decisions: shuffled options, the agent's choice, and whether it expressed a meme.

A decision task shows its options under letters A, B, C... in an order drawn from the
run's generator (one permutation per agent holding a decision, agents in id order), so a
position bias of the model does not masquerade as a preference. The reply's ``choice``
letter maps back to an option id; the choice *expresses* meme M when that id is one of
M's ``target_options`` for the task. A task with a known correct ``answer`` also scores
the choice against it (``correct``; an unparsed or missing choice is wrong). With
log-probability scoring the probability of every shown option is recorded too, and
``p_target`` sums it over M's targets (a continuous, lower-variance measure of the same
behaviour).

The ``actions`` table has one row per (decision, meme): see :data:`ACTIONS_SCHEMA`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from agents.tasks import OPTION_LETTERS, Task, TaskStream
from sim.memes import MemeSpec
from sim.texts import words
from sim.utility import AnswerScores

#: Columns of the ``actions`` table.
ACTIONS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "task_id": pl.String,
    "options": pl.List(pl.String),
    "choice": pl.String,
    "answer": pl.String,
    "scoring": pl.String,
    "option_probs": pl.List(pl.Float64),
    "meme_id": pl.String,
    "offered": pl.Boolean,
    "expressed": pl.Boolean,
    "correct": pl.Boolean,
    "p_target": pl.Float64,
    "dose": pl.Int32,
}


@dataclass(frozen=True)
class ShownDecision:
    """A decision task as one agent sees it.

    Attributes:
        task: The task.
        order: Indices into ``task.options``, in shown order.
    """

    task: Task
    order: tuple[int, ...]

    @property
    def letters(self) -> str:
        """The labels of the shown options."""
        return OPTION_LETTERS[: len(self.order)]

    @property
    def option_ids(self) -> tuple[str, ...]:
        """Option ids in shown order."""
        return tuple(self.task.options[i].id for i in self.order)

    @property
    def option_texts(self) -> tuple[str, ...]:
        """Option texts in shown order."""
        return tuple(self.task.options[i].text for i in self.order)

    def option_of(self, letter: str) -> str | None:
        """The option id behind a choice letter (None: not one of the shown letters)."""
        index = self.letters.find(letter.strip().upper()) if letter.strip() else -1
        return None if index < 0 or len(letter.strip()) != 1 else self.option_ids[index]


def shuffle_decisions(
    tasks: Sequence[Task], rng: np.random.Generator
) -> list[ShownDecision | None]:
    """Each agent's decision with its options in an order drawn from ``rng``.

    One ``rng.permutation`` per decision task, in agent order; open tasks draw nothing
    and give None.
    """
    out: list[ShownDecision | None] = []
    for task in tasks:
        if not task.is_decision:
            out.append(None)
            continue
        order = tuple(int(i) for i in rng.permutation(len(task.options)))
        out.append(ShownDecision(task, order))
    return out


def check_targets(memes: Sequence[MemeSpec], stream: TaskStream) -> None:
    """Fail early when a meme targets options or tasks that no task offers.

    Raises:
        ValueError: Names the meme, the missing option ids (or task ids) and what exists.
    """
    option_ids = stream.option_ids()
    task_ids = stream.task_ids()
    for meme in memes:
        if isinstance(meme.target_options, dict):
            unknown_tasks = sorted(set(meme.target_options) - task_ids)
            if unknown_tasks:
                raise ValueError(
                    f"meme {meme.id!r}: target_options names task(s) {unknown_tasks} that the "
                    "tasks file does not have"
                )
            for task in stream.tasks:
                wanted = meme.targets_for(task.id)
                missing = sorted(wanted - set(task.option_ids()))
                if missing:
                    raise ValueError(
                        f"meme {meme.id!r}: target_options for task {task.id!r} = {missing}: "
                        f"the task's options are {list(task.option_ids())}"
                    )
            continue
        missing = sorted(meme.all_targets() - option_ids)
        if missing:
            raise ValueError(
                f"meme {meme.id!r}: target_options = {missing}: no task offers such an option; "
                f"the tasks' option ids are {sorted(option_ids)}"
            )


def context_doses(
    readers: np.ndarray,
    entry_authors: np.ndarray,
    entry_masks: np.ndarray,
    n_agents: int,
    n_memes: int,
) -> np.ndarray:
    """Per (agent, meme): carrying entries by others in the agent's context.

    Args:
        readers: Reader of each retrieved entry.
        entry_authors: Author of each retrieved entry.
        entry_masks: Meme bit mask of each retrieved entry.
        n_agents: Number of agents.
        n_memes: Number of memes.
    """
    dose = np.zeros((n_agents, n_memes), dtype=np.int32)
    foreign = entry_authors != readers
    for meme in range(n_memes):
        hit = foreign & ((entry_masks >> meme) & 1).astype(bool)
        dose[:, meme] = np.bincount(readers[hit], minlength=n_agents)[:n_agents]
    return dose


@dataclass(frozen=True)
class DecisionResult:
    """What the agents decided in one step.

    Attributes:
        expressed: Boolean (n_agents, n_memes): whose choice expressed which meme.
        actions: Rows of the ``actions`` table (see :data:`ACTIONS_SCHEMA`).
        answers: Per agent, whether its task had a known answer and its choice was it.
    """

    expressed: np.ndarray
    actions: pl.DataFrame
    answers: AnswerScores


def score_decisions(
    step: int,
    shown: Sequence[ShownDecision | None],
    letters: Sequence[str],
    answers: Sequence[str],
    probs: Sequence[tuple[float, ...] | None],
    scoring: str,
    memes: Sequence[MemeSpec],
    dose: np.ndarray,
) -> DecisionResult:
    """Map choices to options, decide expression per meme, build the ``actions`` rows.

    Args:
        step: The step.
        shown: Per agent, its shown decision (None for an open task).
        letters: Per agent, the choice letter of its reply ("" when none or unparsed).
        answers: Per agent, its answer text.
        probs: Per agent, the probability of each shown option (log-probability scoring),
            or None.
        scoring: ``"logprob"`` or ``"sampled"`` (recorded per row).
        memes: The run's memes (targets).
        dose: (n_agents, n_memes) carrying entries by others in each agent's context.
    """
    n, m = len(shown), len(memes)
    expressed = np.zeros((n, m), dtype=np.bool_)
    answered = np.zeros(n, dtype=np.bool_)
    right = np.zeros(n, dtype=np.bool_)
    n_options = np.zeros(n, dtype=np.int64)
    rows: dict[str, list] = {name: [] for name in ACTIONS_SCHEMA}
    meme_list: list[MemeSpec | None] = list(memes) or [None]
    for agent, decision in enumerate(shown):
        if decision is None:
            continue
        choice = decision.option_of(letters[agent])
        answer = decision.task.answer
        correct = None if answer is None else choice == answer
        if answer is not None:
            answered[agent], right[agent] = True, bool(correct)
            n_options[agent] = len(decision.order)
        p = probs[agent]
        for j, meme in enumerate(meme_list):
            targets = frozenset() if meme is None else meme.targets_for(decision.task.id)
            offered = bool(targets & set(decision.option_ids))
            hit = choice is not None and choice in targets
            if meme is not None:
                expressed[agent, j] = hit
            p_target = None
            if p is not None and offered:
                p_target = float(
                    sum(
                        pi for pi, oid in zip(p, decision.option_ids, strict=True) if oid in targets
                    )
                )
            rows["step"].append(step)
            rows["agent_id"].append(agent)
            rows["task_id"].append(decision.task.id)
            rows["options"].append(list(decision.option_ids))
            rows["choice"].append(choice)
            rows["answer"].append(answers[agent])
            rows["scoring"].append(scoring)
            rows["option_probs"].append(None if p is None else list(p))
            rows["meme_id"].append(None if meme is None else meme.id)
            rows["offered"].append(offered)
            rows["expressed"].append(hit)
            rows["correct"].append(correct)
            rows["p_target"].append(p_target)
            rows["dose"].append(0 if meme is None else int(dose[agent, j]))
    scores = AnswerScores(answered, right, n_options)
    return DecisionResult(expressed, pl.DataFrame(rows, schema=ACTIONS_SCHEMA), scores)


def text_similarity(a: str, b: str) -> float:
    """Jaccard overlap of the lowercase word sets of two texts, in [0, 1]."""
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def matching_source(text: str, candidates: Sequence[int], candidate_texts: Sequence[str]) -> int:
    """The candidate entry whose text is most similar to ``text``.

    Ties go to the earliest (best-ranked) candidate; -1 when there is no candidate or
    none shares a word.
    """
    best, best_sim = -1, 0.0
    for entry, other in zip(candidates, candidate_texts, strict=True):
        sim = text_similarity(text, other)
        if sim > best_sim:
            best, best_sim = entry, sim
    return best
