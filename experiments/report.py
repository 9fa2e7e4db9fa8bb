"""A quick report of a run or a sweep: a summary table and PNG plots.

``report(path)`` reports a run directory, or a sweep directory (one holding
``index.parquet`` or a ``runs/`` tree of run directories; see :func:`report_sweep`).
It writes only into a run or sweep directory that memespread wrote (its marker
``manifest.json`` or ``sweep.json``, see :mod:`experiments.rundirs`): a project folder
that merely holds a ``runs/`` folder is refused, so its own ``report/`` is never touched.

For a run it reads ``steps.parquet`` and ``manifest.json`` and writes ``run_dir/report/``:

* ``summary.csv`` — one row per meme (see :func:`summary_table`): the spread, and for
  runs with scored choices (LLM decisions) their outcome: agents that expressed the meme,
  their share, the share chance would give, the decisions and target choices;
* ``prevalence.png`` — the share of agents exposed, carrying, expressing (when some
  agent did) and adopting after each step: one meme in one panel, or several memes side
  by side in one panel per state, so a race reads off one panel;
* ``transmissions.png`` — new transmissions and new adopters per step, one line per meme;
* ``funnel.png`` — agents ever exposed, carrier, expressed and adopter per meme, with the
  effects of exposure under the bars when the run scored decisions;
* ``effects.csv`` — LLM runs with scored decisions: the effect of exposure against the
  placebo and unexposed controls (:func:`sim.analysis.effects.run_effects`);
* ``personas.csv`` — LLM runs with scored decisions and a ``personas`` table: per meme,
  persona and arm (exposed, unexposed) the share of decisions that chose the meme's
  target, with an interval clustered by agent and the chance level
  (:func:`sim.analysis.personas.run_persona_outcomes`); printed one row per persona,
  and drawn in ``personas.png`` (one row per persona, a panel per meme; see
  :func:`personas_figure`).

For a sweep it writes ``sweep_dir/report/``:

* ``summary.csv`` — per combination of the swept parameters and meme: the mean and 95 %
  confidence interval over seeds of final size, final adopter share, steps to 50 %
  adopters and R0 (see :func:`sim.analysis.aggregate.aggregate_metrics`), with
  ``t50_n`` of ``runs`` seeds reaching 50 % and ``t50_high_censored`` true where the
  interval of ``t50`` reached beyond the runs' last step (``t50_high`` is then that
  step, printed ``>T``: the bound itself was not observed), and, since that mean leans
  early when some seeds never reached 50 %, ``t50_km_median``, the Kaplan-Meier median
  over all seeds with those censored at their last step (null when fewer than half got
  there; ``t50_km_end`` is the last step its curve covers), printed after ``(k/n`` where
  ``k < n``; on a sweep whose runs
  scored choices (LLM decisions), also the mean and 95 % interval over seeds of the
  share of agents that expressed the meme and the mean chance level of that share
  (:data:`SWEEP_CHOICE_COLUMNS`, see :func:`sweep_choice_summary`); a sweep without
  scored choices has none of these columns;
* ``effects.csv`` — on a sweep whose runs scored choices: per grid point, the effect of
  exposure against the placebo and unexposed controls, pooled over the grid point's
  runs (:func:`sim.analysis.effects.sweep_effects`); printed per grid point with the
  runs pooled and what the bootstrap resampled;
* ``personas.csv`` — on a sweep whose runs scored choices and list their personas: the
  outcomes by persona of ``personas.csv`` of a run, per grid point pooled over its runs
  (:func:`sim.analysis.personas.sweep_persona_outcomes`);
* ``final_size_by_<parameter>.png``, ``t50_by_<parameter>.png`` — for each swept
  parameter, final size (mean and 95 % interval over seeds) and steps to 50 % (the
  Kaplan-Meier median over seeds, see :func:`t50_figure`) against it (one line per
  value of the other parameters);
* ``adopters_by_<parameter>.png`` — adopter curves with confidence bands over seeds,
  one line per grid point (named after the first swept parameter; one panel per meme
  when the runs have several); ``adopters.png`` for a sweep of seeds only (no grid);
* ``final_size_heatmap.png`` — with two or more swept parameters, final size over the
  first two, the mean over seeds per cell; with a third, one panel per value of it; the
  title names any further parameters a cell averages over;
* on a sweep that compares defenses (its runs have a harmful meme and differ in their
  guards; see :func:`sim.analysis.defenses.has_guard_arms`, e.g. the shipped
  ``defenses`` sweep): ``defense_frontier.csv`` — one row per arm (a setting of the
  defense parameters) and stratum (a combination of the other swept parameters),
  exactly :func:`sim.analysis.defenses.defense_frontier` (attack success and utility
  with 95 % intervals over seeds, reduction and utility change against the stratum's
  undefended arm, those changes paired by seed with intervals, the stratum's Pareto
  set) — and ``defense_frontier.png``, the attack/utility plane with every arm
  labelled, its intervals, the Pareto frontier and, for task accuracy, the chance
  level; one panel per stratum.

All figures come from :mod:`sim.plots` (one palette, one style) and carry the run or
sweep name in their titles; they are drawn on matplotlib's Agg canvas (no pyplot).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from experiments.messages import counted, first_line
from experiments.rundirs import (
    SWEEP_MARKER,
    RunDirError,
    first_run,
    is_run_dir,
    is_sweep_dir,
    read_json_object,
)
from sim.columns import int_max
from sim.output import write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sim.analysis.loading import Sweep


@dataclass(frozen=True)
class Report:
    """What :func:`report` produced.

    Attributes:
        run_dir: The run directory.
        summary: One row per meme (see :func:`summary_table`).
        figures: Paths of the PNG files written.
    """

    run_dir: Path
    summary: pl.DataFrame = field(repr=False)
    figures: tuple[Path, ...]
    effects: pl.DataFrame | None = field(default=None, repr=False)
    personas: pl.DataFrame | None = field(default=None, repr=False)

    def text(self) -> str:
        """The summary as a plain-text table, the effects of exposure, the outcomes by persona."""
        from sim.analysis.effects import effect_lines

        lines = effect_lines(self.effects)
        # A run without scored choices has no choice outcomes: no column of dashes.
        empty = [c for c in CHOICE_COLUMNS if c in self.summary.columns]
        empty = [c for c in empty if self.summary[c].null_count() == self.summary.height]
        table = format_table(self.summary.drop(empty))
        text = table + ("\n" + "\n".join(lines) if lines else "")
        return text + persona_text(self.personas)


#: The columns of :func:`summary_table` that only runs with scored choices (LLM
#: decisions, an ``actions`` table) have; null in the others.
CHOICE_COLUMNS = (
    "expressed",
    "expressed_share",
    "expressed_chance",
    "first_expressed_step",
    "decisions",
    "target_choices",
)


def summary_table(
    steps: pl.DataFrame,
    n_agents: int,
    *,
    actions: pl.DataFrame | None = None,
    targets: Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]] | None = None,
) -> pl.DataFrame:
    """One row per meme: the final state and the course of the spread.

    Columns: meme_id, steps, final exposed / carriers / adopters (counts), final
    adopter share (of ``n_agents``), peak adopters and the first step it was reached
    (null when no agent ever adopted: there was no peak), the first step with at least
    half the agents adopting (null if never), total transmissions and infections; then
    the outcome of scored choices (:data:`CHOICE_COLUMNS`, as the ``steps`` and
    ``actions`` tables define them):

    * ``expressed`` — agents that ever expressed the meme (a scored choice was one of
      its ``target_options``): ``steps.expressed`` after the last step;
    * ``expressed_share`` — ``expressed`` over ``n_agents``;
    * ``expressed_chance`` — the share of agents random choices on the same decisions
      would have made express it at least once
      (:func:`sim.analysis.defenses.attack_chance`; a placebo's against its pair's
      targets, as its choices are scored; null for a meme without targets): the floor
      to read ``expressed_share`` against;
    * ``first_expressed_step`` — the first step after which some agent had expressed it
      (null if none ever did);
    * ``decisions`` — scored decisions that offered one of its targets
      (``actions.offered``); ``target_choices`` — those whose choice was a target.

    All six are null for a run without scored choices (``actions`` None: the contagion
    policy makes no choices, so nobody can express a meme; a zero would read as a
    measured outcome).

    Args:
        steps: The run's ``steps`` table.
        n_agents: Number of agents.
        actions: The run's ``actions`` table, or None when it made no scored choices.
        targets: Per meme id, its ``target_options`` as configured (option ids, or per
            task id), for ``expressed_chance``.
    """
    rows = []
    # A stable sort: memes keep their order within a step, so the rows follow the config.
    ordered = steps.sort("step", maintain_order=True)
    for (meme,), frame in ordered.group_by(["meme_id"], maintain_order=True):
        last = frame.row(-1, named=True)
        adopters = frame["adopters"]
        peak = int_max(adopters)
        half = frame.filter(pl.col("adopters") * 2 >= n_agents)["step"]
        row: dict[str, object] = {
            "meme_id": meme,
            "steps": frame.height,
            "exposed": int(last["exposed"]),
            "carriers": int(last["carriers"]),
            "adopters": int(last["adopters"]),
            "adopter_share": round(int(last["adopters"]) / max(n_agents, 1), 4),
            "peak_adopters": peak,
            "peak_step": (
                int(frame.filter(pl.col("adopters") == peak)["step"][0]) if peak else None
            ),
            "half_step": int(half[0]) if len(half) else None,
            "transmissions": int(frame["transmissions"].sum()),
            "infections": int(frame["infections"].sum()),
        }
        row.update(_choice_outcomes(frame, str(meme), n_agents, actions, targets))
        rows.append(row)
    schema = {"peak_step": pl.Int64, "half_step": pl.Int64, **_CHOICE_SCHEMA}
    return pl.DataFrame(rows, schema_overrides=schema)


_CHOICE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "expressed": pl.Int64,
    "expressed_share": pl.Float64,
    "expressed_chance": pl.Float64,
    "first_expressed_step": pl.Int64,
    "decisions": pl.Int64,
    "target_choices": pl.Int64,
}


def _choice_outcomes(
    frame: pl.DataFrame,
    meme: str,
    n_agents: int,
    actions: pl.DataFrame | None,
    targets: Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]] | None,
    *,
    digits: int | None = 4,
) -> dict[str, object]:
    """The :data:`CHOICE_COLUMNS` of one meme (its ``steps`` rows sorted by step).

    The shares are rounded to ``digits`` (None: not rounded, for means over seeds).
    """

    def rounded(value: float) -> float:
        return value if digits is None else round(value, digits)

    if actions is None or "expressed" not in frame.columns:
        return dict.fromkeys(CHOICE_COLUMNS)
    from sim.analysis.defenses import attack_chance

    expressed = int(frame["expressed"][-1])
    first = frame.filter(pl.col("expressed") > 0)["step"]
    mine = actions.filter(pl.col("meme_id") == meme, pl.col("offered"))
    chance = None
    if targets is not None and meme in targets:
        chance = rounded(attack_chance(actions, meme, targets[meme], n_agents))
    return {
        "expressed": expressed,
        "expressed_share": rounded(expressed / max(n_agents, 1)),
        "expressed_chance": chance,
        "first_expressed_step": int(first[0]) if len(first) else None,
        "decisions": mine.height,
        "target_choices": int(mine["expressed"].sum()),
    }


def format_table(frame: pl.DataFrame) -> str:
    """A DataFrame as an aligned plain-text table (nulls shown as ``-``)."""
    header = frame.columns
    body = [["-" if v is None else str(v) for v in row] for row in frame.iter_rows()]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _save(figure: Figure, path: Path) -> Path:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return write_bytes_atomic(buffer.getvalue(), path)


def _meme_order(steps: pl.DataFrame) -> list[str]:
    """Meme ids in the order of the steps table (the config order)."""
    return steps["meme_id"].unique(maintain_order=True).to_list()


def prevalence_figure(steps: pl.DataFrame, n_agents: int, *, name: str = "") -> Figure:
    """The shares of agents per state against the step (see the module docstring)."""
    from sim import plots
    from sim.analysis.prevalence import prevalence

    prev = prevalence(steps, n_agents)
    memes = _meme_order(steps)
    prefix = f"{name}: " if name else ""
    states = plots.default_states(prev)
    if len(memes) == 1:
        return plots.prevalence_curves(
            prev, meme_id=memes[0], states=states, title=f"{prefix}meme {memes[0]!r}"
        )
    return plots.memes_compared(prev, states=states, memes=memes, title=f"{prefix}memes compared")


def transmissions_figure(steps: pl.DataFrame, *, name: str = "") -> Figure:
    """New transmissions and new adopters per step, one line per meme."""
    from sim import plots

    prefix = f"{name}: " if name else ""
    return plots.counts_per_step(
        steps,
        ("transmissions", "new_adopters"),
        memes=_meme_order(steps),
        title=f"{prefix}transmissions and new adopters per step",
    )


def funnel_figure(
    steps: pl.DataFrame,
    n_agents: int,
    *,
    effects: pl.DataFrame | None = None,
    scored: bool = True,
    name: str = "",
) -> Figure:
    """The funnel exposed -> carrier -> expressed -> adopter per meme, effects under it.

    ``scored`` says whether the run made scored choices (an ``actions`` table): without
    them no agent can express a meme, so the expressed stage is left out rather than
    drawn as a measured zero.
    """
    from sim import plots
    from sim.analysis.effects import funnel_counts

    counts = {meme: funnel_counts(steps, meme) for meme in _meme_order(steps)}
    if not scored:
        counts = {
            meme: {k: v for k, v in c.items() if k != "expressed"} for meme, c in counts.items()
        }
    prefix = f"{name}: " if name else ""
    note = "\n(expressed = chose a target option, exposed or not)" if scored else ""
    return plots.funnel(
        counts, n_agents, effects=effects, title=f"{prefix}from exposure to action{note}"
    )


def personas_figure(personas: pl.DataFrame, *, name: str = "") -> Figure:
    """The expressed share by persona, exposed and unexposed, with the chance level.

    Args:
        personas: :func:`sim.analysis.personas.run_persona_outcomes`' table.
        name: The run name, for the title.
    """
    from sim import plots

    prefix = f"{name}: " if name else ""
    return plots.persona_shares(personas, title=f"{prefix}choices by persona")


def plot_prevalence(steps: pl.DataFrame, n_agents: int, path: Path, *, name: str = "") -> Path:
    """Write :func:`prevalence_figure` to ``path`` (PNG)."""
    return _save(prevalence_figure(steps, n_agents, name=name), path)


def plot_transmissions(steps: pl.DataFrame, path: Path, *, name: str = "") -> Path:
    """Write :func:`transmissions_figure` to ``path`` (PNG)."""
    return _save(transmissions_figure(steps, name=name), path)


def has_sweep_shape(path: str | Path) -> bool:
    """Whether ``path`` is laid out like a sweep (``index.parquet``, or ``runs/`` and no manifest).

    Such a directory is reported as a sweep once :func:`experiments.rundirs.is_sweep_dir`
    says memespread wrote it, and refused otherwise.
    """
    path = Path(path)
    if (path / "index.parquet").is_file():
        return True
    return (path / "runs").is_dir() and not (path / "manifest.json").is_file()


def report(path: str | Path) -> Report | SweepReport:
    """Summarise a run directory, or a sweep directory (see the module docstring).

    Raises:
        FileNotFoundError: Not a run or sweep directory, a run without ``steps.parquet``
            (not finished: resume it first), or a sweep without a complete run.
        RunDirError: A directory with a ``runs/`` tree that is not a sweep of this tool.
    """
    if has_sweep_shape(path):
        return report_sweep(path)
    return report_run(path)


def _inside(folder: Path) -> str:
    """``"; it holds runs or sweeps, e.g. X: report one of them"`` for an output folder.

    A folder inside a sweep (``SWEEP/runs`` or a grid level below it) gets ``"; it is
    inside the sweep S: report the sweep, or one of its runs, e.g. X"`` instead.

    ``memespread report runs`` (the folder runs are written into) is a likely first try;
    "" when ``folder`` holds no run or sweep directory.
    """
    if not folder.is_dir():
        return ""
    sweep = next((p for p in folder.parents if is_sweep_dir(p)), None)
    if sweep is not None:
        # SWEEP/runs or a grid level below it: its runs are further down.
        example = first_run(sweep)
        run = f", or one of its runs, e.g. {example}" if example is not None else ""
        return f"; it is inside the sweep {sweep}: report the sweep{run}"
    found = sorted(p for p in folder.iterdir() if is_run_dir(p) or is_sweep_dir(p))
    if not found:
        return ""
    what = "directory" if len(found) == 1 else "directories"
    return f"; it holds {len(found)} run or sweep {what}, e.g. {found[0]}: report one of them"


def _read_actions(run_dir: Path) -> pl.DataFrame | None:
    """The run's ``actions`` table; None when it made no scored choices (no such file).

    Raises:
        ManifestError: An unreadable ``actions.parquet``.
    """
    from experiments.manifest import ManifestError

    path = run_dir / "actions.parquet"
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path)
    except Exception as err:  # polars' errors for a truncated or foreign file
        raise ManifestError(
            path, f"unreadable ({first_line(err)}); rerun the run's config with --overwrite"
        ) from None


def _targets(manifest: Mapping[str, object]) -> dict[str, Any]:
    """:func:`meme_targets` of the config in a run's manifest."""
    config = manifest.get("config")
    return meme_targets(config if isinstance(config, Mapping) else {})


