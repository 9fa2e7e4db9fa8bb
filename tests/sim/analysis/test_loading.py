"""Runs read with only some tables: a table not read is an error, not an absent table."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sim.analysis.defenses import defense_metrics
from sim.analysis.effects import run_actions
from sim.analysis.loading import Run, TableNotReadError, load_run, load_sweep


def test_a_table_not_read_raises_instead_of_reading_as_absent(contagion_run: Run):
    run = load_run(contagion_run.path, tables=("steps", "turnover"))
    assert sorted(run.tables) == ["steps"]
    assert run.steps.equals(contagion_run.steps)
    # turnover was read: the run has none, as for a run read whole.
    assert run.tables.get("turnover") is None and "turnover" not in run.tables
    assert contagion_run.tables.get("turnover") is None
    with pytest.raises(KeyError, match="not in run directory"):
        run.table("turnover")
    # memories and actions were not read: every way of asking says so.
    message = (
        r"table 'actions' was not read \(the run was read with only the tables "
        r"\['steps', 'turnover'\]\)"
    )
    with pytest.raises(TableNotReadError, match=message):
        run.tables.get("actions")
    with pytest.raises(TableNotReadError, match=message):
        _ = "actions" in run.tables
    with pytest.raises(TableNotReadError, match="'memories' was not read"):
        _ = run.memories
    with pytest.raises(TableNotReadError, match="'agents' was not read"):
        run.table("agents")


def test_an_analysis_given_a_run_without_a_table_it_reads_raises(contagion_run: Run):
    """run_actions takes a missing actions table for "no decisions": not a table not read."""
    assert run_actions(contagion_run) is None
    steps_only = load_run(contagion_run.path, tables=("steps",))
    with pytest.raises(TableNotReadError, match="'actions' was not read"):
        run_actions(steps_only)
    without_guards = load_run(contagion_run.path, tables=("steps", "actions", "memories"))
    with pytest.raises(TableNotReadError, match="'guard_decisions' was not read"):
        defense_metrics(without_guards)
    read = load_run(
        contagion_run.path,
        tables=("steps", "actions", "memories", "guard_decisions"),
        columns={"memories": ("memes",)},
    )
    assert read.memories.columns == ["memes"]
    # The same metrics as from the run read whole (NaN where both are NaN).
    assert repr(defense_metrics(read)) == repr(defense_metrics(contagion_run))


def test_load_run_refuses_a_misspelt_table_and_columns_of_a_table_not_read(contagion_run: Run):
    with pytest.raises(ValueError, match=r"tables: \['step'\] are not tables of a run"):
        load_run(contagion_run.path, tables=("step",))
    with pytest.raises(ValueError, match=r"columns: tables \['memories'\] are not among"):
        load_run(contagion_run.path, tables=("steps",), columns={"memories": ("memes",)})
    with pytest.raises(ValueError, match=r"columns: tables \['memories'\] are not among"):
        load_run(contagion_run.path, columns={"memories": ("memes",)})
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        load_run(contagion_run.path, tables=("memories",), columns={"memories": ("nope",)})


def test_a_held_sweep_is_reused_only_when_it_read_what_is_asked(sweep_dir: Path):
    partial = load_sweep(sweep_dir).with_runs(("steps", "memories"), {"memories": ("memes",)})
    assert partial.runs is not None and len(partial.runs) == 12
    assert partial.with_runs(("steps",)) is partial
    assert partial.with_runs(("memories",), {"memories": ("memes",)}) is partial
    with pytest.raises(ValueError, match="holds runs read with only the tables"):
        partial.with_runs(("steps", "agents"))
    with pytest.raises(ValueError, match="holds runs read with only the tables"):
        partial.with_runs(("memories",))  # every column of memories
    with pytest.raises(ValueError, match="holds runs read with only the tables"):
        partial.with_runs()
    whole = load_sweep(sweep_dir).with_runs()
    assert whole.with_runs(("steps", "memories"), {"memories": ("memes",)}) is whole
