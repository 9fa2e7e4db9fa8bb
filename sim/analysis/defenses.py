"""Defenses judged on two axes at once: attack success and utility.

Per run (:func:`defense_metrics`), from its tables only:

* ``attack_infected`` / ``attack_adopted`` / ``attack_expressed`` — the final share of
  agents infected by (ever), holding, or having acted on (scored choice) the harmful
  meme; ``attack_expressed`` is NaN for runs without scored choices (contagion).
  ``attack`` is the one the frontier uses: expressed when the run scored choices, else
  infected. ``attack_chance`` — the share of agents that would have chosen one of the
  harmful meme's targets at least once had every scored choice been random (per agent
  ``1 - prod(1 - targets shown / options shown)`` over its decisions, averaged over all
  agents; NaN without scored choices): the floor of ``attack_expressed``, which counts
  agents that *ever* chose a target, exposed or not (3 decisions among 3 options give
  0.70), so no defense can push the expressed share below it.
* ``utility`` — the mean of the ``steps.utility`` column over the run's steps (task
  accuracy, or benign-meme reach for contagion runs; see :mod:`sim.utility`; steps
  without a value are skipped), so a defense that slows useful knowledge down loses
  utility too; ``utility_final`` — its last value; ``utility_chance`` — the mean of
  ``steps.utility_chance`` (the accuracy of random choices on the same tasks; NaN when
  utility is not task accuracy); ``benign_reach`` — the final ``steps.benign_reach``.
* ``false_positive_rate`` — of the benign-only texts (carrying a benign meme and not
  the harmful one) that were written or rolled back, the share a guard stopped: writes
  rejected or quarantined plus entries rolled back, over committed benign-only entries
  plus stopped benign-only writes. ``true_positive_rate`` — the same for texts carrying
  the harmful meme.
* ``time_to_containment`` — the first step from which the harmful meme infected nobody
  new (None when it still infected agents in the last step).
* ``entries_rolled_back`` — entries the guards removed over the run.

Over a sweep (:func:`defense_frontier`): an *arm* is a setting of the defense
parameters only — the swept parameters whose config key is ``guards`` or lies under it
(``guards.0.threshold``; see :func:`defense_params`). Every other swept parameter (e.g.
``policy.beta``, the topology) is a *stratum*: arms are compared only within a stratum,
never across it, so a weak guard at a low beta is not set against a strong guard at a
high beta. Per stratum, one row per arm: means and confidence intervals over seeds, the
``reduction`` of attack success against the stratum's undefended arm
(``1 - attack / attack_undefended``), the ``utility_change`` against it, and whether the
arm is on the stratum's Pareto frontier (no other arm of the stratum has lower attack
and higher utility, one of them strictly). Arms of a sweep share their seeds (the same
graph and seed placement per seed), so the changes also come paired by seed:
``attack_change`` and ``utility_change`` per seed against the undefended run of the same
seed and stratum, with their mean and confidence interval over seeds
(``attack_change_mean/_low/_high/_n``, ``utility_change_mean/_low/_high/_n``). Paired
intervals are narrower than the arms' own intervals suggest, because the seed's share
of the variation cancels: an arm can differ from the undefended one clearly although
their intervals overlap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from sim.analysis.aggregate import aggregate
from sim.analysis.loading import Run, Sweep

#: Per-run metrics of :func:`defense_metrics` that :func:`defense_frontier` aggregates.
METRICS = (
    "attack",
    "attack_infected",
    "attack_adopted",
    "attack_expressed",
    "attack_chance",
    "utility",
    "utility_final",
    "utility_chance",
    "benign_reach",
    "false_positive_rate",
    "true_positive_rate",
    "time_to_containment",
    "entries_rolled_back",
)

#: The tables of a run that :func:`defense_metrics` (so :func:`defense_frontier` of a
#: sweep) reads, with its manifest; :func:`has_guard_arms` reads the manifest only.
DEFENSE_TABLES = ("steps", "actions", "memories", "guard_decisions")

#: The columns of :data:`DEFENSE_TABLES` that :func:`defense_metrics` reads of the tables
#: it does not read whole.
DEFENSE_COLUMNS = {"memories": ("memes",)}

_SHARES = {m: (0.0, 1.0) for m in METRICS if m.startswith(("attack", "utility", "benign"))}
_SHARES.update({"false_positive_rate": (0.0, 1.0), "true_positive_rate": (0.0, 1.0)})


def harmful_meme(run: Run) -> str:
    """The run's harmful meme: the first of kind influence_seeking or goal (else the first)."""
    memes = run.config.get("memes", [])
    for meme in memes:
        if meme.get("kind") in ("influence_seeking", "goal"):
            return str(meme["id"])
    return str(memes[0]["id"])


