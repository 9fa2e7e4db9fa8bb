"""Credentials never reach a stored record: redaction patterns, and a real HTTP server on
127.0.0.1 that echoes the request headers (and so the API key) in its error bodies and
replies, behind the OpenAI engine, the record/replay file and the LLM policy."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import networkx as nx
import pytest

from agents.llm import OpenAISpec
from agents.llm.base import ChatMessage, FinishReason, GenerationRequest, Role
from agents.llm.redaction import REDACTED, redact
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks

pytest.importorskip("httpx")
from agents.llm.openai_compat import OpenAIEngine

SECRET = "sk-memespread-test-9f8e7d6c5b4a39281706"
KEY_ENV = "MEMESPREAD_ECHO_KEY"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdefgh12345678", f"Authorization: Bearer {REDACTED}"),
        (
            '{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}',
            f'{{"authorization": "Basic {REDACTED}"}}',
        ),
        ("GET /v1?api_key=abcd1234&x=1", f"GET /v1?api_key={REDACTED}&x=1"),
        ('{"x-api-key": "k3y-value"}', f'{{"x-api-key": "{REDACTED}"}}'),
        ("key sk-abcdefghijklmnop0123 leaked", f"key {REDACTED} leaked"),
        ("The bearer of bad news has an api key.", "The bearer of bad news has an api key."),
    ],
)
def test_credential_patterns_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_exact_secret_values_are_redacted_in_every_spelling() -> None:
    secret = 'p@ss"w/rd 42'
    for spelled in (secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe="")):
        assert redact(f"echo: {spelled}!", [secret]) == f"echo: {REDACTED}!"
    assert redact("abc abc", ["abc"]) == "abc abc"  # too short to search for


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A server that echoes the request's headers (the mode is ``ECHO-<status>`` in the
    last message): in a 401 body, in a 500 body after 260
    characters of padding (so a naive cut at 300 characters would keep part of the key), in
    a 400 body percent-encoded, and as the reply text of a 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content = body["messages"][-1]["content"]
            mode = next((m for m in ("401", "500", "400") if f"ECHO-{m}" in content), "200")
            headers = dict(self.headers.items())
            status, payload = 200, None
            if mode == "401":
                status, payload = 401, {"error": "bad key", "headers": headers}
            elif mode == "500":
                status = 500
                payload = {"pad": "x" * 260, "auth": headers.get("Authorization")}
            elif mode == "400":
                quoted = urllib.parse.quote(headers.get("Authorization", ""), safe="")
                status, payload = 400, {"error": f"bad request from {quoted}"}
            else:
                reply = f"You sent {json.dumps(headers)}"
                payload = {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4},
                }
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _spec(base_url: str) -> OpenAISpec:
    return OpenAISpec(
        base_urls=[base_url], model="echo", api_key_env=KEY_ENV, max_retries=0, timeout_s=10
    )


def _request(request_id: str, mode: str) -> GenerationRequest:
    return GenerationRequest(request_id, (ChatMessage(Role.USER, f"ECHO-{mode}"),))


def test_echoed_key_never_reaches_completions_or_the_record_file(
    echo_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    path = tmp_path / "completions.jsonl"
    engine = ReplayEngine(OpenAIEngine(_spec(echo_server)), path, "auto")
    out = engine.generate([_request(m, m) for m in ("401", "500", "400", "200")])
    assert [c.finish_reason for c in out] == [FinishReason.ERROR] * 3 + [FinishReason.STOP]
    for completion in out:
        assert SECRET not in repr(completion)
        assert SECRET[:12] not in repr(completion)  # not even a cut-off prefix
    assert out[0].error is not None and out[0].error.startswith("HTTP 401 ")
    assert f"Bearer {REDACTED}" in out[0].error
    assert out[1].error is not None and REDACTED in out[1].error
    assert out[2].error is not None and REDACTED in out[2].error
    assert f"Bearer {REDACTED}" in out[3].text
    stored = path.read_text()
    assert SECRET not in stored and SECRET[:12] not in stored
    assert stored.count(REDACTED) >= 4
    # The replayed completions are the redacted ones.
    assert (
        ReplayEngine(None, path, "replay").generate([_request("x", "200")])[0].text == out[3].text
    )


def test_echoed_key_never_reaches_the_generations_table(
    echo_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps(["ECHO-401"]))  # every act request gets an echoing 401
    path = tmp_path / "completions.jsonl"
    engine = ReplayEngine(OpenAIEngine(_spec(echo_server)), path, "auto")
    model = MemeticModel(
        graph=nx.path_graph(3),
        banks=BankLayoutSpec(neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[],
        policy=LLMPolicy(LLMPolicySpec(tasks_file=str(tasks)), engine=engine),
        seed=1,
    )
    model.step()
    generations = model.tables()["generations"]
    errors = generations["error"].to_list()
    assert len(errors) == 3 and all(f"Bearer {REDACTED}" in (e or "") for e in errors)
    for column in generations.columns:
        assert SECRET not in str(generations[column].to_list()), column
    assert SECRET not in path.read_text()
