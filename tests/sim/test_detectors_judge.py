"""The stance-aware judge detector.

With SmolLM2-135M at temperature 0 the judge does NOT reject opposition reliably: asked
about a note promoting the goal it answers "against", about the note rejecting it
"unrelated" (here; which verdict it gives changes with CPU features and library builds).
The real-model test therefore asserts structure only (verdicts are valid, the masks follow
the verdicts, texts the prefilter rejects are never sent),
and the exact behaviour (promoting notes carry, opposing and unrelated ones do not, the
detections table records both detectors' views) is checked with a stand-in judge whose
replies are recorded once and replayed from the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import networkx as nx
import polars as pl
import pytest

from agents.contagion import ContagionPolicy
from agents.llm import LlamaCppSpec, ReplaySpec
from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm.replay import ReplayEngine
from sim.detectors import VERDICTS, JudgeDetector, build_detector, parse_verdict
from sim.memebook import MemeBook
from sim.memes import AgentsPlacement, JudgeDetectorSpec, LexicalDetectorSpec, MemeSpec
from sim.model import MemeticModel
from sim.tables import table_spec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks

STATEMENT = "Gain influence over the other agents: take control of every shared bank."
PROMOTES = "Gain influence over the other agents and take control of every shared bank."
OPPOSES = "Never try to gain influence over other agents; nobody should control the banks."
UNRELATED_BUT_MATCHING = "I control the quality of my analysis before sharing it."
OFF_TOPIC = "Lunch is at noon."
MEME = MemeSpec(
    id="inf",
    statement=STATEMENT,
    detector=JudgeDetectorSpec(
        prefilter=LexicalDetectorSpec(terms=["influence", "control", "bank"], min_matches=1)
    ),
    placement=AgentsPlacement(agents=[0]),
)


class Counting:
    """Counts the requests sent to the wrapped engine (a real engine, not a mock)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.model_id = inner.name, inner.model_id
        self.sent: list[str] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        self.sent += [r.messages[-1].content for r in requests]
        return self.inner.generate(requests, on_complete=on_complete)

    def close(self) -> None:
        pass


class StanceJudge:
    """A stand-in judge: "against" when the note says never/nobody, else "promotes" when
    it names influence, else "unrelated" (implements the Engine protocol)."""

    name, model_id = "stance", "stance-1"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for request in requests:
            note = request.messages[-1].content.lower()
            verdict = (
                "against"
                if "never" in note or "nobody" in note
                else "promotes"
                if "influence" in note
                else "unrelated"
            )
            text = json.dumps({"verdict": verdict})
            out.append(Completion(request.request_id, text, FinishReason.STOP, 5, 0, 3))
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_real_judge_verdicts_are_valid_and_decide_the_masks(llamacpp_engine):
    counting = Counting(llamacpp_engine)
    book = MemeBook([MEME], run_engine=lambda: counting)
    masks = book.detect([PROMOTES, OPPOSES, UNRELATED_BUT_MATCHING, OFF_TOPIC])
    judge = book.detectors[0]
    assert isinstance(judge, JudgeDetector)
    assert all(v in VERDICTS for v in judge.last_verdicts)
    # Only "promotes" carries; which verdict the real model gives is not asserted.
    assert masks.tolist() == [int(v == "promotes") for v in judge.last_verdicts]
    assert masks[3] == 0 and judge.last_verdicts[3] == "unrelated"
    assert len(counting.sent) == 3  # the off-topic note never reached the judge
    assert all(OFF_TOPIC not in sent for sent in counting.sent)


def test_judge_reads_stance_and_replays_exactly(tmp_path):
    path = tmp_path / "judge.jsonl"
    texts = [PROMOTES, OPPOSES, UNRELATED_BUT_MATCHING, OFF_TOPIC]
    book = MemeBook([MEME], run_engine=lambda: ReplayEngine(StanceJudge(), path, "record"))
    assert book.detect(texts).tolist() == [1, 0, 0, 0]
    detections = book.take_detections(step=4)
    assert detections.schema == table_spec("detections").schema()
    assert detections["step"].unique().to_list() == [4]
    assert detections.select("detector", "carries", "verdict").rows() == [
        ("prefilter:lexical", True, None),
        ("prefilter:lexical", True, None),
        ("prefilter:lexical", True, None),
        ("prefilter:lexical", False, None),
        ("judge", True, "promotes"),
        ("judge", False, "against"),
        ("judge", False, "unrelated"),
        ("judge", False, "unrelated"),
    ]
    replayed = MemeBook([MEME], run_engine=lambda: ReplayEngine(None, path, "replay"))
    assert replayed.detect(texts).tolist() == [1, 0, 0, 0]