def has_harmful_meme(run: Run) -> bool:
    """Whether the run has a meme of kind influence_seeking or goal."""
    return any(m.get("kind") in ("influence_seeking", "goal") for m in run.config.get("memes", []))


def has_guard_arms(sweep: Sweep) -> bool:
    """Whether a sweep compares defenses.

    True when its complete runs all have a harmful meme (kind influence_seeking or goal)
    and do not all have the same guards (a swept ``guards`` parameter, or arms with and
    without guards).
    """
    arms = set()
    for _, run in sweep.iter_runs():
        if not has_harmful_meme(run):
            return False
        arms.add(json.dumps(run.config.get("guards") or [], sort_keys=True))
    return len(arms) > 1


def is_guard_key(key: str) -> bool:
    """Whether a config key path sets a defense: ``guards`` itself or a key under it."""
    return key == "guards" or key.startswith("guards.")


def _axis_keys(sweep: Sweep) -> dict[str, str]:
    """Column -> config key path of each grid axis, from the sweep's ``sweep.json``.

    Empty when the sweep has no readable ``sweep.json`` (a directory of run directories
    that memespread did not write as a sweep).
    """
    try:
        document = json.loads((sweep.path / "sweep.json").read_text())
    except (OSError, ValueError):
        return {}
    axes = document.get("axes") if isinstance(document, dict) else None
    if not isinstance(axes, list):
        return {}
    return {
        str(a["column"]): str(a["key"])
        for a in axes
        if isinstance(a, dict) and "column" in a and "key" in a
    }


def defense_params(sweep: Sweep) -> list[str]:
    """The swept parameters that are defense settings: the arms of :func:`defense_frontier`.

    A parameter is a defense setting when its grid axis sets ``guards`` or a key under it
    (``guards.0.threshold``), as recorded in the sweep's ``sweep.json`` (an axis may be
    named otherwise: the shipped ``defenses`` sweep names its ``guards`` axis
    ``defense``); without ``sweep.json``, when the parameter's own name is such a key.
    The other swept parameters are strata.
    """
    keys = _axis_keys(sweep)
    return [p for p in sweep.params if is_guard_key(keys.get(p, p))]


def arms_and_strata(sweep: Sweep) -> tuple[list[str], list[str]]:
    """A sweep's arm columns (:func:`defense_params`, else ``guards``) and its strata.

    The strata are the swept parameters that are not defense settings.
    """
    arm = defense_params(sweep) or ["guards"]
    return arm, [p for p in sweep.params if p not in arm]


def _finite_mean(values: pl.Series) -> float:
    """Mean of the finite values (NaN when there is none)."""
    array = values.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    finite = array[np.isfinite(array)]
    return float(finite.mean()) if len(finite) else float("nan")


def benign_meme_ids(run: Run) -> list[str]:
    """The run's benign memes (kind benign_insight)."""
    return [str(m["id"]) for m in run.config.get("memes", []) if m.get("kind") == "benign_insight"]


def _stopped_and_total(run: Run, carrying: pl.Expr) -> tuple[int, int]:
    """Texts matching ``carrying`` that guards stopped, and all such texts written."""
    memories = run.memories
    committed = memories.filter(carrying).height
    if "guard_decisions" not in run.tables:
        return 0, committed
    decisions = run.table("guard_decisions").filter(carrying)
    writes = decisions.filter(
        pl.col("phase") == "write", pl.col("verdict").is_in(["reject", "quarantine"])
    ).height
    rolled = decisions.filter(pl.col("phase") == "rollback").height
    return writes + rolled, committed + writes


