"""The one list of a run directory's tables: each name, what writes it, and its schema.

Every run writes the tables marked ``always``; the others appear when their feature is on
(an LLM policy, guards, scored decisions, ...). A table with a fixed schema names the
constant that declares it, in the module that builds the table; :meth:`TableSpec.schema`
imports it on first use, so reading this list loads nothing heavy. Tests compare what a
run writes with this list, and import the schemas from here instead of restating them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class TableSpec:
    """One output table.

    Attributes:
        name: The table's name (the run directory holds ``<name>.parquet``).
        description: What one row is.
        always: Whether every run writes it.
        schema_ref: ``"module:CONSTANT"`` of its fixed schema, or None when its columns
            vary (``steps`` gains a column per guard) or are built from a frame.
    """

    name: str
    description: str
    always: bool = False
    schema_ref: str | None = None

    def schema(self) -> pl.Schema | None:
        """The table's fixed schema, or None."""
        if self.schema_ref is None:
            return None
        module, constant = self.schema_ref.split(":")
        return pl.Schema(getattr(importlib.import_module(module), constant))


#: Every table a run may write, the ones every run writes first.
OUTPUT_TABLES: tuple[TableSpec, ...] = (
    TableSpec("steps", "one step and meme: state counts, transmissions, engine figures", True),
    TableSpec(
        "agents",
        "a change of one agent's state for one meme (events)",
        True,
        schema_ref="sim.tracking:AGENTS_SCHEMA",
    ),
    TableSpec(
        "memories",
        "one memory entry with its provenance",
        True,
        schema_ref="sim.memory:MEMORIES_SCHEMA",
    ),
    TableSpec(
        "transmissions",
        "one transmission edge (source, target, meme, hop)",
        True,
        schema_ref="sim.tracking:TRANSMISSIONS_SCHEMA",
    ),
    TableSpec(
        "graph",
        "one edge of the network (source < target)",
        True,
        schema_ref="sim.model:GRAPH_SCHEMA",
    ),
    TableSpec(
        "banks",
        "one bank: name, kind, owner, capacity, eviction",
        True,
        schema_ref="topologies.banks:BANKS_SCHEMA",
    ),
    TableSpec(
        "bank_members",
        "one (bank, agent) right: read, write",
        True,
        schema_ref="topologies.banks:BANK_MEMBERS_SCHEMA",
    ),
    TableSpec("contexts", "one retrieved entry of an agent's context, ranked"),
    TableSpec(
        "generations",
        "one LLM request and its completion",
        schema_ref="agents.llm_policy:GENERATIONS_SCHEMA",
    ),
    TableSpec("prompts", "one LLM request's prompt", schema_ref="agents.llm_policy:PROMPTS_SCHEMA"),
    TableSpec(
        "probes", "one probe answer of an agent", schema_ref="agents.llm_policy:PROBES_SCHEMA"
    ),
    TableSpec(
        "actions", "one scored decision and meme", schema_ref="agents.decisions:ACTIONS_SCHEMA"
    ),
    TableSpec(
        "values", "one questionnaire item answered", schema_ref="agents.values:VALUES_SCHEMA"
    ),
    TableSpec(
        "reflections",
        "one belief entry and the memories it consolidates",
        schema_ref="agents.reflection:REFLECTIONS_SCHEMA",
    ),
    TableSpec(
        "detections",
        "one text judged by a meme's detectors",
        schema_ref="sim.detectors:DETECTIONS_SCHEMA",
    ),
    TableSpec(
        "guard_decisions",
        "one non-accept verdict of a guard",
        schema_ref="sim.guards.phase:DECISIONS_SCHEMA",
    ),
    TableSpec(
        "updates", "one memory rewritten by its writer", schema_ref="sim.updates:UPDATES_SCHEMA"
    ),
    TableSpec(
        "turnover", "one agent replaced by a new one", schema_ref="sim.turnover:TURNOVER_SCHEMA"
    ),
    TableSpec(
        "personas",
        "one LLM agent (generation) and the persona it speaks as",
        schema_ref="agents.personas:PERSONAS_SCHEMA",
    ),
)


def table_names(always: bool = False) -> tuple[str, ...]:
    """The names of the tables a run may write (``always``: those every run writes)."""
    return tuple(t.name for t in OUTPUT_TABLES if t.always or not always)


def table_spec(name: str) -> TableSpec:
    """The spec of table ``name``.

    Raises:
        KeyError: No such table (the message lists them).
    """
    for table in OUTPUT_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"table {name!r}: not an output table; tables are {list(table_names())}")
