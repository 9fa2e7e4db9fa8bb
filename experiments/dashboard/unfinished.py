"""A run directory the runner did not finish, opened at its last checkpoint.

What the runner leaves (:func:`experiments.runner.execute`): the tables are written
only when a run completes. Before that, every ``checkpoint_every`` steps (default 10)
the whole model state goes to ``checkpoints/step-N`` (N steps done) and the manifest's
``steps_completed`` becomes N. A run stopped by Ctrl-C or SIGTERM ends with status
``interrupted``, one stopped by an error with ``failed`` (the manifest's ``error`` says
which); both keep that checkpoint, and ``memespread resume RUN_DIR`` continues from it
(steps run after it are lost and run again). A run still being written, or killed by
SIGKILL, says ``running``.

The dashboard opens an ``interrupted`` or ``failed`` run as a replay of the steps its
last checkpoint holds (0 to N - 1): the model is built from the manifest's config
(nothing is generated: an LLM policy builds its engine only when it first steps), the
checkpoint restored, and the model's tables read, which are the tables of those steps
that a complete run writes. A ``running`` run is refused: its checkpoint may be
replaced while it is read, and its process may still finish it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from experiments.messages import first_line

if TYPE_CHECKING:
    from experiments.config import RunConfig

#: The statuses of a run the dashboard opens at its last checkpoint.
UNFINISHED_STATUSES = ("interrupted", "failed")


class UnfinishedRunError(ValueError):
    """An unfinished run that cannot be replayed (the message is one line saying why)."""


@dataclass(frozen=True)
class UnfinishedRun:
    """An interrupted or failed run, replayed up to its last checkpoint.

    Attributes:
        run_dir: The run directory.
        status: ``"interrupted"`` or ``"failed"``.
        steps_completed: Steps the checkpoint holds (steps 0 to ``steps_completed - 1``).
        steps: Steps the run's config asks for.
        checkpoint: The checkpoint directory (``checkpoints/step-N``).
        config: The manifest's config, validated.
        error: The first line of the manifest's ``error`` of a failed run (None otherwise).
    """

    run_dir: Path
    status: str
    steps_completed: int
    steps: int
    checkpoint: Path
    config: RunConfig
    error: str | None = None

    @property
    def resume_command(self) -> str:
        """The command that continues the run from its checkpoint."""
        return f"memespread resume {self.run_dir}"

    @property
    def note(self) -> str:
        """The page's note (Markdown): what is shown, and how to finish the run."""
        done, last = self.steps_completed, self.steps_completed - 1
        if self.status == "failed":
            why = f"failed ({self.error})" if self.error else "failed"
            what = f"tries it again from step {done} (sending its failed requests again)"
        else:
            why = "was interrupted (Ctrl-C or SIGTERM)"
            what = f"finishes it from step {done}"
        return (
            f"**Unfinished run: status `{self.status}`.** The run {why} some time after its "
            f"last checkpoint, which holds {done} of its {self.steps} steps (steps 0 to "
            f"{last}): this page replays those; the steps it ran after the checkpoint were "
            f"lost. `{self.resume_command}` {what}."
        )

    def tables(self) -> dict[str, pl.DataFrame]:
        """The run's tables up to the checkpoint: those a complete run writes, so far.

        Raises:
            UnfinishedRunError: The checkpoint does not fit the model its config builds.
        """
        from experiments.runner import build_model
        from sim.checkpoint import load_checkpoint

        model = build_model(self.config)
        try:
            load_checkpoint(model, self.checkpoint)
            return model.tables()
        except ValueError as err:
            raise UnfinishedRunError(f"{self.checkpoint}: {err}") from None
        finally:
            model.close()


def unfinished_run(run_dir: Path, manifest: dict[str, Any]) -> UnfinishedRun:
    """The unfinished run of ``run_dir``, if its last checkpoint can be replayed.

    Args:
        run_dir: The run directory.
        manifest: Its checked manifest (:func:`sim.manifest.read_manifest`), whose
            status is not ``complete``.

    Raises:
        UnfinishedRunError: The status is ``running``; or the run has no checkpoint
            (stopped before its first one); or the checkpoint is corrupt, edited or of
            another config; or the manifest's config no longer validates (e.g. after
            an upgrade). Each message is one line naming the problem.
    """
    from experiments.config import ConfigError, validate_config
    from experiments.manifest import ManifestError, config_sha256
    from experiments.resume import checked_checkpoint

    status = str(manifest["status"])
    resume = f"memespread resume {run_dir}"
    if status not in UNFINISHED_STATUSES:
        raise UnfinishedRunError(
            f"{run_dir}: the run's status is {status!r}: it is still being written (open it "
            f"when it is done), or its process was killed (then `{resume}` finishes it); "
            "the dashboard opens complete, interrupted and failed runs"
        )
    try:
        checkpoint, step = checked_checkpoint(
            run_dir, {"config_sha256": config_sha256(manifest["config"])}
        )
    except ManifestError as err:
        raise UnfinishedRunError(str(err)) from None
    text = str(manifest.get("error") or "").strip() if status == "failed" else ""
    error = text.splitlines()[0] if text else None
    if checkpoint is None or step == 0:
        why = f" ({error})" if error else ""
        raise UnfinishedRunError(
            f"{run_dir}: the run is {status}{why} and has no checkpoint (it stopped before "
            f"its first one), so no step of it is on disk to replay; `{resume}` runs it "
            "from step 0"
        )
    try:
        config = validate_config(manifest["config"], f"{run_dir}/manifest.json")
    except ConfigError as err:
        raise UnfinishedRunError(first_line(err)) from None
    return UnfinishedRun(
        run_dir=run_dir,
        status=status,
        steps_completed=step,
        steps=config.steps,
        checkpoint=checkpoint,
        config=config,
        error=error,
    )
