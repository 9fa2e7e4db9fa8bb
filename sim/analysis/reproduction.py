"""Reproduction numbers and generation intervals from the transmission tree.

Definitions (nodes and ``infectious_from`` as in :mod:`sim.analysis.infections`):

* secondary infections of agent ``a`` = the infection edges whose ``source_agent`` is
  ``a``; with a ``window`` of ``W`` steps, only those whose step lies in
  ``[infectious_from(a), infectious_from(a) + W)``.
* R0 = the mean number of secondary infections over the agents of the early generations
  ``0..G`` (``G = generations``, default 0: the seeds, or the environment for a meme
  seeded into a bank, and spontaneous carriers). Over the whole run (``window=None``)
  this is the classical "mean offspring of the first generations"; with persistent
  entries (SI-like spread) it grows with the run length, so a short ``window`` is the
  quantity that compares with the contagion rule (see :func:`implied_secondaries`).
* R_eff(t) = the mean number of secondary infections (whole run) of the agents infected
  at step ``t`` (right-censored: late infectors have had less time). By generation
  cohort (``by_generation=True``) the agents infected at ``t`` are split by their
  generation, so seeds (generation 0) and their offspring infected in the same step are
  not averaged together.

Censoring. Every count is cut at the end of the recorded run: an infector's later
offspring are never seen. For whole-run counts this biases R_eff(t) down more the later
``t`` is. For a ``window`` of ``W`` steps, an infector is *censored* when its window
``[infectious_from, infectious_from + W)`` reaches past the last recorded step ``T``
(``infectious_from + W - 1 > T``): its count covers fewer than ``W`` steps, so including
it biases windowed R0 down. Pass ``last_step = T`` to :func:`reproduction_number` to drop
censored infectors (it reports how many it dropped); without it they are counted as
observed.
* generation interval of an infection edge = its step minus the step at which its source
  acquired the meme (seeds and the environment: the injection step).
"""

from __future__ import annotations

import polars as pl

from sim.analysis.infections import ENVIRONMENT, infection_times


def secondary_infections(
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    memories: pl.DataFrame | None = None,
    *,
    window: int | None = None,
) -> pl.DataFrame:
    """Every node of the transmission tree with its number of secondary infections.

    Args:
        transmissions: The ``transmissions`` table.
        agents: The ``agents`` table.
        memories: The ``memories`` table (optional, see :func:`infection_times`).
        window: Count only infections in the first ``window`` steps from
            ``infectious_from`` (None: the whole run).

    Returns:
        The columns of :func:`infection_times` plus ``secondaries`` (Int64).
    """
    if window is not None and window < 1:
        raise ValueError(f"window = {window}: must be a positive number of steps or None")
    nodes = infection_times(transmissions, agents, memories)
    edges = transmissions.filter(pl.col("is_infection")).select(
        "meme_id",
        pl.col("source_agent").cast(pl.Int64).alias("agent_id"),
        pl.col("step").cast(pl.Int64).alias("edge_step"),
        pl.col("target_agent").cast(pl.Int64),
    )
    # An infection edge counts only if its target's tree node is this edge (not a
    # spontaneous acquisition that came first).
    edges = edges.join(
        nodes.filter(pl.col("origin") == "transmission").select(
            "meme_id", pl.col("agent_id").alias("target_agent"), "source_agent"
        ),
        on=["meme_id", "target_agent"],
        how="inner",
    ).filter(pl.col("source_agent") == pl.col("agent_id"))
    joined = edges.join(
        nodes.select("meme_id", "agent_id", "infectious_from"), on=["meme_id", "agent_id"]
    )
    if window is not None:
        joined = joined.filter(
            (pl.col("edge_step") >= pl.col("infectious_from"))
            & (pl.col("edge_step") < pl.col("infectious_from") + window)
        )
    counts = joined.group_by("meme_id", "agent_id").agg(
        pl.len().cast(pl.Int64).alias("secondaries")
    )
    return (
        nodes.join(counts, on=["meme_id", "agent_id"], how="left", maintain_order="left")
        .with_columns(pl.col("secondaries").fill_null(0))
        .sort("meme_id", "step", "agent_id")
    )


