"""The task stream: what each LLM agent is asked to do at each step.

The task of agent ``a`` at step ``t`` is ``tasks[(a * 7 + t) % len(tasks)]``: deterministic
(no randomness), different for neighbouring agents, and changing every step. The default
tasks ship with the package (``agents/data/tasks.json``); a user file in the same format
replaces them: a JSON list of non-empty strings.
"""

from __future__ import annotations

from pathlib import Path

from agents.personas import read_data_file

DEFAULT_TASKS_RESOURCE = "tasks.json"

#: Multiplier of the agent index in the task index (coprime with typical task counts).
AGENT_STRIDE = 7


def load_tasks(path: str | Path | None = None) -> tuple[str, ...]:
    """Load tasks from a JSON file, or the packaged default stream when ``path`` is None.

    Args:
        path: A JSON file holding a non-empty list of non-empty strings.

    Raises:
        ValueError: The file is missing, is not JSON, or is not a non-empty list of
            non-empty strings (the message names the file and the offending entry).
    """
    data, source = read_data_file(
        None if path is None else Path(path), DEFAULT_TASKS_RESOURCE, "tasks_file"
    )
    if not isinstance(data, list) or not data:
        raise ValueError(f"tasks_file = {source!r}: must hold a non-empty JSON list of strings")
    for i, task in enumerate(data):
        if not isinstance(task, str) or not task.strip():
            raise ValueError(
                f"tasks_file = {source!r}: entry {i} = {task!r}: every task must be a "
                "non-empty string"
            )
    return tuple(data)


class TaskStream:
    """Deterministic assignment of tasks to (agent, step).

    Args:
        tasks: The task texts (at least one).
    """

    def __init__(self, tasks: tuple[str, ...]) -> None:
        if not tasks:
            raise ValueError("tasks: at least one task is needed")
        self.tasks = tuple(tasks)

    def task_of(self, agent: int, step: int) -> str:
        """The task of ``agent`` at ``step``: ``tasks[(agent * 7 + step) % len(tasks)]``."""
        if agent < 0 or step < 0:
            raise ValueError(f"agent = {agent}, step = {step}: both must be >= 0")
        return self.tasks[(agent * AGENT_STRIDE + step) % len(self.tasks)]

    def at_step(self, step: int) -> StepTasks:
        """Every agent's task at ``step``, as a lazy view indexed by agent id."""
        return StepTasks(self, step)


class StepTasks:
    """The tasks of one step, indexed by agent id (unbounded: any agent id >= 0 works).

    Retrieval indexes queries by agent id; the policy does not need to know the number
    of agents to hand out this view.
    """

    def __init__(self, stream: TaskStream, step: int) -> None:
        self.stream = stream
        self.step = step

    def __getitem__(self, agent: int) -> str:
        return self.stream.task_of(int(agent), self.step)

    def take(self, n_agents: int) -> list[str]:
        """The tasks of agents ``0..n_agents-1``."""
        return [self.stream.task_of(a, self.step) for a in range(n_agents)]