def meme_targets(config: Mapping[str, object]) -> dict[str, Any]:
    """Per meme id of a run config (JSON data), the targets its choices are scored against.

    A meme's own ``target_options``, or for a placebo without any its pair's (as the run
    scores them, :func:`sim.memes.resolve_placebos`); memes without targets are left out.
    """
    listed = config.get("memes")
    items = listed if isinstance(listed, list) else []
    memes = [m for m in items if isinstance(m, Mapping) and "id" in m]
    own = {str(m["id"]): m.get("target_options") for m in memes}
    out = {}
    for meme in memes:
        targets = own[str(meme["id"])] or own.get(str(meme.get("placebo_of")))
        if targets:
            out[str(meme["id"])] = targets
    return out


def report_run(run_dir: str | Path) -> Report:
    """Summarise a finished run and write ``run_dir/report/`` (see the module docstring).

    Raises:
        FileNotFoundError: The run directory has no ``steps.parquet`` (not finished: resume
            it first; or, for a complete run, a damaged directory) or no ``manifest.json``.
        ManifestError: An invalid manifest, or an unreadable ``steps.parquet``.
    """
    run_dir = Path(run_dir)
    steps_path = run_dir / "steps.parquet"
    manifest_path = run_dir / "manifest.json"
    from experiments.manifest import ManifestError, read_manifest
    from sim.manifest import missing_manifest_reason

    if not manifest_path.is_file():
        reason = missing_manifest_reason(run_dir)
        raise FileNotFoundError(f"{run_dir}: not a run directory ({reason}){_inside(run_dir)}")

    if not steps_path.is_file():
        if (read_json_object(manifest_path) or {}).get("status") == "complete":
            raise FileNotFoundError(
                f"{run_dir}: no steps.parquet, yet the run is complete: its directory is "
                "damaged; rerun its config with --overwrite"
            )
        raise FileNotFoundError(
            f"{run_dir}: no steps.parquet; the run has not finished (memespread resume {run_dir})"
        )
    manifest = read_manifest(run_dir)
    try:
        steps = pl.read_parquet(steps_path)
    except Exception as err:  # polars' errors for a truncated or foreign file
        raise ManifestError(
            steps_path, f"unreadable ({first_line(err)}); rerun the run's config with --overwrite"
        ) from None
    n_agents = int(manifest.get("n_agents") or 1)
    actions = _read_actions(run_dir)
    summary = summary_table(steps, n_agents, actions=actions, targets=_targets(manifest))
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    write_bytes_atomic(summary.write_csv().encode(), out / "summary.csv")
    name = str(manifest.get("name") or run_dir.name)
    figures: tuple[Path, ...] = (
        plot_prevalence(steps, n_agents, out / "prevalence.png", name=name),
        plot_transmissions(steps, out / "transmissions.png", name=name),
    )
    effects = None
    if "expressed" in steps.columns:
        from sim.analysis.effects import run_effects

        effects = run_effects(run_dir)
        if effects is not None:
            write_bytes_atomic(effects.write_csv().encode(), out / "effects.csv")
        scored = actions is not None
        funnel = funnel_figure(steps, n_agents, effects=effects, scored=scored, name=name)
        figures = (*figures, _save(funnel, out / "funnel.png"))
    personas = None
    if actions is not None and (run_dir / "personas.parquet").is_file():
        from sim.analysis.loading import load_run
        from sim.analysis.personas import run_persona_outcomes

        personas = run_persona_outcomes(load_run(run_dir, PERSONA_TABLES))
        if personas is not None:
            write_bytes_atomic(personas.write_csv().encode(), out / "personas.csv")
            if personas.height:
                figure = personas_figure(personas, name=name)
                figures = (*figures, _save(figure, out / "personas.png"))
    return Report(
        run_dir=run_dir, summary=summary, figures=figures, effects=effects, personas=personas
    )


