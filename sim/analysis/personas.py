"""Decision outcomes by persona: who chose a meme's target, exposed and unexposed.

LLM runs write a ``personas`` table (one row per agent generation, from the step its
agent speaks as the persona; a fork that assigns other personas adds rows at the fork
step). Each scored decision gets the persona its agent spoke as at that step: the
agent's latest ``personas`` row at or before the decision's step (an as-of join per run
and agent), so a replaced agent's decisions (turnover) and a fork's go to the persona
of the moment. A decision before its agent's first row (a run resumed from a checkpoint
written before the table existed lists its agents from the resume step on) has no
persona: it is counted under a null persona rather than dropped.

Per meme M with targets, per persona and arm, the **expressed share** is the share of
the decisions offering one of M's targets whose choice was one of them. The arms are
those of :func:`sim.analysis.effects.decision_arms`: **exposed** (a carrying entry of M
by someone else in context) and **unexposed** (neither M, nor its placebo, nor a
competing meme in context, not even through the agent's own entries); decisions of the
other arms (placebo, own, other) are left out. The shares are conditional on the
persona and arm, not causal contrasts between personas: with ``persona_assignment =
"by_id"`` and a fixed placement, a persona sits at the same graph position in every
seed, so its exposure is not assigned at random.

Decisions of one agent are correlated, so the interval is clustered
(:func:`sim.analysis.clustered.share_interval`: cluster-robust CR1 standard error,
Student-t with one degree of freedom fewer than clusters, clipped to [0, 1]). The
clusters are as in :func:`sim.analysis.effects.dose_response`: agents (a (run,
agent_id) pair; with several runs below :data:`~sim.analysis.effects.MIN_RESAMPLED_RUNS`
the interval is conditional on those seeds), or runs from
:data:`~sim.analysis.effects.MIN_RESAMPLED_RUNS` runs on. With one cluster, or all of a
persona's decisions in an arm by one agent, there is no interval. The **chance** level
is the share a uniformly random choice among the options shown would reach on the same
decisions (the mean of ``k / n`` for ``k`` targets of ``n`` options shown;
:func:`sim.analysis.defenses.target_odds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sim.analysis.clustered import share_interval
from sim.analysis.defenses import target_odds
from sim.analysis.effects import (
    ACTION_TABLES,
    MIN_RESAMPLED_RUNS,
    decision_arms,
    placebo_of,
    run_actions,
)
from sim.analysis.loading import Run, Sweep

#: The tables of a run that :func:`run_persona_outcomes` (so
#: :func:`sweep_persona_outcomes`) reads, with its manifest.
PERSONA_TABLES = (*ACTION_TABLES, "personas")

#: The arms a persona's decisions are shown in (see the module docstring).
PERSONA_ARMS = ("exposed", "unexposed")

#: Columns of :func:`expressed_by_persona`'s result.
PERSONA_COLUMNS = (
    "meme_id",
    "persona",
    "persona_name",
    "persona_role",
    "persona_agents",
    "arm",
    "n_decisions",
    "n_agents",
    "expressed_share",
    "se",
    "ci_low",
    "ci_high",
    "n_clusters",
    "chance",
    "level",
    "clusters",
)

_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "meme_id": pl.String,
    "persona": pl.Int32,
    "persona_name": pl.String,
    "persona_role": pl.String,
    "persona_agents": pl.Int64,
    "arm": pl.String,
    "n_decisions": pl.Int64,
    "n_agents": pl.Int64,
    "expressed_share": pl.Float64,
    "se": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n_clusters": pl.Int64,
    "chance": pl.Float64,
    "level": pl.Float64,
    "clusters": pl.String,
}


def with_personas(decisions: pl.DataFrame, personas: pl.DataFrame) -> pl.DataFrame:
    """``decisions`` with the persona each agent spoke as at the decision's step.

    Args:
        decisions: Rows with ``step`` and ``agent_id`` (and ``run`` for several runs).
        personas: ``personas`` rows (with ``run`` when ``decisions`` has one).

    Returns:
        ``decisions`` in their order with ``agent_generation``, ``persona``,
        ``persona_name`` and ``persona_role`` of the agent's latest ``personas`` row at
        or before the step (null before its first row).
    """
    by = ["run", "agent_id"] if "run" in decisions.columns else ["agent_id"]
    columns = ["agent_generation", "persona", "persona_name", "persona_role"]
    right = personas.select(
        *by, pl.col("step").cast(pl.Int64).alias("_step"), *columns
    ).with_columns(pl.col("agent_id").cast(decisions.schema["agent_id"]))
    left = decisions.with_row_index("_row").with_columns(
        pl.col("step").cast(pl.Int64).alias("_step")
    )
    joined = left.sort("_step").join_asof(
        right.sort("_step"), on="_step", by=by, strategy="backward", check_sortedness=False
    )
    return joined.sort("_row").drop("_row", "_step")


def expressed_by_persona(
    actions: pl.DataFrame,
    personas: pl.DataFrame,
    meme_id: str,
    targets: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    placebo_id: str | None = None,
    level: float = 0.95,
) -> pl.DataFrame:
    """The expressed share of meme M per persona, exposed and unexposed (module docstring).

    Args:
        actions: ``actions`` rows (one run, or several with a ``run`` column), with the
            ``own_dose`` column of :func:`sim.analysis.effects.read_actions` where the
            run recorded contexts.
        personas: The runs' ``personas`` rows (with the same ``run`` column).
        meme_id: The meme M.
        targets: M's ``target_options`` as configured (option ids, or per task id), for
            the chance level.
        placebo_id: M's placebo: a decision with it in context is not unexposed.
        level: Confidence level of the intervals.

    Returns:
        Columns :data:`PERSONA_COLUMNS`, one row per persona with a decision in either
        arm (null persona last) and arm (:data:`PERSONA_ARMS`, both listed, an empty
        arm with ``n_decisions`` 0 and null share): ``persona_agents`` counts the
        persona's agents with a decision in either arm (a (run, agent_id) pair: a
        replaced agent and its successor count once when they share the persona),
        ``n_decisions`` and ``n_agents`` count the arm; ``n_clusters`` is the ``G``
        of the interval (agents, or runs: ``clusters``); ``chance`` the random-choice
        share on the arm's decisions.

    Raises:
        ValueError: No decision offered M's target.
    """
    arms = decision_arms(actions, meme_id, placebo_id)
    arms = arms.filter(pl.col("arm").is_in(PERSONA_ARMS))
    if "run" not in personas.columns:
        personas = personas.with_columns(pl.lit("run").alias("run"))
    odds = _odds(actions, meme_id, targets)
    arms = with_personas(arms, personas).join(
        odds, on=["run", "step", "agent_id"], how="left", maintain_order="left"
    )
    n_runs = arms["run"].n_unique()
    unit = "runs" if n_runs >= MIN_RESAMPLED_RUNS else "agents"
    if unit == "agents" and n_runs > 1:
        unit = "agents within runs"
    cluster = ["run"] if unit == "runs" else ["run", "agent_id"]
    found = (
        arms.select("persona", "persona_name", "persona_role")
        .unique()
        .sort("persona", "persona_name", nulls_last=True)
    )
    rows = []
    for persona in found.iter_rows(named=True):
        mine = arms.filter(
            pl.col("persona").eq_missing(persona["persona"]),
            pl.col("persona_name").eq_missing(persona["persona_name"]),
        )
        agents = mine.select("run", "agent_id").n_unique()
        for arm in PERSONA_ARMS:
            part = mine.filter(pl.col("arm") == arm)
            rows.append(
                {
                    "meme_id": meme_id,
                    **persona,
                    "persona_agents": agents,
                    "arm": arm,
                    **_arm_row(part, cluster, level),
                }
            )
    return (
        pl.DataFrame(rows, schema=_SCHEMA)
        .with_columns(pl.lit(level).alias("level"), pl.lit(unit).alias("clusters"))
        .select(PERSONA_COLUMNS)
    )


def _odds(
    actions: pl.DataFrame, meme_id: str, targets: Sequence[str] | Mapping[str, Sequence[str]]
) -> pl.DataFrame:
    """Per decision of M (run, step, agent_id): the chance a random choice is a target."""
    rows = actions.filter(pl.col("meme_id") == meme_id)
    if "run" not in rows.columns:
        rows = rows.with_columns(pl.lit("run").alias("run"))
    values = [
        target_odds(task, options, targets)
        for task, options in rows.select("task_id", "options").iter_rows()
    ]
    return rows.select("run", "step", "agent_id").with_columns(
        pl.Series("_odds", values, dtype=pl.Float64)
    )


def _arm_row(part: pl.DataFrame, cluster: list[str], level: float) -> dict[str, object]:
    """The counts, share, interval and chance of one persona's decisions in one arm."""
    if part.height == 0:
        return {"n_decisions": 0, "n_agents": 0, "n_clusters": 0}
    grouped = part.group_by(cluster).agg(pl.col("y").sum().alias("s"), pl.len().alias("c"))
    share = share_interval(grouped["s"].to_numpy(), grouped["c"].to_numpy(), level)
    chance = part["_odds"].drop_nulls()
    return {
        "n_decisions": part.height,
        "n_agents": part.select("run", "agent_id").n_unique(),
        "expressed_share": share.mean,
        "se": share.se,
        "ci_low": share.low,
        "ci_high": share.high,
        "n_clusters": share.n_clusters,
        "chance": float(np.mean(chance.to_numpy())) if len(chance) else None,
    }


