"""What the dashboard shows, read from a run's tables (no Solara here).

A :class:`RunView` wraps the tables of one run: those of a finished run directory
(:meth:`RunView.from_run_dir`; an interrupted or failed run is read at its last
checkpoint, :mod:`.unfinished`) or those a live model has produced so far
(:meth:`RunView.from_model`). Its methods answer the page's questions for one step:
each agent's state per meme (recovered agents included, :mod:`sim.analysis.recovery`), the counts,
the transmission tree so far and, for one agent, the memory entries it retrieved (the
``contexts`` table that LLM runs record) and the entries it wrote.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from experiments.dashboard.layout import NetworkLayout, network_layout
from experiments.dashboard.unfinished import UnfinishedRun, UnfinishedRunError, unfinished_run
from experiments.messages import counted
from experiments.rundirs import first_run, is_run_dir, is_sweep_dir
from sim.analysis.cascades import tree_edges
from sim.analysis.prevalence import prevalence, states_at
from sim.analysis.recovery import Recoveries
from sim.columns import int_max
from sim.manifest import ManifestError, read_manifest
from sim.memory import ENVIRONMENT
from sim.run import REQUIRED_TABLES

if TYPE_CHECKING:
    from sim.model import MemeticModel

#: Columns of :meth:`RunView.retrieved` (with ``text``).
INSPECTOR_COLUMNS = ("rank", "entry_id", "bank", "author_id", "written_step", "memes", "score")

#: The tables the page reads from a run directory (not the others: a long LLM run's
#: ``prompts``, ``detections`` or ``values`` can be large and nothing here shows them).
PAGE_TABLES = (
    "steps",
    "agents",
    "memories",
    "transmissions",
    "graph",
    "banks",
    "contexts",
    "generations",
    "guard_decisions",
    "turnover",
)

#: Columns of the memory entries the inspector shows.
ENTRY_COLUMNS = ("entry_id", "bank", "author_id", "written_step", "memes", "removed_step", "text")

#: Columns of :meth:`RunView.written`.
WRITTEN_COLUMNS = ("entry_id", "bank", "written_step", "memes", "removed_step", "text")

#: Columns of :meth:`RunView.verdicts` (from the ``guard_decisions`` table).
VERDICT_COLUMNS = ("guard", "phase", "verdict", "entry_id", "bank", "memes", "reason")

#: Columns of :meth:`RunView.replies` (from the ``generations`` table).
REPLY_COLUMNS = ("kind", "question", "parse_status", "completion", "error")

#: The per-step counts shown for each meme: (column of the ``steps`` table, label).
COUNT_COLUMNS = (
    ("exposed", "exposed"),
    ("carriers", "carriers"),
    ("expressed", "expressed"),
    ("adopters", "adopters"),
)


#: How many (step, meme) frames of agent states a view keeps (:meth:`RunView.states`):
#: the page asks for them on every move of the step slider. A frame has a row per agent.
STATES_CACHE_SIZE = 64

#: Environment variable that passes the checked target to the page's server process.
TARGET_ENV = "MEMESPREAD_DASHBOARD_TARGET"


class NotARunError(ValueError):
    """The dashboard was pointed at something that is not a run directory or config."""


@dataclass(frozen=True)
class TreeSummary:
    """The transmission tree of one meme up to a step, in numbers.

    Attributes:
        agents: Agents in the tree (seeds, infected and spontaneous carriers; the
            environment is not an agent), i.e. the ``steps`` table's ``infected``.
        infection_edges: Infection edges, those from the environment included.
        generations: The largest generation (hop from a root).
        environment: Whether the environment (memes seeded into a bank) is a root.
    """

    agents: int
    infection_edges: int
    generations: int
    environment: bool

    @classmethod
    def of(cls, tree: pl.DataFrame) -> TreeSummary:
        """The summary of a tree given as :meth:`RunView.tree` rows."""
        environment = tree.filter(pl.col("agent_id") == ENVIRONMENT).height > 0
        return cls(
            agents=tree.height - int(environment),
            infection_edges=tree.filter(pl.col("source_agent").is_not_null()).height,
            generations=int_max(tree["generation"], 0),
            environment=environment,
        )

    def caption(self, meme_id: str, step: int) -> str:
        """The page's line above the tree of ``meme_id`` up to ``step``."""
        roots = " and the environment" if self.environment else ""
        return (
            f"meme `{meme_id}`: {counted(self.agents, 'agent')}{roots} in the tree, "
            f"{counted(self.infection_edges, 'infection edge')}, "
            f"{counted(self.generations, 'generation')} deep (up to step {step})"
        )


