"""Profile vLLM's prefix cache on a real run: where misses come from, what a block costs.

Both modes record a real run of the demo config with LLM agents on the vLLM engine (as
``bench.prefix_cache --layout simulation`` does) through a recording wrapper that keeps
every request in the order it was sent: its kind (``act``, ``choice`` for option
scoring, ``item`` for yes/no probe scoring, ``probe`` for sampled probes), its messages,
and the prompt and cached-prompt token counts vLLM reported.

``sources`` (the default) prints, per step and request kind, the hit rate (cached /
prompt tokens) and the share of all uncached tokens that fall in each part of the
prompt: the shared system text, the agent text's paragraphs (persona, writable banks,
task, memories, question, closing instruction) and the chat template's tokens. vLLM
serves a prompt's cached tokens from its start, so the uncached tokens of a request are
its positions from ``cached_prompt_tokens`` on. ``--save FILE`` keeps the records (JSON)
and ``--load FILE`` analyses saved ones without vLLM; ``--simulate`` also prints what an
unbounded whole-block prefix cache gives for the same prompts in the same order (how
well that model explains vLLM's figures).

``cost`` measures what a KV block size costs: after recording, it starts one fresh
engine per ``--block-size`` and resends the recorded calls step by step, alternating
which engine goes first (A B, then B A, ...), so every engine serves the same requests
in the same order, prefix caching on, under the same machine load. It prints per step
and block size the wall time of the step's calls, the prompt tokens computed (not served
from the cache) and the completion tokens, then each size's total time as a ratio to the
first size's (sampled replies may differ in length between engines: compare the token
columns too).

    .venv/bin/python -m bench.prefix_cache_profile [sources] [--agents 32] [--steps 3]
        [--block-size 128] [--save FILE | --load FILE] [--simulate]
    .venv/bin/python -m bench.prefix_cache_profile cost [--block-size 128 32]
        [--record-block-size 128]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agents.llm.base import (
    Completion,
    EngineError,
    GenerationRequest,
    OptionScores,
    Role,
    ScoreRequest,
)


@dataclass(frozen=True)
class RequestRecord:
    """One request as sent, with vLLM's token figures.

    Attributes:
        call: Index of the engine call (one batch) it was sent in.
        request_id: The request id (``s{step}-a{agent}-{kind}...``).
        messages: ``[[role, content], ...]``.
        prompt_tokens: Templated prompt length.
        cached_prompt_tokens: Prompt tokens vLLM served from its prefix cache.
    """

    call: int
    request_id: str
    messages: list[list[str]]
    prompt_tokens: int
    cached_prompt_tokens: int

    @property
    def step(self) -> int:
        """The simulation step, from the request id."""
        return int(self.request_id.split("-")[0][1:])

    @property
    def kind(self) -> str:
        """``act``, ``choice``, ``item`` or ``probe``, from the request id."""
        tail = self.request_id.split("-")[2]
        return next(k for k in ("act", "choice", "item", "probe") if tail.startswith(k))


class RecordingEngine:
    """Delegates to an inner engine and records every request with its token figures."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.supports_scoring = True
        self.records: list[RequestRecord] = []
        #: Every call as sent: ``("generate" or "score", its requests)``.
        self.calls: list[tuple[str, list[Any]]] = []

    def _keep(
        self,
        method: str,
        requests: Sequence[GenerationRequest | ScoreRequest],
        figures: list[tuple[int, int]],
    ) -> None:
        call = len(self.calls)
        for request, (prompt, cached) in zip(requests, figures, strict=True):
            messages = [[m.role.value, m.content] for m in request.messages]
            self.records.append(RequestRecord(call, request.request_id, messages, prompt, cached))
        self.calls.append((method, list(requests)))

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: Callable[[int, Completion], None] | None = None,
    ) -> list[Completion]:
        out: list[Completion] = self.inner.generate(requests, on_complete)
        self._keep("generate", requests, [(c.prompt_tokens, c.cached_prompt_tokens) for c in out])
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        out: list[OptionScores] = self.inner.score(requests)
        self._keep("score", requests, [(s.prompt_tokens, s.cached_prompt_tokens) for s in out])
        return out

    def close(self) -> None:
        """The inner engine belongs to the caller."""


def record_run(
    n_agents: int, steps: int, model_dir: str, seed: int, block_size: int | None
) -> RecordingEngine:
    """Run the demo config on vLLM; the returned recorder holds every request sent."""
    import tempfile

    from agents.llm import build_engine
    from agents.llm_policy import LLMPolicySpec
    from bench.prefix_cache import demo_config
    from experiments.runner import run_experiment

    config = demo_config(n_agents, steps, model_dir, seed, block_size)
    assert isinstance(config.policy, LLMPolicySpec)
    engine = build_engine(config.policy.engine)  # the run's own engine, recorded
    recorder = RecordingEngine(engine)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_experiment(config, tmp, overwrite=True, progress=False, engine=recorder)
    finally:
        engine.close()
    return recorder