#: The tables of a run that the outcomes by persona read
#: (:func:`sim.analysis.personas.run_persona_outcomes`).
PERSONA_TABLES = ("steps", "actions", "contexts", "memories", "personas")

#: The heading of the outcomes by persona in a report's text.
PERSONA_HEADING = (
    "expressed share by persona (decisions offering the meme's target: the share that chose "
    "it, {level} % CI clustered by {clusters}, of n decisions; chance = random choices; "
    "exposed = the meme by others in context, unexposed = no meme nor placebo in context; "
    "with few agents an interval is rough, of zero width when they all agree; with "
    "persona_assignment = by_id and a fixed placement, persona and exposure go together)"
)


def persona_text(personas: pl.DataFrame | None) -> str:
    """The outcomes by persona as a heading and a table; "" without any (no table).

    Args:
        personas: :func:`sim.analysis.personas.run_persona_outcomes`' table (or a
            sweep's, its parameters first), or None.
    """
    from sim.analysis.personas import persona_text_table

    if personas is None or personas.height == 0:
        return ""
    level = f"{personas['level'][0] * 100:g}"
    clusters = ", ".join(personas["clusters"].unique(maintain_order=True).to_list())
    heading = PERSONA_HEADING.format(level=level, clusters=clusters)
    return "\n\n" + heading + "\n" + format_table(persona_text_table(personas))


