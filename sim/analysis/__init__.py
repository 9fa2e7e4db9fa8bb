"""Analysis of spread over run and sweep directories (polars in, polars out).

Modules, one concept each:

* :mod:`sim.analysis.loading` — read run directories and sweep directories;
* :mod:`sim.analysis.prevalence` — prevalence, incidence, times to 10/50/90 %, final size;
* :mod:`sim.analysis.infections` — when and from whom each agent was infected;
* :mod:`sim.analysis.reproduction` — R0, R_eff(t), generation intervals and the R0
  implied by the contagion rule;
* :mod:`sim.analysis.cascades` — transmission trees: depth, breadth, structural virality;
* :mod:`sim.analysis.mutation` — drift of carrying entries from the seeded statement;
* :mod:`sim.analysis.fits` — SI / SIS / SIR curve fits with goodness of fit;
* :mod:`sim.analysis.summary` — the scalar metrics of one run;
* :mod:`sim.analysis.comparison` — runs side by side (LLM vs contagion);
* :mod:`sim.analysis.aggregate` — replicate seeds with confidence intervals, sweeps.
* :mod:`sim.analysis.survival` — Kaplan-Meier curves and medians of right-censored
  times (a time to a fraction that some seeds never reached).
* :mod:`sim.analysis.clustered` — stratified cluster resampling and cluster-robust
  standard errors for decisions grouped by agent or run.
* :mod:`sim.analysis.effects` — the effect of exposure on decisions, with controls.
* :mod:`sim.analysis.personas` — decision outcomes by persona, exposed and unexposed.
* :mod:`sim.analysis.values` — value-drift questionnaires: dimension scores over time and
  the effect of memory (audit: with minus without memories).

Every public name is re-exported here, so an analysis imports in one line::

    from sim.analysis import load_run, prevalence, reproduction_number, run_metrics

Importing the package loads numpy, polars and networkx, nothing heavier (no plotting:
figures are :mod:`sim.plots`). The simulation never imports this package: it reads the
tables a run wrote.
"""

from __future__ import annotations

from sim.analysis.aggregate import (
    aggregate,
    aggregate_metrics,
    confidence_interval,
    curve_bands,
    run_curve,
    sweep_curves,
    sweep_metrics,
    wilson_interval,
)
from sim.analysis.cascades import (
    cascade_summary,
    cascades,
    structural_virality,
    tree_edges,
    tree_metrics,
)
from sim.analysis.clustered import (
    ShareInterval,
    ratio_mean_se,
    share_interval,
    stratified_weights,
)
from sim.analysis.comparison import (
    compare_runs,
    prevalence_side_by_side,
    same_layout,
)
from sim.analysis.defenses import (
    arms_and_strata,
    attack_chance,
    benign_meme_ids,
    defense_frontier,
    defense_metrics,
    defense_params,
    harmful_meme,
    has_guard_arms,
    has_harmful_meme,
    is_guard_key,
    sweep_defense_metrics,
    target_odds,
)
from sim.analysis.effects import (
    decision_arms,
    dose_response,
    effect_by_distance,
    effect_lines,
    exposure_effects,
    funnel_counts,
    load_actions,
    own_doses,
    placebo_of,
    pooled_effects,
    read_actions,
    run_actions,
    run_effects,
    seed_distances,
    sweep_effects,
)
from sim.analysis.fits import (
    FitResult,
    NotIdentifiableError,
    fit_prevalence,
    fit_si,
    fit_si_discrete,
    fit_sir,
    fit_sis,
    si_curve,
    si_discrete_curve,
    sir_curves,
    sis_curve,
)
from sim.analysis.forks import (
    fork_comparison,
    fork_parent,
)
from sim.analysis.infections import (
    infection_times,
)
from sim.analysis.loading import (
    REQUIRED_TABLES,
    Run,
    Sweep,
    TableNotReadError,
    find_run_dirs,
    hive_params,
    load_run,
    load_sweep,
)
from sim.analysis.mutation import (
    drift_by_hop,
    entry_drift,
    entry_hops,
    levenshtein,
    normalized_edit_distance,
    reference_texts,
    token_jaccard_distance,
    tokens,
)
from sim.analysis.personas import (
    PERSONA_ARMS,
    PERSONA_COLUMNS,
    expressed_by_persona,
    persona_text_table,
    pooled_persona_outcomes,
    run_persona_outcomes,
    sweep_persona_outcomes,
    with_personas,
)
from sim.analysis.prevalence import (
    check_state,
    final_size,
    prevalence,
    states_at,
    time_to_fraction,
)
from sim.analysis.recovery import (
    RECOVERED,
    Recoveries,
)
from sim.analysis.reproduction import (
    effective_reproduction,
    generation_intervals,
    implied_reproduction_number,
    implied_secondaries,
    reproduction_number,
    secondary_infections,
)
from sim.analysis.summary import (
    METRICS,
    run_metrics,
)
from sim.analysis.survival import kaplan_meier, km_median
from sim.analysis.values import (
    dimension_scores,
    memory_effect,
    memory_effect_summary,
    value_drift,
)