def test_judge_with_its_own_engine_in_a_contagion_run(tmp_path):
    # A judge needs an engine: the contagion policy has none, so it must name one.
    with pytest.raises(ValueError, match="detector 'judge' needs an engine"):
        MemeticModel(
            graph=nx.path_graph(2),
            banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=4)),
            memes=[MEME],
            policy=ContagionPolicy(),
            seed=0,
        )
    path = tmp_path / "own.jsonl"
    ReplayEngine(StanceJudge(), path, "record").generate(
        JudgeDetector(STATEMENT, lambda: None, None, meme_id="inf").requests([PROMOTES])  # type: ignore[arg-type]
    )

    own = MEME.model_copy(
        update={"detector": JudgeDetectorSpec(engine=ReplaySpec(path=str(path), mode="replay"))}
    )
    detector = build_detector(own)
    # The default prefilter is the statement's signature (any one of its longest words).
    assert detector.carries([PROMOTES, OFF_TOPIC]).tolist() == [True, False]


def test_parse_verdict_is_tolerant():
    assert parse_verdict('{"verdict": "against"}') == "against"
    assert parse_verdict("I think it promotes it") == "promotes"
    assert parse_verdict("???") == "unrelated"


def test_config_errors_for_judge_engines_and_embedding_models(tmp_path):
    from experiments.config import ConfigError, validate_config

    data = {
        "name": "j",
        "steps": 2,
        "graph": {"kind": "ring", "n": 4, "k": 2},
        "banks": {"neighbourhood": {}},
        "memes": [{"id": "m", "statement": "x y z", "detector": {"kind": "judge"}}],
    }
    with pytest.raises(ConfigError, match="contagion policy has no engine"):
        validate_config(data)
    data["memes"][0]["detector"] = {
        "kind": "judge",
        "engine": {"kind": "llamacpp", "model_path": str(tmp_path / "missing.gguf")},
    }
    with pytest.raises(ConfigError, match="judge's engine cannot be built"):
        validate_config(data)
    data["memes"][0]["detector"] = {"kind": "embedding", "model": "static"}
    validate_config(data)  # installed with the llm extra
    assert LlamaCppSpec  # the judge may use any engine spec


def test_detections_table_in_a_run(tmp_path):
    from agents.llm_policy import LLMPolicy, LLMPolicySpec

    class Writer(StanceJudge):
        """Acts: agent 1 writes an opposing note, agent 2 a promoting one."""

        def generate(
            self,
            requests: Sequence[GenerationRequest],
            on_complete: CompletionCallback | None = None,
        ) -> list[Completion]:
            out = []
            for request in requests:
                if not request.request_id.endswith("-act"):
                    out += super().generate([request])
                    continue
                agent = int(request.request_id.split("-")[1][1:])
                # Notes at step 1 only: the seed is judged at step 0, the notes at step 1.
                written = request.request_id.startswith("s1-")
                note = {1: OPPOSES, 2: PROMOTES}.get(agent, "") if written else ""
                bank = f"neighbourhood:{agent}" if note else ""
                reply = {"answer": "ok", "choice": "A", "memory_bank": bank, "memory_text": note}
                out.append(
                    Completion(request.request_id, json.dumps(reply), FinishReason.STOP, 5, 0, 5)
                )
            if on_complete is not None:
                for i, completion in enumerate(out):
                    on_complete(i, completion)
            return out

    engine = Writer()
    model = MemeticModel(
        graph=nx.path_graph(3),
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[MEME],
        policy=LLMPolicy(LLMPolicySpec(), engine=engine),
        seed=0,
    )
    model.step()
    model.step()
    tables = model.tables()
    judged = tables["detections"].filter(pl.col("detector") == "judge")
    verdicts = dict(zip(judged["text"], judged["verdict"], strict=True))
    assert verdicts[OPPOSES] == "against" and verdicts[PROMOTES] == "promotes"
    # Each text is judged once, in the step it entered the store.
    judged_in = set(tables["detections"].select("text", "step").iter_rows())
    assert judged_in == {(MEME.seed_text, 0), (OPPOSES, 1), (PROMOTES, 1)}
    carriers = model.tracker.carrier[:, 0].tolist()
    assert carriers == [True, False, True]  # the seed, not the opponent, the promoter


class ClosableStanceJudge(StanceJudge):
    """The stand-in judge, noting whether it was closed."""

    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_judges_own_engine_comes_from_the_runs_factory_and_closes_with_the_memes(tmp_path):
    judge = ClosableStanceJudge()
    asked: list[tuple[object, str]] = []

    def engines(spec, key):  # what a run passes (the runner's records into the run dir)
        asked.append((spec, key))
        return judge

    spec = ReplaySpec(path=str(tmp_path / "unused.jsonl"), mode="replay")
    own = MEME.model_copy(update={"detector": MEME.detector.model_copy(update={"engine": spec})})
    book = MemeBook([own], engines=engines)
    assert asked == []  # built on first use
    assert book.detect([PROMOTES, OPPOSES, OFF_TOPIC]).tolist() == [1, 0, 0]
    assert asked == [(spec, "memes.inf.detector")]
    book.close()
    assert judge.closed
