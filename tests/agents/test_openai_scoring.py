"""Option scores from an OpenAI-compatible server's ``top_logprobs``.

A tiny HTTP server in this test (standard library) answers chat completions the way
servers that return log-probabilities do, so the exact parsing is checked; a server
that returns none (or an HTTP error) gives scores with an error, and the policy then
records no option probabilities. A stand-in server, because the exact responses checked
here (chosen log-probabilities, a leading-space variant, a body without logprobs) cannot
be made to come from a real model; the real llama.cpp server's scores are checked against
the in-process engine in ``test_engine_openai.py``.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.llm import OpenAISpec
from agents.llm.base import ChatMessage, ScoreRequest, can_score
from agents.llm.openai_compat import OpenAIEngine

pytest.importorskip("httpx")


BODIES: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        BODIES.append(body)
        user = body["messages"][-1]["content"]
        if "broken" in user:
            payload = {"choices": [{"message": {"content": "A"}, "logprobs": None}]}
        else:
            top = [
                {"token": " A", "logprob": math.log(0.5)},
                {"token": "A", "logprob": math.log(0.1)},
                {"token": "B", "logprob": math.log(0.2)},
                {"token": "{", "logprob": math.log(0.15)},
            ]
            payload = {
                "choices": [
                    {
                        "message": {"content": "A"},
                        "logprobs": {"content": [{"token": " A", "top_logprobs": top}]},
                    }
                ],
                "usage": {"prompt_tokens": 12, "prompt_tokens_details": {"cached_tokens": 8}},
            }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def _request(request_id: str, text: str) -> ScoreRequest:
    return ScoreRequest(request_id, (ChatMessage("user", text),), ("A", "B", "C"))


def test_scores_come_from_top_logprobs(server):
    engine = OpenAIEngine(OpenAISpec(base_urls=[server], model="m", api_key_env=None))
    assert can_score(engine)
    good, broken = engine.score([_request("g", "pick"), _request("b", "broken")])
    assert good.error is None
    assert good.logprobs[0] == pytest.approx(math.log(0.6))  # " A" and "A" summed
    assert good.logprobs[1] == pytest.approx(math.log(0.2))
    assert good.logprobs[2] == float("-inf")  # not among the alternatives
    assert good.probabilities() == pytest.approx((0.75, 0.25, 0.0))
    assert (good.prompt_tokens, good.cached_prompt_tokens) == (12, 8)
    assert broken.logprobs == () and "no logprobs" in broken.error
    assert broken.probabilities() is None
    sent = BODIES[-1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20
    assert sent["max_tokens"] == 1 and sent["temperature"] == 0.0


def test_unreachable_server_gives_errors(closed_base_url):
    engine = OpenAIEngine(
        OpenAISpec(base_urls=[closed_base_url], model="m", api_key_env=None, timeout_s=2)
    )
    (scores,) = engine.score([_request("x", "pick")])
    assert scores.error and scores.logprobs == ()
