"""Guard configs from the command line: bad guards are one-line errors and write nothing."""

from __future__ import annotations

import pytest

from experiments.cli import main


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (['guards=[{ kind = "nope" }]'], "guards.0.kind = 'nope': must be one of 'pattern'"),
        (
            [
                'guards=[{ kind = "review", engine = { kind = "llamacpp", '
                'model_path = "/no.gguf" } }]'
            ],
            "guards.0.engine: the guard's engine cannot be built",
        ),
        (['guards=[{ kind = "consensus" }]'], "the contagion policy has no engine"),
        (['guards=[{ kind = "vaccine", meme = "nope" }]'], "guards.0.meme = 'nope': not a meme"),
        (['guards=[{ kind = "quarantine" }]'], "set exactly one of meme"),
    ],
)
def test_bad_guards_exit_2_and_write_nothing(tmp_path, capsys, overrides, message):
    target = tmp_path / "run"
    args = ["run", "contagion_small", "--run-dir", str(target), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_every_guard_kind_runs_from_a_config(tmp_path):
    guards = (
        '[{ kind = "pattern", pattern = "x" }, { kind = "rate_limit" }, '
        '{ kind = "provenance_trust" }, { kind = "quarantine", meme = "influence", delay = 1 }, '
        '{ kind = "vaccine", meme = "influence", immune = 0.1 }]'
    )
    target = tmp_path / "run"
    args = ["run", "contagion_small", "--run-dir", str(target), "--quiet"]
    assert main([*args, "--set", f"guards={guards}", "--set", "steps=3"]) == 0
    import polars as pl

    steps = pl.read_parquet(target / "steps.parquet")
    for name in ("pattern", "rate_limit", "provenance_trust", "quarantine", "vaccine"):
        assert any(c.startswith(f"guard_{name}_") for c in steps.columns), name
    assert (target / "guard_decisions.parquet").is_file()
