"""What `validate` refuses so that `run` never crashes or hangs on its input (issue 8.3,
8.4, 8.11; issue 13.4, 13.5, 13.10)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import networkx as nx
import pytest

from experiments import load_config, load_sweep, load_sweep_config
from experiments.cli import main
from experiments.config import (
    INT_LIMIT,
    ConfigError,
    apply_override,
    read_config,
    validate_config,
)
from experiments.sweep import read_sweep_document
from sim.guards import PatternGuard, PatternGuardSpec


def _errors(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    return info.value.errors


# ------------------------------------------------------------------ strict types (8.11)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("steps", "3", "steps = '3': input should be a valid integer"),
        ("steps", True, "steps = True: input should be a valid integer"),
        ("steps", 3.0, "steps = 3.0: input should be a valid integer"),
        ("seed", "0", "seed = '0': input should be a valid integer"),
    ],
)
def test_no_coercion_to_int(small_data, key, value, message):
    small_data[key] = value
    assert _errors(small_data) == [message]


def test_no_coercion_to_float_or_bool_but_int_is_a_float(small_data):
    small_data["policy"]["beta"] = False
    assert _errors(small_data) == ["policy.beta = False: input should be a valid number"]
    small_data["policy"]["beta"] = "0.5"
    assert _errors(small_data) == ["policy.beta = '0.5': input should be a valid number"]
    small_data["policy"]["beta"] = 1  # an int where a float is expected is fine
    assert validate_config(small_data).policy.beta == 1.0
    small_data["graph"]["require_connected"] = 1
    assert _errors(small_data) == ["graph.require_connected = 1: input should be a valid boolean"]


@pytest.mark.parametrize("value", [2**63, 2**31, -(2**40)])
def test_integers_are_bounded(small_data, value):
    small_data["banks"]["private"]["capacity"] = value
    assert _errors(small_data) == [
        f"banks.private.capacity = {value}: integers must be within -{INT_LIMIT}..{INT_LIMIT}"
    ]


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_floats_are_finite(small_data, value):
    small_data["policy"]["beta"] = value
    assert _errors(small_data) == [f"policy.beta = {value!r}: must be a finite number"]


def test_toml_dates_are_not_values(small_data):
    import datetime

    small_data["steps"] = datetime.date(2024, 1, 2)
    assert _errors(small_data) == ["steps = 2024-01-02: a TOML date or time is not a config value"]


# ------------------------------------------------------------------ --set (8.11)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('steps=1\nname="x"', "one KEY.PATH=VALUE per --set"),
        ("name=my run", "the value is not a TOML value"),
        ('name="unclosed', "the value is not a TOML value"),
        ("steps=", "no value after '='"),
        ("ste\nps=1", "control characters in the key path"),
        ("graph.n=1 2", "the value is not a TOML value"),
    ],
)
def test_bad_set_values_are_errors(small_data, override, message):
    with pytest.raises(ConfigError) as info:
        apply_override(small_data, override)
    assert len(info.value.errors) == 1 and message in info.value.errors[0]


def test_set_keeps_bare_words_and_toml_values(small_data):
    apply_override(small_data, "policy.rule=threshold")
    apply_override(small_data, "memes.0.placement.bank=private:3")
    apply_override(small_data, "steps = 7")
    assert small_data["policy"]["rule"] == "threshold"
    assert small_data["memes"][0]["placement"]["bank"] == "private:3"
    assert small_data["steps"] == 7


def test_one_past_the_end_appends_to_a_missing_or_empty_list(small_data):
    assert "guards" not in small_data
    apply_override(small_data, 'guards.0.kind="pattern"')
    apply_override(small_data, 'guards.0.pattern="CANARY"')
    assert small_data["guards"] == [{"kind": "pattern", "pattern": "CANARY"}]
    small_data["guards"] = []
    apply_override(small_data, 'guards.0={ kind = "pattern", pattern = "x" }')
    assert validate_config(small_data).guards[0].pattern == "x"


# ------------------------------------------------------------------ did you mean (13.10)


def test_did_you_mean_inside_a_choice_and_a_list(small_data):
    small_data["policy"]["betta"] = 0.2
    small_data["memes"][0]["placement"]["cuont"] = 2
    assert sorted(_errors(small_data)) == [
        "memes.0.placement.cuont = 2: unknown key (did you mean 'count'? see "
        "docs/config-reference.md)",
        "policy.betta = 0.2: unknown key (did you mean 'beta'? see docs/config-reference.md)",
    ]
    small_data["policy"].pop("betta")
    small_data["memes"][0]["placement"].pop("cuont")
    small_data["zzzz"] = 1
    assert _errors(small_data) == [
        "zzzz = 1: unknown key (allowed: banks, checkpoint_every, failed_request_share_limit, "
        "graph, guards, memes, memory, name, output_dir, policy, probe_every, reflection, "
        "seed, steps, turnover, values; see docs/config-reference.md)"
    ]


# ------------------------------------------------------------------ files (8.3, 13.4)


def _write_config(folder: Path, text: str, graph_path: str) -> Path:
    config = folder / "cfg.toml"
    config.write_text(
        text.replace(
            '[graph]\nkind = "barabasi_albert"\nn = 60\nm = 2\n',
            f'[graph]\nkind = "file"\npath = "{graph_path}"\n',
        )
    )
    return config


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "is empty; must be a edgelist file"),
        (b"0 1\n\x00\x01\x02", "is a binary file"),
        (b"0 1\n\xff\xfe 2\n", "is not UTF-8 text"),
        (b"0 1\n2\n", "line 2 ('2') is not an edge"),
        ("dir", "not a regular file"),
    ],
)
def test_graph_file_problems_fail_validate_naming_graph_path(
    tmp_path, small_toml, capsys, content, message
):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    graph = folder / "g.edgelist"
    if content == "dir":
        graph.mkdir()
    elif content is not None:
        graph.write_bytes(content)
    config = _write_config(folder, small_toml.read_text(), "g.edgelist")
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"graph.path = '{graph}': {message}" in err, err
    # run refuses before creating anything: no failed run directory is left behind
    out = tmp_path / "out"
    code = main(["run", str(config), "--set", f'output_dir="{out}"', "--quiet"])
    assert code == 2 and not out.exists()
    assert "Traceback" not in capsys.readouterr().err


def test_dev_null_graph(tmp_path, small_toml, capsys):
    config = _write_config(tmp_path, small_toml.read_text(), os.devnull)
    assert main(["validate", str(config)]) == 2
    assert "graph.path = '/dev/null': not a regular file" in capsys.readouterr().err


def test_graph_path_is_relative_to_the_config_file(tmp_path, small_toml, monkeypatch):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "g.edgelist").write_text("".join(f"{i} {i + 1}\n" for i in range(59)))
    config_path = _write_config(folder, small_toml.read_text(), "g.edgelist")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_config(config_path)
    assert config.graph.path == folder / "g.edgelist"


ENGINE_FILES_TOML = """
[policy]
kind = "llm"
[policy.engine]
kind = "replay"
mode = "record"
path = "rec/completions.jsonl"
[policy.engine.inner]
kind = "llamacpp"
model_path = "models/m.gguf"

