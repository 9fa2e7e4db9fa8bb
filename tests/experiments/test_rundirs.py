"""Run/sweep directory ownership: what the tool recognises as its own, what it refuses."""

from __future__ import annotations

import json
import os

import pytest

from experiments.rundirs import (
    Plan,
    RunDirError,
    is_run_dir,
    is_sweep_dir,
    plan_target,
    read_json_object,
    replace_dir_atomically,
    staged_dir,
    staging_dir,
)


def _run(path, **extra):
    path.mkdir(parents=True)
    manifest = {"tool": "memespread", "status": "complete", "config": {}, **extra}
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "steps.parquet").write_bytes(b"old")
    return path


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"tool": "memespread", "status": "complete"}', True),
        ('{"tool": "other", "status": "complete"}', False),
        ("[]", False),
        ("{truncated", False),
        ("", False),
        (b"\xff\xfe\x00binary", False),
        # A manifest written before the marker existed is recognised by its shape.
        ('{"config": {}, "status": "failed", "packages": {}, "steps_completed": 3}', True),
        ('{"config": {}, "status": "failed"}', False),
    ],
)
def test_is_run_dir_reads_the_marker(tmp_path, content, expected):
    path = tmp_path / "r"
    path.mkdir()
    data = content.encode() if isinstance(content, str) else content
    (path / "manifest.json").write_bytes(data)
    assert is_run_dir(path) is expected
    assert is_sweep_dir(path) is False


def test_is_sweep_dir_and_missing_markers(tmp_path):
    sweep = tmp_path / "s"
    sweep.mkdir()
    (sweep / "sweep.json").write_text('{"tool": "memespread", "sweep": {}, "n_runs": 1}')
    assert is_sweep_dir(sweep) and not is_run_dir(sweep)
    assert not is_run_dir(tmp_path / "absent") and not is_sweep_dir(tmp_path / "absent")
    assert read_json_object(tmp_path / "absent.json") is None
    (tmp_path / "dir.json").mkdir()
    assert read_json_object(tmp_path / "dir.json") is None


def test_plan_creates_absent_or_empty_dirs(tmp_path):
    assert plan_target(tmp_path / "new", overwrite=False, kind="run") is Plan.CREATE
    (tmp_path / "empty").mkdir()
    assert plan_target(tmp_path / "empty", overwrite=True, kind="run") is Plan.CREATE


def test_plan_replaces_only_our_runs_and_only_with_overwrite(tmp_path):
    run = _run(tmp_path / "run")
    assert plan_target(run, overwrite=True, kind="run") is Plan.REPLACE
    with pytest.raises(RunDirError, match="already exists; pass overwrite=True"):
        plan_target(run, overwrite=False, kind="run")
    # A run is not a sweep: a sweep never replaces it.
    with pytest.raises(RunDirError, match="holds a memespread run, not a sweep"):
        plan_target(run, overwrite=True, kind="sweep")


def test_plan_refuses_a_foreign_directory_even_with_overwrite(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match="is not a memespread run directory"):
            plan_target(thesis, overwrite=overwrite, kind="run")
    assert (thesis / "chapter1.tex").read_text() == "precious"


def test_plan_refuses_to_replace_a_run_holding_files_the_tool_did_not_write(tmp_path):
    """--overwrite deletes the old run directory whole: never with a researcher's files."""
    run = _run(tmp_path / "run")
    for name in ("run.log", ".memespread.lock", "completions-guards.review.jsonl"):
        (run / name).write_text("")
    (run / ".steps.parquet.ab12cd.tmp").write_bytes(b"")  # a killed atomic write's
    (run / "checkpoints" / "step-000002").mkdir(parents=True)
    (run / "checkpoints" / ".tmp-x1y2").mkdir()
    (run / "report").mkdir()
    (run / "report" / "summary.csv").write_text("meme_id")
    assert plan_target(run, overwrite=True, kind="run") is Plan.REPLACE
    (run / "notes.txt").write_text("precious")
    (run / "report" / "mine.png").write_bytes(b"png")
    (run / "analysis").mkdir()
    (run / "checkpoints" / "keep.txt").write_text("mine")
    os.symlink(tmp_path / "elsewhere", run / "steps-link.parquet")
    before = _files(tmp_path)
    with pytest.raises(RunDirError) as info:
        plan_target(run, overwrite=True, kind="run")
    assert str(info.value) == (
        f"run directory {run} holds files memespread did not write (analysis, "
        "checkpoints/keep.txt, notes.txt, report/mine.png, steps-link.parquet); --overwrite "
        "replaces the whole directory and would delete them: move them out of it"
    )
    assert _files(tmp_path) == before


