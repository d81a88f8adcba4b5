"""A real llama-server on loopback (127.0.0.1 only) for tests of OpenAI-compatible code.

The binary is llama.cpp's own, built by `.ci/llama-tools.sh` from the llama.cpp tree
that llama-cpp-python vendors (or named by BOREALIS_LLAMA_SERVER). The server loads the
stand-in Gemma 3 270M and applies the project's Jinja chat template, as a user would
run it for Borealis.

Fixtures (import them into a test module):
- `llama_server_binary`: the llama-server executable.
- `llama_server_process`: one shared server for the session (a `LlamaServer`).
- `llama_server`: its base URL, ending in /v1.
`start_llama_server(...)` starts a throwaway one (e.g. to kill mid-stream).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, require

from borealis_local.bench.serve_server import free_port

TEMPLATE = REPO / "modelfiles" / "templates" / "borealis.jinja"
TOOLS_SCRIPT = REPO / ".ci" / "llama-tools.sh"
# Long enough to load a small model on 2 cores; a server that takes longer is broken.
START_TIMEOUT_S = 60
# Options every test server needs, checked against the binary's --help.
REQUIRED_FLAGS = (
    "--model",
    "--jinja",
    "--chat-template-file",
    "--ctx-size",
    "--threads",
    "--parallel",
    "--kv-unified",
    "--host",
    "--port",
)




def find_llama_server() -> tuple[Path | None, str]:
    """(path, None) when a built llama-server is at hand, else (None, why not).

    Asks `.ci/llama-tools.sh` only for a cached build: when the script announces a
    build (its first line on stderr), we stop it rather than compile for minutes.
    """
    named = os.environ.get("BOREALIS_LLAMA_SERVER")
    if named:
        path = Path(named)
        ok = path.is_file() and os.access(path, os.X_OK)
        return (path, "") if ok else (None, f"BOREALIS_LLAMA_SERVER={named} is not executable")
    process = subprocess.Popen(
        ["bash", str(TOOLS_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so the whole build can be stopped, children included
    )
    ready, _, _ = select.select([process.stderr], [], [], 30)
    announcement = process.stderr.readline() if ready else "no answer in 30 s"
    if announcement:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
        return None, (
            "llama-server is not built: run `bash .ci/llama-tools.sh` once (about 7 minutes) "
            f"or set BOREALIS_LLAMA_SERVER ({announcement.strip()})"
        )
    out, _ = process.communicate(timeout=30)
    if process.returncode != 0:
        return None, f".ci/llama-tools.sh failed with exit status {process.returncode}"
    return Path(out.strip()) / "llama-server", ""


class LlamaServer:
    """One llama-server process on 127.0.0.1 and a free port."""

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        ctx: int = 2048,
        parallel: int = 4,
        threads: int = 2,
        extra: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        self.command = [
            str(binary),
            "--model",
            str(model),
            "--jinja",
            "--chat-template-file",
            str(TEMPLATE),
            "--ctx-size",
            str(ctx),
            "--threads",
            str(threads),
            "--parallel",
            str(parallel),
            # One KV pool shared by the slots: each request may use the whole context.
            # Without it, llama-server gives every slot ctx/parallel tokens (512 here).
            "--kv-unified",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra,
        ]
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")
        self.process: subprocess.Popen | None = None

    def start(self) -> LlamaServer:
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited at start:\n{self.log()}")
            if self._healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server was not healthy in {START_TIMEOUT_S} s:\n{self.log()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False  # not listening yet, or 503 while loading the model

    def post(self, path: str, body: dict) -> dict:
        """POST JSON to one of the server's own endpoints (/tokenize, /apply-template)."""
        request = urllib.request.Request(
            f"{self.root}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def get(self, path: str) -> dict:
        """GET one of the server's own JSON endpoints (/props)."""
        with urllib.request.urlopen(f"{self.root}{path}", timeout=10) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        """Die at once, as a crash would: open connections break mid-stream."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def start_llama_server(binary: Path, model: Path, **settings) -> Iterator[LlamaServer]:
    """A server of one's own for a test; stopped (if still alive) when the block ends."""
    server = LlamaServer(binary, model, **settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    binary, why_not = find_llama_server()
    require(binary is not None, why_not)
    help_text = subprocess.run(
        [str(binary), "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    missing = [flag for flag in REQUIRED_FLAGS if flag not in help_text]
    require(not missing, f"{binary} lacks {', '.join(missing)}: rebuild llama-server")
    return binary


@pytest.fixture(scope="session")
def llama_server_process(llama_server_binary, gemma_gguf) -> Iterator[LlamaServer]:
    """The session's llama-server: the stand-in model, our template, a 2048-token
    context (for each request: the slots share one KV pool), 2 threads, 4 slots."""
    with start_llama_server(llama_server_binary, gemma_gguf) as server:
        yield server


@pytest.fixture(scope="session")
def llama_server(llama_server_process) -> str:
    """The session's llama-server base URL (http://127.0.0.1:PORT/v1)."""
    return llama_server_process.base_url
