"""Checkpoints: save after k steps, restore into a fresh model, finish: same tables."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sim.memes import MemeSpec, RandomPlacement
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks
from topologies.graphs import BarabasiAlbert


def _model(n: int = 200) -> MemeticModel:
    return MemeticModel(
        graph=BarabasiAlbert(n=n, m=2),
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[
            MemeSpec(
                id="m",
                statement="copy this goal now",
                canary="CANARY-9",
                placement=RandomPlacement(count=2),
            )
        ],
        policy=ContagionPolicy(ContagionSpec(beta=0.2, mutation_prob=0.2)),
        seed=11,
    )


def _clean(tables):
    return {k: v.drop([c for c in v.columns if c.endswith("_wall_s")]) for k, v in tables.items()}


def test_resume_from_checkpoint_gives_identical_tables(tmp_path):
    straight = _model()
    for _ in range(10):
        straight.step()
    first = _model()
    for _ in range(4):
        first.step()
    path = save_checkpoint(first, tmp_path)
    assert path.name == "step-000004"
    resumed = _model()
    load_checkpoint(resumed, latest_checkpoint(tmp_path))
    assert resumed.steps == 4
    for _ in range(6):
        resumed.step()
    a, b = _clean(straight.tables()), _clean(resumed.tables())
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    assert a["transmissions"].height > 0


def test_a_format_3_contagion_checkpoint_resumes_to_the_same_tables(tmp_path, as_format_3):
    """Format 4 added only the personas frame of LLM runs: a contagion run's format-3
    checkpoint (a run killed before the upgrade) resumes as before."""
    straight = _model()
    for _ in range(10):
        straight.step()
    first = _model()
    for _ in range(4):
        first.step()
    old = as_format_3(save_checkpoint(first, tmp_path))
    assert json.loads((old / "state.json").read_text())["format"] == "memespread-checkpoint/3"
    resumed = _model()
    load_checkpoint(resumed, old)
    for _ in range(6):
        resumed.step()
    a, b = _clean(straight.tables()), _clean(resumed.tables())
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name


def test_new_checkpoint_replaces_old_and_format_is_pickle_free(tmp_path):
    model = _model(50)
    model.step()
    save_checkpoint(model, tmp_path)
    model.step()
    save_checkpoint(model, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["step-000002"]
    files = sorted(p.name for p in (tmp_path / "step-000002").iterdir())
    assert "arrays.npz" in files and "state.json" in files
    assert not any(f.endswith((".pkl", ".pickle")) for f in files)
    with np.load(tmp_path / "step-000002" / "arrays.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    state = json.loads((tmp_path / "step-000002" / "state.json").read_text())
    assert state["steps"] == 2


def test_checkpoint_from_other_config_is_refused(tmp_path):
    small = _model(50)
    small.step()
    save_checkpoint(small, tmp_path)
    with pytest.raises(ValueError, match="another config"):
        load_checkpoint(_model(60), latest_checkpoint(tmp_path))


def test_partial_temp_dirs_are_ignored(tmp_path):
    model = _model(50)
    model.step()
    save_checkpoint(model, tmp_path)
    (tmp_path / ".tmp-killed").mkdir()
    (tmp_path / "step-000009").mkdir()  # no state.json: incomplete
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert pl.read_parquet(latest_checkpoint(tmp_path) / "steps.rows.parquet").height == 1
