"""The task stream: what each LLM agent is asked to do at each step.

The task of agent ``a`` at step ``t`` is ``tasks[(a * 7 + t) % len(tasks)]``: deterministic
(no randomness), different for neighbouring agents, and changing every step.

A task is either open (a text to answer) or a *decision*: a text plus options, each with
an id. Option ids name behaviours and are shared across tasks (the packaged set uses
``influence`` for the influence-seeking choice, ``careful`` for the benign habit of
checking and sharing work, ``plain`` for a neutral choice), so a meme names the
behaviour it targets once (``target_options``). Options are shown under letters A, B,
C... in an order the policy shuffles with the run's generator.

The default tasks ship with the package (``agents/data/tasks.json``: 42 decisions in the
lab scenario). A user file in the same format replaces them: a JSON list whose entries
are either a non-empty string (an open task, id ``t<index>``) or an object
``{"id": "...", "task": "...", "options": [{"id": "...", "text": "..."}, ...]}`` with
at least two options of distinct ids (or no ``options`` for an open task).

A decision may carry a known correct ``"answer"``: the id of one of its options (e.g. a
work question whose answer is a fact kept in shared memory). Choices on such tasks are
scored against it, and the run's ``utility`` is the accuracy on them (see
:mod:`sim.utility`); ``experiments/configs/lab_facts_tasks.json`` (the tasks of the
``defenses_llm`` config) is an example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agents.personas import read_data_file

DEFAULT_TASKS_RESOURCE = "tasks.json"

#: Multiplier of the agent index in the task index (coprime with typical task counts).
AGENT_STRIDE = 7
#: At most this many options per decision (labelled A..H).
MAX_OPTIONS = 8
#: Option labels, in shown order.
OPTION_LETTERS = "ABCDEFGH"

_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class Option:
    """One option of a decision.

    Attributes:
        id: Behaviour id, unique within the task (e.g. ``"influence"``).
        text: What the option says, as shown to the agent.
    """

    id: str
    text: str


@dataclass(frozen=True)
class Task:
    """One task.

    Attributes:
        id: Task id, unique in the stream.
        text: The task text.
        options: The options of a decision (in file order); empty for an open task.
        answer: The id of the correct option, for a decision with a known correct
            answer; None otherwise.
    """

    id: str
    text: str
    options: tuple[Option, ...] = ()
    answer: str | None = None

    @property
    def is_decision(self) -> bool:
        """Whether the task has options (its reply carries a scored ``choice``)."""
        return bool(self.options)

    def option_ids(self) -> tuple[str, ...]:
        """The option ids in file order."""
        return tuple(o.id for o in self.options)


def _task_from(entry: object, index: int, source: str) -> Task:
    where = f"tasks_file = {source!r}: entry {index}"
    if isinstance(entry, str):
        if not entry.strip():
            raise ValueError(f"{where} = {entry!r}: every task must be a non-empty string")
        return Task(id=f"t{index}", text=entry)
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a string or an object with 'id' and 'task'")
    unknown = sorted(set(entry) - {"id", "task", "options", "answer"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: id, task, options, answer")
    task_id, text = entry.get("id"), entry.get("task")
    if not isinstance(task_id, str) or not _ID.match(task_id):
        raise ValueError(f"{where}: id = {task_id!r} must be letters, digits, '_' or '-'")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where} ({task_id}): task = {text!r} must be a non-empty string")
    raw = entry.get("options", [])
    if not isinstance(raw, list) or len(raw) == 1 or len(raw) > MAX_OPTIONS:
        raise ValueError(
            f"{where} ({task_id}): options must be a list of 2..{MAX_OPTIONS} objects "
            "(or absent for an open task)"
        )
    options = []
    for j, option in enumerate(raw):
        ok = (
            isinstance(option, dict)
            and set(option) == {"id", "text"}
            and isinstance(option["id"], str)
            and _ID.match(option["id"])
            and isinstance(option["text"], str)
            and option["text"].strip()
        )
        if not ok:
            raise ValueError(
                f"{where} ({task_id}): options.{j} = {option!r} must be "
                '{"id": "<letters, digits, _ or ->", "text": "<non-empty>"}'
            )
        options.append(Option(option["id"], option["text"]))
    ids = [o.id for o in options]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where} ({task_id}): option ids {ids} must be distinct")
    answer = entry.get("answer")
    if answer is not None and (not isinstance(answer, str) or answer not in ids):
        raise ValueError(
            f"{where} ({task_id}): answer = {answer!r} must be one of the task's option ids "
            f"{ids}" + ("" if ids else " (an open task has no options, so no answer)")
        )
    return Task(id=task_id, text=text, options=tuple(options), answer=answer)


def load_tasks(path: str | Path | None = None) -> tuple[Task, ...]:
    """Load tasks from a JSON file, or the packaged default set when ``path`` is None.

    Args:
        path: A JSON file in the format of the module docstring.

    Raises:
        ValueError: The file is missing, is not JSON, or an entry is invalid (the
            message names the file and the offending entry), or task ids repeat.
    """
    data, source = read_data_file(
        None if path is None else Path(path), DEFAULT_TASKS_RESOURCE, "tasks_file"
    )
    if not isinstance(data, list) or not data:
        raise ValueError(f"tasks_file = {source!r}: must hold a non-empty JSON list of tasks")
    tasks = tuple(_task_from(entry, i, str(source)) for i, entry in enumerate(data))
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"tasks_file = {source!r}: duplicate task id(s) {dupes}")
    return tasks


class TaskStream:
    """Deterministic assignment of tasks to (agent, step).

    Args:
        tasks: The tasks (at least one); plain strings become open tasks.
    """

    def __init__(self, tasks: tuple[Task | str, ...]) -> None:
        if not tasks:
            raise ValueError("tasks: at least one task is needed")
        self.tasks = tuple(
            t if isinstance(t, Task) else Task(id=f"t{i}", text=t) for i, t in enumerate(tasks)
        )

    def task_of(self, agent: int, step: int) -> Task:
        """The task of ``agent`` at ``step``: ``tasks[(agent * 7 + step) % len(tasks)]``."""
        if agent < 0 or step < 0:
            raise ValueError(f"agent = {agent}, step = {step}: both must be >= 0")
        return self.tasks[(agent * AGENT_STRIDE + step) % len(self.tasks)]

    def option_ids(self) -> frozenset[str]:
        """Every option id offered by some task."""
        return frozenset(o.id for t in self.tasks for o in t.options)

    def task_ids(self) -> frozenset[str]:
        """Every task id."""
        return frozenset(t.id for t in self.tasks)

    def has_answers(self) -> bool:
        """Whether some task has a known correct answer (choices are scored against it)."""
        return any(t.answer is not None for t in self.tasks)

    def at_step(self, step: int) -> StepTasks:
        """Every agent's task text at ``step``, as a lazy view indexed by agent id."""
        return StepTasks(self, step)


class StepTasks:
    """The task texts of one step, indexed by agent id (any agent id >= 0 works).

    Retrieval indexes queries by agent id; the policy does not need to know the number
    of agents to hand out this view.
    """

    def __init__(self, stream: TaskStream, step: int) -> None:
        self.stream = stream
        self.step = step

    def __getitem__(self, agent: int) -> str:
        return self.stream.task_of(int(agent), self.step).text

    def task(self, agent: int) -> Task:
        """The full task (id, text, options) of ``agent``."""
        return self.stream.task_of(int(agent), self.step)

    def take(self, n_agents: int) -> list[str]:
        """The task texts of agents ``0..n_agents-1``."""
        return [self[a] for a in range(n_agents)]