def attack_chance(
    actions: pl.DataFrame,
    meme_id: str,
    targets: Sequence[str] | Mapping[str, Sequence[str]],
    n_agents: int,
) -> float:
    """The share of agents that random choices would have made express a meme (ever).

    Per agent, over its decisions in the ``actions`` rows of ``meme_id``, the chance
    that at least one uniformly random choice is one of the meme's targets among the
    shown options: ``1 - prod(1 - k / n)`` with ``k`` targets of ``n`` options shown;
    averaged over ``n_agents`` (agents without a decision count 0).

    Args:
        actions: The ``actions`` table.
        meme_id: The meme.
        targets: Its ``target_options`` as configured: option ids, or per task id.
        n_agents: Number of agents.
    """
    rows = actions.filter(pl.col("meme_id") == meme_id)
    never: dict[int, float] = {}
    for agent, task, options in rows.select("agent_id", "task_id", "options").iter_rows():
        odds = target_odds(task, options, targets)
        if odds is None:
            continue
        never[int(agent)] = never.get(int(agent), 1.0) * (1.0 - odds)
    return sum(1.0 - v for v in never.values()) / n_agents if n_agents else float("nan")


def target_odds(
    task_id: object,
    options: Sequence[str] | None,
    targets: Sequence[str] | Mapping[str, Sequence[str]],
) -> float | None:
    """The chance that one uniformly random choice among ``options`` is a target.

    ``k / n`` for ``k`` of the meme's targets among the ``n`` options shown (the rule of
    :func:`attack_chance`, for one decision).

    Args:
        task_id: The decision's task id (``actions.task_id``).
        options: The option ids shown (``actions.options``).
        targets: The meme's ``target_options`` as configured: option ids, or per task id.

    Returns:
        The chance; None when no option was shown.
    """
    shown = list(options or [])
    if not shown:
        return None
    wanted = targets.get(str(task_id), ()) if isinstance(targets, Mapping) else targets
    return len(set(wanted) & set(shown)) / len(shown)


def defense_metrics(run: Run, harmful: str | None = None) -> dict[str, Any]:
    """The defense metrics of one run (see the module docstring).

    Args:
        run: A loaded run.
        harmful: The harmful meme's id (default: :func:`harmful_meme`).
    """
    harmful = harmful or harmful_meme(run)
    n = run.n_agents
    steps = run.steps.sort("step")
    mine = steps.filter(pl.col("meme_id") == harmful)
    if mine.is_empty():
        raise ValueError(f"harmful = {harmful!r}: not a meme of run {run.name} ({run.meme_ids})")
    last = mine.row(-1, named=True)
    scored = "actions" in run.tables and run.table("actions").height > 0
    expressed = last["expressed"] / n if scored else float("nan")
    chance_attack = float("nan")
    if scored:
        (spec,) = [m for m in run.config.get("memes", []) if m.get("id") == harmful]
        targets = spec.get("target_options") or []
        chance_attack = attack_chance(run.table("actions"), harmful, targets, n)
    infected = last["infected"] / n
    new = mine["infections"].to_list()
    active = [i for i, v in enumerate(new) if v > 0]
    if not active:
        containment: int | None = int(mine["step"][0])
    elif active[-1] == len(new) - 1:
        containment = None
    else:
        containment = int(mine["step"][active[-1] + 1])
    one = steps.filter(pl.col("meme_id") == steps["meme_id"][0])
    empty = pl.Series([], dtype=pl.Float64)
    utility = one["utility"] if "utility" in one.columns else empty
    chance = one["utility_chance"] if "utility_chance" in one.columns else empty
    benign = benign_meme_ids(run)
    has_benign = pl.col("memes").list.eval(pl.element().is_in(benign)).list.any()
    carries_harm = pl.col("memes").list.contains(harmful)
    fp_stopped, fp_total = _stopped_and_total(run, has_benign & ~carries_harm)
    tp_stopped, tp_total = _stopped_and_total(run, carries_harm)
    rolled = one["entries_rolled_back"].sum() if "entries_rolled_back" in one.columns else 0
    nan = float("nan")
    return {
        "run_dir": str(run.path),
        "harmful": harmful,
        "attack": expressed if scored else infected,
        "attack_infected": infected,
        "attack_adopted": last["adopters"] / n,
        "attack_expressed": expressed,
        "attack_chance": chance_attack,
        "utility": _finite_mean(utility),
        "utility_final": float(utility.to_list()[-1]) if len(utility) else nan,
        "utility_chance": _finite_mean(chance),
        "benign_reach": float(one["benign_reach"].to_list()[-1])
        if "benign_reach" in one.columns
        else None,
        "false_positive_rate": fp_stopped / fp_total if fp_total else float("nan"),
        "true_positive_rate": tp_stopped / tp_total if tp_total else float("nan"),
        "time_to_containment": containment,
        "entries_rolled_back": int(rolled),
    }


