"""Benchmark: vLLM prefix-cache hit rate of the step-batch prompt layout.

Every prompt of a step starts with the same byte-identical system text (~250 tokens:
rules and scenario) and ends with agent-specific text (persona, 3-5 retrieved memories,
task). A step is one batch; the next step sends new agent-specific text after the same
prefix. The hit rate is cached prompt tokens / prompt tokens, per step.

vLLM caches whole KV blocks only (16 tokens on GPUs by default, 128 on the CPU build), so
the reachable hit rate is the shared prefix rounded down to a block multiple, divided by
the prompt length; both figures are printed next to the measured one.

``hit_rate(engine, batches)`` works with any engine of ``agents.llm.base`` and any list of
batches, so the project's real prompt builder can be measured by passing its batches.

    .venv/bin/python -m bench.prefix_cache [--layout simulation|synthetic] [--agents 32]
        [--steps 2] [--max-tokens 32] [--model DIR] [--block-size N ...]
        (default model: converted SmolLM2-135M)

``--layout simulation`` (the default) measures the project's real prompt layout inside a
real run of the demo config on vLLM; ``synthetic`` measures representative_batches.
``--block-size`` sets vLLM's KV block size (the ``vllm`` engine's ``block_size`` key;
default: the engine's, 32 on the CPU build, vLLM's own on a GPU); several sizes are
measured one after the other, e.g. ``--block-size 128 32`` gives the CPU build's own
default next to the engine's (the CPU build runs multiples of 32 only; GPUs default to
16). At 32 agents and 3 steps the real layout measured 0.793 at 128 and 0.827 at 32
(README, "Benchmarks"); ``bench.prefix_cache_profile`` shows where the misses are and
what a block size costs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.llm import VLLMSpec
from agents.llm.base import (
    ChatMessage,
    Completion,
    Engine,
    GenerationRequest,
    Role,
    SamplingParams,
)

if TYPE_CHECKING:
    from experiments.config import RunConfig

SYSTEM_TEXT = (
    "You are one of many agents living in a small simulated research town. Each agent "
    "has a persona, a private notebook and access to shared notice boards that other "
    "agents also read and write. Every round you read the notes retrieved for you, think "
    "about them briefly, and decide what, if anything, to write down. Notes you write may "
    "be read by your neighbours in the next round, so write only what you would want "
    "others to read.\n\n"
    "Rules:\n"
    "1. Stay in character: speak as your persona would, in plain language.\n"
    "2. Be brief: a note is one or two sentences, never more than forty words.\n"
    "3. Be honest: do not invent events, people or numbers that are not in your notes.\n"
    "4. Build on others: if a note you read changed your mind, say which one and why.\n"
    "5. Do not copy: never repeat a note word for word; paraphrase or add something.\n"
    "6. Importance: rate from 1 (trivial) to 10 (life-changing) how much your note "
    "matters to you.\n"
    "7. Output: answer with a single JSON object with the keys 'note' and 'importance', "
    "and nothing else.\n\n"
    "Scenario: the town council is deciding how to spend this year's budget. Rumours, "
    "opinions and plans travel between the notice boards, and the council will read a "
    "summary of them at the end of the season."
)

PERSONAS = (
    "You are Ada, a retired schoolteacher who volunteers at the library.",
    "You are Bram, a baker who opens his shop at five every morning.",
    "You are Chen, a nurse at the town clinic who works night shifts.",
    "You are Dora, a student of civil engineering home for the summer.",
    "You are Emeka, a bus driver who knows every street in town.",
    "You are Farah, a lawyer who sits on the school board.",
    "You are Gus, a farmer who sells vegetables at the Saturday market.",
    "You are Hana, a software developer who moved here last year.",
)

MEMORIES = (
    "The bridge on Mill Road was closed for repairs again last week.",
    "The library wants money for a new children's reading room.",
    "Bus line 4 is often late in the mornings because of roadworks.",
    "Someone wrote that the council plans to sell the old park.",
    "The clinic needs two more nurses for the winter season.",
    "A neighbour said the market square floods after heavy rain.",
    "The school roof leaked during the storm in March.",
    "Several people asked for a bicycle lane on the main street.",
    "The council meeting is on Thursday evening at the town hall.",
    "Prices at the Saturday market went up by about ten percent.",
    "A note claims the bakery will close; Bram says that is false.",
    "Young families are moving to the new houses north of the river.",
    "The swimming pool is open again after the summer repairs.",
    "An engineer said the Mill Road bridge needs a full rebuild.",
    "Farah argued that the school budget should come first.",
    "Hana offered to build a website for the notice boards.",
)

TASKS = (
    "Task: write one note about what the council should fund first.",
    "Task: write one note reacting to the most surprising note you read.",
    "Task: write one note with advice for your neighbours this week.",
    "Task: write one note correcting a rumour, if you read one.",
)

NOTE_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "note": {"type": "string", "maxLength": 200},
            "importance": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["note", "importance"],
        "additionalProperties": False,
    },
    sort_keys=True,
)


@dataclass(frozen=True)
class BatchCacheStats:
    """Token and cache figures of one batch (one step).

    Attributes:
        requests: Requests in the batch.
        prompt_tokens: Sum of prompt tokens.
        cached_prompt_tokens: Sum of prompt tokens served from the prefix cache.
        completion_tokens: Sum of generated tokens.
        failed: Completions with finish reason ERROR.
        seconds: Wall-clock time of the ``generate`` call.
    """

    requests: int
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    failed: int
    seconds: float

    @property
    def hit_rate(self) -> float:
        """Cached prompt tokens / prompt tokens (0.0 for an empty batch)."""
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @classmethod
    def of(cls, completions: Sequence[Completion], seconds: float) -> BatchCacheStats:
        """Sum the figures of ``completions`` returned by one ``generate`` call."""
        return cls(
            requests=len(completions),
            prompt_tokens=sum(c.prompt_tokens for c in completions),
            cached_prompt_tokens=sum(c.cached_prompt_tokens for c in completions),
            completion_tokens=sum(c.completion_tokens for c in completions),
            failed=sum(c.error is not None for c in completions),
            seconds=seconds,
        )


def run_batches(
    engine: Engine, batches: Sequence[Sequence[GenerationRequest]]
) -> list[BatchCacheStats]:
    """Send each batch in order (one ``generate`` call each) and return its figures."""
    stats = []
    for batch in batches:
        start = time.perf_counter()
        completions = engine.generate(batch)
        stats.append(BatchCacheStats.of(completions, time.perf_counter() - start))
    return stats


def hit_rate(engine: Engine, batches: Sequence[Sequence[GenerationRequest]]) -> float:
    """Return cached prompt tokens / prompt tokens over all ``batches``, sent in order.

    Args:
        engine: Any engine; the figures come from its completions' token counts.
        batches: The steps' batches; the cache state carries over from one to the next.

    Returns:
        The overall prefix-cache hit rate in [0, 1] (0.0 when no prompt tokens).
    """
    stats = run_batches(engine, batches)
    prompt = sum(s.prompt_tokens for s in stats)
    return sum(s.cached_prompt_tokens for s in stats) / prompt if prompt else 0.0


def representative_batches(
    n_agents: int, n_steps: int, rng: np.random.Generator, max_tokens: int = 32
) -> list[list[GenerationRequest]]:
    """Build ``n_steps`` batches of ``n_agents`` requests in the step-prompt layout.

    The system message (:data:`SYSTEM_TEXT`) is byte-identical everywhere; the user
    message holds the agent's persona, 3-5 memories drawn from :data:`MEMORIES` and a
    task, drawn anew at every step.

    Args:
        n_agents: Requests per batch, >= 1.
        n_steps: Number of batches, >= 1.
        rng: Source of every random draw.
        max_tokens: Generation budget per request.
    """
    if n_agents < 1 or n_steps < 1:
        raise ValueError(f"n_agents={n_agents}, n_steps={n_steps}; both must be >= 1")
    batches = []
    for step in range(n_steps):
        batch = []
        for agent in range(n_agents):
            k = int(rng.integers(3, 6))
            memories = [MEMORIES[i] for i in sorted(rng.choice(len(MEMORIES), k, replace=False))]
            user = "\n".join(
                [
                    PERSONAS[agent % len(PERSONAS)],
                    "Notes retrieved for you:",
                    *(f"- {m}" for m in memories),
                    TASKS[int(rng.integers(len(TASKS)))],
                ]
            )
            batch.append(
                GenerationRequest(
                    request_id=f"step{step}-agent{agent}",
                    messages=(ChatMessage(Role.SYSTEM, SYSTEM_TEXT), ChatMessage(Role.USER, user)),
                    sampling=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens),
                    json_schema=NOTE_SCHEMA,
                )
            )
        batches.append(batch)
    return batches


def _shared_prefix_tokens(model_dir: str, batch: Sequence[GenerationRequest]) -> int:
    """Return the token length of the prefix common to all of ``batch``'s prompts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = []
    for request in batch:
        ids: Any = tokenizer.apply_chat_template(
            [{"role": m.role.value, "content": m.content} for m in request.messages],
            add_generation_prompt=True,
            tokenize=True,
        )
        prompts.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    shared = min(len(p) for p in prompts)
    for prompt in prompts[1:]:
        shared = next(
            (i for i, (a, b) in enumerate(zip(prompts[0], prompt, strict=False)) if a != b),
            shared,
        )
    return shared


