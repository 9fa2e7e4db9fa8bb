"""The contributor guide's promise, kept: a new kind of a pluggable family is one new
module plus one registry entry, and nothing else in the tree changes.

The test copies the four packages into a temporary folder, adds a toy guard, a toy
detector and a toy graph kind exactly as ``docs/extending.md`` tells (one module each, and
the import and the entry in the family's registry), and runs a config that uses all three
in a fresh interpreter, so the copy is what gets imported. A second copy gets a toy engine
(a test double of an external model: it answers every request with one fixed JSON reply)
and a toy placement strategy, and runs a small LLM-policy config that uses both.
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

TOY_ENGINE = '''"""The ``fixed`` engine: every reply is the same text (a test double)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from agents.llm.base import (
    Completion,
    CompletionCallback,
    EngineSpecBase,
    FinishReason,
    GenerationRequest,
)


class FixedSpec(EngineSpecBase):
    """An engine whose every completion is ``text``."""

    kind: Literal["fixed"] = "fixed"
    text: str

    def build(self) -> FixedEngine:
        return FixedEngine(self.text)


class FixedEngine:
    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text
        self.model_id = "fixed:1"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = [Completion(r.request_id, self.text, FinishReason.STOP, 10, 0, 5) for r in requests]
        for index, completion in enumerate(out):
            if on_complete is not None:
                on_complete(index, completion)
        return out

    def close(self) -> None:
        pass
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


TOY_PLACEMENT = '''"""The ``even`` placement: every agent with an even id."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from topologies.placements.base import PlacementBase


class EvenPlacement(PlacementBase):
    """Seed every agent whose id is even."""

    strategy: Literal["even"] = "even"

    def select(self, graph: nx.Graph, rng: np.random.Generator) -> np.ndarray:
        return np.arange(0, graph.number_of_nodes(), 2, dtype=np.int32)
'''

RUN_LLM = """
import json, sys
import polars as pl
from experiments.config import validate_config
from experiments.runner import run_experiment

config = validate_config(json.loads(sys.argv[1]))
run_experiment(config, sys.argv[2], progress=False)
generations = pl.read_parquet(f"{sys.argv[2]}/generations.parquet")
memories = pl.read_parquet(f"{sys.argv[2]}/memories.parquet")
manifest = json.loads(open(f"{sys.argv[2]}/manifest.json").read())
notes = memories.filter(pl.col("text") == "fixed note")
seeds = memories.filter(pl.col("text") == "a toy meme")
print(json.dumps({
    "seed_authors": sorted(seeds["author_id"].to_list()),
    "kinds": sorted(set(generations["kind"].to_list())),
    "parse": sorted(set(generations["parse_status"].to_list())),
    "requests": generations.height,
    "note_authors": sorted(notes["author_id"].to_list()),
    "status": manifest["status"],
}))
"""

REPLY = {"answer": "noted", "choice": "", "memory_bank": "global", "memory_text": "fixed note"}

LLM_CONFIG = {
    "name": "toy_engine",
    "seed": 1,
    "steps": 2,
    "graph": {"kind": "complete", "n": 3},
    "banks": {"global": {}},
    "policy": {"kind": "llm", "engine": {"kind": "fixed", "text": json.dumps(REPLY)}},
    "memes": [{"id": "m", "statement": "a toy meme", "placement": {"strategy": "even"}}],
    "checkpoint_every": 0,
}


def _changed(tree: Path) -> list[str]:
    """The files of ``tree``'s packages that differ from (or are not in) the repository."""
    return sorted(
        str(path.relative_to(tree))
        for package in PACKAGES
        for path in (tree / package).rglob("*.py")
        if "__pycache__" not in path.parts
        and (
            not (ROOT / path.relative_to(tree)).exists()
            or (ROOT / path.relative_to(tree)).read_bytes() != path.read_bytes()
        )
    )


def _copy_packages(root: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )


def _run(tree: Path, script: str, config: dict, run_dir: Path) -> dict:
    """Run ``script`` on ``config`` in a fresh interpreter importing ``tree``; its facts."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(config), str(run_dir)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_kind(tree: Path, registry: str, module: str, text: str, cls: str) -> None:
    """Add a kind as the guide says: its module, then its import and registry line.

    The registry is the family's union of specs (``Annotated[A | B, Field(...)]``, the
    discriminator ``kind``, or ``strategy`` for placements): the new spec becomes its
    last member.
    """
    package = tree / registry.replace(".", "/")
    (package / f"{module}.py").write_text(text, encoding="utf-8")
    init = package / "__init__.py"
    source = init.read_text(encoding="utf-8")
    source, found = re.subn(
        r',\n    Field\(discriminator="(\w+)"\),\n',
        rf'\n    | {cls},\n    Field(discriminator="\1"),\n',
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
    _copy_packages(root)
    add_kind(root, "sim.guards", "even_authors", TOY_GUARD, "EvenAuthorsGuardSpec")
    add_kind(root, "sim.detectors", "contains", TOY_DETECTOR, "ContainsDetectorSpec")
    add_kind(root, "topologies.graphs", "path", TOY_GRAPH, "PathGraph")
    return root


def test_the_toy_kinds_run_through_the_registries_alone(tree, tmp_path):
    changed = _changed(tree)
    # The guide's count: per kind, one new module and the family's registry.
    assert changed == [
        "sim/detectors/__init__.py",
        "sim/detectors/contains.py",
        "sim/guards/__init__.py",
        "sim/guards/even_authors.py",
        "topologies/graphs/__init__.py",
        "topologies/graphs/path.py",
    ]
    facts = _run(tree, RUN, CONFIG, tmp_path / "run")
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


def test_a_toy_engine_and_placement_run_through_the_registries_alone(tmp_path):
    tree = tmp_path / "extended"
    _copy_packages(tree)
    add_kind(tree, "agents.llm", "fixed", TOY_ENGINE, "FixedSpec")
    add_kind(tree, "topologies.placements", "even", TOY_PLACEMENT, "EvenPlacement")
    # The guide's count: per kind, one new module and the family's registry.
    assert _changed(tree) == [
        "agents/llm/__init__.py",
        "agents/llm/fixed.py",
        "topologies/placements/__init__.py",
        "topologies/placements/even.py",
    ]
    facts = _run(tree, RUN_LLM, LLM_CONFIG, tmp_path / "run")
    assert facts["status"] == "complete"
    # The toy placement seeds the even agents of 3, each in every bank it writes (its
    # private bank, on by default, and the global bank).
    assert facts["seed_authors"] == [0, 0, 2, 2]
    # 3 agents act in each of 2 steps; every reply parses, and every agent writes its note.
    assert facts["requests"] == 6
    assert facts["kinds"] == ["act"]
    assert facts["parse"] == ["ok"]
    assert facts["note_authors"] == [0, 0, 1, 1, 2, 2]


def test_the_unextended_tree_does_not_know_the_toy_engine_and_placement():
    from experiments.config import ConfigError, validate_config

    with pytest.raises(ConfigError) as err:
        validate_config(LLM_CONFIG)
    assert "policy.engine.kind = 'fixed'" in str(err.value)
    assert "memes.0.placement.strategy = 'even'" in str(err.value)