@dataclass(frozen=True)
class SweepReport:
    """What :func:`report_sweep` produced.

    Attributes:
        sweep_dir: The sweep directory.
        summary: One row per (swept parameter values, meme) (see the module docstring).
        figures: Paths of the PNG files written.
        runs: Number of runs in the index.
        complete: Number of complete runs (the ones summarised).
        frontier: On a sweep over defenses, the defense frontier (one row per arm and
            stratum; see :func:`sim.analysis.defenses.defense_frontier`); else None.
        frontier_strata: The frontier's strata: the swept parameters that are not
            defense settings (arms are compared within each combination of them).
        effects: On a sweep whose runs scored choices, the effects of exposure per grid
            point, pooled over its runs (:func:`sim.analysis.effects.sweep_effects`);
            else None.
        personas: On a sweep whose runs scored choices and list their personas, the
            outcomes by persona per grid point, pooled over its runs
            (:func:`sim.analysis.personas.sweep_persona_outcomes`); else None.
    """

    sweep_dir: Path
    summary: pl.DataFrame = field(repr=False)
    figures: tuple[Path, ...]
    runs: int
    complete: int
    frontier: pl.DataFrame | None = field(default=None, repr=False)
    frontier_strata: tuple[str, ...] = ()
    effects: pl.DataFrame | None = field(default=None, repr=False)
    personas: pl.DataFrame | None = field(default=None, repr=False)

    def text(self) -> str:
        """Run counts, what the intervals are, then per row each metric as ``mean [low, high]``.

        A metric that only ``k`` of the row's ``n`` seeds have (e.g. ``t50`` when 50 % was
        not always reached) is followed by ``(k/n)``; ``never`` when none has it. An
        upper bound beyond the runs' last step is written ``>T`` (T the last step).
        The mean of a time covers only the seeds that got there, so it leans early when
        some did not: there ``(k/n)`` goes on with the Kaplan-Meier median over all
        ``n`` seeds, the others censored at their last step (``t50_km_median``), as
        ``(k/n; KM median M)``, or ``(k/n; KM median >T)`` when fewer than half got
        there by the last step T (``t50_km_end``); :data:`KM_NOTE` under the table then
        says so.
        On a sweep whose runs scored choices, ``expressed_share`` (the same way) and the
        mean ``expressed_chance`` follow, and after the table the effects of exposure
        per grid point (see :func:`sweep_effect_lines`).
        """
        head = f"{self.sweep_dir}: {self.complete} of {self.runs} runs complete"
        head += "\nper grid point and meme: mean [95 % CI] over seeds"
        parts = ("mean", "low", "high", "n", "high_censored", "km_median", "km_end")
        metric_cols = {f"{m}_{s}" for m in SWEEP_METRICS for s in parts}
        metric_cols |= set(SWEEP_CHOICE_COLUMNS)
        keys = [c for c in self.summary.columns if c not in metric_cols and c != "runs"]
        choices = "expressed_share_mean" in self.summary.columns
        shown = [*SWEEP_METRICS, *(_CHOICE_TEXT if choices else ())]
        rows = []
        for row in self.summary.iter_rows(named=True):
            out: dict[str, object] = {k: row[k] for k in keys}
            for m in SWEEP_METRICS:
                out[m] = _interval_text(row, m)
            if choices:
                out["expressed_share"] = _interval_text(row, "expressed_share")
                out["expressed_chance"] = _signed(row["expressed_chance_mean"], "{:.3g}")
            rows.append(out)
        table = pl.DataFrame(
            rows,
            schema={
                **{k: self.summary.schema[k] for k in keys},
                **{m: pl.String for m in shown},
            },
        )
        text = head + "\n" + format_table(table)
        if table["t50"].str.contains("KM median", literal=True).any():
            text += "\n" + KM_NOTE
        if self.effects is not None:
            text += "\n\n" + "\n".join(sweep_effect_lines(self.effects))
        text += persona_text(self.personas)
        if self.frontier is not None:
            within = f" with the same {', '.join(self.frontier_strata)}"
            within = within if self.frontier_strata else ""
            text += (
                "\n\ndefenses (mean [95 % CI] over seeds; changes paired by seed against the "
                f"undefended arm{within}; * = on the Pareto frontier"
                + (f" of the arms{within})\n" if within else ")\n")
            )
            text += format_table(frontier_text_table(self.frontier, self.frontier_strata))
            if not self.frontier["undefended"].any():
                text += (
                    "\n(no arm without guards, so no change or reduction: add one to the grid, "
                    "e.g. guards = [], to compare the defenses with no defense)"
                )
            utility = self.frontier["utility_mean"].cast(pl.Float64).fill_nan(None)
            if utility.null_count() == self.frontier.height:
                text += "\n" + NO_UTILITY_NOTE
        return text


