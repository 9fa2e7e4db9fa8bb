"""Memory bank layouts: which banks exist and which agents may read or write each.

A :class:`BankLayoutSpec` combines one or more layers (private, neighbourhood, community,
edge, global, lessons). :func:`build_banks` lays them over a graph and returns
:class:`Banks`, a columnar table with one row per bank and the access rights as CSR arrays
over agents.

Bank ids are ``0..B-1`` in a fixed order: private banks by agent, then neighbourhood
banks by agent, then community banks by community index, then edge banks by ``(u, v)``
with ``u < v``, then the global bank, then the lessons bank.

The lessons bank is read by every agent and written by no agent: only the environment
(seeds placed into it) and guards (the ``consensus`` guard's lessons) add entries, so an
agent's write naming it is refused by the model's rights check like any bank it may not
write.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import networkx as nx
import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from topologies.graphs import TopologyError, adjacency_csr


class BankKind(enum.IntEnum):
    """Kind of a memory bank; every kind but ``PRIVATE`` is shared."""

    PRIVATE = 0
    NEIGHBOURHOOD = 1
    COMMUNITY = 2
    EDGE = 3
    GLOBAL = 4
    LESSONS = 5

    @property
    def shared(self) -> bool:
        """Whether banks of this kind may be read by more than one agent."""
        return self is not BankKind.PRIVATE

    @property
    def agents_write(self) -> bool:
        """Whether agents may write banks of this kind (lessons banks: only the environment)."""
        return self is not BankKind.LESSONS

    @property
    def label(self) -> str:
        """Lower-case name used in bank names and tables, e.g. ``"private"``."""
        return self.name.lower()

    @property
    def audience(self) -> str:
        """Who reads a bank of this kind, as told to the agent writing it (prompts)."""
        return _AUDIENCE[self]


_AUDIENCE = {
    BankKind.PRIVATE: "only you read it",
    BankKind.NEIGHBOURHOOD: "read by its owner and the owner's neighbours",
    BankKind.COMMUNITY: "read by your community",
    BankKind.EDGE: "read by you and one neighbour",
    BankKind.GLOBAL: "read by every agent",
    BankKind.LESSONS: "lessons from the environment, read by every agent; agents cannot write it",
}

#: The forms of bank names, as told in messages.
BANK_NAME_FORMS = "global, lessons, private:A, neighbourhood:A, community:C, edge:U-V"

#: How many integers follow the kind in a name of each kind.
_NAME_ARITY = {
    BankKind.PRIVATE: 1,
    BankKind.NEIGHBOURHOOD: 1,
    BankKind.COMMUNITY: 1,
    BankKind.EDGE: 2,
    BankKind.GLOBAL: 0,
    BankKind.LESSONS: 0,
}
_NAME = re.compile(r"(?P<label>[a-z]+)(?::(?P<a>-?\d+)(?:-(?P<b>-?\d+))?)?", re.ASCII)


@dataclass(frozen=True)
class BankName:
    """A bank name taken apart: its kind and the numbers after it.

    Names are ``private:A`` and ``neighbourhood:A`` (A the owning agent), ``community:C``
    (C the community index), ``edge:U-V`` (the edge's endpoints, ``U < V``), ``global``
    and ``lessons``. ``str(name)`` gives the name back.

    Attributes:
        kind: The bank kind.
        numbers: ``(A,)``, ``(C,)``, ``(U, V)`` or ``()`` for the global and lessons banks.
    """

    kind: BankKind
    numbers: tuple[int, ...] = ()

    def __str__(self) -> str:
        if not self.numbers:
            return self.kind.label
        return f"{self.kind.label}:{'-'.join(str(x) for x in self.numbers)}"

    @classmethod
    def parse(cls, name: str) -> BankName:
        """Take ``name`` apart.

        Negative numbers parse: :meth:`BankLayoutSpec.name_error` says whether a bank
        of that name can exist.

        Raises:
            ValueError: ``name`` is not of one of the forms :data:`BANK_NAME_FORMS`.
        """
        match = _NAME.fullmatch(name)
        kind = next((k for k in BankKind if match and k.label == match["label"]), None)
        if match is not None and kind is not None:
            numbers = tuple(int(x) for x in (match["a"], match["b"]) if x is not None)
            if len(numbers) == _NAME_ARITY[kind]:
                return cls(kind, numbers)
        raise ValueError(f"not a bank name; bank names look like {BANK_NAME_FORMS}")


def bank_name(kind: BankKind, *numbers: int) -> str:
    """The name of a bank of ``kind``: ``bank_name(BankKind.EDGE, 1, 2) == "edge:1-2"``."""
    return str(BankName(kind, tuple(int(x) for x in numbers)))


def bank_names(kind: BankKind, *columns: np.ndarray) -> list[str]:
    """The names of many banks of ``kind`` at once.

    One column of numbers per number in the name (none for the global and lessons banks,
    which give ``["global"]`` and ``["lessons"]``).

    ``bank_names(BankKind.EDGE, u, v)[i] == bank_name(BankKind.EDGE, u[i], v[i])``.
    """
    if len(columns) != _NAME_ARITY[kind]:
        raise ValueError(f"{kind.label} bank names have {_NAME_ARITY[kind]} number(s)")
    label = kind.label
    if not columns:
        return [label]
    if len(columns) == 1:
        return [f"{label}:{a}" for a in columns[0].tolist()]
    return [
        f"{label}:{a}-{b}" for a, b in zip(columns[0].tolist(), columns[1].tolist(), strict=True)
    ]


def read_only_legend(names: Iterable[str]) -> str | None:
    """The line prompts add under memories from banks agents cannot write, or None.

    One ``Bank NAME: AUDIENCE.`` sentence per such bank among ``names`` (today the
    lessons bank: ``Bank lessons: lessons from the environment, ...``), in name order;
    None when agents may write every named bank. Strings that are not bank names are
    ignored.
    """
    found = {}
    for name in names:
        try:
            kind = BankName.parse(name).kind
        except ValueError:
            continue
        if not kind.agents_write:
            found[name] = kind.audience
    if not found:
        return None
    return " ".join(f"Bank {name}: {found[name]}." for name in sorted(found))


def bank_name_error(
    name: str,
    kinds: Collection[BankKind],
    n_agents: int | None = None,
    n_communities: int | None = None,
) -> str | None:
    """Why a bank called ``name`` cannot exist in a layout of the given layers, or None.

    Args:
        name: A bank name (see :class:`BankName`).
        kinds: The kinds of the layout's layers, in bank id order.
        n_agents: The number of agents, when known (agent and edge numbers are checked
            against it).
        n_communities: The number of communities, when known (the blocks of planted
            communities before the run, the community banks after building); community
            indices are checked against it.
    """
    try:
        parsed = BankName.parse(name)
    except ValueError as err:
        return str(err)
    kind, numbers = parsed.kind, parsed.numbers
    if kind not in kinds:
        present = [k.label for k in kinds]
        if _NAME_ARITY[kind] == 0:
            return (
                f"the layout has no {kind.label} layer (layers: {present}); "
                f"add [banks.{kind.label}]"
            )
        return f"the layout has no {kind.label} layer (layers: {present})"
    if kind in (BankKind.PRIVATE, BankKind.NEIGHBOURHOOD):
        agent = numbers[0]
        if agent < 0 or (n_agents is not None and agent >= n_agents):
            last = "n-1" if n_agents is None else n_agents - 1
            return f"agent {agent} does not exist; agents are 0..{last}"
    elif kind is BankKind.COMMUNITY:
        index = numbers[0]
        if index < 0 or (n_communities is not None and index >= n_communities):
            return "community index out of range (planted communities are the SBM blocks)"
    elif kind is BankKind.EDGE:
        u, v = numbers
        if not 0 <= u < v or (n_agents is not None and v >= n_agents):
            return "edge banks are named edge:U-V with 0 <= U < V < n"
    return None


class Eviction(enum.StrEnum):
    """What a full bank drops to make room: the oldest entry or the least recently used."""

    FIFO = "fifo"
    LRU = "lru"

    @property
    def code(self) -> int:
        """Integer code stored in :attr:`Banks.eviction` (0 fifo, 1 lru)."""
        return 0 if self is Eviction.FIFO else 1


class _LayerSpec(BaseModel):
    """What every bank layer's spec has.

    An eviction policy, a capacity (each layer sets its default), the kind of its banks
    and how it lays them over the graph (:meth:`lay`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The kind of the layer's banks.
    kind: ClassVar[BankKind]
    if TYPE_CHECKING:  # a field of every layer, with a default of its own
        capacity: int
        """Most live entries one bank of this layer holds; a commit beyond it evicts
        (``eviction``)."""

    eviction: Eviction = Eviction.FIFO
    """What a full bank drops to make room: ``"fifo"`` the oldest entry, ``"lru"`` the one least
    recently written or retrieved."""

    def lay(self, where: LayerInput) -> LaidBanks:
        """The layer's banks and their rights over the graph ``where`` describes."""
        raise NotImplementedError


class PrivateBanks(_LayerSpec):
    """One bank per agent, read and written by that agent only."""

    kind: ClassVar[BankKind] = BankKind.PRIVATE
    capacity: int = Field(32, ge=1)

    def lay(self, where: LayerInput) -> LaidBanks:
        """Bank ``i`` is agent ``i``'s."""
        ids = where.agents
        return LaidBanks(len(ids), ids, bank_names(self.kind, ids), (ids, ids), (ids, ids))


class NeighbourhoodBanks(_LayerSpec):
    """One bank per agent ``i``, readable by ``i`` and its graph neighbours.

    ``writers="owner"``: only ``i`` writes it; ``writers="members"``: ``i`` and its
    neighbours write it.
    """

    kind: ClassVar[BankKind] = BankKind.NEIGHBOURHOOD
    capacity: int = Field(32, ge=1)
    writers: Literal["owner", "members"] = "owner"
    """Who writes agent ``i``'s bank: ``"owner"`` (``i`` only) or ``"members"`` (``i`` and its
    neighbours)."""

    def lay(self, where: LayerInput) -> LaidBanks:
        """Bank ``i`` is agent ``i``'s; its neighbours read it (and write it: members)."""
        ids, indptr = where.agents, where.indptr
        # The graph is undirected, so agent a reads the banks of its neighbours: the CSR
        # rows. Both runs are sorted by (agent, bank), which keeps the final sort cheap.
        read = (
            np.concatenate([ids, np.repeat(ids, np.diff(indptr))]),
            np.concatenate([ids, where.indices.astype(np.int64)]),
        )
        write = read if self.writers == "members" else (ids, ids)
        return LaidBanks(len(ids), ids, bank_names(self.kind, ids), read, write)


class CommunityBanks(_LayerSpec):
    """One bank per community, read and written by its members.

    ``method`` finds the communities: ``"planted"`` uses the int ``"block"`` node
    attribute (as set by the SBM builder), ``"louvain"`` runs Louvain with a seed drawn
    from the generator, ``"greedy_modularity"`` runs Clauset-Newman-Moore. Communities
    are numbered by block value (planted) or by their smallest member (detected).
    """

    kind: ClassVar[BankKind] = BankKind.COMMUNITY
    capacity: int = Field(64, ge=1)
    method: Literal["planted", "louvain", "greedy_modularity"] = "louvain"
    """How communities are found (see above); ``"planted"`` needs an ``sbm`` (or ``file``) graph."""

    def lay(self, where: LayerInput) -> LaidBanks:
        """One bank per community, read and written by its members."""
        assignment, count = _community_assignment(where.graph, self.method, where.rng)
        rights = (where.agents, assignment)
        names = bank_names(self.kind, np.arange(count))
        return LaidBanks(count, np.full(count, -1, dtype=np.int64), names, rights, rights)


class EdgeBanks(_LayerSpec):
    """One bank per edge ``(u, v)``, ``u < v``, read and written by both endpoints."""

    kind: ClassVar[BankKind] = BankKind.EDGE
    capacity: int = Field(16, ge=1)

    def lay(self, where: LayerInput) -> LaidBanks:
        """Banks in CSR order of their edges (sorted by ``(u, v)``)."""
        src = np.repeat(where.agents, np.diff(where.indptr))
        dst = where.indices.astype(np.int64)
        upper = src < dst
        u, v = src[upper], dst[upper]  # CSR order: already sorted by (u, v)
        count = int(u.shape[0])
        edge_ids = np.arange(count, dtype=np.int64)
        rights = (np.concatenate([u, v]), np.concatenate([edge_ids, edge_ids]))
        names = bank_names(self.kind, u, v)
        return LaidBanks(count, np.full(count, -1, dtype=np.int64), names, rights, rights)


class GlobalBank(_LayerSpec):
    """A single bank every agent reads and writes."""

    kind: ClassVar[BankKind] = BankKind.GLOBAL
    capacity: int = Field(256, ge=1)

    def lay(self, where: LayerInput) -> LaidBanks:
        """Bank 0, for everyone."""
        rights = (where.agents, np.zeros(len(where.agents), dtype=np.int64))
        return LaidBanks(1, np.full(1, -1, dtype=np.int64), bank_names(self.kind), rights, rights)


class LessonsBank(_LayerSpec):
    """A single bank of lessons every agent reads and no agent writes.

    Only the environment writes it: seeds placed into it (``strategy = "bank"``,
    ``bank = "lessons"``) and the lessons of guards (the ``consensus`` guard's
    ``lessons_bank = "lessons"``). Agents retrieve its entries alongside their other
    memories; a write an agent proposes into it is refused (counted in ``writes_refused``).
    """

    kind: ClassVar[BankKind] = BankKind.LESSONS
    capacity: int = Field(64, ge=1)

    def lay(self, where: LayerInput) -> LaidBanks:
        """Bank 0, read by everyone, written by no agent."""
        read = (where.agents, np.zeros(len(where.agents), dtype=np.int64))
        write = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        return LaidBanks(1, np.full(1, -1, dtype=np.int64), bank_names(self.kind), read, write)


class BankLayoutSpec(BaseModel):
    """The bank layers to lay over the graph; at least one layer agents write must be set.

    The global layer is spelled ``global`` in configs (``global_`` in Python). The
    ``lessons`` layer (agents read it, only the environment writes it) comes on top of
    the others.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    private: PrivateBanks | None = PrivateBanks()
    """One bank per agent. Laid by default (a config file cannot switch it off; in Python,
    ``private=None``)."""
    neighbourhood: NeighbourhoodBanks | None = None
    """One bank per agent, read by it and its graph neighbours."""
    community: CommunityBanks | None = None
    """One bank per community."""
    edge: EdgeBanks | None = None
    """One bank per edge, shared by its two endpoints."""
    global_: GlobalBank | None = Field(None, alias="global")
    """One bank for all agents (``[banks.global]``)."""
    lessons: LessonsBank | None = None
    """One bank every agent reads and only the environment and guards write."""

    @property
    def layers(self) -> dict[BankKind, _LayerSpec | None]:
        """Each layer's spec by bank kind (None: the layer is not set), in bank id order."""
        return {
            BankKind.PRIVATE: self.private,
            BankKind.NEIGHBOURHOOD: self.neighbourhood,
            BankKind.COMMUNITY: self.community,
            BankKind.EDGE: self.edge,
            BankKind.GLOBAL: self.global_,
            BankKind.LESSONS: self.lessons,
        }

    @property
    def kinds(self) -> list[BankKind]:
        """The kinds of the layers that are set, in bank id order."""
        return [kind for kind, layer in self.layers.items() if layer is not None]

    @property
    def has_shared(self) -> bool:
        """Whether some layer that is set is shared (any but the private one)."""
        return any(kind.shared for kind in self.kinds)

    def name_error(
        self, name: str, n_agents: int | None = None, n_communities: int | None = None
    ) -> str | None:
        """Why a bank called ``name`` cannot exist in this layout, or None if it may.

        See :func:`bank_name_error`; ``n_agents`` and ``n_communities`` are those known
        before the run (None: not known, not checked).
        """
        return bank_name_error(name, self.kinds, n_agents, n_communities)

    @model_validator(mode="after")
    def _at_least_one_layer(self) -> BankLayoutSpec:
        layers = (self.private, self.neighbourhood, self.community, self.edge, self.global_)
        if all(layer is None for layer in layers):
            given = "banks = {lessons = ...}" if self.lessons is not None else "banks = {}"
            raise TopologyError(
                f"{given}: no layer set; set at least one of private, neighbourhood, "
                "community, edge, global (agents cannot write the lessons layer)"
            )
        return self


#: Schema of the ``banks`` table (:meth:`Banks.banks_table`): one bank a row.
BANKS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "bank_id": pl.Int32,
    "name": pl.String,
    "kind": pl.String,
    "owner": pl.Int32,
    "capacity": pl.Int32,
    "eviction": pl.String,
}

#: Schema of the ``bank_members`` table (:meth:`Banks.members_table`): one (bank, agent).
BANK_MEMBERS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "bank_id": pl.Int32,
    "bank_name": pl.String,
    "kind": pl.String,
    "agent_id": pl.Int32,
    "can_read": pl.Boolean,
    "can_write": pl.Boolean,
}


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Banks:
    """Built bank layout: one row per bank plus CSR access rights over agents.

    Attributes:
        kind: int8 :class:`BankKind` code per bank.
        owner: int32 owning agent per bank (private and neighbourhood banks), else -1.
        capacity: int32 maximum number of live entries per bank.
        eviction: int8 eviction code per bank (0 fifo, 1 lru).
        names: Bank names, e.g. ``"private:3"``, ``"neighbourhood:3"``,
            ``"community:0"``, ``"edge:1-2"``, ``"global"``, ``"lessons"``.
        read_indptr: int64, length ``n_agents + 1``.
        read_banks: int32; agent ``a`` reads ``read_banks[read_indptr[a]:read_indptr[a+1]]``
            (sorted ascending).
        write_indptr: int64, length ``n_agents + 1``.
        write_banks: int32; the banks agent ``a`` may write, sorted ascending.
    """

    kind: np.ndarray
    owner: np.ndarray
    capacity: np.ndarray
    eviction: np.ndarray
    names: tuple[str, ...]
    read_indptr: np.ndarray
    read_banks: np.ndarray
    write_indptr: np.ndarray
    write_banks: np.ndarray

    @property
    def n_banks(self) -> int:
        """Number of banks ``B``."""
        return int(self.kind.shape[0])

    @functools.cached_property
    def shared(self) -> np.ndarray:
        """Read-only bool per bank: whether it is shared (its kind is not private)."""
        return _readonly(self.kind != int(BankKind.PRIVATE))

    @functools.cached_property
    def kinds(self) -> list[BankKind]:
        """The kinds of the layers present, in bank id order."""
        return [BankKind(int(k)) for k in np.unique(self.kind)]

    def name_error(self, name: str) -> str | None:
        """Why no bank of this layout can be called ``name``, or None.

        See :func:`bank_name_error`; an edge bank also needs its edge in the graph, which
        :meth:`bank_id` checks.
        """
        return bank_name_error(name, self.kinds, self.n_agents, self.n_communities)

    @property
    def n_communities(self) -> int:
        """Number of community banks."""
        return int(np.count_nonzero(self.kind == int(BankKind.COMMUNITY)))

    @property
    def n_agents(self) -> int:
        """Number of agents the rights are laid over."""
        return int(self.read_indptr.shape[0] - 1)

    def _check_agent(self, agent: int) -> int:
        if not 0 <= agent < self.n_agents:
            raise IndexError(f"agent = {agent}: must satisfy 0 <= agent < {self.n_agents}")
        return int(agent)

    def readable(self, agent: int) -> np.ndarray:
        """Return the sorted int32 ids of the banks ``agent`` may read."""
        a = self._check_agent(agent)
        return self.read_banks[self.read_indptr[a] : self.read_indptr[a + 1]]

    def writable(self, agent: int) -> np.ndarray:
        """Return the sorted int32 ids of the banks ``agent`` may write."""
        a = self._check_agent(agent)
        return self.write_banks[self.write_indptr[a] : self.write_indptr[a + 1]]

    @staticmethod
    def _contains(sorted_ids: np.ndarray, bank: int) -> bool:
        pos = int(np.searchsorted(sorted_ids, bank))
        return pos < sorted_ids.shape[0] and int(sorted_ids[pos]) == bank

    def can_read(self, agent: int, bank: int) -> bool:
        """Whether ``agent`` may read ``bank``."""
        return self._contains(self.readable(agent), bank)

    def can_write(self, agent: int, bank: int) -> bool:
        """Whether ``agent`` may write ``bank``."""
        return self._contains(self.writable(agent), bank)

    @functools.cached_property
    def _write_keys(self) -> np.ndarray:
        # agent * n_banks + bank over all write rights: sorted, since the CSR is sorted by
        # agent and each agent's banks ascending.
        agents = np.repeat(np.arange(self.n_agents, dtype=np.int64), np.diff(self.write_indptr))
        return agents * self.n_banks + self.write_banks

    def write_allowed(self, agents: np.ndarray, banks: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`can_write`: whether ``agents[i]`` may write ``banks[i]``.

        Bank ids outside ``0..n_banks-1`` are not writable (no error).
        """
        agents = np.asarray(agents, dtype=np.int64)
        banks = np.asarray(banks, dtype=np.int64)
        keys_all = self._write_keys
        in_range = (banks >= 0) & (banks < self.n_banks)
        if keys_all.shape[0] == 0:
            return np.zeros(agents.shape[0], dtype=np.bool_)
        keys = agents * self.n_banks + np.where(in_range, banks, 0)
        pos = np.minimum(np.searchsorted(keys_all, keys), keys_all.shape[0] - 1)
        return in_range & (keys_all[pos] == keys)

    @functools.cached_property
    def _ids_by_name(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def bank_id(self, name: str) -> int:
        """Return the id of the bank called ``name``.

        Raises:
            KeyError: No bank has that name; the message lists example valid names.
        """
        try:
            return self._ids_by_name[name]
        except KeyError:
            examples = []
            for code in np.unique(self.kind):
                first = int(np.flatnonzero(self.kind == code)[0])
                examples.append(repr(self.names[first]))
            raise KeyError(
                f"bank name = {name!r}: no such bank; valid names look like "
                f"{', '.join(examples)} ({self.n_banks} banks)"
            ) from None

    def _kind_labels(self) -> pl.Series:
        return pl.Series([kind.label for kind in BankKind], dtype=pl.String)

    def banks_table(self) -> pl.DataFrame:
        """Return one row per bank: bank_id, name, kind, owner, capacity, eviction."""
        kind_labels = self._kind_labels()
        eviction_labels = pl.Series([e.value for e in Eviction], dtype=pl.String)
        return pl.DataFrame(
            {
                "bank_id": np.arange(self.n_banks, dtype=np.int32),
                "name": pl.Series(self.names, dtype=pl.String),
                "kind": kind_labels.gather(self.kind.astype(np.int64)),
                "owner": self.owner,
                "capacity": self.capacity,
                "eviction": eviction_labels.gather(self.eviction.astype(np.int64)),
            },
            schema=BANKS_SCHEMA,
        )

    def members_table(self) -> pl.DataFrame:
        """Return one row per (bank, agent) with any right, sorted by bank_id, agent_id.

        Columns: bank_id, bank_name, kind, agent_id, can_read, can_write.
        """
        n = self.n_agents
        read_agent = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.read_indptr))
        write_agent = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.write_indptr))
        # Bank-major key with the right in the two low bits (1 read, 2 write).
        tagged = np.concatenate(
            [
                (self.read_banks.astype(np.int64) * n + read_agent) * 4 + 1,
                (self.write_banks.astype(np.int64) * n + write_agent) * 4 + 2,
            ]
        )
        tagged.sort(kind="stable")
        key = tagged >> 2
        starts = np.flatnonzero(np.diff(key, prepend=-1))
        rights = np.bitwise_or.reduceat(tagged & 3, starts) if starts.size else tagged
        key = key[starts]
        bank = key // max(n, 1)
        agent = key % max(n, 1)
        return pl.DataFrame(
            {
                "bank_id": bank.astype(np.int32),
                "bank_name": pl.Series(self.names, dtype=pl.String).gather(bank),
                "kind": self._kind_labels().gather(self.kind[bank].astype(np.int64)),
                "agent_id": agent.astype(np.int32),
                "can_read": (rights & 1).astype(bool),
                "can_write": (rights & 2).astype(bool),
            },
            schema=BANK_MEMBERS_SCHEMA,
        )


@dataclass(frozen=True)
class LayerInput:
    """What a layer lays its banks over.

    Attributes:
        graph: The graph on nodes ``0..n-1``.
        agents: ``0..n-1`` (int64).
        indptr: The graph's CSR row pointers (see :func:`adjacency_csr`).
        indices: The graph's CSR neighbours.
        rng: The model's generator (community detection draws its seed from it).
    """

    graph: nx.Graph
    agents: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    rng: np.random.Generator


@dataclass(frozen=True)
class LaidBanks:
    """A layer's banks with local ids ``0..count-1`` and their rights as pairs.

    Attributes:
        count: Number of banks.
        owner: Owning agent per bank (-1: none).
        names: Bank names (see :func:`bank_names`).
        read: ``(agents, banks)``: agent ``agents[i]`` reads bank ``banks[i]``.
        write: ``(agents, banks)``: agent ``agents[i]`` writes bank ``banks[i]``.
    """

    count: int
    owner: np.ndarray
    names: list[str]
    read: tuple[np.ndarray, np.ndarray]
    write: tuple[np.ndarray, np.ndarray]


def _community_assignment(
    graph: nx.Graph, method: str, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Return each agent's community index (0..C-1) and the number of communities C."""
    n = graph.number_of_nodes()
    if method == "planted":
        blocks = np.full(n, -1, dtype=np.int64)
        for node, block in graph.nodes(data="block"):
            if block is None:
                raise TopologyError(
                    f"community.method = 'planted': node {node} has no 'block' attribute; "
                    "'planted' needs a graph with planted blocks (kind 'sbm'), otherwise "
                    "use 'louvain' or 'greedy_modularity'"
                )
            blocks[node] = int(block)
        values, assignment = np.unique(blocks, return_inverse=True)
        return assignment.astype(np.int64), int(values.shape[0])
    if method == "louvain":
        communities = nx.community.louvain_communities(graph, seed=int(rng.integers(2**31 - 1)))
    elif method == "greedy_modularity":
        communities = nx.community.greedy_modularity_communities(graph)
    else:
        raise TopologyError(
            f"community.method = {method!r}: must be 'planted', 'louvain' or 'greedy_modularity'"
        )
    ordered = sorted((sorted(c) for c in communities if c), key=lambda members: members[0])
    assignment = np.full(n, -1, dtype=np.int64)
    for index, members in enumerate(ordered):
        assignment[np.asarray(members, dtype=np.int64)] = index
    return assignment, len(ordered)


def _rights_csr(
    n: int, n_banks: int, agents: list[np.ndarray], banks: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Turn (agent, bank) pairs into deduplicated CSR arrays sorted by agent, then bank."""
    agent = np.concatenate(agents) if agents else np.zeros(0, dtype=np.int64)
    bank = np.concatenate(banks) if banks else np.zeros(0, dtype=np.int64)
    key = agent * n_banks + bank
    key.sort(kind="stable")  # the layers' pairs come in sorted runs: timsort merges them fast
    if key.shape[0]:
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    agent_of_key = key // max(n_banks, 1)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(agent_of_key, minlength=n), out=indptr[1:])
    return indptr, (key % max(n_banks, 1)).astype(np.int32)


def build_banks(graph: nx.Graph, spec: BankLayoutSpec, rng: np.random.Generator) -> Banks:
    """Lay the spec's bank layers over ``graph``.

    Args:
        graph: Undirected graph on nodes ``0..n-1`` (agents), as from ``build_graph``.
        spec: Which layers to build, with their capacity and eviction policy.
        rng: Source of randomness (the Louvain seed is drawn from it).

    Returns:
        The banks in the fixed id order (private, neighbourhood, community, edge,
        global, lessons) with their read and write rights.

    Raises:
        TopologyError: The graph nodes are not ``0..n-1``, or ``community.method`` is
            ``"planted"`` and a node has no ``"block"`` attribute.
    """
    indptr, indices = adjacency_csr(graph)
    n = graph.number_of_nodes()
    where = LayerInput(graph, np.arange(n, dtype=np.int64), indptr, indices, rng)
    specs = [layer for layer in spec.layers.values() if layer is not None]
    layers = [layer.lay(where) for layer in specs]
    pairs = list(zip(specs, layers, strict=True))

    offsets = np.cumsum([0] + [layer.count for layer in layers])
    n_banks = int(offsets[-1])
    kind = np.concatenate(
        [np.full(laid.count, int(layer.kind), dtype=np.int8) for layer, laid in pairs]
    )
    owner = np.concatenate([layer.owner for layer in layers]).astype(np.int32)
    capacity = np.concatenate(
        [np.full(laid.count, layer.capacity, dtype=np.int32) for layer, laid in pairs]
    )
    eviction = np.concatenate(
        [np.full(laid.count, layer.eviction.code, dtype=np.int8) for layer, laid in pairs]
    )
    names = tuple(name for layer in layers for name in layer.names)
    read_indptr, read_banks = _rights_csr(
        n,
        n_banks,
        [layer.read[0] for layer in layers],
        [layer.read[1] + off for layer, off in zip(layers, offsets, strict=False)],
    )
    write_indptr, write_banks = _rights_csr(
        n,
        n_banks,
        [layer.write[0] for layer in layers],
        [layer.write[1] + off for layer, off in zip(layers, offsets, strict=False)],
    )
    return Banks(
        kind=_readonly(kind),
        owner=_readonly(owner),
        capacity=_readonly(capacity),
        eviction=_readonly(eviction),
        names=names,
        read_indptr=_readonly(read_indptr),
        read_banks=_readonly(read_banks),
        write_indptr=_readonly(write_indptr),
        write_banks=_readonly(write_banks),
    )
