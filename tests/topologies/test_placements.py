"""Placements as a family: one module per strategy, the registry in topologies.placements."""

from __future__ import annotations

import tomllib

import networkx as nx
import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from experiments.config import ConfigError, validate_config
from sim.memes import MemeSpec
from topologies.placements import (
    PLACEMENT_SPECS,
    AgentsPlacement,
    BankPlacement,
    CountedPlacement,
    HubPlacement,
    PlacementSpec,
    RandomPlacement,
    placement_kinds,
)

PLACEMENT: TypeAdapter[object] = TypeAdapter(PlacementSpec)  # type: ignore[arg-type]

CONFIG = """
name = "p"
steps = 2
[graph]
kind = "ring"
n = 10
k = 2
[banks.private]
[banks.global]
[policy]
kind = "contagion"
[[memes]]
id = "m"
statement = "a meme"
"""


def _config(placement: str) -> dict:
    data = tomllib.loads(CONFIG)
    data["memes"][0]["placement"] = tomllib.loads(f"p = {placement}")["p"]
    return data


def test_the_registry_lists_each_strategy_once_with_its_module():
    assert placement_kinds() == ["random", "hub", "periphery", "bridge", "agents", "bank"]
    assert [spec.__module__.rsplit(".", 1)[1] for spec in PLACEMENT_SPECS] == placement_kinds()


def test_a_placement_without_strategy_is_random():
    assert PLACEMENT.validate_python({"count": 2}) == RandomPlacement(count=2)
    assert PLACEMENT.validate_python({}) == RandomPlacement()
    assert MemeSpec(id="m", statement="s").placement == RandomPlacement()
    assert PLACEMENT.validate_python({"strategy": "agents", "agents": [3]}) == AgentsPlacement(
        agents=[3]
    )


def test_each_strategy_takes_only_its_own_fields():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PLACEMENT.validate_python({"strategy": "hub", "agents": [1]})
    with pytest.raises(ValidationError, match="at least 1 item"):
        AgentsPlacement(agents=[])
    with pytest.raises(ValidationError, match="bank"):
        PLACEMENT.validate_python({"strategy": "bank"})


def test_config_errors_name_the_placement_keys():
    with pytest.raises(ConfigError) as err:
        validate_config(_config('{ strategy = "central" }'))
    assert "memes.0.placement.strategy = 'central': must be one of" in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_config(_config('{ strategy = "hub", agents = [1] }'))
    assert "memes.0.placement.agents" in str(err.value)
    assert "placement.hub" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_config(_config("{ count = 0 }"))
    assert "memes.0.placement.count" in str(err.value)
    assert "placement.random" not in str(err.value)
    assert validate_config(_config("{ count = 3 }")).memes[0].placement == RandomPlacement(count=3)


def test_the_strategies_choose_or_name_a_bank():
    graph = nx.star_graph(4)  # hub 0, leaves 1..4
    rng = np.random.default_rng(0)
    assert HubPlacement(count=2).select(graph, rng).tolist() == [0, 1]
    assert AgentsPlacement(agents=[4, 2, 4]).select(graph, rng).tolist() == [2, 4]
    bank = BankPlacement(bank="global")
    assert (bank.target_bank, bank.select(graph, rng).tolist()) == ("global", [])
    assert HubPlacement().target_bank is None
    assert all(
        issubclass(spec, CountedPlacement) == ("count" in spec.model_fields)
        for spec in PLACEMENT_SPECS
    )
