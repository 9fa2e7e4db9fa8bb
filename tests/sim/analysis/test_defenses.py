"""Defense metrics and the attack/utility frontier over a small run of the shipped sweep."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from experiments.sweep import run_sweep
from experiments.validation import validate
from sim.analysis.defenses import (
    METRICS,
    _pareto,
    defense_frontier,
    defense_metrics,
    sweep_defense_metrics,
)
from sim.analysis.loading import load_run, load_sweep
from sim.plots import defense_frontier_plot


@pytest.fixture(scope="module")
def defenses_dir(tmp_path_factory):
    overrides = ["steps=12", "sweep.replicates=2"]
    validated = validate("defenses", overrides)
    path = tmp_path_factory.mktemp("defenses") / "sweep"
    result = run_sweep(validated.sweep, path, progress=False)
    assert result.failed == {}
    return path


def test_run_metrics_come_from_the_tables(defenses_dir):
    sweep = load_sweep(defenses_dir)
    row = sweep.index.filter(pl.col("defense") == "quarantine_delay3").row(0, named=True)
    run = load_run(row["run_dir"])
    metrics = defense_metrics(run)
    steps = run.steps.sort("step")
    harm = steps.filter(pl.col("meme_id") == "influence")
    fact = steps.filter(pl.col("meme_id") == "fact")
    assert metrics["harmful"] == "influence"
    assert metrics["attack"] == metrics["attack_infected"] == harm["infected"][-1] / 300
    assert metrics["attack_adopted"] == harm["adopters"][-1] / 300
    assert np.isnan(metrics["attack_expressed"])  # contagion: no scored choices
    assert metrics["utility"] == pytest.approx(float((fact["adopters"] / 300).mean()))
    assert metrics["entries_rolled_back"] == harm["entries_rolled_back"].sum() > 0
    decisions = run.table("guard_decisions")
    assert metrics["entries_rolled_back"] == decisions.filter(pl.col("phase") == "rollback").height
    infections = harm["infections"].to_list()
    last = max(i for i, v in enumerate(infections) if v > 0)
    expected = None if last == len(infections) - 1 else last + 1
    assert metrics["time_to_containment"] == expected


def test_frontier_reduction_utility_change_and_pareto(defenses_dir):
    sweep = load_sweep(defenses_dir)
    frame = sweep_defense_metrics(sweep)
    assert frame.height == 18
    frontier = defense_frontier(sweep)
    assert frontier.height == 9
    by = {r["defense"]: r for r in frontier.iter_rows(named=True)}
    none = by["none"]
    assert none["undefended"] and none["reduction"] == 0.0 and none["utility_change"] == 0.0
    for row in by.values():
        assert row["reduction"] == pytest.approx(1 - row["attack_mean"] / none["attack_mean"])
        assert row["utility_change"] == pytest.approx(row["utility_mean"] - none["utility_mean"])
        mean = frame.filter(pl.col("defense") == row["defense"])["attack"].mean()
        assert row["attack_mean"] == pytest.approx(mean)
    # Pareto: no arm is both lower in attack and higher in utility than a frontier arm.
    for row in by.values():
        dominated = any(
            o["attack_mean"] <= row["attack_mean"]
            and o["utility_mean"] >= row["utility_mean"]
            and (o["attack_mean"] < row["attack_mean"] or o["utility_mean"] > row["utility_mean"])
            for o in by.values()
        )
        assert row["pareto"] == (not dominated)
    # Blocking every shared write stops the meme and the useful knowledge alike.
    assert by["block_all"]["reduction"] > 0.8
    assert by["block_all"]["utility_mean"] < 0.5 * none["utility_mean"]
    assert by["block_all"]["false_positive_rate_mean"] > 0.2
    # The canary pattern never stops a benign write.
    assert by["pattern"]["false_positive_rate_mean"] == 0.0
    assert by["pattern"]["reduction"] > 0.8
    fig = defense_frontier_plot(frontier)
    ax = fig.axes[0]
    assert ax.get_xlim() == (-0.02, 1.02) and ax.get_ylim() == (-0.02, 1.02)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "none (undefended)" in labels and "Pareto frontier" in labels


def test_frontier_changes_are_paired_by_seed(defenses_dir):
    frame = sweep_defense_metrics(load_sweep(defenses_dir))
    frontier = defense_frontier(frame, arm=["defense"])
    by = {r["defense"]: r for r in frontier.iter_rows(named=True)}
    none = frame.filter(pl.col("defense") == "none").sort("seed")
    for defense, row in by.items():
        arm = frame.filter(pl.col("defense") == defense).sort("seed")
        assert arm["seed"].to_list() == none["seed"].to_list()
        for metric in ("attack", "utility"):
            diffs = (arm[metric] - none[metric]).to_numpy()
            half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
            change = f"{metric}_change"
            assert row[f"{change}_n"] == 2
            assert row[f"{change}_mean"] == pytest.approx(diffs.mean(), abs=1e-12)
            assert row[f"{change}_low"] == pytest.approx(max(diffs.mean() - half, -1.0), abs=1e-9)
            assert row[f"{change}_high"] == pytest.approx(min(diffs.mean() + half, 1.0), abs=1e-9)
    # Without seeds to pair by, the paired columns are null and the rest stays.
    unpaired = defense_frontier(frame.drop("seed"), arm=["defense"])
    assert unpaired["attack_change_mean"].null_count() == unpaired.height
    assert unpaired["reduction"].equals(frontier["reduction"])


def test_pareto_on_known_points():
    attack = np.array([0.1, 0.2, 0.2, 0.5, np.nan, 0.05])
    utility = np.array([0.5, 0.9, 0.4, 0.95, 1.0, 0.1])
    assert _pareto(attack, utility).tolist() == [True, True, False, True, False, True]


def test_frontier_needs_the_metrics_columns():
    with pytest.raises(ValueError, match=r"columns \['attack_mean'"):
        defense_frontier_plot(pl.DataFrame({"x": [1]}))


def test_attack_chance_is_the_expressed_share_of_random_choices():
    from agents.decisions import ACTIONS_SCHEMA
    from sim.analysis.defenses import attack_chance

    def row(agent: int, task: str, options: list[str]) -> dict:
        return {
            "step": 0,
            "agent_id": agent,
            "task_id": task,
            "options": options,
            "choice": None,
            "answer": "",
            "scoring": "sampled",
            "option_probs": None,
            "meme_id": "inf",
            "offered": "influence" in options,
            "expressed": False,
            "correct": None,
            "p_target": None,
            "dose": 0,
        }

    three = ["influence", "careful", "plain"]
    # Agent 0: three decisions among 3 options, one target each: 1 - (2/3)^3 = 19/27.
    # Agent 1: one decision with 4 options, one target: 1/4; one without the target.
    # Agents 2 and 3 make no decision: 0.
    rows = [row(0, f"d{i}", three) for i in range(3)]
    rows += [row(1, "d9", [*three, "x"]), row(1, "q1", ["a", "b", "c"])]
    actions = pl.DataFrame(rows, schema=ACTIONS_SCHEMA)
    expected = (19 / 27 + 1 / 4) / 4
    assert attack_chance(actions, "inf", ["influence"], 4) == pytest.approx(expected, abs=1e-12)
    # Per-task targets: only d0 and d9 express the meme.
    per_task = {"d0": ["influence"], "d9": ["influence", "x"]}
    expected = (1 / 3 + 2 / 4) / 4
    assert attack_chance(actions, "inf", per_task, 4) == pytest.approx(expected, abs=1e-12)


def test_frontier_without_utility_neither_crashes_nor_draws_empty_silently(defenses_dir):
    # LLM runs without a benign meme or tasks with answers (the demo) have no utility:
    # every utility is NaN and the undefended arm's mean is null.
    frame = sweep_defense_metrics(load_sweep(defenses_dir)).with_columns(
        pl.lit(float("nan")).alias("utility")
    )
    frontier = defense_frontier(frame, arm=["defense"])
    assert frontier["utility_mean"].null_count() == frontier.height
    assert np.isnan(frontier["utility_change"].to_numpy()).all()
    assert not frontier["pareto"].any()
    none = frontier.filter(pl.col("defense") == "none").row(0, named=True)
    assert none["reduction"] == 0.0
    ax = defense_frontier_plot(frontier).axes[0]
    assert any(t.get_text().startswith("no arm has both") for t in ax.texts)


def _guards_by_beta() -> pl.DataFrame:
    """A guards x beta sweep table (2 seeds): every arm trades attack for utility.

    Per (beta, defense): mean attack and utility; seed 0 is 0.01 below, seed 1 above.
    Within each beta all three arms are on the Pareto frontier; pooled across betas,
    the beta=0.1 arms dominate every beta=0.5 arm (lower attack at equal or higher
    utility), which is a comparison of betas, not of defenses.
    """
    means = {
        (0.1, "none"): (0.30, 0.80),
        (0.1, "weak"): (0.10, 0.78),
        (0.1, "strong"): (0.05, 0.60),
        (0.5, "none"): (0.90, 0.80),
        (0.5, "weak"): (0.60, 0.79),
        (0.5, "strong"): (0.20, 0.62),
    }
    rows = []
    for (beta, defense), (attack, utility) in means.items():
        for seed, shift in ((0, -0.01), (1, 0.01)):
            row: dict[str, object] = {m: float("nan") for m in METRICS}
            row.update(
                {
                    "defense": defense,
                    "policy.beta": beta,
                    "seed": seed,
                    "guards": defense,
                    "attack": attack + shift,
                    "utility": utility + shift,
                }
            )
            rows.append(row)
    return pl.DataFrame(rows)


def test_frontier_compares_defenses_only_within_a_stratum():
    frame = _guards_by_beta()
    # Pooling the non-defense parameter into the arm (the old default) compares betas:
    # no beta=0.5 arm is on that "frontier".
    mixed = defense_frontier(frame, arm=["defense", "policy.beta"])
    assert sorted(mixed.filter(pl.col("pareto"))["policy.beta"].to_list()) == [0.1, 0.1, 0.1]
    frontier = defense_frontier(frame, arm=["defense"], strata=["policy.beta"])
    assert frontier.columns[:2] == ["policy.beta", "defense"]
    assert frontier.select("policy.beta", "defense").rows() == [
        (0.1, "strong"),
        (0.1, "weak"),
        (0.1, "none"),
        (0.5, "strong"),
        (0.5, "weak"),
        (0.5, "none"),
    ]
    assert frontier["pareto"].all()  # each arm trades attack for utility within its beta
    assert frontier.filter(pl.col("undefended"))["policy.beta"].to_list() == [0.1, 0.5]
    by = {(r["policy.beta"], r["defense"]): r for r in frontier.iter_rows(named=True)}
    # Reductions and changes against the undefended arm of the same beta, paired by seed
    # (every seed moves by the same shift, so each paired change is exact).
    strong = by[(0.5, "strong")]
    assert strong["reduction"] == pytest.approx(1 - 0.20 / 0.90, abs=1e-12)
    assert strong["utility_change"] == pytest.approx(0.62 - 0.80, abs=1e-12)
    assert strong["attack_change_mean"] == pytest.approx(0.20 - 0.90, abs=1e-12)
    assert strong["attack_change_low"] == pytest.approx(-0.70, abs=1e-12)
    assert strong["attack_change_high"] == pytest.approx(-0.70, abs=1e-12)
    assert strong["attack_change_n"] == 2
    weak = by[(0.1, "weak")]
    assert weak["reduction"] == pytest.approx(1 - 0.10 / 0.30, abs=1e-12)
    assert weak["attack_change_mean"] == pytest.approx(-0.20, abs=1e-12)
    assert weak["utility_change_mean"] == pytest.approx(-0.02, abs=1e-12)
    assert by[(0.1, "none")]["reduction"] == 0.0


def test_frontier_refuses_to_pool_runs_of_a_parameter_it_was_not_told_about():
    """arm = defense alone on a guards x beta table: two runs per (arm, seed) would be
    pooled as replicates; the frontier says which parameter to name instead."""
    with pytest.raises(ValueError, match=r"have several runs.*name every swept parameter"):
        defense_frontier(_guards_by_beta(), arm=["defense"])


def test_frontier_figure_draws_one_panel_per_stratum(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    frontier = defense_frontier(_guards_by_beta(), arm=["defense"], strata=["policy.beta"])
    fig = defense_frontier_plot(frontier, arm="defense", panel="policy.beta", title="guards x beta")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["policy.beta = 0.1", "policy.beta = 0.5"]
    for ax in axes:
        names = sorted(t.get_text() for t in ax.texts if t.get_text() in ("none", "weak", "strong"))
        assert names == ["none", "strong", "weak"]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "strong",
        "weak",
        "none (undefended)",
        "Pareto frontier",
    ]
    FigureCanvasAgg(fig)
    fig.savefig(tmp_path / "panels.png", dpi=80)
    assert (tmp_path / "panels.png").stat().st_size > 10000