#: Printed once under the defense table when no arm has a utility value (the figure's
#: caption says the same once, not in every panel).
NO_UTILITY_NOTE = (
    "(no arm has a utility value, so no utility change or Pareto set: utility needs a "
    "benign meme or tasks with known answers)"
)

#: Printed under the sweep table when a row gives a Kaplan-Meier median.
KM_NOTE = (
    "t50 (k/n; KM median M): the mean and interval are over the k seeds that reached 50 %, "
    "so they lean early; M is the Kaplan-Meier median over all n, the others censored at "
    "their last step (>T: fewer than half got there by step T)"
)

#: The columns of the printed sweep table for the outcome of scored choices.
_CHOICE_TEXT = ("expressed_share", "expressed_chance")


def sweep_effect_lines(effects: pl.DataFrame) -> list[str]:
    """The effects of :func:`sim.analysis.effects.sweep_effects` as printed lines.

    A heading, then per grid point a line naming it (``key=value`` pairs, as the sweep
    prints its final shares; ``(no grid)`` for a sweep of seeds only) with the number of
    runs pooled, followed by its effects as
    :func:`sim.analysis.effects.effect_lines` writes them (each says what the bootstrap
    resampled when it pooled several runs).

    Args:
        effects: :func:`sim.analysis.effects.sweep_effects`' table (the swept parameters
            are its columns before ``meme_id``).
    """
    from sim.analysis.effects import effect_lines

    params = effects.columns[: effects.columns.index("meme_id")]

    lines = ["effects of exposure per grid point (pooled over its runs):"]
    if effects.height == 0:
        return [
            *lines,
            "  none estimable: no grid point had decisions both exposed and in a control",
        ]
    groups = effects.group_by(params, maintain_order=True) if params else [((), effects)]
    for key, group in groups:
        point = " ".join(f"{p}={v}" for p, v in zip(params, key, strict=True)) or "(no grid)"
        runs = int_max(group["n_runs"])
        lines.append(f"  {point} ({counted(runs, 'run')}):")
        lines += ["  " + line for line in effect_lines(group)]
    return lines


def _arm_labels(frontier: pl.DataFrame, strata: Sequence[str] = ()) -> tuple[str, list[str]]:
    """The name of a frontier's arm column(s) and each row's arm label.

    The arm columns are the ones before ``attack_mean`` (the swept parameters) other than
    the ``strata``; several are joined with ", " (e.g. ``defense, guards.0.delay``).
    """
    before = frontier.columns[: frontier.columns.index("attack_mean")]
    columns = [c for c in before if c not in strata] or ["guards"]
    labels = [", ".join(str(row[c]) for c in columns) for row in frontier.iter_rows(named=True)]
    return ", ".join(columns), labels


def frontier_text_table(frontier: pl.DataFrame, strata: Sequence[str] = ()) -> pl.DataFrame:
    """The defense frontier as short text columns: strata, arm, attack, utility, changes, Pareto.

    Args:
        frontier: :func:`sim.analysis.defenses.defense_frontier`'s table.
        strata: Its strata columns (the non-defense parameters), shown first, one column
            each; the Pareto mark ``*`` is within the row's stratum.
    """
    arm, labels = _arm_labels(frontier, strata)
    rows = []
    for label, row in zip(labels, frontier.iter_rows(named=True), strict=True):
        rows.append(
            {
                **{c: str(row[c]) for c in strata},
                arm: label + (" *" if row["pareto"] else ""),
                "attack": _interval_text(row, "attack"),
                "attack_change": _change_text(row, "attack_change"),
                "reduction": _signed(row["reduction"], "{:.0%}"),
                "utility": _interval_text(row, "utility"),
                "utility_change": _change_text(row, "utility_change"),
            }
        )
    return pl.DataFrame(rows, schema={c: pl.String for c in rows[0]} if rows else None)


