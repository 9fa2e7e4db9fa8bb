"""The quick report: exact summary values and real PNG files."""

from __future__ import annotations

import polars as pl
import pytest

from experiments.config import load_config
from experiments.report import format_table, report, summary_table
from experiments.runner import run_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_summary_table_values():
    steps = pl.DataFrame(
        {
            "step": [0, 1, 2, 0, 1, 2],
            "meme_id": ["a", "a", "a", "b", "b", "b"],
            "exposed": [2, 6, 9, 1, 1, 2],
            "carriers": [1, 4, 8, 1, 1, 1],
            "adopters": [1, 5, 4, 1, 1, 1],
            "transmissions": [0, 3, 4, 0, 0, 0],
            "infections": [0, 3, 3, 0, 0, 0],
            "new_adopters": [1, 4, 0, 1, 0, 0],
        }
    )
    summary = summary_table(steps, n_agents=10)
    assert summary.to_dicts() == [
        {
            "meme_id": "a",
            "steps": 3,
            "exposed": 9,
            "carriers": 8,
            "adopters": 4,
            "adopter_share": 0.4,
            "peak_adopters": 5,
            "peak_step": 1,
            "half_step": 1,
            "transmissions": 7,
            "infections": 6,
        },
        {
            "meme_id": "b",
            "steps": 3,
            "exposed": 2,
            "carriers": 1,
            "adopters": 1,
            "adopter_share": 0.1,
            "peak_adopters": 1,
            "peak_step": 0,
            "half_step": None,
            "transmissions": 0,
            "infections": 0,
        },
    ]
    text = format_table(summary.select("meme_id", "half_step"))
    assert text.splitlines() == [
        "meme_id  half_step",
        "-------  ---------",
        "      a          1",
        "      b          -",
    ]


def test_report_writes_pngs_and_summary(small_toml, tmp_path):
    result = run_experiment(load_config(small_toml), tmp_path / "run", progress=False)
    made = report(tmp_path / "run")
    assert [p.name for p in made.figures] == ["prevalence.png", "transmissions.png"]
    for path in made.figures:
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    saved = pl.read_csv(tmp_path / "run" / "report" / "summary.csv")
    last = result.steps.filter(pl.col("step") == 5)
    assert saved["adopters"].to_list() == last["adopters"].to_list()
    assert saved["transmissions"].to_list() == [int(result.steps["transmissions"].sum())]


def test_report_of_an_unfinished_run(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="has not finished"):
        report(tmp_path)