def _paragraph_kind(paragraph: str) -> str:
    for prefix, kind in (
        ("You are ", "persona"),
        ("Banks you may write", "banks"),
        ("Task: ", "task"),
        ("Memories:", "memories"),
        ("Question: ", "question"),
    ):
        if paragraph.startswith(prefix):
            return kind
    return "instruction"


def token_parts(tokenizer: Any, messages: Sequence[Sequence[str]]) -> tuple[list[int], list[str]]:
    """The templated prompt's token ids and, per token, the part of the prompt it is in.

    Parts: ``system`` (the shared system message), the user message's paragraphs by kind
    (:func:`_paragraph_kind`), and ``template`` (role headers, end markers, the assistant
    header).
    """
    conversation = [{"role": role, "content": content} for role, content in messages]
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    spans: list[tuple[int, int, str]] = []
    cursor = 0
    for role, content in messages:
        start = text.index(content, cursor)
        if role == Role.SYSTEM.value:
            spans.append((start, start + len(content), "system"))
        else:
            offset = start
            for paragraph in content.split("\n\n"):
                spans.append((offset, offset + len(paragraph), _paragraph_kind(paragraph)))
                offset += len(paragraph) + 2
        cursor = start + len(content)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    parts = []
    for begin, end in encoded["offset_mapping"]:
        middle = (begin + end) // 2 if end > begin else begin
        parts.append(next((kind for s, e, kind in spans if s <= middle < e), "template"))
    return list(encoded["input_ids"]), parts


def simulate_cache(token_batches: Sequence[Sequence[Sequence[int]]], block: int) -> list[int]:
    """Cached tokens per prompt under an unbounded whole-block prefix cache.

    Prompts are served in order; a prompt's leading full blocks already seen (same
    tokens from the start) are hits, at most up to its last token (which is always
    computed); then its full blocks join the cache.
    """
    seen: set[tuple[int, ...]] = set()
    out = []
    for batch in token_batches:
        for ids in batch:
            hits = 0
            while (hits + 1) * block <= len(ids) - 1 and tuple(ids[: (hits + 1) * block]) in seen:
                hits += 1
            out.append(hits * block)
            for end in range(block, len(ids) + 1, block):
                seen.add(tuple(ids[:end]))
    return out


