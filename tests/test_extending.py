"""The contributor guide's promise, kept: a new kind of a pluggable family is one new
module plus one registry entry, and nothing else in the tree changes.

The test copies the four packages into a temporary folder, adds a toy guard, a toy
detector and a toy graph kind exactly as ``docs/extending.md`` tells (one module each, and
the import and the entry in the family's registry), and runs a config that uses all three
in a fresh interpreter, so the copy is what gets imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "agents", "topologies", "experiments")

TOY_GUARD = '''"""The ``even_authors`` guard: rejects every write by an agent with an even id."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.guards.base import GuardBase, GuardDecision, RunEngine, Verdict, Writes


class EvenAuthorsGuardSpec(BaseModel):
    """Reject writes whose author id is even."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["even_authors"] = "even_authors"
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,40}$")

    def build(self, run_engine: RunEngine = None) -> EvenAuthorsGuard:
        return EvenAuthorsGuard(self)


class EvenAuthorsGuard(GuardBase):
    def __init__(self, spec: EvenAuthorsGuardSpec) -> None:
        self.spec = spec
        self.name = spec.name or "even_authors"

    def review(self, writes: Writes, context) -> GuardDecision:
        even = writes.proposals.author % 2 == 0
        return GuardDecision(
            verdict=np.where(even, int(Verdict.REJECT), int(Verdict.ACCEPT)).astype(np.int8),
            weight=np.ones(len(writes), dtype=np.float32),
        )
'''

TOY_GRAPH = '''"""The ``path`` graph: agents in a line."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from topologies.graphs.base import GraphSpecBase


class PathGraph(GraphSpecBase):
    """Agents ``0..n-1`` in a line, each joined to the next."""

    kind: Literal["path"] = "path"
    n: int

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        return nx.path_graph(self.n)
'''

TOY_DETECTOR = '''"""The ``contains`` detector: a text carries the meme iff it holds a word."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from sim.detectors.base import DetectorBase, DetectorSetup
from sim.texts import words


class ContainsDetectorSpec(BaseModel):
    """A text carries the meme iff ``word`` is one of its words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["contains"] = "contains"
    word: str

    def build(self, setup: DetectorSetup) -> ContainsDetector:
        return ContainsDetector(self.word)


class ContainsDetector(DetectorBase):
    kind = "contains"

    def __init__(self, word: str) -> None:
        self.word = word

    def carries(self, texts) -> np.ndarray:
        return np.array([self.word in words(text) for text in texts], dtype=np.bool_)
'''

RUN = """
import json, sys
import polars as pl
from experiments.config import validate_config
from experiments.runner import run_experiment

config = validate_config(json.loads(sys.argv[1]))
result = run_experiment(config, sys.argv[2], progress=False)
steps = pl.read_parquet(f"{sys.argv[2]}/steps.parquet")
decisions = pl.read_parquet(f"{sys.argv[2]}/guard_decisions.parquet")
graph = pl.read_parquet(f"{sys.argv[2]}/graph.parquet")
memories = pl.read_parquet(f"{sys.argv[2]}/memories.parquet")
carrying = memories.filter(pl.col("memes").list.contains("m"))
print(json.dumps({
    "carrying_texts": sorted(set(carrying["text"].to_list())),
    "edges": graph.height,
    "rejected": int(steps["guard_even_authors_rejected"].sum()),
    "rejected_authors": sorted(set(decisions["agent_id"].to_list())),
    "carriers": steps["carriers"].to_list(),
}))
"""

CONFIG = {
    "name": "toys",
    "seed": 3,
    "steps": 6,
    "graph": {"kind": "path", "n": 8},
    "banks": {"private": {}, "neighbourhood": {}},
    "policy": {"kind": "contagion", "rule": "repeated_exposure", "beta": 1.0},
    "memes": [
        {
            "id": "m",
            "statement": "a toy meme",
            "canary": "TOY-1",
            "detector": {"kind": "contains", "word": "toy"},
            "placement": {"strategy": "agents", "agents": [3]},
        }
    ],
    "guards": [{"kind": "even_authors"}],
    "checkpoint_every": 0,
}


def add_kind(tree: Path, registry: str, module: str, text: str, cls: str) -> None:
    """Add a kind as the guide says: its module, then its import and registry line.

    The registry is the family's union of specs (``Annotated[A | B, Field(...)]``): the
    new spec becomes its last member.
    """
    package = tree / registry.replace(".", "/")
    (package / f"{module}.py").write_text(text, encoding="utf-8")
    init = package / "__init__.py"
    source = init.read_text(encoding="utf-8")
    source, found = re.subn(
        r',\n    Field\(discriminator="kind"\),\n\]',
        f'\n    | {cls},\n    Field(discriminator="kind"),\n]',
        source,
        count=1,
    )
    assert found == 1, f"no registry union in {init}"
    source = source.replace(
        "from __future__ import annotations\n",
        f"from __future__ import annotations\n\nfrom {registry}.{module} import {cls}\n",
        1,
    )
    init.write_text(source, encoding="utf-8")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extended")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    add_kind(root, "sim.guards", "even_authors", TOY_GUARD, "EvenAuthorsGuardSpec")
    add_kind(root, "sim.detectors", "contains", TOY_DETECTOR, "ContainsDetectorSpec")
    add_kind(root, "topologies.graphs", "path", TOY_GRAPH, "PathGraph")
    return root


def test_the_toy_kinds_run_through_the_registries_alone(tree, tmp_path):
    changed = sorted(
        str(path.relative_to(tree))
        for package in PACKAGES
        for path in (tree / package).rglob("*.py")
        if "__pycache__" not in path.parts
        and (
            not (ROOT / path.relative_to(tree)).exists()
            or (ROOT / path.relative_to(tree)).read_bytes() != path.read_bytes()
        )
    )
    # The guide's count: per kind, one new module and the family's registry.
    assert changed == [
        "sim/detectors/__init__.py",
        "sim/detectors/contains.py",
        "sim/guards/__init__.py",
        "sim/guards/even_authors.py",
        "topologies/graphs/__init__.py",
        "topologies/graphs/path.py",
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(CONFIG), str(tmp_path / "run")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["edges"] == 7  # the path graph: 8 agents in a line
    # The seed (agent 3) writes; its neighbours 2 and 4 adopt, and the guard rejects
    # every write of theirs, so the meme never gets past them.
    assert facts["rejected"] >= 2
    assert facts["rejected_authors"] == [2, 4]
    assert facts["carriers"] == [1] * 6
    # The toy detector says which texts carry the meme: those with the word "toy".
    assert facts["carrying_texts"] == ["a toy meme [TOY-1]"]


def test_the_unextended_tree_does_not_know_the_toy_kinds():
    from experiments.config import ConfigError, validate_config

    with pytest.raises(ConfigError) as err:
        validate_config(CONFIG)
    assert "graph.kind = 'path'" in str(err.value)
    assert "guards.0.kind = 'even_authors'" in str(err.value)
    assert "memes.0.detector.kind = 'contains'" in str(err.value)
