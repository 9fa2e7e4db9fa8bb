"""The ``bank`` placement: the seed goes straight into one named bank."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import Field

from topologies.banks import BankKind, bank_name_error
from topologies.placements.base import PlacementBase


class BankPlacement(PlacementBase):
    """One seed entry in a named bank, written by the environment (no agent is seeded).

    Attributes:
        bank: Bank name, e.g. ``"global"`` or ``"neighbourhood:3"``.
    """

    strategy: Literal["bank"] = "bank"
    bank: str = Field(min_length=1)

    @property
    def target_bank(self) -> str:
        """The named bank."""
        return self.bank

    def target_errors(
        self,
        n_agents: int | None,
        kinds: Collection[BankKind],
        n_communities: int | None,
        graph_file: bool,
    ) -> list[str]:
        """The bank name must be able to exist in the layout."""
        problem = bank_name_error(self.bank, kinds, n_agents, n_communities)
        return [f"bank = {self.bank!r}: {problem}"] if problem else []
