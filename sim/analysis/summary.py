"""The scalar metrics of one run, one row per meme: what comparisons and sweeps aggregate.

Columns of :func:`run_metrics` (definitions in the modules named):

* ``final_size`` (infected ever / n), ``final_adopters`` (adopters at the end / n),
  ``t10``, ``t50``, ``t90`` (first step the adopter prevalence reaches 10/50/90 %) —
  :mod:`sim.analysis.prevalence`;
* ``r0`` (generation 0, whole run), ``r0_window`` (generation 0, first ``window`` steps),
  ``mean_generation_interval`` — :mod:`sim.analysis.reproduction`;
* ``n_cascades``, ``depth``, ``max_breadth``, ``structural_virality`` —
  :mod:`sim.analysis.cascades`;
* ``edit_distance``, ``jaccard_distance`` (mean over carrying entries) —
  :mod:`sim.analysis.mutation`;
* ``si_beta``, ``si_r2``, ``si_rmse`` — the discrete SI fit of :mod:`sim.analysis.fits`
  (null when it cannot be fitted: fewer than 3 steps with adopters, or a curve that is
  not identifiable, with fewer than 3 distinct non-zero values, e.g. no adopter).
"""

from __future__ import annotations

import polars as pl

from sim.analysis.cascades import cascade_summary
from sim.analysis.fits import fit_prevalence
from sim.analysis.loading import Run
from sim.analysis.mutation import entry_drift
from sim.analysis.prevalence import final_size, prevalence, time_to_fraction
from sim.analysis.reproduction import generation_intervals, reproduction_number

#: The metric columns of :func:`run_metrics`, in order.
METRICS = (
    "final_size",
    "final_adopters",
    "t10",
    "t50",
    "t90",
    "r0",
    "r0_window",
    "mean_generation_interval",
    "n_cascades",
    "depth",
    "max_breadth",
    "structural_virality",
    "edit_distance",
    "jaccard_distance",
    "si_beta",
    "si_r2",
    "si_rmse",
)

#: The tables of a run that :func:`run_metrics` reads (with its manifest; and
#: ``bank_members`` for the number of agents of a run whose manifest lacks
#: ``n_agents``, which every run memespread writes has): a run read with
#: ``load_run(..., tables=METRIC_TABLES)`` is all it needs.
METRIC_TABLES = ("steps", "agents", "memories", "transmissions")

#: The columns of :data:`METRIC_TABLES` that :func:`run_metrics` with ``drift=False``
#: reads of the tables it does not read whole: of ``memories``, those that date the
#: environment's seeding (:func:`sim.analysis.infections.infection_times`); with drift
#: it reads the entries' texts and parents too (all of ``memories``).
METRIC_COLUMNS_WITHOUT_DRIFT = {"memories": ("author_id", "step", "memes")}

#: The valid range of each metric, (lowest, highest) with None for unbounded: confidence
#: intervals over seeds are kept inside it (see :mod:`sim.analysis.aggregate`).
METRIC_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "final_size": (0.0, 1.0),
    "final_adopters": (0.0, 1.0),
    "t10": (0.0, None),
    "t50": (0.0, None),
    "t90": (0.0, None),
    "r0": (0.0, None),
    "r0_window": (0.0, None),
    "mean_generation_interval": (0.0, None),
    "n_cascades": (0.0, None),
    "depth": (0.0, None),
    "max_breadth": (0.0, None),
    "structural_virality": (0.0, None),
    "edit_distance": (0.0, 1.0),
    "jaccard_distance": (0.0, 1.0),
    "si_beta": (0.0, 1.0),
    "si_r2": (None, 1.0),
    "si_rmse": (0.0, None),
}


def run_metrics(run: Run, *, window: int = 1, fit: bool = True, drift: bool = True) -> pl.DataFrame:
    """One row per meme with the metrics of the module docstring.

    Args:
        run: A loaded run.
        window: Window (steps) of ``r0_window``.
        fit: Whether to fit the discrete SI curve (the slowest part).
        drift: Whether to measure the drift of carrying entries (``edit_distance``,
            ``jaccard_distance``; null without it): the part that reads the entries'
            texts (the largest column of ``memories``) and compares each with its meme's.

    Returns:
        Columns ``meme_id`` and :data:`METRICS`.
    """
    n = run.n_agents
    prev = prevalence(run.steps, n)
    memes = pl.DataFrame({"meme_id": run.meme_ids}, schema={"meme_id": pl.String})
    infected = final_size(prev, "infected").select("meme_id", "final_size")
    adopters = final_size(prev, "adopter").select(
        "meme_id", pl.col("final_size").alias("final_adopters")
    )
    times = time_to_fraction(prev, (0.1, 0.5, 0.9), "adopter")
    tr, ag, mem = run.transmissions, run.agents, run.memories
    r0 = reproduction_number(tr, ag, mem).select("meme_id", "r0")
    r0w = reproduction_number(tr, ag, mem, window=window).select(
        "meme_id", pl.col("r0").alias("r0_window")
    )
    gi = (
        generation_intervals(tr, ag, mem)
        .group_by("meme_id")
        .agg(pl.col("interval").mean().alias("mean_generation_interval"))
    )
    casc = cascade_summary(tr, ag, mem).select(
        "meme_id", "n_cascades", "depth", "max_breadth", "structural_virality"
    )
    if drift:
        distances = (
            entry_drift(mem, tr, ag, run.seed_texts())
            .group_by("meme_id")
            .agg(
                pl.col("edit_distance").mean(),
                pl.col("jaccard_distance").mean(),
            )
        )
    else:  # (no rows: the joined columns are null)
        distances = pl.DataFrame(
            schema={
                "meme_id": pl.String,
                "edit_distance": pl.Float64,
                "jaccard_distance": pl.Float64,
            }
        )
    rows = []
    for meme_id in run.meme_ids:
        row: dict[str, object] = {"meme_id": meme_id, "si_beta": None, "si_r2": None}
        row["si_rmse"] = None
        if fit:
            try:
                result = fit_prevalence(prev, n, model="si_discrete", meme_id=meme_id)
            except ValueError:
                result = None
            if result is not None:
                row.update(si_beta=result.params["beta"], si_r2=result.r2, si_rmse=result.rmse)
        rows.append(row)
    fits = pl.DataFrame(
        rows,
        schema={
            "meme_id": pl.String,
            "si_beta": pl.Float64,
            "si_r2": pl.Float64,
            "si_rmse": pl.Float64,
        },
    )
    out = memes
    for frame in (infected, adopters, times, r0, r0w, gi, casc, distances, fits):
        out = out.join(frame, on="meme_id", how="left", maintain_order="left")
    return out.select("meme_id", *METRICS)