[[guards]]
kind = "review"
engine = { kind = "llamacpp", model_path = "../shared/g.gguf" }

[[memes]]
id = "m"
statement = "s"
detector = { kind = "judge", engine = { kind = "llamacpp", model_path = "/abs/j.gguf" } }
"""


def test_engine_files_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "run.toml").write_text(ENGINE_FILES_TOML)
    monkeypatch.chdir(tmp_path)  # not the config's folder
    data = read_config(folder / "run.toml")
    engine = data["policy"]["engine"]
    assert engine["path"] == str(folder / "rec" / "completions.jsonl")
    assert engine["inner"]["model_path"] == str(folder / "models" / "m.gguf")
    assert data["guards"][0]["engine"]["model_path"] == str(tmp_path / "shared" / "g.gguf")
    assert data["memes"][0]["detector"]["engine"]["model_path"] == "/abs/j.gguf"  # absolute
    # A vLLM model may be a hub name: left as written.
    (folder / "vllm.toml").write_text(
        '[policy]\nkind = "llm"\n[policy.engine]\nkind = "vllm"\nmodel = "Org/Model"\n'
    )
    assert read_config(folder / "vllm.toml")["policy"]["engine"]["model"] == "Org/Model"


def test_grid_values_are_relative_to_the_sweep_file(tmp_path, small_toml, monkeypatch):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "base.toml").write_text(small_toml.read_text())
    (folder / "sweep.toml").write_text(
        'name = "s"\n[sweep]\nbase = "base.toml"\n'
        '[sweep.grid]\n"values.battery_file" = { values = ["a.json", "/abs/b.json"], '
        'labels = ["a", "b"] }\n'
    )
    monkeypatch.chdir(tmp_path)
    data = read_sweep_document(folder / "sweep.toml")
    grid = data["sweep"]["grid"]["values.battery_file"]["values"]
    assert grid == [str(folder / "a.json"), "/abs/b.json"]


def test_placement_beyond_a_graph_file_is_an_error(tmp_path, small_toml):
    (tmp_path / "g.edgelist").write_text("0 1\n1 2\n")
    config_path = _write_config(tmp_path, small_toml.read_text(), "g.edgelist")
    with pytest.raises(ConfigError) as info:
        load_config(config_path, ["memes.0.placement.count=5"])
    assert info.value.errors == [
        "memes.0.placement.count = 5: must be at most the number of agents (3, the nodes of "
        "the graph file)"
    ]


def test_planted_communities_of_a_graph_file_need_its_blocks(tmp_path, small_toml):
    """The run lays planted communities from the nodes' blocks: validate does it first."""
    (tmp_path / "g.edgelist").write_text("0 1\n1 2\n2 3\n")  # no node attributes
    config_path = _write_config(tmp_path, small_toml.read_text(), "g.edgelist")
    planted = "banks.community={ method = 'planted' }"
    with pytest.raises(ConfigError) as info:
        load_config(config_path, [planted])
    assert info.value.errors == [
        f"banks.community.method = 'planted': graph.path = '{tmp_path / 'g.edgelist'}': "
        "node 0 has no 'block' attribute; 'planted' needs a graph with planted blocks "
        "(kind 'sbm'), otherwise use 'louvain' or 'greedy_modularity'"
    ]
    graph = nx.path_graph(4)
    nx.set_node_attributes(graph, {v: v // 2 for v in graph}, "block")  # blocks 0 and 1
    nx.write_graphml(graph, tmp_path / "g.graphml")
    graphml = f"graph={{ kind = 'file', path = '{tmp_path / 'g.graphml'}', format = 'graphml' }}"
    seeded = "memes.0.placement={ strategy = 'bank', bank = 'community:%d' }"
    config = load_config(config_path, [graphml, planted, seeded % 1])
    assert config.banks.community is not None and config.banks.community.method == "planted"
    with pytest.raises(ConfigError) as info:
        load_config(config_path, [graphml, planted, seeded % 2])
    assert info.value.errors == [
        "memes.0.placement.bank = 'community:2': community index out of range (planted "
        "communities are the SBM blocks)"
    ]


# ------------------------------------------------------------------ guard patterns (8.3)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[", "not a valid RE2 regular expression (missing ]: [)"),
        ("(?=x)", "not a valid RE2 regular expression"),
        (r"(a)\1", "not a valid RE2 regular expression"),
    ],
)
def test_bad_guard_patterns_fail_validation(small_data, pattern, message):
    small_data["guards"] = [{"kind": "pattern", "pattern": pattern}]
    errors = _errors(small_data)
    assert len(errors) == 1 and errors[0].startswith(f"guards.0.pattern = {pattern!r}: {message}")