@dataclass(frozen=True)
class _PersonaRun:
    """One run's part of :func:`pooled_persona_outcomes`."""

    run_dir: str
    actions: pl.DataFrame
    personas: pl.DataFrame
    memes: list[dict]


def run_persona_outcomes(run: Run, *, level: float = 0.95) -> pl.DataFrame | None:
    """:func:`expressed_by_persona` of every meme with targets of one loaded run.

    The memes are the run config's non-placebo memes with ``target_options`` (each
    against its placebo, when the run has one), in config order; a meme no decision
    offered is left out.

    Returns:
        Columns :data:`PERSONA_COLUMNS`; None when the run has no ``personas`` or no
        ``actions`` table (a contagion run, a run written before the table existed, a
        run without decision tasks).
    """
    return pooled_persona_outcomes([run], level=level)


def pooled_persona_outcomes(runs: Sequence[Run], *, level: float = 0.95) -> pl.DataFrame | None:
    """:func:`run_persona_outcomes` of several runs of one configuration, pooled.

    The runs' decisions go into one :func:`expressed_by_persona` per meme, each run its
    own cluster level (clusters: agents within runs, or runs from
    :data:`~sim.analysis.effects.MIN_RESAMPLED_RUNS` runs on). Runs without a
    ``personas`` or ``actions`` table are left out.

    Returns:
        Columns :data:`PERSONA_COLUMNS`; None when no run has both tables.
    """
    parts = []
    for run in runs:
        actions, personas = run_actions(run), run.tables.get("personas")
        if actions is None or personas is None:
            continue
        parts.append(_PersonaRun(str(run.path), actions, personas, run.config.get("memes", [])))
    if not parts:
        return None
    return _pooled(parts, level=level)