@dataclass(frozen=True)
class RunView:
    """The tables of one run, as the dashboard reads them.

    Attributes:
        name: The run's name (page titles).
        n_agents: Number of agents.
        meme_ids: The memes, in config order.
        tables: The run's tables by name: those of :data:`PAGE_TABLES` that the run
            has (``contexts`` and ``generations`` in LLM runs, ``guard_decisions`` with
            guards).
        layout_seed: Seed of the network's spring layout and sample (the same on every
            step).
        given_layout: A layout computed before (e.g. by the previous view of a live
            run), used instead of computing it again.
        unfinished: The run's checkpoint when the run is interrupted or failed (its
            tables are those of the steps the checkpoint holds), else None.
    """

    name: str
    n_agents: int
    meme_ids: tuple[str, ...]
    tables: dict[str, pl.DataFrame] = field(repr=False)
    layout_seed: int = 0
    given_layout: NetworkLayout | None = field(default=None, repr=False, compare=False)
    unfinished: UnfinishedRun | None = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> RunView:
        """Read a run directory: a complete run's tables, or an unfinished run's so far.

        A complete run is read from its Parquet tables; an ``interrupted`` or ``failed``
        one from its last checkpoint (:mod:`experiments.dashboard.unfinished`: the
        tables of the steps it holds, as a complete run would have written them).

        Raises:
            NotARunError: See :func:`check_run_dir`; or an unfinished run's checkpoint
                that does not fit the model its config builds.
        """
        path = Path(run_dir)
        manifest, unfinished = check_run_dir(path)
        if unfinished is None:
            tables = {
                name: read_page_table(path / f"{name}.parquet")
                for name in PAGE_TABLES
                if (path / f"{name}.parquet").is_file()
            }
        else:
            try:
                so_far = unfinished.tables()
            except UnfinishedRunError as err:
                raise NotARunError(str(err)) from None
            tables = {name: so_far[name] for name in PAGE_TABLES if name in so_far}
        memes = manifest["config"].get("memes") or []
        meme_ids = [str(m["id"]) for m in memes if isinstance(m, dict) and "id" in m]
        if not meme_ids:
            meme_ids = tables["steps"]["meme_id"].unique(maintain_order=True).to_list()
        n_agents = manifest.get("n_agents")
        if not isinstance(n_agents, int):
            graph = tables["graph"]
            n_agents = max(int_max(graph["source"], 0), int_max(graph["target"], 0)) + 1
        return cls(
            name=str(manifest.get("name", path.name)),
            n_agents=n_agents,
            meme_ids=tuple(meme_ids),
            tables=tables,
            unfinished=unfinished,
        )

    @classmethod
    def from_model(
        cls, model: MemeticModel, name: str, layout: NetworkLayout | None = None
    ) -> RunView:
        """The tables a live model has produced so far (``layout``: see ``given_layout``)."""
        return cls(
            name=name,
            n_agents=model.graph.number_of_nodes(),
            meme_ids=tuple(model.memes.ids),
            tables=model.tables(),
            given_layout=layout,
        )

    # ------------------------------------------------------------ steps
    @property
    def steps(self) -> pl.DataFrame:
        """The ``steps`` table (empty before the first step)."""
        return self.tables.get("steps", pl.DataFrame())

    @property
    def last_step(self) -> int | None:
        """The last recorded step (None before the first step)."""
        steps = self.steps
        if steps.is_empty():
            return None
        return int_max(steps["step"])

    def counts(self, step: int, meme_id: str) -> dict[str, int]:
        """The ``steps`` table's counts of ``meme_id`` after ``step`` (exposed, carriers, ...).

        Columns the run did not record (``expressed`` before scored decisions) are left
        out; a step not in the table gives an empty dict.
        """
        steps = self.steps
        if steps.is_empty():
            return {}
        row = steps.filter((pl.col("step") == step) & (pl.col("meme_id") == meme_id))
        if row.is_empty():
            return {}
        return {
            label: int(row[column][0])
            for column, label in COUNT_COLUMNS
            if column in row.columns and row[column][0] is not None
        }

    def prevalence(self) -> pl.DataFrame:
        """Prevalence per step, meme and state, ``recovered`` included.

        The states of :func:`sim.analysis.prevalence.prevalence` (from the ``steps``
        table), then ``recovered`` (:meth:`Recoveries.prevalence
        <sim.analysis.recovery.Recoveries.prevalence>`), which the ``steps``
        table does not count. Computed once per view.
        """
        return self._prevalence

    @cached_property
    def _prevalence(self) -> pl.DataFrame:
        counted_states = prevalence(self.steps, self.n_agents)
        if self.last_step is None:
            return counted_states
        recovered = self.recoveries.prevalence(self.last_step)
        return pl.concat([counted_states, recovered.select(counted_states.columns)])

    # ------------------------------------------------------------ agents
    @cached_property
    def recoveries(self) -> Recoveries:
        """Who is recovered after each step (from the ``agents`` and ``turnover`` tables)."""
        return Recoveries.of(
            self.tables["agents"], self.tables.get("turnover"), self.n_agents, self.meme_ids
        )

    def states(self, step: int, meme_id: str) -> pl.DataFrame:
        """Each agent's flags and state after ``step``.

        :func:`sim.analysis.prevalence.states_at` of the run's ``agents`` and
        ``turnover`` tables: ``state`` is ``"recovered"`` for a recovered agent
        (:mod:`sim.analysis.recovery`), else the most advanced of susceptible < exposed
        < carrier < expressed < adopter, as the network figure of :mod:`sim.plots` draws.

        Computed once per (step, meme) while it is among the :data:`STATES_CACHE_SIZE`
        most recently asked for (:meth:`states_cache_info`): the page asks on every
        slider move, and each computation reads the whole ``agents`` table. The same
        question returns the same frame, which callers must not modify.
        """
        return self._cached_states(step, meme_id)

    def states_cache_info(self) -> functools._CacheInfo:
        """The :meth:`states` cache: its hits, misses, ``maxsize`` and ``currsize``."""
        return self._cached_states.cache_info()

    @cached_property
    def _cached_states(self) -> functools._lru_cache_wrapper[pl.DataFrame]:
        # One cache per view (a cache on the method would be one for every view, and
        # would keep them all alive).
        compute: Callable[[int, str], pl.DataFrame] = self._states
        return functools.lru_cache(maxsize=STATES_CACHE_SIZE)(compute)

    def _states(self, step: int, meme_id: str) -> pl.DataFrame:
        return states_at(
            self.tables["agents"],
            self.n_agents,
            step,
            meme_id,
            turnover=self.tables.get("turnover"),
        )

    @cached_property
    def layout(self) -> NetworkLayout:
        """The drawn agents and their positions (:func:`network_layout` of the graph).

        ``given_layout`` when set (a live run's graph does not change between steps, so
        its layout is computed once), else a spring layout seeded with ``layout_seed``
        of every agent, or of a sample of them in a large network.
        """
        if self.given_layout is not None:
            return self.given_layout
        return network_layout(self.n_agents, self.edges, seed=self.layout_seed)

    @property
    def edges(self) -> np.ndarray:
        """The graph's edges, shape (m, 2)."""
        graph = self.tables.get("graph")
        if graph is None or graph.is_empty():
            return np.zeros((0, 2), dtype=np.int64)
        return graph.select("source", "target").to_numpy().astype(np.int64)

    # ------------------------------------------------------------ tree
    def tree(self, meme_id: str, step: int) -> pl.DataFrame:
        """The transmission tree of ``meme_id`` up to ``step``.

        Rows ``agent_id, source_agent, generation, step, origin`` (source null for roots:
        seeds and spontaneous carriers; ``-1`` is the environment).
        """
        tree = tree_edges(
            self.tables["transmissions"],
            self.tables["agents"],
            meme_id,
            self.tables.get("memories"),
        )
        return tree.filter(pl.col("step") <= step)

    # ------------------------------------------------------------ inspector
    @property
    def has_contexts(self) -> bool:
        """Whether the run recorded what each agent retrieved (LLM runs do)."""
        return "contexts" in self.tables

    def _with_bank_names(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with a ``bank`` column: the name of its ``bank_id`` (the id if unnamed)."""
        banks = self.tables.get("banks")
        if banks is None or not {"bank_id", "name"} <= set(banks.columns):
            return frame.with_columns(pl.col("bank_id").cast(pl.String).alias("bank"))
        names = banks.select(pl.col("bank_id").cast(frame["bank_id"].dtype), "name")
        return frame.join(names, on="bank_id", how="left", maintain_order="left").with_columns(
            pl.col("name").fill_null(pl.col("bank_id").cast(pl.String)).alias("bank")
        )

    def _entries(self) -> pl.DataFrame:
        memories = self.tables["memories"]
        removed = (
            pl.when(pl.col("removed_step") >= 0).then(pl.col("removed_step"))
            if "removed_step" in memories.columns
            else pl.lit(None, dtype=pl.Int32)
        )
        entries = memories.select(
            "entry_id",
            "bank_id",
            "author_id",
            pl.col("step").alias("written_step"),
            "memes",
            removed.alias("removed_step"),
            "text",
        )
        return (
            self._with_bank_names(entries)
            .select(*ENTRY_COLUMNS)
            .with_columns(pl.col("memes").list.join(", ").alias("memes"))
        )

    def retrieved(self, agent_id: int, step: int) -> pl.DataFrame:
        """The entries ``agent_id`` retrieved at ``step``, best first.

        Columns :data:`INSPECTOR_COLUMNS` plus ``text``; ``memes`` lists the memes the
        entry carries (comma-separated). Empty when the run recorded no contexts.
        """
        contexts = self.tables.get("contexts")
        if contexts is None:
            return pl.DataFrame()
        rows = contexts.filter((pl.col("step") == step) & (pl.col("agent_id") == agent_id))
        return (
            rows.select("rank", "entry_id", "score")
            .join(self._entries(), on="entry_id", how="left", maintain_order="left")
            .sort("rank")
            .select(*INSPECTOR_COLUMNS, "text")
        )

    def written(self, agent_id: int, step: int) -> pl.DataFrame:
        """The entries ``agent_id`` wrote at ``step`` that were committed to a bank.

        Columns ``entry_id, bank, written_step, memes, removed_step, text``;
        ``removed_step`` is the step the entry left its bank (evicted, forgotten,
        retracted, rolled back, or emptied by turnover), null while it stays. Writes a
        guard rejected or quarantined are in no bank: see :meth:`verdicts`.
        """
        memories = self.tables["memories"]
        ids = memories.filter((pl.col("author_id") == agent_id) & (pl.col("step") == step))[
            "entry_id"
        ]
        return (
            self._entries()
            .filter(pl.col("entry_id").is_in(ids.implode()))
            .sort("entry_id")
            .select(*WRITTEN_COLUMNS)
        )

    def verdicts(self, agent_id: int, step: int) -> pl.DataFrame:
        """The guards' verdicts at ``step`` on the writes and entries of ``agent_id``.

        The ``guard_decisions`` rows of that step and agent (every non-accept verdict:
        a rejected or quarantined write, which never reaches a bank, a rollback of one of
        its entries, a blocked adoption), in the table's order. Columns
        :data:`VERDICT_COLUMNS`; ``entry_id`` is -1 for a write that was not committed.
        Empty for runs without guards.
        """
        decisions = self.tables.get("guard_decisions")
        if decisions is None:
            return pl.DataFrame(schema=dict.fromkeys(VERDICT_COLUMNS, pl.String))
        rows = decisions.filter((pl.col("step") == step) & (pl.col("agent_id") == agent_id))
        return (
            self._with_bank_names(rows)
            .with_columns(pl.col("memes").list.join(", ").alias("memes"))
            .select(*VERDICT_COLUMNS)
        )

    @property
    def has_generations(self) -> bool:
        """Whether the run recorded the engine's replies (LLM runs do)."""
        return "generations" in self.tables

    def replies(self, agent_id: int, step: int) -> pl.DataFrame:
        """What ``agent_id`` answered the engine at ``step``: its ``generations`` rows.

        Columns :data:`REPLY_COLUMNS` (``kind``: act, probe, reflect; ``completion``: the
        raw reply, including the memory text it proposed, whether or not a guard let the
        write through), in request order. Empty when the run recorded no generations.
        """
        generations = self.tables.get("generations")
        if generations is None:
            return pl.DataFrame(schema=dict.fromkeys(REPLY_COLUMNS, pl.String))
        rows = generations.filter((pl.col("step") == step) & (pl.col("agent_id") == agent_id))
        return rows.select(*REPLY_COLUMNS)

    def busiest_reader(self, step: int) -> int:
        """An agent worth inspecting at ``step``: the most exposed reader.

        The one whose context at ``step`` held the most entries by other authors (other
        agents, or a bank's seed) carrying a meme, the entries that expose it; ties go to
        the one with the most entries by other authors, then to the lowest id. Its own
        entries do not count. Agent 0 when nothing was retrieved.
        """
        contexts = self.tables.get("contexts")
        if contexts is None:
            return 0
        entries = self.tables["memories"].select(
            "entry_id",
            "author_id",
            (pl.col("memes").list.len() > 0).alias("carrying"),
        )
        read = contexts.filter(pl.col("step") == step).join(
            entries, on="entry_id", how="left", maintain_order="left"
        )
        others = read.filter(pl.col("author_id") != pl.col("agent_id"))
        ranked = (
            others.group_by("agent_id")
            .agg(pl.col("carrying").sum().alias("carrying"), pl.len().alias("n"))
            .sort(["carrying", "n", "agent_id"], descending=[True, True, False])
        )
        return int(ranked["agent_id"][0]) if ranked.height else 0


def check_run_dir(path: Path) -> tuple[dict[str, Any], UnfinishedRun | None]:
    """The checked manifest of a run directory the page can open, and its checkpoint.

    Cheap: no model is built and of the tables only their Parquet footers are read. A
    ``complete`` run must have the tables the page needs, each of its page tables
    (:data:`PAGE_TABLES`) readable as Parquet (not truncated, say, by a full disk or an
    interrupted copy); an ``interrupted`` or ``failed`` one a checkpoint to replay
    (:func:`experiments.dashboard.unfinished.unfinished_run`, returned second; None for a
    complete run); a ``running`` one is refused.

    Raises:
        NotARunError: ``path`` is missing, not a directory, a sweep directory, not a run
            of memespread, has a manifest that :func:`sim.manifest.read_manifest`
            refuses, is complete but lacks tables or has one that is not readable as
            Parquet, is running, or is unfinished without a checkpoint to replay (each
            case named in the one-line message).
    """
    if not path.is_dir():
        raise NotARunError(f"{path}: no such directory (give a run directory or a config)")
    if is_sweep_dir(path):
        example = first_run(path) or f"{path}/runs/.../seed=N"
        raise NotARunError(
            f"{path} is a sweep directory; give one of its runs, e.g. "
            f"{example} (see {path}/index.parquet)"
        )
    if not is_run_dir(path):
        raise NotARunError(
            f"{path} is not a memespread run directory (no manifest.json written by "
            "memespread); give a run directory (memespread run writes one) or a config"
        )
    try:
        manifest = read_manifest(path)
    except ManifestError as err:  # e.g. an edited manifest: the one checked reader says
        raise NotARunError(str(err)) from None
    if manifest["status"] != "complete":
        try:
            return manifest, unfinished_run(path, manifest)
        except UnfinishedRunError as err:
            raise NotARunError(str(err)) from None
    needed = (*REQUIRED_TABLES, "graph")
    missing = [t for t in needed if not (path / f"{t}.parquet").is_file()]
    if missing:
        raise NotARunError(
            f"{path}: the run is complete but has no {', '.join(missing)} table(s): its "
            "directory is damaged; rerun its config with --overwrite"
        )
    for name in PAGE_TABLES:
        table = path / f"{name}.parquet"
        if table.is_file():
            try:
                pl.read_parquet_schema(table)
            except (pl.exceptions.PolarsError, OSError) as err:
                raise NotARunError(_unreadable(table, err)) from None
    return manifest, None


def read_page_table(table: Path) -> pl.DataFrame:
    """A run's table, read whole.

    Raises:
        NotARunError: The file is not readable as Parquet (a one-line message naming it;
            :func:`check_run_dir` finds a damaged footer, this any other damage).
    """
    try:
        return pl.read_parquet(table)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise NotARunError(_unreadable(table, err)) from None


def _unreadable(table: Path, err: Exception) -> str:
    """The one-line message for a run's table that cannot be read."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return (
        f"{table}: the table is not readable as Parquet ({reason}): the run directory "
        "is damaged; rerun its config with --overwrite"
    )


def describe_target(target: str | Path) -> dict[str, Any]:
    """What a dashboard target is, without loading it: ``{"kind": "run"|"config", ...}``.

    A directory must be a run directory of memespread; anything else is read as a run
    config (a file or a shipped config name) and validated.

    Raises:
        NotARunError: A directory that is not a run the page can open (see
            :func:`check_run_dir`), or a path that does not exist.
        experiments.config.ConfigError: A config that is invalid, or a bare name that is
            neither a file nor a shipped config.
    """
    path = Path(target)
    if path.is_dir():
        manifest, _ = check_run_dir(path)
        name = str(manifest.get("name", path.name))
        return {"kind": "run", "path": str(path.resolve()), "name": name}
    from experiments.catalog import resolve_config
    from experiments.config import load_config

    if len(path.parts) > 1 and not resolve_config(path).exists():
        # A path (not a bare name, which may be a shipped config) that names nothing:
        # the target is a run directory or a config, not only a config file.
        raise NotARunError(f"{path}: no such run directory or config file")

    config = load_config(target)
    return {"kind": "config", "path": str(Path(target)), "name": config.name}


def dumps_target(target: dict[str, Any]) -> str:
    """The target as JSON (passed to the page's server process)."""
    return json.dumps(target)