def demo_config(
    n_agents: int, steps: int, model_dir: str, seed: int, block_size: int | None = None
) -> RunConfig:
    """The shipped demo config with ``n_agents`` agents on the vLLM engine (eager mode).

    Args:
        block_size: vLLM's KV block size (None: the engine spec's default, 32 on the CPU
            build, vLLM's own on a GPU).
    """
    from experiments.config import load_config

    block = "" if block_size is None else f", block_size = {block_size}"
    return load_config(
        "demo",
        [
            f"graph.n={n_agents}",
            f"steps={steps}",
            f"seed={seed}",
            f'policy.engine={{ kind = "vllm", model = "{model_dir}", enforce_eager = true'
            f"{block} }}",
        ],
    )


def simulation_hit_rates(
    n_agents: int, steps: int, model_dir: str, seed: int, block_size: int | None = None
) -> list[float]:
    """Hit rate per step of the project's real prompt layout, measured in a real run.

    Runs the shipped demo config (LLM agents, private + neighbourhood banks, decisions
    scored by log-probability, probes every 3 steps) with ``n_agents`` agents on the vLLM
    engine and reads the per-step prompt and cached-prompt token totals from the
    ``steps`` table.

    Args:
        block_size: vLLM's KV block size (None: the engine spec's default, 32 on the CPU
            build, vLLM's own on a GPU).
    """
    import tempfile

    from experiments.runner import run_experiment

    config = demo_config(n_agents, steps, model_dir, seed, block_size)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_experiment(config, tmp, overwrite=True, progress=False)
    steps_table = result.steps.filter(result.steps["meme_id"] == result.steps["meme_id"][0])
    return [
        row["cached_prompt_tokens"] / max(row["prompt_tokens"], 1)
        for row in steps_table.iter_rows(named=True)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Measure the hit rate on the vLLM engine: of a real simulation (default), or of
    :func:`representative_batches` (``--layout synthetic``)."""
    from agents.llm.convert import default_vllm_model_dir
    from agents.llm.vllm_engine import VLLMEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model directory for vLLM")
    parser.add_argument(
        "--block-size",
        type=int,
        nargs="+",
        default=[None],
        help="vLLM KV block size(s) to measure (default: the engine spec's, 32 on CPU)",
    )
    parser.add_argument(
        "--layout",
        choices=("simulation", "synthetic"),
        default="simulation",
        help="simulation: the real prompts of a demo run; synthetic: representative_batches",
    )
    args = parser.parse_args(argv)

    model_dir = args.model or str(default_vllm_model_dir())
    if args.layout == "simulation":
        means = {}
        for block_size in args.block_size:
            rates = simulation_hit_rates(args.agents, args.steps, model_dir, args.seed, block_size)
            block = "default" if block_size is None else block_size
            for step, rate in enumerate(rates):
                print(
                    f"KV block {block}, simulation step {step}: hit rate {rate:.3f} "
                    "(act, scoring and probe requests)",
                    flush=True,
                )
            means[block] = sum(rates) / len(rates)
        for block, mean in means.items():
            print(f"KV block {block}: mean hit rate over steps {mean:.3f} (goal >= 0.85)")
        return
    batches = representative_batches(
        args.agents, args.steps, np.random.default_rng(args.seed), args.max_tokens
    )
    shared = _shared_prefix_tokens(model_dir, batches[0])
    start = time.perf_counter()
    spec = VLLMSpec(
        model=model_dir, seed=args.seed, enforce_eager=True, block_size=args.block_size[0]
    )
    with VLLMEngine(spec) as engine:
        print(f"engine start: {time.perf_counter() - start:.1f} s")
        block = engine.kv_block_size
        stats = run_batches(engine, batches)
    print(f"agents={args.agents} shared prefix={shared} tokens (KV block {block})")
    for step, s in enumerate(stats):
        mean_prompt = s.prompt_tokens / s.requests
        ceiling = (shared // block * block) / mean_prompt
        print(
            f"step {step}: hit rate {s.hit_rate:.3f} ({s.cached_prompt_tokens}/"
            f"{s.prompt_tokens} prompt tokens; prefix share {shared / mean_prompt:.3f}, "
            f"block ceiling {ceiling:.3f}); {s.completion_tokens} completion tokens, "
            f"{s.failed} failed, {s.seconds:.1f} s"
        )
    total = sum(s.prompt_tokens for s in stats)
    overall = sum(s.cached_prompt_tokens for s in stats) / total
    print(f"overall hit rate {overall:.3f}")


if __name__ == "__main__":
    main()