def _pooled(runs: Sequence[_PersonaRun], *, level: float) -> pl.DataFrame:
    """:func:`pooled_persona_outcomes` of runs with both tables (at least one)."""

    def stacked(frames: list[pl.DataFrame]) -> pl.DataFrame:
        return pl.concat(
            [
                f.with_columns(pl.lit(r.run_dir).alias("run"))
                for f, r in zip(frames, runs, strict=True)
            ],
            how="diagonal_relaxed",
        )

    actions = stacked([r.actions for r in runs])
    personas = stacked([r.personas for r in runs])
    memes: dict[str, dict] = {}
    for run in runs:
        for meme in run.memes:
            memes.setdefault(str(meme["id"]), meme)
    configs = list(memes.values())
    frames = []
    for meme in configs:
        if meme.get("placebo_of") or not meme.get("target_options"):
            continue
        try:
            frames.append(
                expressed_by_persona(
                    actions,
                    personas,
                    str(meme["id"]),
                    meme["target_options"],
                    placebo_id=placebo_of(configs, str(meme["id"])),
                    level=level,
                )
            )
        except ValueError:
            continue
    return pl.concat(frames) if frames else pl.DataFrame(schema=_SCHEMA).select(PERSONA_COLUMNS)


def sweep_persona_outcomes(sweep: Sweep, *, level: float = 0.95) -> pl.DataFrame | None:
    """:func:`pooled_persona_outcomes` of each grid point of a sweep, over its complete runs.

    As :func:`sim.analysis.effects.sweep_effects` pools: a grid point's seeds are its
    replicates; runs of different grid points are never pooled.

    Returns:
        The swept parameters, then :data:`PERSONA_COLUMNS`, in the index's order of grid
        points; None when no complete run has a ``personas`` and an ``actions`` table.
    """
    params = list(sweep.params)
    complete = sweep.complete()
    if sweep.runs is None and not any(
        (Path(d) / "personas.parquet").is_file() and (Path(d) / "actions.parquet").is_file()
        for d in complete["run_dir"].to_list()
    ):
        return None
    points: dict[tuple[object, ...], list[Run]] = {}
    for row, run in sweep.iter_runs():
        points.setdefault(tuple(row[p] for p in params), []).append(run)
    frames = []
    for key, runs in points.items():
        outcomes = pooled_persona_outcomes(runs, level=level)
        if outcomes is None:
            continue
        point = [
            pl.lit(value, dtype=complete.schema[p]).alias(p)
            for p, value in zip(params, key, strict=True)
        ]
        frames.append(outcomes.select(*point, *PERSONA_COLUMNS))
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed")


