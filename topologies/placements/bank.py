"""The ``bank`` placement: the seed goes straight into one named bank."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from topologies.banks import bank_name_error
from topologies.placements.base import PlacementBase, SeedingLayout


class BankPlacement(PlacementBase):
    """One seed entry in a named bank, written by the environment (no agent is seeded).

    Attributes:
        into: Not used: the seed goes into ``bank``, not into seeded agents' banks, so
            ``"private"`` or ``"shared"`` is an error. Only the default is accepted (the
            resolved config in a run's manifest holds it).
        bank: Bank name, e.g. ``"global"`` or ``"neighbourhood:3"``.
    """

    strategy: Literal["bank"] = "bank"
    into: Literal["all"] = "all"
    bank: str = Field(min_length=1)

    @field_validator("into", mode="before")
    @classmethod
    def _no_into(cls, value: Any) -> Any:
        """Refuse an ``into`` that would pretend to choose agents' banks."""
        if value != "all":
            raise ValueError(
                "means nothing for strategy 'bank' (the seed goes straight into the bank "
                "placement.bank names, not into seeded agents' banks); remove it"
            )
        return value

    @property
    def target_bank(self) -> str:
        """The named bank."""
        return self.bank

    def target_errors(self, layout: SeedingLayout) -> list[str]:
        """The bank name must be able to exist in the layout."""
        problem = bank_name_error(self.bank, layout.kinds, layout.n_agents, layout.n_communities)
        return [f"bank = {self.bank!r}: {problem}"] if problem else []