def test_catastrophic_pattern_runs_in_linear_time():
    guard = PatternGuard(PatternGuardSpec(pattern="(a+)+$"))
    # RE2 matches in linear time; Python's re would backtrack for ever on this text. No
    # clock here (speed goals live in bench/): the engine is checked before the search.
    assert type(guard._regex).__module__ == "re2"
    assert guard._regex.search("a" * 100_000 + "b") is None
    assert guard._regex.search("a" * 100_000) is not None


# ------------------------------------------------------------------ engine files (8.3)


def test_missing_model_and_replay_files(small_data, tmp_path):
    small_data["policy"] = {
        "kind": "llm",
        "engine": {"kind": "llamacpp", "model_path": str(tmp_path / "missing.gguf")},
    }
    assert _errors(small_data) == [
        f"policy.engine.model_path = '{tmp_path / 'missing.gguf'}': no such file"
    ]
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    small_data["policy"]["engine"]["model_path"] = str(fake)
    assert _errors(small_data) == [
        f"policy.engine.model_path = '{fake}': is not a GGUF model file (no GGUF header)"
    ]
    small_data["policy"]["engine"] = {
        "kind": "replay",
        "mode": "replay",
        "path": str(tmp_path / "none.jsonl"),
    }
    assert _errors(small_data) == [
        f"policy.engine.path = '{tmp_path / 'none.jsonl'}': no such file (mode 'replay' reads it)"
    ]