def persona_text_table(outcomes: pl.DataFrame) -> pl.DataFrame:
    """:func:`expressed_by_persona` rows as a short text table, one row per persona.

    Columns: any columns before ``meme_id`` (a sweep's parameters), meme, persona (its
    name, ``-`` when unknown), agents and decisions (both arms), then per arm
    ``share [low, high] of n (a agents; chance c)`` (no interval with one cluster),
    ``-`` for an arm without decisions.
    """
    before = outcomes.columns[: outcomes.columns.index("meme_id")]
    keys = [*before, "meme_id", "persona", "persona_name"]
    rows = []
    for key, group in outcomes.group_by(keys, maintain_order=True):
        by_arm = {r["arm"]: r for r in group.iter_rows(named=True)}
        row: dict[str, str] = {k: str(v) for k, v in zip(before, key, strict=False)}
        name = key[len(before) + 2]
        row["meme"] = str(key[len(before)])
        row["persona"] = "-" if name is None else str(name)
        row["agents"] = str(group["persona_agents"][0])
        row["decisions"] = str(group["n_decisions"].sum())
        for arm in PERSONA_ARMS:
            row[arm] = _arm_text(by_arm.get(arm))
        rows.append(row)
    return pl.DataFrame(rows, schema={c: pl.String for c in rows[0]} if rows else None)


def _arm_text(row: Mapping[str, object] | None) -> str:
    """``0.500 [0.100, 0.900] of 4 (2 agents; chance 0.333)``; ``-`` without decisions."""
    if row is None or not row["n_decisions"]:
        return "-"
    share = f"{row['expressed_share']:.3f}"
    if row["ci_low"] is not None:
        share += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    agents = f"{row['n_agents']} agent{'s' if row['n_agents'] != 1 else ''}"
    chance = "" if row["chance"] is None else f"; chance {row['chance']:.3f}"
    return f"{share} of {row['n_decisions']} ({agents}{chance})"
