"""Bank names: made, parsed and checked against a layout by topologies.banks alone."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from topologies.banks import (
    BANK_NAME_FORMS,
    BankKind,
    BankLayoutSpec,
    BankName,
    bank_name,
    bank_names,
    build_banks,
    read_only_legend,
)

ALL_LAYERS = {
    "private": {},
    "neighbourhood": {},
    "community": {"method": "greedy_modularity"},
    "edge": {},
    "global": {},
}


def test_every_built_name_parses_back_to_its_kind():
    graph = nx.path_graph(5)
    banks = build_banks(graph, BankLayoutSpec.model_validate(ALL_LAYERS), np.random.default_rng(0))
    for bank, name in enumerate(banks.names):
        parsed = BankName.parse(name)
        assert parsed.kind == BankKind(int(banks.kind[bank]))
        assert str(parsed) == name
    assert banks.names[:2] == ("private:0", "private:1")
    assert banks.names[-1] == "global"
    assert "edge:3-4" in banks.names


def test_make_and_parse():
    assert bank_name(BankKind.EDGE, 1, 2) == "edge:1-2"
    assert bank_name(BankKind.GLOBAL) == "global"
    assert bank_name(BankKind.LESSONS) == "lessons"
    assert bank_names(BankKind.LESSONS) == ["lessons"]
    assert BankName.parse("lessons") == BankName(BankKind.LESSONS, ())
    assert bank_names(BankKind.PRIVATE, np.array([0, 7])) == ["private:0", "private:7"]
    assert bank_names(BankKind.EDGE, np.array([0]), np.array([3])) == ["edge:0-3"]
    assert BankName.parse("neighbourhood:12") == BankName(BankKind.NEIGHBOURHOOD, (12,))
    assert BankName.parse("edge:-1-2") == BankName(BankKind.EDGE, (-1, 2))
    with pytest.raises(ValueError, match=r"edge bank names have 2 number\(s\)"):
        bank_names(BankKind.EDGE, np.array([0]))


@pytest.mark.parametrize(
    "name", ["", "global:0", "private", "private:1-2", "edge:1", "team:3", "private:٣", "edge:1-"]
)
def test_not_a_bank_name(name):
    with pytest.raises(ValueError, match="not a bank name") as err:
        BankName.parse(name)
    assert BANK_NAME_FORMS in str(err.value)


def test_name_error_against_a_layout():
    layout = BankLayoutSpec.model_validate({"private": {}, "edge": {}})
    assert layout.kinds == [BankKind.PRIVATE, BankKind.EDGE]
    assert layout.has_shared
    assert layout.name_error("private:3", 4) is None
    assert layout.name_error("private:4", 4) == "agent 4 does not exist; agents are 0..3"
    assert layout.name_error("private:9") is None  # the number of agents is unknown
    assert layout.name_error("edge:2-1", 4) == "edge banks are named edge:U-V with 0 <= U < V < n"
    assert layout.name_error("global") == (
        "the layout has no global layer (layers: ['private', 'edge']); add [banks.global]"
    )
    assert layout.name_error("lessons") == (
        "the layout has no lessons layer (layers: ['private', 'edge']); add [banks.lessons]"
    )
    assert layout.name_error("community:0") == (
        "the layout has no community layer (layers: ['private', 'edge'])"
    )
    communities = BankLayoutSpec.model_validate({"community": {"method": "planted"}})
    assert not BankLayoutSpec().has_shared
    assert communities.name_error("community:1", 10, 2) is None
    assert communities.name_error("community:2", 10, 2) == (
        "community index out of range (planted communities are the SBM blocks)"
    )


def test_shared_mask_and_audience():
    banks = build_banks(
        nx.path_graph(3),
        BankLayoutSpec.model_validate({"private": {}, "global": {}}),
        np.random.default_rng(0),
    )
    assert banks.shared.tolist() == [False, False, False, True]
    assert not banks.shared.flags.writeable
    assert BankKind.PRIVATE.audience == "only you read it"
    assert all(kind.audience for kind in BankKind)


def test_read_only_legend_names_the_banks_agents_cannot_write():
    assert read_only_legend(["private:0", "global", "not a bank"]) is None
    assert read_only_legend(["lessons", "private:0", "lessons"]) == (
        "Bank lessons: lessons from the environment, read by every agent; agents cannot write it."
    )