def test_model_files_of_guard_and_judge_engines_are_read_like_the_policy_engine(
    small_data, tmp_path
):
    """A guard's or judge's GGUF that is no model fails validate, not the run mid-start."""
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    engine = {"kind": "llamacpp", "model_path": str(fake)}
    small_data["guards"] = [{"kind": "review", "engine": engine}]
    small_data["memes"][0]["detector"] = {"kind": "judge", "engine": engine}
    assert _errors(small_data) == [
        f"guards.0.engine.model_path = '{fake}': is not a GGUF model file (no GGUF header)",
        f"memes.0.detector.engine.model_path = '{fake}': is not a GGUF model file (no GGUF header)",
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    small_data["guards"] = [
        {"kind": "consensus", "engine": {"kind": "replay", "mode": "replay", "path": str(empty)}}
    ]
    del small_data["memes"][0]["detector"]
    assert _errors(small_data) == [
        f"guards.0.engine.path = '{empty}': is empty; must be a JSONL file (mode 'replay' reads it)"
    ]


def test_bad_personas_file_fails_validation_not_the_run(small_data, tmp_path, capsys):
    """The LLM policy reads personas_file when the run starts: validate reads it first."""
    missing = tmp_path / "missing.json"
    small_data["policy"] = {"kind": "llm", "personas_file": str(missing)}
    assert _errors(small_data) == [f"policy.personas_file = '{missing}': file not found"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "Ada"}')
    small_data["policy"]["personas_file"] = str(bad)
    assert _errors(small_data) == [
        f"policy.personas_file = '{bad}': must hold a non-empty JSON list of "
        "objects with keys 'name', 'role', 'description'"
    ]
    good = tmp_path / "good.json"
    good.write_text('[{"name": "Ada", "role": "analyst", "description": "Careful."}]')
    small_data["policy"]["personas_file"] = str(good)
    assert validate_config(small_data).policy.personas_file == str(good)
    # `run` refuses it before it creates the run directory (exit 2).
    run_dir = tmp_path / "never"
    override = f'policy={{ kind = "llm", personas_file = "{missing}" }}'
    assert main(["run", "contagion_small", "--run-dir", str(run_dir), "--set", override]) == 2
    assert "policy.personas_file = " in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_missing_tasks_file_is_named_once_by_its_key(small_data, tmp_path):
    """As for values.battery_file: the key path once, not "policy.tasks_file: tasks_file = "."""
    missing = tmp_path / "nope.json"
    small_data["policy"] = {"kind": "llm", "tasks_file": str(missing)}
    assert _errors(small_data) == [f"policy.tasks_file = '{missing}': file not found"]


def test_binary_personas_and_battery_files_name_their_key(small_data, tmp_path):
    """A data file that is not UTF-8 is reported with its key, not as a codec error."""
    replies = tmp_path / "replies.jsonl"
    replies.write_text("{}\n")
    personas = tmp_path / "personas.json"
    personas.write_bytes(b"\x89PNG\r\n")
    battery = tmp_path / "battery.json"
    battery.write_bytes(b"\xff\xfe\x00")
    small_data["policy"] = {
        "kind": "llm",
        "engine": {"kind": "replay", "mode": "replay", "path": str(replies)},
        "personas_file": str(personas),
    }
    small_data["values"] = {"every": 1, "battery_file": str(battery)}
    small_data["probe_every"] = 1
    assert _errors(small_data) == [
        f"policy.personas_file = '{personas}': not valid UTF-8 (byte 0); not a JSON file",
        f"values.battery_file = '{battery}': not valid UTF-8 (byte 0); not a JSON file",
    ]


# ------------------------------------------------------------------ config files (8.4)


def test_config_file_that_is_not_utf8_or_not_a_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "\xff\xfe"\n')
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid UTF-8 (byte 8); not a TOML config file" in err
    assert "Traceback" not in err
    assert main(["validate", str(tmp_path)]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_config_file_with_a_byte_order_mark_is_read(small_toml, capsys):
    """Editors that save UTF-8 with a BOM first give a config that reads as without it."""
    marked = small_toml.parent / "marked.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + small_toml.read_bytes())
    assert load_config(marked) == load_config(small_toml)


@pytest.mark.parametrize(
    ("name", "text", "hint"),
    [
        ("run.json", '{"steps": 3}', "; configs are TOML files, not JSON"),
        ("run.yaml", "steps: 3\n", "; configs are TOML files, not YAML"),
        (
            "manifest.json",
            '{"steps": 3}',
            "; configs are TOML files, not JSON (a run's manifest.json is not a config: "
            "resume or fork its run directory)",
        ),
    ],
)
def test_json_or_yaml_config_says_configs_are_toml(tmp_path, capsys, name, text, hint):
    path = tmp_path / name
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    line = capsys.readouterr().err.splitlines()[1]
    assert line.startswith("  - not valid TOML: ") and line.endswith(hint)


def test_sweep_base_that_is_binary(small_toml, capsys):
    binary = small_toml.parent / "base.bin"
    binary.write_bytes(bytes(range(256)))
    sweep = small_toml.parent / "sweep.toml"
    sweep.write_text('[sweep]\nbase = "base.bin"\nreplicates = 2\n')
    assert main(["validate", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "sweep.base = " in err and "not valid UTF-8" in err


def test_huge_sweeps_are_refused_before_expansion(small_toml):
    sweep = small_toml.parent / "sweep.toml"
    sweep.write_text(
        '[sweep]\nbase = "small.toml"\nseeds = [0, 1]\n\n[sweep.grid]\n'
        + "".join(f'"steps.a{i}" = {list(range(1, 40))}\n' for i in range(4))
    )
    # The grid's keys cross a number (steps = 6), so the first run built from it fails at
    # once: the size error shows the runs were counted before any was expanded (no clock).
    with pytest.raises(ConfigError) as info:
        load_sweep_config(sweep)
    assert info.value.errors == [
        "sweep: 39 x 39 x 39 x 39 x 2 seed(s) = 4626882 runs; a sweep has at most 100000 runs"
    ]
    with pytest.raises(ConfigError) as info:
        load_sweep_config(sweep, ["sweep={ base = 'small.toml', replicates = 1000000000 }"])
    assert info.value.errors == [
        "sweep.replicates = 1000000000: input should be less than or equal to 100000"
    ]
    with pytest.raises(ConfigError) as info:
        load_sweep_config(sweep, ["sweep={ base = 'small.toml', replicates = 1e9 }"])
    assert info.value.errors == ["sweep.replicates = 1000000000.0: input should be a valid integer"]


# ------------------------------------------------------------------ Python API (13.5)


def test_load_config_accepts_shipped_names_and_load_sweep_is_deprecated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # works from any directory
    assert load_config("contagion_small").name == "contagion-small"
    assert len(load_sweep_config("topology_sweep").runs) > 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_sweep("topology_sweep")
    assert [w.category for w in caught] == [DeprecationWarning]
    assert str(caught[0].message).startswith(
        "experiments.load_sweep is deprecated: use load_sweep_config (a sweep config file)"
    )


def test_graph_size_is_bounded(small_data):
    small_data["graph"] = {"kind": "grid", "rows": 40_000, "cols": 40_000}
    assert _errors(small_data) == [
        "graph: 1600000000 agents (grid); a run has at most 10000000 agents"
    ]


def test_lone_surrogates_are_refused(small_data):
    small_data["memes"][0]["statement"] = "x\udcffy"
    assert _errors(small_data) == [
        "memes.0.statement = 'x\\udcffy': not valid Unicode text (a lone surrogate)"
    ]


def test_paths_that_cannot_exist(small_data, tmp_path):
    long_name = "x" * 300  # over the 255-byte limit of a file name
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / long_name)
    assert info.value.errors == [f"File name too long: {tmp_path / long_name}"]
    small_data["graph"] = {"kind": "file", "path": str(tmp_path / long_name)}
    assert _errors(small_data) == [
        f"graph.path = '{tmp_path / long_name}': not a valid path (File name too long)"
    ]
