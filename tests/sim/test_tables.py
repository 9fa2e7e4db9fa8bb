"""The one list of output tables (sim.tables) matches what runs write."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from experiments.config import validate_config
from experiments.runner import TABLES, run_experiment
from sim.tables import OUTPUT_TABLES, table_names, table_spec


def test_the_list():
    assert TABLES == (
        "steps",
        "agents",
        "memories",
        "transmissions",
        "graph",
        "banks",
        "bank_members",
    )
    assert len(set(table_names())) == len(OUTPUT_TABLES)
    assert table_spec("actions").schema()["expressed"] == pl.Boolean
    # Every table but these two declares its schema once, where it is built.
    assert [t.name for t in OUTPUT_TABLES if t.schema() is None] == ["steps", "contexts"]
    with pytest.raises(KeyError, match="not an output table"):
        table_spec("nope")


def test_a_run_writes_listed_tables_with_their_schemas(tmp_path):
    config = validate_config(
        {
            "name": "tables",
            "steps": 4,
            "graph": {"kind": "ring", "n": 12, "k": 2},
            "banks": {"private": {}, "neighbourhood": {}},
            "policy": {"kind": "contagion", "beta": 1.0},
            "memes": [{"id": "m", "statement": "copy me", "canary": "CANARY-1"}],
            "guards": [{"kind": "rate_limit", "max_writes": 0}],
            "turnover": {"rate": 0.2},
            "checkpoint_every": 0,
        }
    )
    run_experiment(config, tmp_path / "run", progress=False)
    written = {p.name.removesuffix(".parquet") for p in (tmp_path / "run").glob("*.parquet")}
    assert set(TABLES) <= written
    assert written <= set(table_names())
    assert {"guard_decisions", "turnover"} <= written
    for name in sorted(written):
        schema = table_spec(name).schema()
        if schema is not None:
            assert pl.read_parquet_schema(tmp_path / "run" / f"{name}.parquet") == dict(schema), (
                name
            )


def test_the_readme_documents_every_table_and_fixed_column():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Output: the run directory", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = line.split(" | ", 1)
        for name in re.findall(r"`(\w+)\.parquet`", cells[0]):
            rows[name] = cells[1] if len(cells) > 1 else ""
    assert sorted(rows) == sorted(spec.name for spec in OUTPUT_TABLES)
    undocumented = [
        f"{spec.name}.{column}"
        for spec in OUTPUT_TABLES
        for column in spec.schema() or {}
        if f"`{column}`" not in rows[spec.name]
        and column not in ("step", "agent_id")  # the key columns, said in words
    ]
    assert undocumented == []
