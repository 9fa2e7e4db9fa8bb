"""One placement check (topologies.placements.placement_errors), used by config
validation and by the model alike."""

from __future__ import annotations

import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import AgentsPlacement, BankPlacement, HubPlacement, MemeSpec, RandomPlacement
from sim.model import MemeticModel
from topologies.banks import BankKind, BankLayoutSpec
from topologies.graphs import Star
from topologies.placements import placement_errors

PRIVATE_ONLY = [BankKind.PRIVATE]


def test_messages():
    agents = AgentsPlacement(agents=[9, -1, 9])
    assert placement_errors(agents, 5, PRIVATE_ONLY) == [
        "agents = [-1, 9, 9]: agent ids must be in 0..4 (the graph has 5 agents)"
    ]
    assert placement_errors(agents, 5, PRIVATE_ONLY, graph_file=True) == [
        "agents = [-1, 9, 9]: agent ids must be in 0..4 (the graph file has 5 nodes)"
    ]
    assert placement_errors(agents, None, PRIVATE_ONLY) == ["agents = [-1]: agent ids must be >= 0"]
    hubs = HubPlacement(count=6, into="shared")
    assert placement_errors(hubs, 5, PRIVATE_ONLY) == [
        "count = 6: must be at most the number of agents (5)",
        "into = 'shared': the layout has only private banks; add a shared layer or use "
        "into = 'private' or 'all'",
    ]
    assert placement_errors(hubs, None, PRIVATE_ONLY)[0].startswith("into = 'shared'")
    lessons = [BankKind.PRIVATE, BankKind.LESSONS]  # shared, but no agent writes it
    assert placement_errors(RandomPlacement(into="shared"), 5, lessons) == [
        "into = 'shared': the layout has no shared bank agents may write (no agent writes "
        "the lessons bank); add a shared layer or use into = 'private' or 'all'"
    ]
    assert placement_errors(BankPlacement(bank="lessons"), 5, lessons) == []
    bank = BankPlacement(bank="community:3")
    assert placement_errors(bank, 5, [BankKind.PRIVATE, BankKind.COMMUNITY], 2) == [
        "bank = 'community:3': community index out of range (planted communities are the "
        "SBM blocks)"
    ]
    assert placement_errors(bank, 5, [BankKind.PRIVATE, BankKind.COMMUNITY]) == []
    assert placement_errors(RandomPlacement(into="private"), 5, [BankKind.GLOBAL]) == [
        "into = 'private': the layout has no private layer; add [banks.private] or use "
        "into = 'shared' or 'all'"
    ]


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        (
            AgentsPlacement(agents=[7]),
            "meme 'm': placement.agents = [7]: agent ids must be in 0..3 (the graph has 4 agents)",
        ),
        (
            BankPlacement(bank="global"),
            "meme 'm': placement.bank = 'global': the layout has no global layer (layers: "
            "['private']); add [banks.global]",
        ),
        (
            RandomPlacement(into="shared"),
            "meme 'm': placement.into = 'shared': the layout has only private banks",
        ),
    ],
)
def test_the_model_uses_the_same_check(placement, message):
    with pytest.raises(ValueError) as err:
        MemeticModel(
            graph=Star(n=4),
            banks=BankLayoutSpec(),
            memes=[MemeSpec(id="m", statement="s", placement=placement)],
            policy=ContagionPolicy(ContagionSpec()),
            seed=0,
        )
    assert str(err.value).startswith(message)