def test_a_file_saved_into_a_run_while_it_is_replaced_keeps_both(tmp_path):
    """A file that appears in the old run during the new one stops the swap, losing nothing."""
    run = _run(tmp_path / "run")
    with (
        pytest.raises(RunDirError, match="the old run was left as it was") as info,
        staged_dir(run, Plan.REPLACE) as work,
    ):
        (work / "manifest.json").write_text('{"tool": "memespread", "status": "complete"}')
        (run / "notes.txt").write_text("saved meanwhile")
    assert (run / "notes.txt").read_text() == "saved meanwhile"
    assert (run / "steps.parquet").read_bytes() == b"old"
    assert str(info.value).endswith(f"the new one is in {work}")
    assert (work / "manifest.json").is_file()


def test_plan_refuses_the_root_and_the_parent(tmp_path, monkeypatch):
    with pytest.raises(RunDirError, match="it has no name"):
        plan_target("/", overwrite=True, kind="run")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(RunDirError, match=r"cannot end in '\.\.'"):
        plan_target("..", overwrite=True, kind="run")
    assert work.is_dir()


def test_plan_of_a_file_is_an_io_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a directory"):
        plan_target(tmp_path / "f", overwrite=True, kind="run")


def test_replace_swaps_in_the_new_dir_and_deletes_only_the_old(tmp_path):
    old = _run(tmp_path / "run")
    (tmp_path / "neighbour.txt").write_text("keep")
    new = staging_dir(old)
    assert new.parent == tmp_path and new.name.startswith(".run.new-")
    (new / "manifest.json").write_text('{"tool": "memespread", "status": "complete"}')
    assert replace_dir_atomically(new, old) == old
    assert (old / "manifest.json").read_text() == '{"tool": "memespread", "status": "complete"}'
    assert not (old / "steps.parquet").exists()
    assert _files(tmp_path) == ["neighbour.txt", "run", "run/manifest.json"]


def test_replace_into_an_absent_target_renames(tmp_path):
    new = staging_dir(tmp_path / "deep" / "run")
    (new / "x").write_text("1")
    replace_dir_atomically(new, tmp_path / "deep" / "run")
    assert _files(tmp_path) == ["deep", "deep/run", "deep/run/x"]


def test_staging_dir_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        made = staging_dir(tmp_path / "run")
    finally:
        os.umask(old)
    assert made.stat().st_mode & 0o777 == 0o750


def test_a_run_given_as_dot_or_ending_in_dotdot_is_refused_before_running(tmp_path, monkeypatch):
    """Renaming '.' fails (EBUSY) only at the swap, after the run: refuse it up front."""
    _run(tmp_path / "run")
    (tmp_path / "run" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(RunDirError) as info:
        plan_target(".", overwrite=True, kind="run")
    assert str(info.value) == (
        f".: a run directory given as '.' cannot be replaced; give it by its name "
        f"({tmp_path / 'run'}) to --overwrite it"
    )
    for overwrite in (False, True):
        with pytest.raises(RunDirError) as info:
            plan_target("sub/..", overwrite=overwrite, kind="run")
        assert str(info.value) == (
            "sub/..: a run directory path cannot end in '..'; give the directory by its "
            f"name ({tmp_path / 'run'})"
        )
    # An absent x/.. would be created by making x first: refused, nothing made.
    with pytest.raises(RunDirError, match=r"cannot end in '\.\.'"):
        plan_target("new/..", overwrite=False, kind="run")
    assert not (tmp_path / "run" / "new").exists()
    (tmp_path / "run" / "sub").rmdir()  # not the tool's: --overwrite would refuse the run
    assert plan_target("../run", overwrite=True, kind="run") is Plan.REPLACE
    with pytest.raises(RunDirError, match="already exists"):  # without --overwrite as before
        plan_target(".", overwrite=False, kind="run")


def test_a_swap_that_cannot_move_the_old_dir_leaves_no_holder(tmp_path, monkeypatch):
    old = _run(tmp_path / "run")
    new = _run(tmp_path / ".run.new-x", status="new")
    monkeypatch.chdir(old)
    with pytest.raises(OSError):
        replace_dir_atomically(new, ".")  # the kernel refuses to rename "."
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.new-x", "run"]
    assert _files(old) == ["manifest.json", "steps.parquet"]
