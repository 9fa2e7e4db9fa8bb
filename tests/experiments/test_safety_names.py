"""Run names, sweep names and grid labels are single safe path components (issue 8.1).

Before the fix, ``name = ".."`` with ``--overwrite`` deleted the parent of ``output_dir``.
"""

from __future__ import annotations

import pytest

from experiments.cli import main
from experiments.config import ConfigError, validate_config
from experiments.names import MAX_NAME_LENGTH, bounded_name, label_problem, name_problem
from experiments.sweep import load_sweep_config

BAD_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "a\\b",
    "-rf",
    ".hidden",
    "a\x00b",
    "a\nb",
    "é",
    "x" * 101,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_run_names_are_refused(small_data, name):
    small_data["name"] = name
    with pytest.raises(ConfigError) as info:
        validate_config(small_data)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("name = ")
    assert any(
        reason in info.value.errors[0]
        for reason in ("must be a single directory name", "must not contain NUL characters")
    )


@pytest.mark.parametrize("name", ["run", "a.b-c_d", "0", "_x", "x" * MAX_NAME_LENGTH])
def test_good_run_names(small_data, name):
    small_data["name"] = name
    assert validate_config(small_data).name == name


def test_dot_dot_name_with_overwrite_deletes_nothing(small_toml, tmp_path, capsys, monkeypatch):
    # The red-team case: the parent of output_dir (here the cwd) held the user's files.
    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "thesis.txt"
    keep.write_text("years of work")
    (tmp_path / "runs").mkdir()
    for name in ('".."', '"."', '"../escape"'):
        code = main(["run", str(small_toml), "--set", f"name={name}", "--overwrite", "--quiet"])
        assert code == 2
        err = capsys.readouterr().err
        assert "name = " in err and "must be a single directory name" in err
        assert "Traceback" not in err
    assert keep.read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "small.toml", "thesis.txt"]
    assert list((tmp_path / "runs").iterdir()) == []


def test_validate_names_the_key_and_exits_2(small_toml, capsys):
    assert main(["validate", str(small_toml), "--set", 'name=".."']) == 2
    assert "name = '..': must be a single directory name" in capsys.readouterr().err


SWEEP = """\
[sweep]
name = "s"
base = "small.toml"

[sweep.grid]
"policy.beta" = [0.1, 0.2]
"""


@pytest.fixture
def sweep_file(small_toml):
    path = small_toml.parent / "sweep.toml"
    path.write_text(SWEEP)
    return path


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "x" * 101])
def test_bad_sweep_names_are_refused(sweep_file, name):
    with pytest.raises(ConfigError) as info:
        load_sweep_config(sweep_file, [f"sweep.name={name!r}".replace("'", '"')])
    assert info.value.errors[0].startswith("sweep.name = ")


@pytest.mark.parametrize("label", ["..", ".x", "a/b", "a b", "x" * 101, ""])
def test_bad_grid_labels_are_refused(sweep_file, label):
    with pytest.raises(ConfigError) as info:
        load_sweep_config(
            sweep_file,
            [f'sweep.grid."policy.beta"={{ values = [0.1, 0.2], labels = ["ok", "{label}"] }}'],
        )
    assert len(info.value.errors) == 1
    assert "cannot name a directory" in info.value.errors[0]


def test_bad_grid_column_is_refused(sweep_file):
    with pytest.raises(ConfigError) as info:
        load_sweep_config(sweep_file, ['sweep.grid."policy.beta"={ values = [0.1], name = ".." }'])
    assert info.value.errors[0].startswith("sweep.grid.\"policy.beta\".name = '..'")


def test_long_generated_run_names_are_shortened_and_distinct(sweep_file):
    column = "c" * 90
    sweep = load_sweep_config(
        sweep_file,
        [f'sweep.grid."policy.beta"={{ values = [0.1, 0.2], name = "{column}" }}'],
    )
    names = [run.config.name for run in sweep.runs]
    assert all(len(n) <= MAX_NAME_LENGTH and name_problem(n) is None for n in names)
    assert len(set(names)) == 2
    assert bounded_name(["s", "a-1"]) == "s__a-1"


def test_problem_helpers():
    assert name_problem("..") is not None and name_problem("ok") is None
    assert label_problem("-0.5") is None and label_problem("..") is not None