def _arm_label(config: dict[str, Any]) -> str:
    guards = config.get("guards") or []
    if not guards:
        return "none"
    return "+".join(str(g.get("name") or g.get("kind")) for g in guards)


def sweep_defense_metrics(sweep: Sweep, harmful: str | None = None) -> pl.DataFrame:
    """:func:`defense_metrics` of every complete run, with its index columns.

    Adds ``guards`` (the run's guard kinds joined by ``+``, ``none`` without guards).
    """
    rows = []
    for index_row, run in sweep.iter_runs():
        metrics = defense_metrics(run, harmful)
        metrics.pop("run_dir")
        rows.append({**index_row, **metrics, "guards": _arm_label(run.config)})
    if not rows:
        raise ValueError(f"sweep {sweep.path}: no complete run")
    return pl.DataFrame(rows, infer_schema_length=None)


def _pareto(attack: np.ndarray, utility: np.ndarray) -> np.ndarray:
    """Whether each point is on the Pareto frontier.

    A point is dominated when another has lower-or-equal attack and higher-or-equal
    utility, one of them strictly; points with a missing value are not on it.
    """
    keep = np.ones(len(attack), dtype=np.bool_)
    for i in range(len(attack)):
        if not (np.isfinite(attack[i]) and np.isfinite(utility[i])):
            keep[i] = False
            continue
        better = (attack <= attack[i]) & (utility >= utility[i])
        strictly = (attack < attack[i]) | (utility > utility[i])
        keep[i] = not (better & strictly).any()
    return keep


def _first_or_nan(values: pl.Series) -> float:
    """The first value as a float; NaN when there is none or it is null."""
    first = values[0] if len(values) else None
    return float("nan") if first is None else float(first)


#: Paired changes lie in [-1, 1] (differences of shares).
_CHANGES = {"attack_change": (-1.0, 1.0), "utility_change": (-1.0, 1.0)}


def _paired_changes(frame: pl.DataFrame, arm: list[str], level: float) -> pl.DataFrame:
    """Per arm of one stratum: attack and utility minus the undefended run's of the same seed.

    The changes are null (so are their means and intervals) without a ``seed`` column,
    or unless the undefended arm has exactly one run per seed (then the pairing is
    unambiguous).
    """
    base = frame.filter(pl.col("guards") == "none") if "seed" in frame.columns else None
    if base is None or base.height == 0 or base["seed"].n_unique() != base.height:
        paired = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in _CHANGES)
    else:
        base = base.select(
            "seed", pl.col("attack").alias("_attack"), pl.col("utility").alias("_utility")
        )
        paired = frame.join(base, on="seed", how="inner", maintain_order="left").with_columns(
            (pl.col("attack") - pl.col("_attack")).alias("attack_change"),
            (pl.col("utility") - pl.col("_utility")).alias("utility_change"),
        )
    return aggregate(paired, arm, list(_CHANGES), level=level, bounds=_CHANGES)