__all__ = [
    "METRICS",
    "PERSONA_ARMS",
    "PERSONA_COLUMNS",
    "RECOVERED",
    "REQUIRED_TABLES",
    "FitResult",
    "NotIdentifiableError",
    "Recoveries",
    "Run",
    "ShareInterval",
    "Sweep",
    "TableNotReadError",
    "aggregate",
    "aggregate_metrics",
    "arms_and_strata",
    "attack_chance",
    "benign_meme_ids",
    "cascade_summary",
    "cascades",
    "check_state",
    "compare_runs",
    "confidence_interval",
    "curve_bands",
    "decision_arms",
    "defense_frontier",
    "defense_metrics",
    "defense_params",
    "dimension_scores",
    "dose_response",
    "drift_by_hop",
    "effect_by_distance",
    "effect_lines",
    "effective_reproduction",
    "entry_drift",
    "entry_hops",
    "exposure_effects",
    "expressed_by_persona",
    "final_size",
    "find_run_dirs",
    "fit_prevalence",
    "fit_si",
    "fit_si_discrete",
    "fit_sir",
    "fit_sis",
    "fork_comparison",
    "fork_parent",
    "funnel_counts",
    "generation_intervals",
    "harmful_meme",
    "has_guard_arms",
    "has_harmful_meme",
    "hive_params",
    "implied_reproduction_number",
    "implied_secondaries",
    "infection_times",
    "is_guard_key",
    "kaplan_meier",
    "km_median",
    "levenshtein",
    "load_actions",
    "load_run",
    "load_sweep",
    "memory_effect",
    "memory_effect_summary",
    "normalized_edit_distance",
    "own_doses",
    "persona_text_table",
    "placebo_of",
    "pooled_effects",
    "pooled_persona_outcomes",
    "prevalence",
    "prevalence_side_by_side",
    "ratio_mean_se",
    "read_actions",
    "reference_texts",
    "reproduction_number",
    "run_actions",
    "run_curve",
    "run_effects",
    "run_metrics",
    "run_persona_outcomes",
    "same_layout",
    "secondary_infections",
    "seed_distances",
    "share_interval",
    "si_curve",
    "si_discrete_curve",
    "sir_curves",
    "sis_curve",
    "states_at",
    "stratified_weights",
    "structural_virality",
    "sweep_curves",
    "sweep_defense_metrics",
    "sweep_effects",
    "sweep_metrics",
    "sweep_persona_outcomes",
    "target_odds",
    "time_to_fraction",
    "token_jaccard_distance",
    "tokens",
    "tree_edges",
    "tree_metrics",
    "value_drift",
    "wilson_interval",
    "with_personas",
]
