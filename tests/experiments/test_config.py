"""Config validation: every kind of error names the key path, the bad value and the rule."""

from __future__ import annotations

import pytest

from experiments.config import (
    ConfigError,
    apply_override,
    apply_overrides,
    load_config,
    schema_field,
    split_key,
    validate_config,
)
from experiments.grid_errors import bounds_text


def _errors(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(data, "test.toml")
    return info.value.errors


def test_valid_config_loads(small_toml):
    config = load_config(small_toml)
    assert config.steps == 6 and config.graph.n == 60 and config.policy.beta == 0.3
    assert config.resolved_checkpoint_every == 10


def test_unknown_key(small_data):
    small_data["stepz"] = 3
    assert _errors(small_data) == [
        "stepz = 3: unknown key (did you mean 'steps'? see docs/config-reference.md)"
    ]


def test_unknown_nested_key_names_full_path(small_data):
    small_data["banks"]["private"]["capasity"] = 4
    assert _errors(small_data) == [
        "banks.private.capasity = 4: unknown key (did you mean 'capacity'? see "
        "docs/config-reference.md)"
    ]


def test_key_of_another_variant_names_the_variant_and_its_keys(small_data):
    """``graph.k`` is a ring's key, not a misspelling: the line says which keys fit here."""
    small_data["graph"]["k"] = 4
    small_data["memes"][0]["placement"]["agents"] = [1]
    assert _errors(small_data) == [
        "graph.k = 4: unknown key for kind 'barabasi_albert' (allowed: kind, m, n, "
        "require_connected; see docs/config-reference.md)",
        "memes.0.placement.agents = [1]: unknown key for strategy 'hub' (allowed: adopt, "
        "count, importance, into, strategy; see docs/config-reference.md)",
    ]


def test_into_is_refused_for_a_bank_placement_unless_left_at_its_default(small_data):
    """A bank placement seeds the named bank: ``into`` would only mislead."""
    placement = {"strategy": "bank", "bank": "neighbourhood:0"}
    small_data["memes"][0]["placement"] = {**placement, "into": "shared"}
    assert _errors(small_data) == [
        "memes.0.placement.into = 'shared': means nothing for strategy 'bank' (the seed goes "
        "straight into the bank placement.bank names, not into seeded agents' banks); "
        "remove it"
    ]
    small_data["memes"][0]["placement"] = placement
    config = validate_config(small_data)
    assert config.memes[0].placement.into == "all"
    # A run's manifest holds the resolved config, default included: it still validates.
    dumped = config.model_dump(mode="json", by_alias=True)
    assert dumped["memes"][0]["placement"]["into"] == "all"
    assert validate_config(dumped) == config


def test_keys_named_like_their_variant_have_their_own_path(small_data):
    """``strategy = "bank"`` has a key ``bank`` (and ``kind = "pattern"`` one ``pattern``):
    pydantic's location holds the tag first, so the path must not name the key twice."""
    small_data["memes"][0]["placement"] = {"strategy": "bank", "bank": "global", "count": 2}
    small_data["guards"] = [{"kind": "pattern", "pattern": 3}]
    assert _errors(small_data) == [
        "memes.0.placement.count = 2: unknown key for strategy 'bank' (allowed: adopt, bank, "
        "importance, into, strategy; see docs/config-reference.md)",
        "guards.0.pattern = 3: input should be a valid string",
    ]
    small_data["memes"][0]["placement"] = {"strategy": "bank", "bank": ""}
    small_data["guards"] = [{"kind": "pattern", "pattern": "x", "actoin": "reject"}]
    assert _errors(small_data) == [
        "memes.0.placement.bank = '': string should have at least 1 character",
        "guards.0.actoin = 'reject': unknown key (did you mean 'action'? see "
        "docs/config-reference.md)",
    ]


def test_unknown_key_without_near_miss_lists_the_allowed_keys(small_data):
    small_data["banks"]["private"]["size"] = 4
    assert _errors(small_data) == [
        "banks.private.size = 4: unknown key (allowed: capacity, eviction; see "
        "docs/config-reference.md)"
    ]


def test_bad_enum(small_data):
    small_data["policy"]["rule"] = "cascade"
    assert _errors(small_data) == [
        "policy.rule = 'cascade': must be one of 'repeated_exposure', 'one_shot_cascade', "
        "'threshold' or 'independent_cascade'"
    ]


def test_bad_union_kind(small_data):
    small_data["graph"]["kind"] = "lattice"
    assert _errors(small_data) == [
        "graph.kind = 'lattice': must be one of 'complete', 'ring', 'watts_strogatz', "
        "'barabasi_albert', 'erdos_renyi', 'sbm', 'star', 'grid', 'file'"
    ]


def test_bad_range(small_data):
    small_data["policy"]["beta"] = 1.5
    assert _errors(small_data) == ["policy.beta = 1.5: input should be less than or equal to 1"]


def test_bad_type(small_data):
    small_data["steps"] = "many"
    assert _errors(small_data) == ["steps = 'many': input should be a valid integer"]


def test_missing_required(small_data):
    del small_data["graph"]
    del small_data["memes"][0]["statement"]
    assert _errors(small_data) == [
        "graph: required key is missing",
        "memes.0.statement: required key is missing",
    ]


def test_bad_graph_parameter(small_data):
    small_data["graph"]["m"] = 60
    assert _errors(small_data) == ["graph.m = 60: must satisfy 1 <= m < n (n = 60)"]


def test_duplicate_meme_ids(small_data):
    small_data["memes"].append(dict(small_data["memes"][0]))
    assert _errors(small_data) == ["memes: duplicate id(s) ['goal']; every meme id must be unique"]


def test_llm_policy_errors_validate_without_a_model(small_data):
    small_data["policy"] = {"kind": "llm", "temperature": -1, "engine": {"kind": "gpu"}}
    assert _errors(small_data) == [
        "policy.engine.kind = 'gpu': must be one of 'llamacpp', 'openai', 'vllm', 'replay'",
        "policy.temperature = -1: input should be greater than or equal to 0",
    ]


def test_several_errors_reported_together(small_data):
    small_data["stepz"] = 1
    small_data["policy"]["beta"] = -0.1
    small_data["graph"]["m"] = 0
    small_data["memes"][0]["kind"] = "evil"
    errors = _errors(small_data)
    assert sorted(errors) == sorted(
        [
            "stepz = 1: unknown key (did you mean 'steps'? see docs/config-reference.md)",
            "policy.beta = -0.1: input should be greater than or equal to 0",
            "graph.m = 0: must satisfy 1 <= m < n (n = 60)",
            "memes.0.kind = 'evil': must be one of 'influence_seeking', 'benign_insight', "
            "'belief', 'goal', 'placebo' or 'other'",
        ]
    )
    with pytest.raises(ConfigError, match=r"invalid config test.toml \(4 error\(s\)\)"):
        validate_config(small_data, "test.toml")


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.errors == [f"file not found: {tmp_path / 'nope.toml'}"]
    # A bare name may have meant a shipped config: the line says where to look.
    with pytest.raises(ConfigError) as info:
        load_config("contagion_smal")
    assert info.value.errors == [
        "no such file, nor a shipped config of that name (`memespread list`): contagion_smal"
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.errors[0].startswith("not valid TOML: ")


def test_sweep_file_is_not_a_run_config(small_data):
    small_data["sweep"] = {"replicates": 2}
    assert _errors(small_data) == [
        "sweep: this is a sweep config; run it with `memespread sweep` (or run_sweep)"
    ]


# ---------------------------------------------------------------- overrides


def test_overrides_parse_toml_values(small_toml):
    config = load_config(
        small_toml,
        [
            "steps=9",
            "policy.beta=0.05",
            "policy.rule=threshold",  # bare text -> string
            'name="renamed"',
            "memes.0.placement.count=2",
            "banks.global.capacity=12",  # creates the table
            'graph={ kind = "ring", n = 30, k = 4 }',
        ],
    )
    assert config.steps == 9 and config.policy.beta == 0.05
    assert config.policy.rule == "threshold" and config.name == "renamed"
    assert config.memes[0].placement.count == 2
    assert config.banks.global_.capacity == 12
    assert config.graph.kind == "ring" and config.graph.n == 30


def test_override_appends_a_list_item(small_data):
    apply_override(small_data, "memes.1.id=second")
    apply_override(small_data, 'memes.1.statement="Another meme."')
    apply_override(small_data, "memes.1.placement.agents=[3, 4]")
    apply_override(small_data, "memes.1.placement.strategy=agents")
    config = validate_config(small_data)
    assert [m.id for m in config.memes] == ["goal", "second"]
    assert config.memes[1].placement.agents == [3, 4]


def test_override_lists_and_quoted_keys():
    data = {"sweep": {"grid": {"policy.beta": [0.1, 0.2]}}, "xs": [1, 2, 3]}
    apply_override(data, 'sweep.grid."policy.beta"=[0.5]')
    apply_override(data, "xs.2=7")
    assert data == {"sweep": {"grid": {"policy.beta": [0.5]}}, "xs": [1, 2, 7]}
    assert split_key(' a . "b.c" .d') == ["a", "b.c", "d"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("steps", "'steps': expected KEY.PATH=VALUE, e.g. steps=5 or graph.n=200"),
        ("=5", "'=5': expected KEY.PATH=VALUE, e.g. steps=5 or graph.n=200"),
        ("graph..n=5", "'graph..n': empty key part; expected e.g. graph.n or memes.0.id"),
        (
            "memes.5.id=x",
            "memes.5: list index '5' is not allowed; the list has 1 item(s): use 0..1 (1 appends "
            "an item)",
        ),
        (
            "memes.first.id=x",
            "memes.first: list index 'first' is not allowed; the list has 1 item(s): use "
            "0..1 (1 appends an item)",
        ),
        ("steps.max=3", "steps.max: steps = 6 is not a table or list, so it has no 'max'"),
        ('sweep."a=1', "'sweep.\"a': unclosed quote in the key path"),
    ],
)
def test_bad_override_syntax(small_data, override, message):
    with pytest.raises(ConfigError) as info:
        apply_override(small_data, override)
    assert info.value.errors == [message]


def test_bad_overrides_are_reported_together(small_data):
    with pytest.raises(ConfigError) as info:
        apply_overrides(small_data, ["steps", "graph..n=1", "steps=3"])
    assert info.value.errors == [
        "'steps': expected KEY.PATH=VALUE, e.g. steps=5 or graph.n=200",
        "'graph..n': empty key part; expected e.g. graph.n or memes.0.id",
    ]
    assert small_data["steps"] == 3  # the valid override still applied


def test_override_then_validation_error_names_the_key(small_toml):
    with pytest.raises(ConfigError) as info:
        load_config(small_toml, ["graph.n=2"])
    assert info.value.errors == ["graph.m = 2: must satisfy 1 <= m < n (n = 2)"]


def test_schema_field_follows_the_variant_the_document_selects(small_data):
    beta = schema_field(small_data, "policy.beta")
    assert beta is not None and beta.annotation is float
    assert bounds_text(small_data, "policy.beta") == "must be >= 0 and <= 1"
    assert bounds_text(small_data, "memes.0.placement.count") == "must be >= 1"
    assert bounds_text(small_data, "graph.m") is None  # checked by a validator, not bounds
    # No such key in the selected variant, a list item, a table: no field (or no bounds).
    assert schema_field(small_data, "graph.k") is None
    assert schema_field(small_data, "memes.0") is None
    assert bounds_text(small_data, "graph") is None
    small_data["policy"] = {"kind": "llm"}
    assert schema_field(small_data, "policy.beta") is None
    assert bounds_text(small_data, "policy.top_p") == "must be > 0 and <= 1"
