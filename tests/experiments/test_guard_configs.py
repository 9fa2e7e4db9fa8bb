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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ['guards=[{ kind = "consensus", lessons_bank = "lessons" }]'],
            "guards.0.lessons_bank = 'lessons': the layout has no lessons layer "
            "(layers: ['private', 'neighbourhood']); add [banks.lessons]",
        ),
        (
            ["banks.lessons={}", 'guards=[{ kind = "consensus", lessons_bank = "private:0" }]'],
            "guards.0.lessons_bank = 'private:0': not a lessons bank (a private bank, which "
            "agents may write); add [banks.lessons] and set lessons_bank = 'lessons'",
        ),
    ],
)
def test_lessons_bank_must_be_a_lessons_layer(capsys, overrides, message):
    args = ["validate", "contagion_small"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_shipped_defenses_llm_config_validates_with_consensus_and_lessons(capsys):
    consensus = 'guards=[{ kind = "consensus", judges = 3, related = 3, lessons_bank = "lessons" }]'
    assert main(["validate", "defenses_llm"]) == 0
    assert main(["validate", "defenses_llm", "--set", consensus]) == 0
    assert "valid run config" in capsys.readouterr().out
