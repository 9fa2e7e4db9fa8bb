"""The ``bank`` placement: the seed goes straight into one named bank."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from topologies.banks import bank_name_error
from topologies.placements.base import PlacementBase, SeedingLayout


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

    def target_errors(self, layout: SeedingLayout) -> list[str]:
        """The bank name must be able to exist in the layout."""
        problem = bank_name_error(self.bank, layout.kinds, layout.n_agents, layout.n_communities)
        return [f"bank = {self.bank!r}: {problem}"] if problem else []
