"""What a meme does: the effect of exposure on expressed behaviour, with controls.

Unit of observation: one scored decision (a row of the ``actions`` table for meme M
where the task offers one of M's target options). A decision is

* **exposed** when the agent's context at that step held an entry carrying M written by
  someone else (``dose > 0``);
* **placebo** when it held a carrying entry of M's placebo (the meme whose
  ``placebo_of`` is M) by someone else, and none of M nor of a competing meme;
* **own** when M (or, failing that, its placebo) was in its context only through the
  agent's own entries: a seeded agent reading its seed, a carrier re-reading its copy.
  The meme is in context, so such decisions belong to neither control; they are left
  out of both (with no ``own_dose`` column, e.g. an ``actions`` table read on its own,
  they cannot be told apart and count as unexposed or placebo);
* **other** when, without M in context, it held another meme that this decision also
  offered a target of (e.g. a second goal with the same target option, as in the
  ``controls`` config), other than M's placebo: a competing treatment, in neither
  control;
* **unexposed** when it held none of these, not even through its own entries.

The outcome is ``expressed`` (the choice was one of M's targets, 0/1) or ``p_target``
(the probability of M's targets under log-probability scoring). The effect is the
difference of mean outcomes, exposed minus control, for two controls: unexposed
decisions and the placebo arm. Confidence intervals are percentile intervals of a
cluster bootstrap, which keeps the decisions of one agent together:

* one run: its agents are resampled with replacement;
* :data:`MIN_RESAMPLED_RUNS` runs (seeds) or more: the runs are resampled with
  replacement, each with all its agents (resampling at the top level only, which
  estimates the variance of the run-clustered mean; resampling agents as well would
  count their variation twice). Seeds differ in graph, seed entries and model samples,
  so the interval includes the variation between seeds;
* 2 to :data:`MIN_RESAMPLED_RUNS` - 1 runs: too few to resample (their bootstrap would
  be too narrow), so agents are resampled within each run and the interval is
  conditional on these seeds: it leaves out the variation between them.

The ``resampled`` column of an effect row says which was done. Resampling is stratified
by which arms of the contrast a unit (an agent, or a run) has decisions in: exposed
only, control only, or both; each replicate draws as many units of each kind as the
data hold (:func:`sim.analysis.clustered.stratified_weights`). So no replicate leaves an
arm empty, however few agents it has; a plain cluster bootstrap would, and dropping such
replicates would keep only the draws that favour the arms' larger agents. The interval
is conditional on the number of agents (runs) in each arm, as a two-arm comparison
usually is. From 10 runs on, the runs are the units: a run without exposed (or without
control) decisions, e.g. a seed in which the meme never reached anyone, forms its own
stratum, so no replicate consists of such runs only.

:func:`dose_response` gives the mean outcome by the number of carrying entries in
context, with cluster-robust standard errors (clustered as the bootstrap resamples:
agents, or runs from :data:`MIN_RESAMPLED_RUNS` runs on);
:func:`effect_by_distance` gives the effect of exposure among the agents at each graph
distance from M's seeded agents, with the bootstrap intervals of
:func:`exposure_effects`. :func:`run_effects` gives the effects of every meme of one
run, :func:`pooled_effects` of several runs of one configuration (seeds) pooled, and
:func:`sweep_effects` of each grid point of a sweep, pooled over its seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl

from sim.analysis.aggregate import MIN_BOOTSTRAP_N
from sim.analysis.clustered import share_interval, stratified_weights
from sim.analysis.loading import Run, Sweep
from sim.manifest import read_manifest

#: Below this many decisions in an arm, printed effects warn that the interval is rough.
MIN_RELIABLE_DECISIONS = 20

#: Below this many agents (the resampled units) in an arm, printed effects warn too: with
#: a handful of clusters the percentile bootstrap is far too narrow (with two agents of
#: equal means in an arm, it has zero width whatever the number of decisions).
MIN_RELIABLE_AGENTS = 5

#: From this many runs on, effect intervals resample runs (below, agents within runs).
MIN_RESAMPLED_RUNS = MIN_BOOTSTRAP_N

#: The tables of a run that :func:`run_actions` (so :func:`sweep_effects`) reads, with
#: its manifest: decisions, and the contexts and memories that give ``own_dose``.
ACTION_TABLES = ("actions", "contexts", "memories")

#: The columns of :data:`ACTION_TABLES` that :func:`run_actions` reads of the tables it
#: does not read whole (those of :func:`own_doses`).
ACTION_COLUMNS = {
    "contexts": ("step", "agent_id", "entry_id"),
    "memories": ("entry_id", "author_id", "memes"),
}

#: The outcomes an estimate may use.
OUTCOMES = ("expressed", "p_target")

#: The arms a decision may be compared in (see :func:`decision_arms`).
ARMS = ("exposed", "placebo", "unexposed")

#: Columns of :func:`exposure_effects`' result.
EFFECT_COLUMNS = (
    "meme_id",
    "control",
    "outcome",
    "exposed_mean",
    "control_mean",
    "effect",
    "ci_low",
    "ci_high",
    "n_exposed",
    "n_control",
    "n_agents",
    "n_runs",
    "n_exposed_agents",
    "n_control_agents",
    "level",
    "resampled",
)

#: Columns of :func:`dose_response`'s result.
DOSE_COLUMNS = (
    "dose",
    "n",
    "n_clusters",
    "mean",
    "se",
    "ci_low",
    "ci_high",
    "level",
    "clusters",
)

#: Columns of :func:`effect_by_distance`'s result.
DISTANCE_COLUMNS = ("distance", "n", "exposed_share", "mean", *EFFECT_COLUMNS)


def own_doses(contexts: pl.DataFrame, memories: pl.DataFrame) -> pl.DataFrame:
    """Per (step, agent, meme): carrying entries by the agent itself in its context.

    The complement of the ``actions`` table's ``dose`` (carrying entries by others): a
    seeded agent reading its own seed, or a carrier re-reading its copy, has the meme in
    context with ``dose = 0``.

    Args:
        contexts: The ``contexts`` table (step, agent_id, entry_id).
        memories: The ``memories`` table (entry_id, author_id, memes).

    Returns:
        Columns step, agent_id, meme_id, own_dose; only rows with ``own_dose > 0``.
    """
    return (
        contexts.select("step", "agent_id", "entry_id")
        .join(memories.select("entry_id", "author_id", "memes"), on="entry_id")
        .filter(pl.col("author_id") == pl.col("agent_id"))
        .explode("memes")
        .drop_nulls("memes")
        .group_by("step", "agent_id", pl.col("memes").alias("meme_id"))
        .agg(pl.len().cast(pl.Int32).alias("own_dose"))
        .sort("step", "agent_id", "meme_id")
    )


def read_actions(run_dir: str | Path) -> pl.DataFrame:
    """One run's ``actions`` table with an ``own_dose`` column (see :func:`own_doses`).

    ``own_dose`` comes from the run's ``contexts`` and ``memories`` tables; it is left
    out when the run has no ``contexts`` table.

    Raises:
        FileNotFoundError: The run has no ``actions.parquet`` (no decision tasks were asked).
    """
    run_dir = Path(run_dir)
    path = run_dir / "actions.parquet"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no actions table; the run asked no decision tasks (LLM runs with "
            "tasks that have options write one)"
        )
    actions = pl.read_parquet(path)
    contexts, memories = run_dir / "contexts.parquet", run_dir / "memories.parquet"
    if not (contexts.is_file() and memories.is_file()):
        return actions
    return _with_own_dose(actions, pl.read_parquet(contexts), pl.read_parquet(memories))


def run_actions(run: Run) -> pl.DataFrame | None:
    """A loaded run's ``actions`` table with ``own_dose``, as :func:`read_actions` gives it.

    Reads nothing: the tables come from ``run`` (e.g. a run of
    :meth:`sim.analysis.loading.Sweep.with_runs`).

    Returns:
        The table; None when the run has no ``actions`` table (no decision tasks).
    """
    actions = run.tables.get("actions")
    if actions is None:
        return None
    contexts, memories = run.tables.get("contexts"), run.tables.get("memories")
    if contexts is None or memories is None:
        return actions
    return _with_own_dose(actions, contexts, memories)


def _with_own_dose(
    actions: pl.DataFrame, contexts: pl.DataFrame, memories: pl.DataFrame
) -> pl.DataFrame:
    """``actions`` joined with :func:`own_doses` (0 where an agent's context held none)."""
    own = own_doses(contexts, memories)
    keys = ["step", "agent_id", "meme_id"]
    own = own.with_columns(pl.col(k).cast(actions.schema[k]) for k in keys)
    return actions.join(own, on=keys, how="left", maintain_order="left").with_columns(
        pl.col("own_dose").fill_null(0)
    )


def load_actions(run_dirs: Sequence[str | Path]) -> pl.DataFrame:
    """The ``actions`` tables of several runs, with a ``run`` column (the directory name).

    Each has the ``own_dose`` column of :func:`read_actions` when its run recorded
    contexts.

    Raises:
        FileNotFoundError: A run has no ``actions.parquet`` (no decision tasks were asked).
    """
    frames = [
        read_actions(run_dir).with_columns(pl.lit(Path(run_dir).name).alias("run"))
        for run_dir in run_dirs
    ]
    return pl.concat(frames, how="diagonal_relaxed")


def placebo_of(memes: Sequence[dict], meme_id: str) -> str | None:
    """The id of the placebo paired with ``meme_id`` in a run's meme configs, or None."""
    for meme in memes:
        if meme.get("placebo_of") == meme_id:
            return str(meme["id"])
    return None


def decision_arms(
    actions: pl.DataFrame, meme_id: str, placebo_id: str | None = None, outcome: str = "expressed"
) -> pl.DataFrame:
    """One row per scored decision offering M's target, with its arm and outcome.

    Columns: run, step, agent_id, dose, placebo_dose, arm ("exposed", "own", "other",
    "placebo", "unexposed"; see the module docstring) and y (the outcome). The "own"
    arm needs the ``own_dose`` column of :func:`read_actions`.

    Raises:
        ValueError: Unknown outcome, or no decision offered M's target.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome = {outcome!r}; allowed: {list(OUTCOMES)}")
    if "run" not in actions.columns:
        actions = actions.with_columns(pl.lit("run").alias("run"))
    keys = ["run", "step", "agent_id"]
    rows = actions.filter((pl.col("meme_id") == meme_id) & pl.col("offered"))
    if outcome == "p_target":
        rows = rows.filter(pl.col("p_target").is_not_null())
    if rows.height == 0:
        raise ValueError(
            f"meme {meme_id!r}: no scored decision offered its target options"
            + (
                " with option probabilities (use option_scoring = 'logprob')"
                if outcome == "p_target"
                else ""
            )
        )
    y = pl.col("expressed").cast(pl.Float64) if outcome == "expressed" else pl.col("p_target")
    has_own = "own_dose" in actions.columns
    own = pl.col("own_dose") if has_own else pl.lit(0, dtype=pl.Int32)
    rows = rows.select(*keys, "dose", own.alias("_own"), y.alias("y"))
    if placebo_id is not None:
        placebo = actions.filter(pl.col("meme_id") == placebo_id).select(
            *keys, pl.col("dose").alias("placebo_dose"), own.alias("_placebo_own")
        )
        rows = rows.join(placebo, on=keys, how="left", maintain_order="left").with_columns(
            pl.col("placebo_dose").fill_null(0), pl.col("_placebo_own").fill_null(0)
        )
    else:
        rows = rows.with_columns(
            pl.lit(0, dtype=pl.Int32).alias("placebo_dose"),
            pl.lit(0, dtype=pl.Int32).alias("_placebo_own"),
        )
    competing = (
        actions.filter(
            (pl.col("meme_id") != meme_id)
            & (pl.col("meme_id") != (placebo_id or meme_id))
            & pl.col("offered")
            & ((pl.col("dose") > 0) | (own > 0))
        )
        .select(keys)
        .unique()
        .with_columns(pl.lit(True).alias("_other"))
    )
    rows = rows.join(competing, on=keys, how="left", maintain_order="left").with_columns(
        pl.col("_other").fill_null(False)
    )
    arm = (
        pl.when(pl.col("dose") > 0)
        .then(pl.lit("exposed"))
        .when(pl.col("_own") > 0)
        .then(pl.lit("own"))
        .when(pl.col("_other"))
        .then(pl.lit("other"))
        .when(pl.col("placebo_dose") > 0)
        .then(pl.lit("placebo"))
        .when(pl.col("_placebo_own") > 0)
        .then(pl.lit("own"))
        .otherwise(pl.lit("unexposed"))
    )
    return rows.with_columns(arm.alias("arm")).drop("_own", "_placebo_own", "_other").sort(keys)


@dataclass(frozen=True)
class _Clusters:
    """Per (run, agent) cluster: sums and counts of y per level, and the run of each.

    ``run`` holds each cluster's run index (0 .. n_runs - 1, in sorted run order).
    """

    run: np.ndarray
    sums: dict[object, np.ndarray]
    counts: dict[object, np.ndarray]


def _clusters(
    arms: pl.DataFrame, column: str = "arm", levels: Sequence[object] = ARMS
) -> _Clusters:
    """Sums and counts of ``y`` per (run, agent) cluster for each value of ``column``."""
    grouped = arms.group_by(["run", "agent_id", column]).agg(
        pl.col("y").sum().alias("s"), pl.len().alias("c")
    )
    ids = arms.select("run", "agent_id").unique().sort(["run", "agent_id"])
    ids = ids.with_row_index("cluster")
    grouped = grouped.join(ids, on=["run", "agent_id"])
    n = ids.height
    sums, counts = {}, {}
    for level in levels:
        part = grouped.filter(pl.col(column) == level)
        s = np.zeros(n)
        c = np.zeros(n)
        idx = part["cluster"].to_numpy()
        s[idx] = part["s"].to_numpy()
        c[idx] = part["c"].to_numpy()
        sums[level], counts[level] = s, c
    runs = ids["run"].to_numpy()
    _, run_index = np.unique(runs, return_inverse=True)
    return _Clusters(run=run_index, sums=sums, counts=counts)


def _n_runs(run: np.ndarray) -> int:
    return int(run.max()) + 1 if len(run) else 0


def _resampled(n_runs: int) -> str:
    """What the bootstrap of ``n_runs`` runs resamples (see the module docstring)."""
    if n_runs >= MIN_RESAMPLED_RUNS:
        return "runs"
    return "agents" if n_runs <= 1 else "agents within runs"


def _bootstrap_weights(
    run: np.ndarray,
    exposed: np.ndarray,
    control: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n_boot, n_clusters) multiplicities of the (run, agent) clusters for one contrast.

    From :data:`MIN_RESAMPLED_RUNS` runs on, whole runs are resampled (a run drawn twice
    counts its clusters twice); below, clusters are resampled within each run. Either
    way the units are stratified by whether they hold exposed decisions and whether they
    hold control decisions (``exposed`` / ``control``: per cluster, decisions in each
    arm), so an arm with decisions in the data has decisions in every replicate.
    """
    has_e, has_c = exposed > 0, control > 0
    n_runs = _n_runs(run)
    if _resampled(n_runs) == "runs":
        run_e = np.bincount(run, weights=has_e, minlength=n_runs) > 0
        run_c = np.bincount(run, weights=has_c, minlength=n_runs) > 0
        times = stratified_weights(2 * run_e + run_c, n_boot, rng)
        return times[:, run]
    return stratified_weights(4 * run + 2 * has_e + has_c, n_boot, rng)


def _arm_mean(clusters: _Clusters, arm: str, w: np.ndarray) -> np.ndarray:
    """The arm's mean outcome under each row of cluster weights ``w`` (NaN: no decision)."""
    num = w @ clusters.sums[arm]
    den = w @ clusters.counts[arm]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _effect_rows(
    arms: pl.DataFrame,
    meme_id: str,
    controls: Sequence[str],
    *,
    outcome: str,
    n_boot: int,
    level: float,
    seed: int,
) -> list[dict[str, object]]:
    """One :data:`EFFECT_COLUMNS` row per control from :func:`decision_arms` rows."""
    clusters = _clusters(arms)
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    ones = np.ones((1, len(clusters.run)))
    n_runs = _n_runs(clusters.run)
    rows: list[dict[str, object]] = []
    for control in controls:
        exposed, controlled = clusters.counts["exposed"], clusters.counts[control]
        weights = _bootstrap_weights(clusters.run, exposed, controlled, n_boot, rng)
        point_e = _arm_mean(clusters, "exposed", ones)[0]
        point_c = _arm_mean(clusters, control, ones)[0]
        low = high = float("nan")
        if np.isfinite(point_e - point_c):
            # Stratified: no replicate has an empty arm, so none is dropped.
            diffs = _arm_mean(clusters, "exposed", weights) - _arm_mean(clusters, control, weights)
            low, high = (float(q) for q in np.quantile(diffs, [alpha, 1 - alpha]))
        rows.append(
            {
                "meme_id": meme_id,
                "control": control,
                "outcome": outcome,
                "exposed_mean": float(point_e),
                "control_mean": float(point_c),
                "effect": float(point_e - point_c),
                "ci_low": low,
                "ci_high": high,
                "n_exposed": int(exposed.sum()),
                "n_control": int(controlled.sum()),
                "n_agents": len(clusters.run),
                "n_runs": n_runs,
                "n_exposed_agents": int((exposed > 0).sum()),
                "n_control_agents": int((controlled > 0).sum()),
                "level": level,
                "resampled": _resampled(n_runs),
            }
        )
    return rows


def exposure_effects(
    actions: pl.DataFrame,
    meme_id: str,
    *,
    placebo_id: str | None = None,
    outcome: str = "expressed",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """Effect of exposure to ``meme_id`` on its expression, against each control.

    Args:
        actions: ``actions`` rows (one run, or several with a ``run`` column).
        meme_id: The meme M.
        placebo_id: M's placebo meme, for the placebo comparison (None: no placebo row).
        outcome: ``"expressed"`` or ``"p_target"``.
        n_boot: Bootstrap replicates.
        level: Confidence level of the percentile interval.
        seed: Seed of the bootstrap's own generator.

    Returns:
        One row per control ("unexposed", and "placebo" when ``placebo_id`` is given)
        with the columns :data:`EFFECT_COLUMNS`: ``n_exposed`` / ``n_control`` count
        decisions, ``n_exposed_agents`` / ``n_control_agents`` the agents (the
        independent units) with a decision in the arm, ``n_agents`` all agents with a
        decision offering M's target, ``level`` the confidence level of ``ci_low`` /
        ``ci_high``, ``resampled`` what the (stratified) bootstrap resampled ("agents",
        "agents within runs" or "runs", see the module docstring); means and effect are
        NaN when an arm has no decision, and so is the interval.
    """
    arms = decision_arms(actions, meme_id, placebo_id, outcome)
    controls = ["unexposed"] + (["placebo"] if placebo_id is not None else [])
    rows = _effect_rows(
        arms, meme_id, controls, outcome=outcome, n_boot=n_boot, level=level, seed=seed
    )
    return pl.DataFrame(rows).select(EFFECT_COLUMNS)


def dose_response(
    actions: pl.DataFrame,
    meme_id: str,
    *,
    outcome: str = "expressed",
    max_dose: int = 3,
    level: float = 0.95,
) -> pl.DataFrame:
    """Mean outcome by dose: the number of carrying entries by others in context.

    Doses above ``max_dose`` are pooled into ``max_dose``. Decisions with M in context
    only through the agent's own entries or with a competing meme in context (arms "own"
    and "other") are left out: they are not a clean dose 0.

    The standard error is cluster-robust (:func:`sim.analysis.clustered.ratio_mean_se`),
    clustered as :func:`exposure_effects` resamples: by agent (a (run, agent) pair) for
    one run or fewer than :data:`MIN_RESAMPLED_RUNS` runs (then conditional on those
    seeds), by run from :data:`MIN_RESAMPLED_RUNS` runs on. Decisions of one agent, and
    of one run, are correlated; an error treating them as independent is too small.
    The interval is ``mean ± t_{(1+level)/2, G-1} * se`` for the ``G`` clusters with a
    decision at that dose, clipped to [0, 1] (both outcomes are shares or
    probabilities); null with fewer than 2 clusters.

    Returns:
        Columns :data:`DOSE_COLUMNS`: dose, n (decisions), n_clusters (``G``), mean, se,
        ci_low, ci_high, level, clusters (what the clusters are: "agents", "agents
        within runs" or "runs").
    """
    arms = decision_arms(actions, meme_id, None, outcome)
    n_runs = arms["run"].n_unique()
    unit = _resampled(n_runs)
    kept = arms.filter(~pl.col("arm").is_in(["own", "other"])).with_columns(
        pl.col("dose").clip(0, max_dose).alias("dose")
    )
    doses = sorted(kept["dose"].unique().to_list())
    clusters = _clusters(kept, "dose", doses)
    rows = []
    for dose in doses:
        sums, counts = clusters.sums[dose], clusters.counts[dose]
        if unit == "runs":
            sums = np.bincount(clusters.run, weights=sums, minlength=n_runs)
            counts = np.bincount(clusters.run, weights=counts, minlength=n_runs)
        share = share_interval(sums, counts, level)
        rows.append(
            {
                "dose": dose,
                "n": int(counts.sum()),
                "n_clusters": share.n_clusters,
                "mean": share.mean,
                "se": share.se,
                "ci_low": share.low,
                "ci_high": share.high,
                "level": level,
                "clusters": unit,
            }
        )
    schema: dict[str, pl.DataType] = {
        "dose": kept.schema["dose"],
        "n": pl.Int64(),
        "n_clusters": pl.Int64(),
        "mean": pl.Float64(),
        "se": pl.Float64(),
        "ci_low": pl.Float64(),
        "ci_high": pl.Float64(),
        "level": pl.Float64(),
        "clusters": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema)


def seed_distances(graph: nx.Graph, seeds: Sequence[int]) -> dict[int, int]:
    """Shortest-path distance of every reachable agent from the nearest seed."""
    if not seeds:
        return {}
    return nx.multi_source_dijkstra_path_length(graph, set(int(s) for s in seeds))


def effect_by_distance(
    actions: pl.DataFrame,
    meme_id: str,
    graph: nx.Graph,
    seeds: Sequence[int],
    *,
    placebo_id: str | None = None,
    outcome: str = "expressed",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """The effect of exposure by graph distance from the meme's seeded agents.

    For one run (one graph). Each distance's decisions (those of the agents at that
    distance; null: unreachable from every seed) get the estimate of
    :func:`exposure_effects`: exposed minus control, against unexposed decisions and,
    with ``placebo_id``, the placebo arm, with the same stratified cluster bootstrap
    (agents resampled; an agent's decisions all lie at one distance), confidence
    ``level`` and ``seed``. A distance without exposed or control decisions has NaN
    means, effect and interval.

    Returns:
        Columns :data:`DISTANCE_COLUMNS`, one row per (distance, control), sorted by
        distance (unreachable last): ``n`` (decisions at the distance, every arm),
        ``exposed_share`` (their share in the exposed arm) and ``mean`` (their mean
        outcome, every arm), then the columns of :data:`EFFECT_COLUMNS`.
    """
    arms = decision_arms(actions, meme_id, placebo_id, outcome)
    distance = seed_distances(graph, seeds)
    agents = arms["agent_id"].to_list()
    arms = arms.with_columns(
        pl.Series("distance", [distance.get(int(a)) for a in agents], dtype=pl.Int32)
    )
    controls = ["unexposed"] + (["placebo"] if placebo_id is not None else [])
    rows = []
    for (d,), part in arms.group_by(["distance"], maintain_order=True):
        described = {
            "distance": d,
            "n": part.height,
            "exposed_share": float(np.mean(part["arm"].to_numpy() == "exposed")),
            "mean": float(np.mean(part["y"].to_numpy())),
        }
        for row in _effect_rows(
            part, meme_id, controls, outcome=outcome, n_boot=n_boot, level=level, seed=seed
        ):
            rows.append({**described, **row})
    schema = {"distance": pl.Int32, "n": pl.Int64, "exposed_share": pl.Float64}
    frame = pl.DataFrame(rows, schema_overrides={**schema, "mean": pl.Float64})
    order = {c: i for i, c in enumerate(controls)}
    return (
        frame.with_columns(pl.col("control").replace_strict(order).alias("_order"))
        .sort("distance", "_order", nulls_last=True, maintain_order=True)
        .select(DISTANCE_COLUMNS)
    )


def funnel_counts(steps: pl.DataFrame, meme_id: str) -> dict[str, int]:
    """The funnel of one meme at the end of a run (the last step's counts).

    Agents ever exposed, ever carriers, ever expressed (acted on it), and adopters at
    the end (an adoption can be lost: SIS/SIR recovery, a later probe, turnover).
    """
    last = steps.filter(pl.col("meme_id") == meme_id).sort("step").tail(1)
    if last.height == 0:
        raise ValueError(f"meme {meme_id!r}: not in the steps table")
    row = last.row(0, named=True)
    return {
        "exposed": int(row["exposed"]),
        "carriers": int(row["carriers"]),
        "expressed": int(row.get("expressed") or 0),
        "adopters": int(row["adopters"]),
    }


def run_effects(run_dir: str | Path, *, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame | None:
    """The exposure effects of every meme with targets in one finished run.

    For each non-placebo meme with ``target_options``: the effect on ``expressed``, and
    on ``p_target`` when the run scored options by log-probability; against unexposed
    decisions and, when the run has the meme's placebo, against the placebo arm. Memes
    whose decisions have no exposed or no control decision are skipped. None when the
    run has no ``actions`` table. The same as :func:`pooled_effects` of this one run.
    """
    return pooled_effects([run_dir], n_boot=n_boot, seed=seed)


def pooled_effects(
    run_dirs: Sequence[str | Path], *, n_boot: int = 1000, seed: int = 0
) -> pl.DataFrame | None:
    """The exposure effects of :func:`run_effects`, pooled over runs of one configuration.

    The decisions of all ``run_dirs`` (e.g. the seeds of one grid point of a sweep) go
    into one :func:`exposure_effects` per meme, outcome and control, each run its own
    cluster level (the ``run`` column is the run directory): from
    :data:`MIN_RESAMPLED_RUNS` runs on the bootstrap resamples whole runs, below it the
    agents within each run (``resampled`` says which; see the module docstring). Runs
    without an ``actions`` table are left out. The memes are those of the runs'
    configs (every id once, in the order first seen).

    Returns:
        Columns :data:`EFFECT_COLUMNS`, one row per estimable (meme, outcome, control);
        None when no run has an ``actions`` table.
    """
    scored = [Path(d) for d in run_dirs if (Path(d) / "actions.parquet").is_file()]
    if not scored:
        return None
    runs = [
        _ScoredRun(str(d), read_actions(d), read_manifest(d)["config"].get("memes", []))
        for d in scored
    ]
    return _pooled(runs, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class _ScoredRun:
    """One run's part of :func:`pooled_effects`: its directory, decisions and meme configs."""

    run_dir: str
    actions: pl.DataFrame
    memes: list[dict]


def _pooled(runs: Sequence[_ScoredRun], *, n_boot: int, seed: int) -> pl.DataFrame:
    """:func:`pooled_effects` of runs with ``actions`` tables (at least one)."""
    actions = pl.concat(
        [run.actions.with_columns(pl.lit(run.run_dir).alias("run")) for run in runs],
        how="diagonal_relaxed",
    )
    memes: dict[str, dict] = {}
    for run in runs:
        for meme in run.memes:
            memes.setdefault(str(meme["id"]), meme)
    configs = list(memes.values())
    outcomes = ["expressed"]
    if actions.filter(pl.col("p_target").is_not_null()).height:
        outcomes.append("p_target")
    frames = []
    for meme in configs:
        if meme.get("placebo_of") or not meme.get("target_options"):
            continue
        placebo = placebo_of(configs, meme["id"])
        for outcome in outcomes:
            try:
                frame = exposure_effects(
                    actions,
                    meme["id"],
                    placebo_id=placebo,
                    outcome=outcome,
                    n_boot=n_boot,
                    seed=seed,
                )
            except ValueError:
                continue
            frames.append(frame.filter(pl.col("effect").is_not_nan()))
    return pl.concat(frames) if frames else pl.DataFrame(schema=dict.fromkeys(EFFECT_COLUMNS))


def sweep_effects(sweep: Sweep, *, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame | None:
    """The exposure effects of each grid point of a sweep, pooled over its complete runs.

    A grid point is a combination of the swept parameters (a sweep of seeds only is one
    grid point); its seeds are the replicates :func:`pooled_effects` pools, so the
    interval resamples whole runs from :data:`MIN_RESAMPLED_RUNS` seeds on and agents
    within runs below (conditional on the seeds; ``resampled`` says which). Runs of
    different grid points are never pooled: that would count a parameter's effect as
    variation between seeds.

    Returns:
        The swept parameters (as in the sweep's index), then :data:`EFFECT_COLUMNS`, one
        row per grid point and estimable (meme, outcome, control), in the index's order
        of grid points; None when no complete run has an ``actions`` table (no scored
        decisions: e.g. a contagion sweep).

    The runs are those :meth:`~sim.analysis.loading.Sweep.with_runs` holds, else read
    one at a time (and none when no complete run directory has ``actions.parquet``).
    """
    params = list(sweep.params)
    complete = sweep.complete()
    if sweep.runs is None and not any(
        (Path(d) / "actions.parquet").is_file() for d in complete["run_dir"].to_list()
    ):
        return None  # nothing to pool: no run is read for nothing
    # Per grid point in the index's order, its runs with decisions, in the index's order.
    points: dict[tuple[object, ...], list[_ScoredRun]] = {}
    for row, run in sweep.iter_runs():
        scored = points.setdefault(tuple(row[p] for p in params), [])
        actions = run_actions(run)
        if actions is not None:
            scored.append(_ScoredRun(str(run.path), actions, run.config.get("memes", [])))
    frames = []
    for key, runs in points.items():
        if not runs:
            continue
        effects = _pooled(runs, n_boot=n_boot, seed=seed)
        point = [
            pl.lit(value, dtype=complete.schema[p]).alias(p)
            for p, value in zip(params, key, strict=True)
        ]
        frames.append(effects.select(*point, *EFFECT_COLUMNS))
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed")


def _of_agents(n: int | None) -> str:
    """`` of N agent(s)`` for a printed effect; "" when the count is unknown (old tables)."""
    return "" if n is None else f" of {n} agent{'s' if n != 1 else ''}"


def effect_lines(effects: pl.DataFrame | None) -> list[str]:
    """One readable line per effect row (for printed summaries).

    The interval is labelled with its confidence level; a line ends with a warning when
    an arm has fewer than :data:`MIN_RELIABLE_DECISIONS` decisions or fewer than
    :data:`MIN_RELIABLE_AGENTS` agents. An effect pooled over several runs (seeds) says
    what its bootstrap resampled: the agents within each run (too few seeds: the
    interval leaves out the variation between them) or whole runs.
    """
    if effects is None or effects.height == 0:
        return []
    lines = []
    for row in effects.iter_rows(named=True):
        what = "chose its target" if row["outcome"] == "expressed" else "P(target option)"
        level = row.get("level")
        ci = f"{level * 100:g} % CI " if level is not None else ""
        agents_e, agents_c = row.get("n_exposed_agents"), row.get("n_control_agents")
        agents, agents_control = _of_agents(agents_e), _of_agents(agents_c)
        few_decisions = min(row["n_exposed"], row["n_control"]) < MIN_RELIABLE_DECISIONS
        few_agents = agents_e is not None and min(agents_e, agents_c) < MIN_RELIABLE_AGENTS
        warning = ""
        if few_decisions or few_agents:
            what_few = " and ".join(
                w for w, f in (("decisions", few_decisions), ("agents", few_agents)) if f
            )
            warning = f"; too few {what_few} for a reliable interval"
        if row.get("resampled") == "agents within runs":
            warning += (
                f"; {row['n_runs']} seeds, too few to resample: the interval leaves out "
                "the variation between them"
            )
        elif row.get("resampled") == "runs":
            warning += f"; {row['n_runs']} seeds, resampled as whole runs"
        lines.append(
            f"  effect of exposure to {row['meme_id']} ({what}): {row['effect']:+.3f} "
            f"[{ci}{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] vs {row['control']} "
            f"({row['exposed_mean']:.3f} exposed over {row['n_exposed']} decisions{agents}, "
            f"{row['control_mean']:.3f} {row['control']} over {row['n_control']}"
            f"{agents_control})" + warning
        )
    return lines