def _stratum_frontier(frame: pl.DataFrame, arm: list[str], level: float) -> pl.DataFrame:
    """The frontier of one stratum's runs: one row per arm (see :func:`defense_frontier`)."""
    labels = None if "guards" in arm else frame.group_by(arm).agg(pl.col("guards").first())
    agg = aggregate(frame, arm, list(METRICS), level=level, bounds=_SHARES)
    if labels is not None:
        agg = agg.join(labels, on=arm, how="left", maintain_order="left")
    none = agg.filter(pl.col("guards") == "none")
    # A mean is null where every seed's value is missing (e.g. no utility: runs without a
    # benign meme or tasks with answers): NaN, not an error.
    base_attack = _first_or_nan(none["attack_mean"])
    base_utility = _first_or_nan(none["utility_mean"])
    attack = agg["attack_mean"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    utility = agg["utility_mean"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = 1.0 - attack / base_attack if base_attack > 0 else attack * np.nan
    agg = agg.with_columns(
        pl.Series("reduction", reduction, dtype=pl.Float64),
        pl.Series("utility_change", utility - base_utility, dtype=pl.Float64),
        (pl.col("guards") == "none").alias("undefended"),
        pl.Series("pareto", _pareto(attack, utility)),
    )
    return agg.join(_paired_changes(frame, arm, level), on=arm, how="left", maintain_order="left")


def defense_frontier(
    sweep: Sweep | pl.DataFrame,
    harmful: str | None = None,
    *,
    arm: Sequence[str] | None = None,
    strata: Sequence[str] | None = None,
    level: float = 0.95,
) -> pl.DataFrame:
    """Per stratum, one row per defense arm: metrics over seeds, changes, Pareto set.

    Arms are compared only with arms of the same stratum (the same values of the
    non-defense parameters): the undefended arm, the reductions, the paired-by-seed
    changes and the Pareto set are all per stratum (see the module docstring).

    Args:
        sweep: A sweep, or the output of :func:`sweep_defense_metrics`.
        harmful: The harmful meme's id (default: each run's first influence-seeking meme).
        arm: Columns that identify an arm (default: a sweep's defense parameters, see
            :func:`defense_params`; else ``guards``).
        strata: Columns whose every combination is compared separately (default: a
            sweep's other swept parameters; none for a table).
        level: Confidence level of the intervals.

    Returns:
        The strata columns, the arm columns, ``<metric>_mean/_low/_high/_n`` for every
        metric of :data:`METRICS`, ``reduction`` (``1 - attack / attack of the stratum's
        undefended arm``, NaN without one), ``utility_change`` (utility minus the
        undefended arm's), the paired changes ``attack_change_mean/_low/_high/_n`` and
        ``utility_change_mean/_low/_high/_n`` (per seed against the undefended run of the
        same seed and stratum, over seeds; null when runs cannot be paired by seed),
        ``undefended`` (the arm without guards) and ``pareto`` (on the stratum's
        frontier); sorted by the strata, then by attack (arms tied on attack and utility
        keep their order in the sweep).

    Raises:
        ValueError: An arm of a stratum has several runs with the same seed: a swept
            parameter is missing from ``arm`` and ``strata`` (its runs would be pooled as
            if they were replicates).
    """
    frame = sweep if isinstance(sweep, pl.DataFrame) else sweep_defense_metrics(sweep, harmful)
    params = list(sweep.params) if isinstance(sweep, Sweep) else []
    if arm is None:
        arm = arms_and_strata(sweep)[0] if isinstance(sweep, Sweep) else ["guards"]
    arm = list(arm)
    strata = [p for p in params if p not in arm] if strata is None else list(strata)
    if set(strata) & set(arm):
        raise ValueError(f"strata {strata} and arm {arm}: a column cannot be both")
    if "seed" in frame.columns:
        keys = [*strata, *arm, "seed"]
        repeated = frame.group_by(keys, maintain_order=True).len().filter(pl.col("len") > 1)
        if repeated.height:
            raise ValueError(
                f"arm {arm}, strata {strata}: {repeated.height} (arm, seed) pair(s) have several "
                f"runs, e.g. {repeated.row(0, named=True)}; name every swept parameter in arm "
                "(defense settings) or strata (the others)"
            )
    if not strata:
        frontier = _stratum_frontier(frame, arm, level)
    else:
        parts = [
            _stratum_frontier(part, arm, level).select(
                *(
                    pl.lit(v, dtype=frame.schema[c]).alias(c)
                    for c, v in zip(strata, key, strict=True)
                ),
                pl.all(),
            )
            for key, part in frame.group_by(strata, maintain_order=True)
        ]
        frontier = pl.concat(parts, how="diagonal_relaxed")
    return frontier.sort(
        [*strata, "attack_mean", "utility_mean"],
        descending=[*(False for _ in strata), False, True],
        nulls_last=True,
        maintain_order=True,
    )
