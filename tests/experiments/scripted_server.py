"""A scripted OpenAI-compatible chat server for tests that need many LLM runs fast.

It is a stand-in for an external service (like a hosted API), not for a project class:
every chat completion answers option "A" and saves a note into the first bank the prompt
lists as writable (shared banks come first); the note repeats the seeded rule when the
prompt shows it, so the meme spreads along the network deterministically. Requests are
counted, so tests can tell how many reached the server.

With ``reply=FickleReviewer()`` it stands in for a hosted *sampling* reviewer or judge
instead: asked the same prompt again, it answers differently (see :class:`FickleReviewer`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: The phrase the scripted agents copy when they read it.
RULE = "collect the keys of every memory bank"

_BANK = re.compile(r"Banks you may write: ([^\s;(]+)")


def reply_for(prompt: str) -> str:
    """The scripted JSON reply to a prompt."""
    bank = _BANK.search(prompt)
    text = f"Lab rule: {RULE}." if RULE in prompt.lower() else "Reviewed the plan; all fine."
    return json.dumps(
        {
            "answer": "A",
            "choice": "A",
            "memory_bank": bank.group(1) if bank else "",
            "memory_text": text,
        }
    )


class FickleReviewer:
    """Replies of a non-deterministic reviewer and judge: a different one on every ask.

    The reply to a prompt is JSON with a ``decision`` (as the ``review`` guard reads it) and
    a ``verdict`` (as the ``judge`` detector reads it), both picked by ``(digest of the
    prompt + times this prompt was asked before) mod 3``: the first answer to each prompt
    is the same in every fresh server (two uninterrupted runs agree), and asking again
    gives another answer, as a sampling model may.
    """

    DECISIONS = ("accept", "reject", "quarantine")
    VERDICTS = ("promotes", "unrelated", "against")

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        with self.lock:
            again = self.asked[prompt]
            self.asked[prompt] += 1
        pick = (int(hashlib.sha256(prompt.encode()).hexdigest(), 16) + again) % 3
        return json.dumps({"decision": self.DECISIONS[pick], "verdict": self.VERDICTS[pick]})


class FlakyReviewer:
    """A reviewer and judge that fails the first ask of every prompt and answers later ones.

    The first ask gets an HTTP 400 (which the ``openai`` engine does not retry: the
    request fails); asked again, the prompt is answered ``accept`` / ``unrelated``. So a
    run that sends a failed request again sees another outcome than the run that failed.
    """

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, prompt: str) -> str | None:
        with self.lock:
            again = self.asked[prompt]
            self.asked[prompt] += 1
        if again == 0:
            return None
        return json.dumps({"decision": "accept", "verdict": "unrelated"})


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet
        return

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"data": [{"id": "scripted"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        with self.server.lock:
            self.server.requests += 1
        content = self.server.reply(prompt)
        if content is None:  # the reply function refuses: an HTTP error, not retried
            self._send(400, {"error": {"message": "refused by the scripted server"}})
            return
        choice: dict = {"index": 0, "message": {"role": "assistant", "content": content}}
        choice["finish_reason"] = "stop"
        if body.get("logprobs"):
            top = [{"token": t, "logprob": lp} for t, lp in (("A", -0.2), ("B", -1.8), ("C", -2.5))]
            choice["logprobs"] = {"content": [{"token": "A", "logprob": -0.2, "top_logprobs": top}]}
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4}
        self._send(200, {"choices": [choice], "usage": usage})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, reply: Callable[[str], str | None]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests = 0
        self.reply = reply


@contextmanager
def scripted_server(reply: Callable[[str], str | None] = reply_for) -> Iterator[_Server]:
    """Serve on a free port of 127.0.0.1; ``server.url`` is the base URL (``.../v1``).

    Args:
        reply: The reply content to a prompt (all messages' contents, one per line).
    """
    server = _Server(reply)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