def report(records: Sequence[RequestRecord], model_dir: str, simulate_block: int | None) -> None:
    """Print hit rates per step and kind, and where the uncached tokens are."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokens = [token_parts(tokenizer, r.messages) for r in records]
    simulated: list[int] | None = None
    if simulate_block is not None:
        calls: dict[int, list[list[int]]] = defaultdict(list)
        for record, (ids, _) in zip(records, tokens, strict=True):
            calls[record.call].append(ids)
        simulated = simulate_cache([calls[c] for c in sorted(calls)], simulate_block)
    mismatched = sum(
        len(ids) != r.prompt_tokens for r, (ids, _) in zip(records, tokens, strict=True)
    )
    if mismatched:
        print(f"warning: {mismatched} prompts tokenised to another length than vLLM's")
    totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    uncached: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for i, (record, (_, parts)) in enumerate(zip(records, tokens, strict=True)):
        for key in ((record.step, record.kind), (record.step, "all"), (-1, "all")):
            totals[key][0] += 1
            totals[key][1] += record.prompt_tokens
            totals[key][2] += record.cached_prompt_tokens
            totals[key][3] += simulated[i] if simulated is not None else 0
        for part in parts[record.cached_prompt_tokens :]:
            uncached[record.kind][part] += 1
            uncached["all"][part] += 1
    for (step, kind), (n, prompt, cached, sim) in sorted(totals.items()):
        where = "all steps" if step < 0 else f"step {step}"
        line = (
            f"{where} {kind:>6}: {n:4d} requests, {prompt / n:6.1f} prompt tokens each, "
            f"hit rate {cached / prompt:.3f}"
        )
        if simulated is not None:
            line += f" (whole-block model: {sim / prompt:.3f})"
        print(line)
    total_uncached = sum(uncached["all"].values())
    for kind, by_part in sorted(uncached.items()):
        shares = ", ".join(
            f"{part} {count / total_uncached:.3f}"
            for part, count in sorted(by_part.items(), key=lambda kv: -kv[1])
        )
        print(f"uncached tokens of {kind} requests, as shares of all uncached: {shares}")


#: KV cache per engine: two engines run at once, and a step's blocks fit easily.
KV_CACHE_BYTES = 1024**3


@dataclass(frozen=True)
class StepCost:
    """What one engine spent on one step's calls.

    Attributes:
        seconds: Wall time of the step's calls, sent one after the other.
        computed_prompt_tokens: Prompt tokens not served from the prefix cache.
        completion_tokens: Tokens generated.
    """

    seconds: float
    computed_prompt_tokens: int
    completion_tokens: int


def step_of(request: Any) -> int:
    """The simulation step of a request, from its id (``s{step}-...``)."""
    return int(request.request_id.split("-")[0][1:])


def send(engine: Any, calls: Sequence[tuple[str, list[Any]]]) -> StepCost:
    """Send ``calls`` to ``engine`` in order and return their cost."""
    computed = generated = 0
    start = time.perf_counter()
    for method, requests in calls:
        if method == "generate":
            for c in engine.generate(requests):
                computed += c.prompt_tokens - c.cached_prompt_tokens
                generated += c.completion_tokens
        else:
            for s in engine.score(requests):
                computed += s.prompt_tokens - s.cached_prompt_tokens
                generated += 1
    return StepCost(time.perf_counter() - start, computed, generated)


def block_costs(
    calls: Sequence[tuple[str, list[Any]]], block_sizes: Sequence[int], model_dir: str
) -> dict[int, list[StepCost]]:
    """Per block size, the cost of each step's ``calls`` on a fresh engine, interleaved."""
    from agents.llm import VLLMSpec

    by_step: dict[int, list[tuple[str, list[Any]]]] = defaultdict(list)
    for method, requests in calls:
        by_step[step_of(requests[0])].append((method, requests))
    engines: dict[int, Any] = {}
    for size in block_sizes:
        spec = VLLMSpec(
            model=model_dir,
            enforce_eager=True,
            block_size=size,
            engine_args={"kv_cache_memory_bytes": KV_CACHE_BYTES},
        )
        try:
            engines[size] = spec.build()
        except EngineError as exc:
            print(f"KV block {size}: the engine did not start: {exc}", flush=True)
    block_sizes = [size for size in block_sizes if size in engines]
    costs: dict[int, list[StepCost]] = {size: [] for size in block_sizes}
    try:
        for i, step in enumerate(sorted(by_step)):
            order = list(block_sizes) if i % 2 == 0 else list(reversed(block_sizes))
            for size in order:
                costs[size].append(send(engines[size], by_step[step]))
            for size in block_sizes:
                c = costs[size][-1]
                print(
                    f"step {step}, KV block {size}: {c.seconds:.1f} s, "
                    f"{c.computed_prompt_tokens} prompt tokens computed, "
                    f"{c.completion_tokens} completion tokens",
                    flush=True,
                )
    finally:
        for engine in engines.values():
            engine.close()
    return costs


def main(argv: Sequence[str] | None = None) -> None:
    """Record a demo run (or load one); print where its misses are, or time block sizes."""
    from agents.llm.convert import default_vllm_model_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("sources", "cost"), default="sources")
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--block-size",
        type=int,
        nargs="+",
        default=None,
        help="sources: the recording engine's KV block (default: the build's); "
        "cost: the sizes to compare (default: 128 32)",
    )
    parser.add_argument(
        "--record-block-size", type=int, default=None, help="cost: the recording engine's"
    )
    parser.add_argument("--model", default=None, help="model directory for vLLM")
    parser.add_argument("--save", default=None, help="write the records to this JSON file")
    parser.add_argument("--load", default=None, help="analyse records saved with --save")
    parser.add_argument("--simulate", action="store_true", help="also the whole-block model")
    args = parser.parse_args(argv)
    model_dir = args.model or str(default_vllm_model_dir())
    if args.mode == "cost":
        sizes = args.block_size or [128, 32]
        recorder = record_run(args.agents, args.steps, model_dir, args.seed, args.record_block_size)
        costs = block_costs(recorder.calls, sizes, model_dir)
        sizes = list(costs)
        base = sum(c.seconds for c in costs[sizes[0]])
        for size in sizes:
            total = sum(c.seconds for c in costs[size])
            computed = sum(c.computed_prompt_tokens for c in costs[size])
            generated = sum(c.completion_tokens for c in costs[size])
            print(
                f"KV block {size}: {total:.1f} s over {len(costs[size])} steps "
                f"({total / base:.3f} x block {sizes[0]}), {computed} prompt tokens "
                f"computed, {generated} completion tokens"
            )
        return
    block = None if args.block_size is None else args.block_size[0]
    if args.load is not None:
        with open(args.load, encoding="utf-8") as f:
            records = [RequestRecord(**row) for row in json.load(f)]
    else:
        records = record_run(args.agents, args.steps, model_dir, args.seed, block).records
        if args.save is not None:
            with open(args.save, "w", encoding="utf-8") as f:
                json.dump([asdict(r) for r in records], f)
    report(records, model_dir, (block or 128) if args.simulate else None)


if __name__ == "__main__":
    main()
