"""A step allocates its arrays without huge-page advice, and leaves NumPy's setting as it was."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import networkx as nx
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from sim.pages import _advice_setter, ordinary_pages
from sim.policy import PolicyOutput, StepContext
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks


@pytest.fixture
def advice() -> Iterator[bool]:
    """NumPy's huge-page advice turned on for the test (restored after it)."""
    setter = _advice_setter()
    assert setter is not None  # NumPy >= 1.20 has the switch
    before = setter(True)
    yield True
    setter(before)


def _current() -> bool:
    """NumPy's setting now, read by setting it to itself."""
    setter = _advice_setter()
    assert setter is not None
    now = setter(True)
    setter(now)
    return now


def test_block_turns_advice_off_and_restores_it(advice: bool) -> None:
    with ordinary_pages():
        assert _current() is False
    assert _current() is True


def test_setting_is_restored_when_the_block_raises(advice: bool) -> None:
    with pytest.raises(RuntimeError), ordinary_pages():
        raise RuntimeError("boom")
    assert _current() is True


class _SettingSeen(ContagionPolicy):
    """The contagion policy, noting NumPy's huge-page setting while the step acts."""

    seen: list[bool]

    def act(self, context: StepContext) -> PolicyOutput:
        self.seen.append(_current())
        return super().act(context)


def test_model_steps_without_advice_and_restores_it(advice: bool) -> None:
    policy = _SettingSeen(ContagionSpec(beta=0.5))
    policy.seen = []
    model = MemeticModel(
        graph=nx.cycle_graph(6),
        banks=BankLayoutSpec(private=PrivateBanks(capacity=4), neighbourhood=NeighbourhoodBanks()),
        memes=[
            MemeSpec(
                id="m", statement="s", canary="CANARY-P", placement=AgentsPlacement(agents=[0])
            )
        ],
        policy=policy,
        seed=0,
    )
    model.step()
    model.step()
    assert policy.seen == [False, False]
    assert _current() is True
    assert model.tracker.adopter[0, 0] == 1  # the seed


def test_other_threads_leave_the_setting_alone(advice: bool) -> None:
    """Only the main thread switches: blocks in two threads could end out of order."""
    seen: list[bool] = []

    def worker() -> None:
        with ordinary_pages():
            seen.append(_current())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [True]
    assert _current() is True