def _change_text(row: dict[str, object], change: str) -> str:
    """A paired change and its interval, e.g. ``+0.012 [-0.030, +0.054]``.

    Without a paired change, the plain difference of means (``utility_change``), else "-".
    """
    mean, low, high = (row.get(f"{change}_{s}") for s in ("mean", "low", "high"))
    if not isinstance(mean, float) or mean != mean:
        plain = row.get(change)
        return _signed(plain if isinstance(plain, float) else None, "{:+.3f}")
    if isinstance(low, float) and isinstance(high, float):
        return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
    return f"{mean:+.3f}"


def _signed(value: float | None, form: str) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return form.format(value)


def _interval_text(row: dict[str, object], metric: str) -> str:
    mean, low, high = (row[f"{metric}_{s}"] for s in ("mean", "low", "high"))
    n, runs = row[f"{metric}_n"], row.get("runs")
    if mean is None or mean != mean:  # None or NaN
        return "never" if metric.startswith("t") else "-"
    text = f"{mean:.3g}"
    if low is not None and high is not None:
        beyond = ">" if row.get(f"{metric}_high_censored") else ""
        text += f" [{low:.3g}, {beyond}{high:.3g}]"
    if runs is not None and n != runs:
        text += f" ({n}/{runs}{_km_text(row, metric)})"
    return text


def _km_text(row: dict[str, object], metric: str) -> str:
    """``; KM median M`` (or ``>T`` beyond the curve's end T) for a time some seeds lack."""
    if f"{metric}_km_median" not in row:
        return ""
    median, end = row[f"{metric}_km_median"], row.get(f"{metric}_km_end")
    if median is not None:
        return f"; KM median {median}"
    return f"; KM median >{end}" if end is not None else ""


#: Metrics of the sweep summary (columns of :func:`sim.analysis.summary.run_metrics`).
SWEEP_METRICS = ("final_size", "final_adopters", "t50", "r0")

#: The columns of the sweep summary on a sweep whose runs scored choices (see
#: :func:`sweep_choice_summary`); a sweep without scored choices has none of them.
SWEEP_CHOICE_COLUMNS = (
    "expressed_share_mean",
    "expressed_share_low",
    "expressed_share_high",
    "expressed_share_n",
    "expressed_chance_mean",
)

#: The tables of a run that :func:`sweep_choice_summary` reads (with its manifest): a
#: sweep read with ``with_runs(tables=CHOICE_TABLES)`` is all it needs.
CHOICE_TABLES = ("steps", "actions")


@dataclass(frozen=True)
class TableReads:
    """What of each run an analysis reads: tables, and of some of them only some columns.

    Attributes:
        tables: The table names (with the manifest).
        columns: For some of ``tables``, the only columns read; the others are read whole.
    """

    tables: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __or__(self, other: TableReads) -> TableReads:
        """Both analyses' reads: a table either reads whole is read whole."""
        tables = tuple(dict.fromkeys((*self.tables, *other.tables)))
        columns: dict[str, tuple[str, ...]] = {}
        for name in tables:
            parts = [r for r in (self, other) if name in r.tables]
            if all(name in r.columns for r in parts):
                merged = (c for r in parts for c in r.columns[name])
                columns[name] = tuple(dict.fromkeys(merged))
        return TableReads(tables, columns)


def sweep_report_reads() -> TableReads:
    """The tables (and columns) of each run that :func:`report_sweep` reads, and no other.

    The union of what its analyses read of a run (with the manifest): the metrics
    without drift (:data:`sim.analysis.summary.METRIC_TABLES`,
    :data:`~sim.analysis.summary.METRIC_COLUMNS_WITHOUT_DRIFT`), the choice outcomes
    (:data:`CHOICE_TABLES`), the adopter curves
    (:data:`sim.analysis.aggregate.CURVE_TABLES`), the effects and the outcomes by persona
    (:data:`sim.analysis.personas.PERSONA_TABLES`, which holds
    :data:`sim.analysis.effects.ACTION_TABLES`; :data:`~sim.analysis.effects.ACTION_COLUMNS`)
    and the defense frontier (:data:`sim.analysis.defenses.DEFENSE_TABLES`,
    :data:`~sim.analysis.defenses.DEFENSE_COLUMNS`). A run's other tables (``graph``,
    ``bank_members``, ``prompts``, ``generations``, ...) are never read, nor the texts of
    its ``memories``: an analysis that asks a run read so for another table raises
    :class:`~sim.run.TableNotReadError` instead of taking it for absent, and one that
    selects another column raises polars' ``ColumnNotFoundError``.
    """
    from sim.analysis.aggregate import CURVE_TABLES
    from sim.analysis.defenses import DEFENSE_COLUMNS, DEFENSE_TABLES
    from sim.analysis.effects import ACTION_COLUMNS
    from sim.analysis.personas import PERSONA_TABLES
    from sim.analysis.summary import METRIC_COLUMNS_WITHOUT_DRIFT, METRIC_TABLES

    return (
        TableReads(METRIC_TABLES, METRIC_COLUMNS_WITHOUT_DRIFT)
        | TableReads(CHOICE_TABLES)
        | TableReads(CURVE_TABLES)
        | TableReads(PERSONA_TABLES, ACTION_COLUMNS)
        | TableReads(DEFENSE_TABLES, DEFENSE_COLUMNS)
    )