def reproduction_number(
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    memories: pl.DataFrame | None = None,
    *,
    generations: int = 0,
    window: int | None = None,
    last_step: int | None = None,
) -> pl.DataFrame:
    """R0 per meme: mean secondary infections of the agents of generations ``0..generations``.

    Censoring (see the module docstring): the counts stop at the end of the recorded run.
    With a ``window`` W, an infector whose window reaches past the last step
    (``infectious_from + W - 1 > last_step``) has been observed for fewer than W steps;
    by default it is still counted (biasing R0 down); pass ``last_step`` to drop it.

    Args:
        transmissions: The ``transmissions`` table.
        agents: The ``agents`` table.
        memories: The ``memories`` table (optional).
        generations: The last early generation ``G`` (0: seeds only).
        window: Count secondaries within this many steps of becoming infectious (None: the
            whole run).
        last_step: The last recorded step of the run (e.g. ``steps["step"].max()``); with
            a ``window``, infectors whose window is censored by it are left out.

    Returns:
        Columns ``meme_id, r0, r0_se`` (standard error of the mean; null for one
        infector), ``n_infectors``, ``n_secondaries``, ``n_censored`` (infectors left
        out as censored; 0 unless ``window`` and ``last_step`` are given).
    """
    if generations < 0:
        raise ValueError(f"generations = {generations}: must be >= 0")
    sec = secondary_infections(transmissions, agents, memories, window=window).filter(
        pl.col("generation") <= generations
    )
    censored = pl.lit(False)
    if window is not None and last_step is not None:
        censored = pl.col("infectious_from") + window - 1 > last_step
    sec = sec.with_columns(censored.alias("censored"))
    return (
        sec.group_by("meme_id")
        .agg(
            pl.col("secondaries").filter(~pl.col("censored")).mean().alias("r0"),
            (
                pl.col("secondaries").filter(~pl.col("censored")).std()
                / (~pl.col("censored")).sum().sqrt()
            ).alias("r0_se"),
            (~pl.col("censored")).sum().cast(pl.Int64).alias("n_infectors"),
            pl.col("secondaries").filter(~pl.col("censored")).sum().alias("n_secondaries"),
            pl.col("censored").sum().cast(pl.Int64).alias("n_censored"),
        )
        .sort("meme_id")
    )


def effective_reproduction(
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    memories: pl.DataFrame | None = None,
    *,
    by_generation: bool = False,
) -> pl.DataFrame:
    """R_eff(t) per meme: mean secondary infections of the agents infected at step t.

    Whole-run counts, right-censored by the end of the run (see the module docstring).

    Args:
        transmissions: The ``transmissions`` table.
        agents: The ``agents`` table.
        memories: The ``memories`` table (optional).
        by_generation: Split each step's agents into generation cohorts (one row per
            step and generation), so seeds and the offspring infected in the same step
            are not averaged together.

    Returns:
        Columns ``meme_id, step, r_eff, n_infected`` (steps with at least one new node);
        with ``by_generation``, ``meme_id, step, generation, r_eff, n_infected``.
    """
    sec = secondary_infections(transmissions, agents, memories)
    keys = ["meme_id", "step", "generation"] if by_generation else ["meme_id", "step"]
    return (
        sec.group_by(keys)
        .agg(
            pl.col("secondaries").mean().alias("r_eff"),
            pl.len().cast(pl.Int64).alias("n_infected"),
        )
        .sort(keys)
    )


