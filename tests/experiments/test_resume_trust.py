"""Resume refuses edited, corrupt or foreign state and cleans temporary files (issue 8.4, 8.9)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.config import load_config
from experiments.manifest import ManifestError, read_manifest, read_manifest_if_any
from experiments.resume import resume_run
from experiments.runner import CHECKPOINTS_DIR, run_experiment
from sim.checkpoint import CheckpointError, latest_checkpoint, read_checkpoint_state


def _interrupted_run(small_toml: Path, run_dir: Path, overrides: list[str] | None = None) -> Path:
    """A run of 6 steps with a checkpoint at step 2, then marked as killed at step 4."""
    config = load_config(small_toml, ["checkpoint_every=2", *(overrides or [])])
    run_experiment(config, run_dir, progress=False)
    # Make it look killed after step 4: manifest "running", the checkpoint of step 4.
    from experiments.manifest import config_binding
    from experiments.runner import build_model
    from sim.checkpoint import save_checkpoint

    model = build_model(config)
    for _ in range(4):
        model.step()
    save_checkpoint(model, run_dir / CHECKPOINTS_DIR, binding=config_binding(config))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(status="running", steps_completed=4)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    for table in run_dir.glob("*.parquet"):
        table.unlink()
    return run_dir


def _edit_manifest(run_dir: Path, edit) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    edit(manifest)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def test_an_intact_run_resumes(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    result = resume_run(run_dir, progress=False)
    assert result.manifest["status"] == "complete"
    assert result.manifest["resumes"][0]["from_step"] == 4
    assert result.steps["step"].unique().sort().to_list() == list(range(6))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "not a run manifest (a JSON list, not an object)"),
        ('{"status": "running"', "not valid JSON"),
        ("", "not valid JSON"),
        ('{"config": {}, "status": "odd", "steps_completed": 0}', "status = 'odd'"),
        ('{"config": {}, "status": "running", "steps_completed": "x"}', "steps_completed = 'x'"),
    ],
)
def test_corrupt_manifests_give_one_line_and_exit_2(tmp_path, capsys, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert main(["resume", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_a_run_directory_that_does_not_exist_is_called_so(tmp_path, capsys):
    """Not "no manifest.json", which reads as if the directory were there."""
    missing = tmp_path / "absent"
    for command in (["resume", str(missing)], ["fork", str(missing), "--at", "1"]):
        assert main(command) == 2
        assert (
            capsys.readouterr().err
            == f"error: {missing}: not a run directory (it does not exist)\n"
        )
    assert main(["report", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: not a run directory (it does not exist)\n"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"not a run directory \(no manifest.json\)"):
        read_manifest(tmp_path / "empty")


def test_a_sweep_directory_given_to_resume_or_fork_names_one_of_its_runs(
    small_toml, tmp_path, capsys
):
    """Not "no manifest.json": a sweep is finished by rerunning it, its runs are below it."""
    from experiments.sweep import load_sweep_config, run_sweep

    (tmp_path / "sweep.toml").write_text(
        'steps = 2\n[sweep]\nname = "s"\nbase = "small.toml"\nseeds = [1]\n'
        '[sweep.grid]\n"policy.beta" = [0.1, 0.5]\n'
    )
    sweep_dir = tmp_path / "s"
    run_sweep(load_sweep_config(tmp_path / "sweep.toml"), sweep_dir, progress=False)
    for command in (["resume", str(sweep_dir)], ["fork", str(sweep_dir), "--at", "1"]):
        assert main(command) == 2
        assert capsys.readouterr().err == (
            f"error: {sweep_dir} is a sweep directory, not a run; give one of its runs, e.g. "
            f"{sweep_dir}/runs/policy.beta=0.1/seed=1 (all in {sweep_dir}/index.parquet); "
            "rerunning the sweep finishes an unfinished one\n"
        )


def test_describing_a_directory_tolerates_what_the_reader_refuses(small_toml, tmp_path):
    assert read_manifest_if_any(tmp_path / "absent") is None
    (tmp_path / "manifest.json").write_text('{"config": {}, "status": "odd", "steps_completed": 0}')
    assert read_manifest_if_any(tmp_path) is None  # read_manifest raises (test above)
    run_dir = tmp_path / "run"
    run_experiment(load_config(small_toml), run_dir, progress=False)
    assert read_manifest_if_any(run_dir) == read_manifest(run_dir)
    assert read_manifest_if_any(run_dir)["status"] == "complete"


def test_binary_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_bytes(bytes(range(256)))
    assert main(["resume", str(tmp_path), "--quiet"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_edited_config_in_the_manifest_is_refused(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    _edit_manifest(run_dir, lambda m: m["config"]["policy"].update(beta=0.9))
    with pytest.raises(ManifestError, match="no longer matches config_sha256"):
        resume_run(run_dir, progress=False)


def test_edited_seed_in_the_manifest_is_refused(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    _edit_manifest(run_dir, lambda m: m.update(seed=99))
    with pytest.raises(ManifestError, match=r"seed = 99 differs from config\.seed = 5"):
        resume_run(run_dir, progress=False)


def test_edited_config_and_hash_meet_the_checkpoint_binding(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    from experiments.manifest import config_sha256

    def edit(manifest):
        manifest["config"]["policy"]["beta"] = 0.9
        manifest["config_sha256"] = config_sha256(manifest["config"])

    _edit_manifest(run_dir, edit)
    with pytest.raises(ManifestError, match="made with another config than the manifest's"):
        resume_run(run_dir, progress=False)


def test_checkpoint_of_another_run_is_refused(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    other = _interrupted_run(small_toml, tmp_path / "o", ["policy.beta=0.9"])
    shutil.rmtree(run_dir / CHECKPOINTS_DIR)
    shutil.copytree(other / CHECKPOINTS_DIR, run_dir / CHECKPOINTS_DIR)
    with pytest.raises(ManifestError, match="made with another config"):
        resume_run(run_dir, progress=False)


def test_edited_step_count_in_the_checkpoint_is_refused(small_toml, tmp_path, capsys):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS_DIR)
    state = json.loads((checkpoint / "state.json").read_text())
    state["steps"] = 3
    (checkpoint / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="does not match its digest"):
        read_checkpoint_state(checkpoint)
    assert main(["resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "does not match its digest" in err and "delete" in err and "Traceback" not in err


def test_renamed_or_truncated_checkpoint_is_refused(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS_DIR)
    renamed = checkpoint.with_name("step-000005")
    checkpoint.rename(renamed)
    with pytest.raises(CheckpointError, match="its name 5; it was edited"):
        read_checkpoint_state(renamed)
    renamed.rename(checkpoint)
    arrays = checkpoint / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])
    with pytest.raises(ManifestError, match="does not match its digest"):
        resume_run(run_dir, progress=False)


def test_resume_cleans_temporary_files(small_toml, tmp_path):
    run_dir = _interrupted_run(small_toml, tmp_path / "r")
    (run_dir / ".steps.parquet.k2j3h4.tmp").write_bytes(b"half")
    (run_dir / ".manifest.json.x9.tmp").write_bytes(b"{")
    (run_dir / CHECKPOINTS_DIR / ".tmp-abc").mkdir()
    (run_dir / CHECKPOINTS_DIR / ".tmp-abc" / "arrays.npz").write_bytes(b"x")
    (run_dir / "notes.tmp").write_text("not ours: kept")
    resume_run(run_dir, progress=False)
    assert sorted(p.name for p in run_dir.rglob("*") if ".tmp" in p.name) == ["notes.tmp"]


@pytest.mark.parametrize("content", ["[]", "{", '{"config": {}, "status": "complete"}'])
def test_report_of_a_corrupt_manifest_exits_2(small_toml, tmp_path, capsys, content):
    run_dir = tmp_path / "r"
    run_experiment(load_config(small_toml), run_dir, progress=False)
    (run_dir / "manifest.json").write_text(content)
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "Traceback" not in err and err.count("\n") == 1


# ------------------------------------------------------------------ fuzzed corruption


def _corrupt(data: bytes, how: int, where: int, payload: bytes) -> bytes:
    if not data:
        return payload
    i = where % len(data)
    if how == 0:
        return data[:i]  # truncated
    if how == 1:
        return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]  # one byte flipped
    if how == 2:
        return data[:i] + payload + data[i:]  # bytes inserted
    return payload  # replaced


def test_fuzzed_corruption_of_run_state_never_crashes_resume(small_toml, tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    template = _interrupted_run(small_toml, tmp_path / "template")
    files = sorted(
        str(p.relative_to(template))
        for p in template.rglob("*")
        if p.is_file() and (p.name == "manifest.json" or CHECKPOINTS_DIR in p.parts)
    )
    cases = iter(range(10**6))

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        name=st.sampled_from(files),
        how=st.integers(0, 3),
        where=st.integers(0, 10**6),
        payload=st.one_of(
            st.sampled_from([b"[]", b"{}", b"null", b'{"status": "complete"}', b"\xff\xfe"]),
            st.binary(max_size=8),
        ),
    )
    def check(name, how, where, payload):
        run_dir = tmp_path / f"case{next(cases)}"
        shutil.copytree(template, run_dir)
        target = run_dir / name
        target.write_bytes(_corrupt(target.read_bytes(), how, where, payload))
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["resume", str(run_dir), "--quiet"])
        assert code in (0, 2), err.getvalue()
        assert "Traceback" not in err.getvalue() and "unexpected" not in err.getvalue()
        if code == 0:  # whatever resumed is the run of the manifest's config, complete
            assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
        shutil.rmtree(run_dir)

    check()


def test_one_reader_for_notebooks_and_sweep_reports(small_toml, tmp_path, capsys):
    from experiments.sweep import load_sweep_config, run_sweep
    from sim.analysis.loading import load_run

    run_dir = tmp_path / "r"
    run_experiment(load_config(small_toml), run_dir, progress=False)
    (run_dir / "manifest.json").write_text("[]")
    with pytest.raises(ManifestError, match="not a run manifest"):
        load_run(run_dir)
    sweep_file = small_toml.parent / "sweep.toml"
    sweep_file.write_text('steps = 3\n\n[sweep]\nbase = "small.toml"\nseeds = [1, 2]\n')
    sweep = run_sweep(load_sweep_config(sweep_file), tmp_path / "s", progress=False)
    (sweep.sweep_dir / sweep.index["run_dir"][0] / "manifest.json").write_text("[]")
    assert main(["report", str(sweep.sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert "not a run manifest (a JSON list, not an object)" in err and err.count("\n") == 1
