"""A managed local inference server: one model process that a sweep's worker runs share.

A sweep whose runs execute in several processes (``--jobs N``, or Ray tasks on this
machine) would otherwise load the model once per worker. Instead, the sweep starts one
llama.cpp OpenAI-compatible server (``python -m llama_cpp.server``, from
llama-cpp-python's ``server`` extra) on ``127.0.0.1`` and a free port, and every run
talks to it through the ``openai`` engine (:meth:`ManagedServer.openai_spec`).

Replay keys stay those of the in-process engine: the server serves the model under the
in-process engine's model id (``llamacpp:<GGUF file name>``), and a request's cache key
covers the model id, the messages, the sampling parameters (the seed drawn from the
run's generator included) and the schema, never the engine or transport
(:meth:`agents.llm.base.GenerationRequest.cache_key`). A run made through the server is
therefore replayed, resumed or rerun in-process from its ``completions.jsonl``.

No orphan: the server gets ``SIGKILL`` when the process that started it dies (Linux
``PR_SET_PDEATHSIG``, as the sweep's workers do), is stopped when the sweep ends, and
holds the sweep directory's lock (shared) while it lives, so a rerun is refused while it
still runs. It listens on the loopback interface only.

The vLLM path (``vllm serve``) is not managed: the OpenAI route would bypass the vLLM
engine's JSON-schema rewriting (xgrammar rejects the length-bounded patterns the output
schema uses) and the CPU build crashes on per-request seeds; runs with a vLLM engine
keep one engine per worker (start ``vllm serve`` yourself and use the ``openai`` engine
to share one across a sweep).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from agents.llm.base import EngineError
from agents.llm.llamacpp import LlamaCppSpec
from agents.llm.openai_compat import OpenAISpec
from experiments.lifetime import die_with_parent

#: Host the server binds (loopback only).
HOST = "127.0.0.1"
#: Seconds to wait for the server to answer before giving up.
STARTUP_TIMEOUT_S = 180.0
#: Requests each run keeps in flight (the llama.cpp server answers one at a time; a few
#: queued keep it busy between a run's requests).
MAX_CONCURRENCY = 4
#: Per-attempt time limit of a request: generous, since requests wait in the server's
#: queue behind the other runs' requests.
REQUEST_TIMEOUT_S = 3600.0
#: The repeat penalty of llama-cpp-python's in-process ``create_chat_completion``, sent to
#: the server (whose own default is 1.1) so that runs sample alike through either.
IN_PROCESS_REPEAT_PENALTY = 1.0


def llamacpp_model_id(spec: LlamaCppSpec) -> tuple[Path, str]:
    """The GGUF file of ``spec`` and the model id the in-process engine reports for it.

    Raises:
        EngineError: The default model's package is missing, or the file does not exist.
    """
    from agents.llm.llamacpp import default_gguf_path

    path = default_gguf_path() if spec.model_path is None else Path(spec.model_path)
    if not path.is_file():
        raise EngineError(f"LlamaCppSpec.model_path={spec.model_path!r} is not a file")
    return path, f"llamacpp:{path.name}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ManagedServer:
    """One llama.cpp OpenAI-compatible server process, from start to stop.

    Use as a context manager (or call :meth:`start` and :meth:`stop`).

    Args:
        spec: The llama.cpp engine the runs would have built (model file, context size,
            threads and engine seed carry over).
        log_path: File receiving the server's output (its access log: one line per
            request answered).
        lock_fd: An open descriptor holding the sweep directory's lock (shared); the
            server inherits it, so the lock stays held while the server lives.

    Attributes:
        model_id: The id the model is served under (the in-process engine's).
        base_url: The API root, ``http://127.0.0.1:PORT/v1`` (set by :meth:`start`).
        pid: The server's process id (set by :meth:`start`).
    """

    def __init__(self, spec: LlamaCppSpec, log_path: Path, lock_fd: int | None = None) -> None:
        self.spec = spec
        self.log_path = log_path
        self.lock_fd = lock_fd
        self.model_path, self.model_id = llamacpp_model_id(spec)
        self.base_url = ""
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self, port: int) -> list[str]:
        """The server's command line for ``port``."""
        n_threads = self.spec.n_threads or os.cpu_count() or 1
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model_id,
            "--host",
            HOST,
            "--port",
            str(port),
            "--n_ctx",
            str(self.spec.n_ctx),
            "--n_threads",
            str(n_threads),
            "--seed",
            str(self.spec.seed),
            "--verbose",
            "false",
        ]

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> ManagedServer:
        """Start the server and wait until it answers.

        Raises:
            EngineError: The server exited or did not answer within ``timeout_s`` (the
                message ends with the tail of its log).
        """
        port = _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self._process = subprocess.Popen(
            self.command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # only prctl, before exec
            pass_fds=() if self.lock_fd is None else (self.lock_fd,),
        )
        self.pid = self._process.pid
        self.base_url = f"http://{HOST}:{port}/v1"
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise EngineError(
                    f"the shared llama.cpp server exited with code {self._process.returncode} "
                    f"before answering; its log ({self.log_path}) ends:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise EngineError(
                    f"the shared llama.cpp server did not answer at {self.base_url} within "
                    f"{timeout_s:.0f} s; its log ({self.log_path}) ends:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def openai_spec(self) -> OpenAISpec:
        """The ``openai`` engine spec through which a run uses this server.

        Its ``model`` is :attr:`model_id`, so the engine reports the in-process engine's
        model id and the replay keys are the same; it sends the in-process engine's repeat
        penalty, so the same seeds sample the same completions.
        """
        if not self.base_url:
            raise EngineError("the shared server has not been started")
        return OpenAISpec(
            base_urls=[self.base_url],
            model=self.model_id,
            api_key_env=None,
            max_concurrency=MAX_CONCURRENCY,
            timeout_s=REQUEST_TIMEOUT_S,
            response_format_style="json_object",
            extra_body=self.extra_body(),
        )

    def extra_body(self) -> dict[str, float | int | str | bool]:
        """Fields the runs send with every request besides the engine's own.

        The in-process engine's repeat penalty (the server's default is 1.1), so the same
        seeds sample the same completions through either.
        """
        return {"repeat_penalty": IN_PROCESS_REPEAT_PENALTY}

    def describe(self) -> dict[str, Any]:
        """What the sweep manifest records about the server."""
        return {
            "server": "llama_cpp.server",
            "model_id": self.model_id,
            "model_path": str(self.model_path),
            "base_url": self.base_url,
            "pid": self.pid,
            "log": self.log_path.name,
            "engine_spec": self.spec.model_dump(mode="json"),
            "extra_body": self.extra_body(),
        }

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``grace_s``) and close its log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