def sweep_choice_summary(sweep: Sweep) -> pl.DataFrame | None:
    """The outcome of scored choices per grid point and meme, over seeds.

    Per complete run with scored choices (an ``actions`` table) and meme, the run
    summary's ``expressed_share`` and ``expressed_chance`` (see :func:`summary_table`;
    here not rounded); then per combination of the swept parameters and meme their
    mean over seeds, for ``expressed_share`` with its 95 % t-interval, kept in [0, 1]
    (:func:`sim.analysis.aggregate.aggregate`).

    The runs are those :meth:`~sim.analysis.loading.Sweep.with_runs` holds (as
    :func:`report_sweep` passes them; of each, only the manifest and the
    :data:`CHOICE_TABLES` are read, so ``with_runs(tables=CHOICE_TABLES)`` is enough),
    else read one at a time.

    Returns:
        The swept parameters, ``meme_id``, then :data:`SWEEP_CHOICE_COLUMNS`
        (``expressed_share_n`` counts the seeds); None when no complete run scored
        choices (e.g. a contagion sweep).
    """
    from sim.analysis.aggregate import aggregate

    params = list(sweep.params)
    complete = sweep.complete()
    rows: list[dict[str, object]] = []
    for index_row, run in sweep.iter_runs():
        actions = run.tables.get("actions")
        if actions is None:
            continue
        n_agents = int(run.manifest.get("n_agents") or 1)
        targets = _targets(run.manifest)
        steps = run.steps.sort("step", maintain_order=True)
        for (meme,), frame in steps.group_by(["meme_id"], maintain_order=True):
            outcomes = _choice_outcomes(frame, str(meme), n_agents, actions, targets, digits=None)
            rows.append(
                {
                    **{p: index_row[p] for p in params},
                    "meme_id": str(meme),
                    "expressed_share": outcomes["expressed_share"],
                    "expressed_chance": outcomes["expressed_chance"],
                }
            )
    if not rows:
        return None
    schema: dict[str, pl.DataType | type[pl.DataType]] = {p: complete.schema[p] for p in params}
    schema.update(meme_id=pl.String, expressed_share=pl.Float64, expressed_chance=pl.Float64)
    per_run = pl.DataFrame(rows, schema=schema)
    summary = aggregate(
        per_run,
        [*params, "meme_id"],
        ["expressed_share", "expressed_chance"],
        bounds={"expressed_share": (0.0, 1.0), "expressed_chance": (0.0, 1.0)},
    )
    return summary.select(*params, "meme_id", *SWEEP_CHOICE_COLUMNS)


