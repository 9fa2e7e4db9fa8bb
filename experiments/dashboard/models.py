"""The Mesa models the dashboard page steps: a replay of a run directory and a live run.

Both expose ``view`` (a :class:`~experiments.dashboard.view.RunView` of the tables so
far) and ``view_step`` (the step the page shows; the step slider sets it through
:meth:`show`). SolaraViz's Step and Play buttons call :meth:`mesa.Model.step`: the replay
then shows the next recorded step, the live run runs one more simulation step and shows
it.

Mesa counts the calls to ``step()`` in ``steps`` and SolaraViz's sidebar prints it as
"Step: N"; these models keep ``steps`` equal to the shown step instead (0 before a live
run's first step), so the sidebar agrees with the page. Mesa 3.3 reads ``steps`` only to
print it and to count the calls (``Model._wrapped_step`` adds one before our ``step``
runs, and our ``step`` then sets it).
"""

from __future__ import annotations

import mesa

from experiments.dashboard.view import RunView


class ReplayModel(mesa.Model):
    """A run directory's run, shown step by step.

    A complete run is shown from its tables; an interrupted or failed one up to its last
    checkpoint (:mod:`experiments.dashboard.unfinished`).

    Args:
        run_dir: The run directory.
        view_step: The step shown first (default: the last recorded step).

    Raises:
        experiments.dashboard.view.NotARunError: ``run_dir`` is not a run directory the
            page can open (:func:`experiments.dashboard.view.check_run_dir`).
    """

    def __init__(self, run_dir: str, view_step: int | None = None) -> None:
        super().__init__(rng=0)
        self.run_dir = run_dir
        self.view = RunView.from_run_dir(run_dir)
        last = self.view.last_step
        self.first_step = 0
        self.last_step = 0 if last is None else last
        self.view_step = self.last_step if view_step is None else view_step
        self.steps = self.view_step
        self.running = self.view_step < self.last_step
        #: Whether Step or Play found the replay at its last step: Mesa's controller then
        #: keeps them disabled until Reset, even when the step slider moves back.
        self.controls_off = False

    def show(self, step: int) -> None:
        """Show ``step`` (the step slider); Mesa's sidebar counter follows it."""
        self.view_step = int(step)
        self.steps = self.view_step

    def step(self) -> None:
        """Show the next recorded step (the replay stops at the last one)."""
        self.show(min(self.view_step + 1, self.last_step))
        self.running = self.view_step < self.last_step
        self.controls_off = not self.running


class LiveModel(mesa.Model):
    """A run built from a config and stepped in the page (nothing is written to disk).

    Args:
        config: A run config file or shipped config name.
        steps: Stop after this many steps (default: the config's ``steps``).

    Raises:
        experiments.config.ConfigError: The config is missing or invalid.
    """

    def __init__(self, config: str, steps: int | None = None) -> None:
        super().__init__(rng=0)
        from experiments.config import load_config
        from experiments.runner import build_model

        self.config_path = config
        self.config = load_config(config)
        self.sim = build_model(self.config)
        self.max_steps = self.config.steps if steps is None else steps
        self.first_step = 0
        self._view: RunView | None = None
        self._view_version = -1
        self.view_step: int | None = None
        self.running = self.max_steps > 0
        self.controls_off = False

    def show(self, step: int) -> None:
        """Show ``step`` (the step slider); Mesa's sidebar counter follows it."""
        self.view_step = int(step)
        self.steps = self.view_step

    @property
    def last_step(self) -> int:
        """The last step run so far (0 before the first one)."""
        last = self.view.last_step
        return 0 if last is None else last

    @property
    def view(self) -> RunView:
        """The live model's tables so far (rebuilt once per simulation step)."""
        done = self.sim.steps
        if self._view is None or self._view_version != done:
            # The graph never changes during a run: the first view's layout serves all.
            layout = None if self._view is None else self._view.layout
            self._view = RunView.from_model(self.sim, self.config.name, layout)
            self._view_version = done
        return self._view

    def step(self) -> None:
        """Run one simulation step (one batched engine call for LLM policies) and show it."""
        if self.sim.steps >= self.max_steps:
            self.running = False
            self.steps = self.view_step or 0  # Mesa counted this call: undo it
            return
        self.sim.step()
        self.show(self.last_step)
        self.running = self.sim.steps < self.max_steps and self.sim.running

    def close(self) -> None:
        """Release the policy's engine, if it has one."""
        close = getattr(self.sim.policy, "close", None)
        if callable(close):
            close()