def generation_intervals(
    transmissions: pl.DataFrame, agents: pl.DataFrame, memories: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per tree edge: the step of infection minus the source's own infection step.

    Returns:
        Columns ``meme_id, source_agent, agent_id, step, source_step, interval``.
    """
    nodes = infection_times(transmissions, agents, memories)
    children = nodes.filter(pl.col("source_agent").is_not_null())
    sources = nodes.select(
        "meme_id", pl.col("agent_id").alias("source_agent"), pl.col("step").alias("source_step")
    )
    return (
        children.select("meme_id", "source_agent", "agent_id", "step")
        .join(sources, on=["meme_id", "source_agent"], how="left", maintain_order="left")
        .with_columns((pl.col("step") - pl.col("source_step")).alias("interval"))
        .sort("meme_id", "step", "agent_id")
    )


def implied_secondaries(
    memories: pl.DataFrame,
    bank_members: pl.DataFrame,
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    beta: float,
    *,
    generations: int = 0,
    window: int = 1,
) -> pl.DataFrame:
    """Secondary infections the independent-cascade rule implies for each early infector.

    Under the contagion rule every (susceptible reader, carrying entry by someone else in
    its context) pair at a step is one trial that succeeds with probability ``beta``. For
    an infector ``a`` and each step ``t`` of its window
    ``[infectious_from(a), infectious_from(a) + window)``, count the pairs (reader ``j``,
    entry ``e``) with: ``e`` authored by ``a`` and carrying the meme; ``e`` visible at
    ``t`` (written before ``t``, or a seed entry written at ``t``; not removed before
    ``t``); ``j != a`` may read ``e``'s bank; ``j`` not an adopter when the rule is applied at ``t``
    (seeded adopters are adopters from their seeding step on, since seeds are injected
    before retrieval; others from the step after their first ``adopter`` event). The implied
    expected secondaries are ``beta * exposures``.

    This is exact to first order in ``beta``: it assumes retrieval returns every visible
    entry of the reader's banks (``k`` at least their contents, as in the SI setups) and
    ignores competition between infectors for the same reader (a reader with ``m``
    exposures adopts with ``1 - (1 - beta)^m`` and credits one of them uniformly, so each
    exposure is credited with ``(1 - (1 - beta)^m) / m <= beta``). For one seed and
    ``window = 1`` it is exact.

    Returns:
        One row per early infector (generations ``0..generations``): ``meme_id,
        agent_id, generation, infectious_from, exposures, expected``.
    """
    if not 0 <= beta <= 1:
        raise ValueError(f"beta = {beta}: must be a probability in [0, 1]")
    if window < 1:
        raise ValueError(f"window = {window}: must be a positive number of steps")
    nodes = infection_times(transmissions, agents, memories).filter(
        pl.col("generation") <= generations
    )
    seeded = agents.filter((pl.col("state") == "seeded") & pl.col("value")).select(
        "meme_id", pl.col("agent_id").cast(pl.Int64).alias("author_id"), pl.col("step")
    )
    entries = (
        memories.select(
            "entry_id",
            pl.col("bank_id").cast(pl.Int64),
            pl.col("author_id").cast(pl.Int64),
            pl.col("step").cast(pl.Int64),
            pl.col("removed_step").cast(pl.Int64),
            pl.col("parents").list.len().alias("n_parents"),
            pl.col("memes").alias("meme_id"),
        )
        .explode("meme_id")
        .drop_nulls("meme_id")
    )
    seed_entries = entries.join(
        seeded.with_columns(pl.col("step").cast(pl.Int64), pl.lit(True).alias("seed_step")),
        on=["meme_id", "author_id", "step"],
        how="left",
        maintain_order="left",
    )
    injected = (pl.col("author_id") == ENVIRONMENT) | (
        pl.col("seed_step").fill_null(False) & (pl.col("n_parents") == 0)
    )
    entries = seed_entries.with_columns(
        pl.when(injected).then(pl.col("step")).otherwise(pl.col("step") + 1).alias("visible_from")
    ).drop("seed_step", "n_parents")
    readers = bank_members.filter(pl.col("can_read")).select(
        pl.col("bank_id").cast(pl.Int64), pl.col("agent_id").cast(pl.Int64).alias("reader")
    )
    # A reader is an adopter from the start of its seeding step (seeds adopt before
    # retrieval) or from the step after it adopted by the rule.
    seeded_readers = seeded.select(
        "meme_id", pl.col("author_id").alias("reader"), pl.col("step").cast(pl.Int64)
    ).with_columns(pl.lit(True).alias("by_seed"))
    adopted = (
        agents.filter((pl.col("state") == "adopter") & pl.col("value"))
        .select(
            "meme_id",
            pl.col("agent_id").cast(pl.Int64).alias("reader"),
            pl.col("step").cast(pl.Int64),
        )
        .join(seeded_readers, on=["meme_id", "reader", "step"], how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("by_seed").fill_null(False))
            .then(pl.col("step"))
            .otherwise(pl.col("step") + 1)
            .alias("adopter_from")
        )
        .group_by("meme_id", "reader")
        .agg(pl.col("adopter_from").min())
    )
    windows = nodes.select(
        "meme_id",
        pl.col("agent_id").alias("author_id"),
        "infectious_from",
        pl.int_ranges("infectious_from", pl.col("infectious_from") + window).alias("t"),
    ).explode("t")
    pairs = (
        windows.join(entries, on=["meme_id", "author_id"])
        .filter(
            (pl.col("visible_from") <= pl.col("t"))
            & ((pl.col("removed_step") < 0) | (pl.col("removed_step") >= pl.col("t")))
        )
        .join(readers, on="bank_id")
        .filter(pl.col("reader") != pl.col("author_id"))
        .join(adopted, on=["meme_id", "reader"], how="left", maintain_order="left")
        .filter(pl.col("adopter_from").is_null() | (pl.col("adopter_from") > pl.col("t")))
        .group_by("meme_id", "author_id")
        .agg(pl.len().cast(pl.Int64).alias("exposures"))
    )
    return (
        nodes.select("meme_id", "agent_id", "generation", "infectious_from")
        .join(
            pairs.rename({"author_id": "agent_id"}),
            on=["meme_id", "agent_id"],
            how="left",
            maintain_order="left",
        )
        .with_columns(pl.col("exposures").fill_null(0))
        .with_columns((pl.col("exposures") * beta).alias("expected"))
        .sort("meme_id", "infectious_from", "agent_id")
    )


def implied_reproduction_number(
    memories: pl.DataFrame,
    bank_members: pl.DataFrame,
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    beta: float,
    *,
    generations: int = 0,
    window: int = 1,
) -> pl.DataFrame:
    """Per meme, the mean of :func:`implied_secondaries` over the early infectors.

    Compare with :func:`reproduction_number` called with the same ``generations`` and
    ``window``.

    Returns:
        Columns ``meme_id, r0_implied, mean_exposures, n_infectors``.
    """
    per = implied_secondaries(
        memories,
        bank_members,
        transmissions,
        agents,
        beta,
        generations=generations,
        window=window,
    )
    return (
        per.group_by("meme_id")
        .agg(
            pl.col("expected").mean().alias("r0_implied"),
            pl.col("exposures").mean().alias("mean_exposures"),
            pl.len().cast(pl.Int64).alias("n_infectors"),
        )
        .sort("meme_id")
    )