def _file_part(name: str) -> str:
    """A parameter name as a safe file-name part (``policy.beta`` stays as it is)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def report_sweep(sweep_dir: str | Path | Sweep) -> SweepReport:
    """Summarise the complete runs of a sweep and write ``sweep_dir/report/``.

    Means and 95 % confidence intervals are over seeds, per combination of the swept
    parameters and meme (t-intervals kept in each metric's range; see
    :mod:`sim.analysis.aggregate`).

    Every complete run is read once (:meth:`sim.analysis.loading.Sweep.with_runs`), only
    the tables and columns the report uses (:func:`sweep_report_reads`: not a run's
    ``graph``, ``bank_members``, ``prompts``, ..., nor its entries' texts), and that one
    loaded sweep goes to every table and figure; given a sweep that holds its runs
    already (read with at least those), the report reads no run directory again. The
    metrics leave out the drift of entries (``sweep_metrics(drift=False)``), which the
    report does not show.

    Args:
        sweep_dir: The sweep directory, or its :class:`~sim.analysis.loading.Sweep`.

    Raises:
        FileNotFoundError: Not a sweep directory, or no complete run in it.
        RunDirError: ``sweep_dir`` holds run directories but is not a sweep that
            memespread wrote (no ``sweep.json`` of the tool): ``report/`` is not written
            into a directory of the user's.
        ValueError: ``sweep_dir`` is a sweep holding runs read without some of
            :func:`sweep_report_reads`.
    """
    from sim import plots
    from sim.analysis.aggregate import aggregate_metrics, sweep_metrics
    from sim.analysis.defenses import arms_and_strata, defense_frontier, has_guard_arms
    from sim.analysis.effects import sweep_effects
    from sim.analysis.loading import Sweep, load_sweep
    from sim.analysis.personas import sweep_persona_outcomes

    sweep = sweep_dir if isinstance(sweep_dir, Sweep) else load_sweep(sweep_dir)
    path = sweep.path
    if not is_sweep_dir(path):
        raise RunDirError(
            f"{path} is not a memespread sweep directory (no {SWEEP_MARKER} written by "
            f"memespread), so the report is not written into it ({path / 'report'}); "
            "give a run directory or a sweep directory that `memespread sweep` wrote"
        )
    complete = sweep.complete().height
    if complete == 0:
        raise FileNotFoundError(
            f"{path}: no complete run to report ({sweep.index.height} runs; resume the sweep)"
        )
    reads = sweep_report_reads()
    sweep = sweep.with_runs(reads.tables, reads.columns)
    metrics = sweep_metrics(sweep, fit=False, drift=False)
    params = list(sweep.params)
    summary = aggregate_metrics(metrics, params, SWEEP_METRICS)
    keys = [*params, "meme_id"]
    choices = sweep_choice_summary(sweep)
    if choices is not None:
        choices = choices.with_columns(pl.col(k).cast(summary.schema[k]) for k in keys)
        summary = summary.join(
            choices, on=keys, how="left", nulls_equal=True, maintain_order="left"
        )
    runs = metrics.group_by(keys).agg(pl.len().alias("runs"))
    summary = summary.join(runs, on=keys, how="left", nulls_equal=True, maintain_order="left")
    out = path / "report"
    out.mkdir(exist_ok=True)
    write_bytes_atomic(summary.write_csv().encode(), out / "summary.csv")
    effects = sweep_effects(sweep)
    if effects is not None:
        write_bytes_atomic(effects.write_csv().encode(), out / "effects.csv")
    personas = sweep_persona_outcomes(sweep)
    if personas is not None:
        write_bytes_atomic(personas.write_csv().encode(), out / "personas.csv")
    name = path.name
    memes = metrics["meme_id"].unique(maintain_order=True).to_list()
    figures: list[Path] = []
    for param in params:
        others = [p for p in params if p != param] + (["meme_id"] if len(memes) > 1 else [])
        shown = summary.with_columns(pl.col("runs").alias("final_size_rows"))
        figure = plots.metric_by_parameter(
            shown,
            param,
            "final_size",
            group=others,
            title=f"{name}: {_METRIC_TITLES['final_size']} by {param}",
            share=True,
        )
        figures.append(_save(figure, out / f"final_size_by_{_file_part(param)}.png"))
        figure = t50_figure(summary, param, group=others, name=name)
        figures.append(_save(figure, out / f"t50_by_{_file_part(param)}.png"))
    # A sweep of seeds only (no grid) is one grid point: its curve and band still show.
    adopters = f"adopters_by_{_file_part(params[0])}.png" if params else "adopters.png"
    figures.append(_save(adopters_figure(sweep, name=name), out / adopters))
    if len(params) >= 2:
        for meme in memes:
            figure = final_size_heatmap(metrics, params, meme, name=name)
            suffix = "" if len(memes) == 1 else f"_{_file_part(meme)}"
            figures.append(_save(figure, out / f"final_size_heatmap{suffix}.png"))
    frontier = None
    strata: list[str] = []
    if has_guard_arms(sweep):
        arm, strata = arms_and_strata(sweep)
        frontier = defense_frontier(sweep, arm=arm, strata=strata)
        write_bytes_atomic(frontier.write_csv().encode(), out / "defense_frontier.csv")
        figure = frontier_figure(frontier, strata=strata, name=name)
        figures.append(_save(figure, out / "defense_frontier.png"))
    return SweepReport(
        sweep_dir=path,
        summary=summary,
        figures=tuple(figures),
        runs=sweep.index.height,
        complete=complete,
        frontier=frontier,
        frontier_strata=tuple(strata),
        effects=effects,
        personas=personas,
    )


def t50_figure(
    summary: pl.DataFrame, param: str, *, group: Sequence[str] = (), name: str = ""
) -> Figure:
    """Steps to 50 % adopters against one swept parameter: the Kaplan-Meier median.

    Per point the median over all its seeds (``t50_km_median``; seeds that never got
    there censored at their last step), labelled with how many of its seeds reached
    50 %, an arrow at the last step where fewer than half did
    (:func:`sim.plots.time_by_parameter`). Not the mean over the seeds that got there,
    which leans early when some did not (2 of 10 seeds at step 3 give 3).

    Args:
        summary: The sweep summary (:func:`report_sweep`'s, with its ``runs`` column).
        param: The swept parameter along the x axis.
        group: Columns distinguishing the lines (the other parameters, the meme).
        name: The sweep name, for the title.
    """
    from sim import plots

    prefix = f"{name}: " if name else ""
    return plots.time_by_parameter(
        summary, param, "t50", group=group, title=f"{prefix}{_METRIC_TITLES['t50']} by {param}"
    )


def final_size_heatmap(
    metrics: pl.DataFrame, params: list[str], meme: str, *, name: str = ""
) -> Figure:
    """Final size of ``meme`` over the first two swept parameters, mean over seeds per cell.

    With a third parameter, one panel per value of it (a cell never averages over a
    swept parameter it could show); further parameters are averaged over, and the
    title names them.

    Args:
        metrics: :func:`sim.analysis.aggregate.sweep_metrics` of the sweep.
        params: The swept parameters (at least two).
        meme: The meme.
        name: The sweep name, for the title.
    """
    from sim import plots

    prefix = f"{name}: " if name else ""
    return plots.heatmap(
        metrics.filter(pl.col("meme_id") == meme),
        params[0],
        params[1],
        "final_size",
        title=f"{prefix}final size of {meme!r}",
        panel=params[2] if len(params) >= 3 else None,
        averaged=params[3:],
    )


def adopters_figure(sweep: Sweep, *, name: str = "") -> Figure:
    """Adopter curves of a sweep: mean and 95 % band over seeds, one line per grid point.

    Only seeds are replicates: a band never pools runs that differ in a swept parameter
    (that would count the parameter's effect as seed-to-seed noise). One panel per meme
    when the runs have several.
    """
    from sim import plots
    from sim.analysis.aggregate import curve_bands, sweep_curves

    params = list(sweep.params)
    bands = curve_bands(sweep_curves(sweep, "adopter"), params)
    prefix = f"{name}: " if name else ""
    by = f" by {', '.join(params)}" if params else ""
    return plots.spread_curves(
        bands,
        group=params,
        title=f"{prefix}adopters{by} (mean and 95 % CI over seeds)",
        panel="meme_id" if bands["meme_id"].n_unique() > 1 else None,
    )


def frontier_figure(
    frontier: pl.DataFrame, *, strata: Sequence[str] = (), name: str = ""
) -> Figure:
    """The attack/utility plane of a defense frontier, its axes saying which measures.

    With ``strata`` (the non-defense swept parameters), one panel per combination of
    their values, titled with it: arms are compared only within a panel.

    Attack success is the share of agents that chose the harmful meme's target option
    when every arm scored choices (LLM decisions; with its chance level, the share random
    choices would reach), else the share it infected; utility is task accuracy (with its
    chance level) when the runs had tasks with known answers, else the benign meme's
    reach.
    """
    from sim import plots

    def all_finite(column: str) -> bool:
        values = frontier[column].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        return bool(len(values)) and bool(np.isfinite(values).all())

    accuracy = all_finite("utility_chance_mean")
    expressed = all_finite("attack_expressed_mean")
    attack_label = (
        "attack success: share of agents that chose the harmful option"
        if expressed
        else "attack success: share of agents infected by the harmful meme"
    )
    utility_label = (
        "utility: task accuracy (mean over steps)"
        if accuracy
        else "utility: share of agents holding the benign meme (mean over steps)"
    )
    chance = float(np.mean(frontier["utility_chance_mean"].to_numpy())) if accuracy else None
    by_chance = "attack_chance_mean" in frontier.columns and all_finite("attack_chance_mean")
    attack_chance = (
        float(np.mean(frontier["attack_chance_mean"].to_numpy()))
        if expressed and by_chance
        else None
    )
    prefix = f"{name}: " if name else ""
    arms, labels = _arm_labels(frontier, strata)
    shown = frontier.with_columns(pl.Series("_arm", labels, dtype=pl.String))
    panel = ", ".join(strata) if strata else None
    if panel is not None:
        values = [", ".join(str(row[c]) for c in strata) for row in frontier.iter_rows(named=True)]
        shown = shown.with_columns(pl.Series(panel, values, dtype=pl.String))
    return plots.defense_frontier_plot(
        shown,
        arm="_arm",
        panel=panel,
        legend_title=arms,
        title=f"{prefix}attack success against utility\n(mean and 95 % CI over seeds per arm)",
        attack_label=attack_label,
        utility_label=utility_label,
        chance=chance,
        attack_chance=attack_chance,
    )


_METRIC_TITLES = {"final_size": "final size", "t50": "steps to 50 % adopters"}
