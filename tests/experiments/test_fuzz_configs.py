"""Fuzzing the config path: configs and ``--set`` values never crash the CLI (issue 8).

Hypothesis draws (deterministically, ``derandomize=True``) ``--set`` overrides over the
keys of a small contagion config and mutated config files; ``memespread validate`` must
exit 0 or 2 without a traceback, and a config that validates must run (one step) with
exit 0: validation covers what the run needs. 400 + 150 cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.checks import graph_size
from experiments.cli import main
from experiments.config import ConfigError, load_config

KEYS = [
    "name",
    "seed",
    "steps",
    "output_dir",
    "probe_every",
    "checkpoint_every",
    "graph",
    "graph.kind",
    "graph.n",
    "graph.m",
    "graph.k",
    "graph.p",
    "graph.path",
    "graph.require_connected",
    "banks.private.capacity",
    "banks.neighbourhood.capacity",
    "banks.global.capacity",
    "banks.community.method",
    "memory.retrieval.k",
    "policy",
    "policy.kind",
    "policy.beta",
    "policy.rule",
    "policy.threshold",
    "policy.mutation_prob",
    "memes.0.id",
    "memes.0.kind",
    "memes.0.statement",
    "memes.0.canary",
    "memes.0.inject_step",
    "memes.0.placement",
    "memes.0.placement.strategy",
    "memes.0.placement.count",
    "memes.0.placement.agents",
    "memes.0.placement.bank",
    "memes.0.placement.into",
    "memes.0.detector",
    "memes.1.id",
    "guards.0.kind",
    "guards.0.pattern",
    "guards.0.action",
    "sweep",
    "sweep.replicates",
]

VALUES = [
    "[1, 2]",
    "[]",
    "{}",
    '{ kind = "ring", n = 10, k = 2 }',
    '{ kind = "barabasi_albert", n = 30, m = 2 }',
    '{ kind = "grid", rows = 3, cols = 3, periodic = true }',
    '{ kind = "file", path = "missing.txt" }',
    '{ kind = "pattern", pattern = "(a+)+$" }',
    '{ strategy = "agents", agents = [0, 99] }',
    '{ strategy = "bank", bank = "global" }',
    '{ kind = "lexical", terms = ["influence"] }',
    '"global"',
    "private:0",
    "edge:0-1",
    "threshold",
    "sis",
    "hub",
    '"("',
    '"[a-z]+"',
    '".."',
    '"a/b"',
    "1e400",
    "-0",
    "0x10",
    "1979-05-27",
    '"""multi\nline"""',
    '"x\udcffy"',
    "\udcff",
    '"\\ud800"',
]

_text = st.text(st.characters(codec="utf-8"), max_size=24)
_value = st.one_of(
    st.sampled_from(VALUES),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(-3, 70).map(str),
    st.floats().map(repr),
    st.booleans().map(lambda b: str(b).lower()),
    _text.map(json.dumps),
    _text,
)
_key = st.one_of(st.sampled_from(KEYS), _text)
#: Values a key may well take (most of these validate), so that runs get fuzzed too.
PLAUSIBLE = {
    "name": ['"fuzz"', "fuzz-1", '"a.b"'],
    "seed": ["0", "1", "2147483647"],
    "steps": ["1", "2", "3"],
    "checkpoint_every": ["0", "1", "2"],
    "graph": [
        '{ kind = "ring", n = 10, k = 2 }',
        '{ kind = "barabasi_albert", n = 30, m = 2 }',
        '{ kind = "grid", rows = 3, cols = 4, periodic = true }',
        '{ kind = "star", n = 12 }',
        '{ kind = "complete", n = 6 }',
        '{ kind = "erdos_renyi", n = 20, p = 0.2 }',
        '{ kind = "sbm", sizes = [5, 7], p_in = 0.5, p_out = 0.05 }',
        '{ kind = "watts_strogatz", n = 16, k = 4, p = 0.3 }',
    ],
    "graph.n": ["10", "40", "61"],
    "graph.m": ["1", "3"],
    "banks.private.capacity": ["1", "4", "100"],
    "banks.neighbourhood.capacity": ["1", "3"],
    "banks.global.capacity": ["2", "50"],
    "memory.retrieval.k": ["1", "3", "20"],
    "policy.beta": ["0", "0.0", "0.5", "1"],
    "policy.rule": ["si", "sis", "sir", "threshold", "repeated_exposure"],
    "policy.threshold": ["1", "3"],
    "policy.mutation_prob": ["0", "0.3"],
    "memes.0.inject_step": ["0", "1", "5"],
    "memes.0.placement": [
        '{ strategy = "random", count = 2 }',
        '{ strategy = "hub", count = 1 }',
        '{ strategy = "agents", agents = [0, 3] }',
        '{ strategy = "periphery", count = 2, into = "private" }',
    ],
    "memes.0.placement.count": ["1", "2", "5"],
    "memes.1": ['{ id = "m2", statement = "Another meme.", canary = "C-2" }'],
    "guards.0": [
        '{ kind = "pattern", pattern = "CANARY-\\\\d+" }',
        '{ kind = "pattern", pattern = "(a+)+$", action = "quarantine" }',
        '{ kind = "pattern", pattern = "influence", action = "downweight", weight = 0.5 }',
    ],
}
_plausible = st.sampled_from(sorted(PLAUSIBLE)).flatmap(
    lambda key: st.sampled_from(PLAUSIBLE[key]).map(lambda value: f"{key}={value}")
)
_override = st.one_of(
    _plausible,
    _plausible,
    _plausible,
    st.tuples(_key, _value).map(lambda kv: f"{kv[0]}={kv[1]}"),
    _text,
)


def _cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own usage errors exit 2
            code = exit_.code
    return code, err.getvalue()


def _small_run(config: Path, overrides: list[str]) -> bool:
    """Whether the config validates to a graph small enough to run in a test."""
    try:
        loaded = load_config(config, overrides)
    except ConfigError:
        return False
    size = graph_size(loaded)
    return size is not None and size <= 400


_SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@_SETTINGS
@given(overrides=st.lists(_override, min_size=1, max_size=3), run=st.booleans())
def test_fuzzed_set_values(small_toml, overrides, run):
    args: list[str] = []
    for override in overrides:
        args.append(f"--set={override}")  # (also values that start with '-')
    code, err = _cli(["validate", str(small_toml), *args])
    assert code in (0, 2), err
    assert "Traceback" not in err and "unexpected" not in err, err
    if code == 0 and run and _small_run(small_toml, overrides):
        with tempfile.TemporaryDirectory() as folder:
            run_dir = Path(folder) / "run"
            code, err = _cli(
                ["run", str(small_toml), *args, "--set=steps=1", f"--run-dir={run_dir}", "--quiet"]
            )
            assert code == 0, err
            assert (run_dir / "steps.parquet").is_file()


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    lines = text.splitlines()
    for kind, where, payload in edits:
        i = where % (len(lines) + 1)
        if kind == 0 and lines:
            del lines[i % len(lines)]
        elif kind == 1:
            lines.insert(i, payload)
        elif kind == 2 and lines:
            line = lines[i % len(lines)]
            cut = len(payload) % (len(line) + 1)
            lines[i % len(lines)] = line[:cut] + payload
        elif kind == 3 and lines:
            key = lines[i % len(lines)].partition("=")[0]
            lines[i % len(lines)] = f"{key}= {payload}"
    return "\n".join(lines) + "\n"


@settings(_SETTINGS, max_examples=150)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 60), st.one_of(st.sampled_from(VALUES), _text)),
        min_size=1,
        max_size=4,
    ),
    raw=st.binary(max_size=16),
)
def test_fuzzed_config_files(small_toml, edits, raw):
    path = small_toml.parent / "fuzzed.toml"
    text = _mutate(small_toml.read_text(), edits)
    path.write_bytes(text.encode("utf-8", "surrogatepass") + (raw if len(edits) == 4 else b""))
    code, err = _cli(["validate", str(path)])
    assert code in (0, 2), err
    assert "Traceback" not in err and "unexpected" not in err, err
