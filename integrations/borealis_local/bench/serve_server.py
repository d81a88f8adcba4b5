"""A llama-server of our own for `borealis bench serve --start-server`: a local GGUF
behind llama.cpp's server on a free loopback port, with the project's Jinja chat
template, `--parallel N` slots sharing one KV pool (`--kv-unified`: each request may use
the whole context), stopped when the benchmark ends. So the in-process backend and the
server can be measured side by side on one machine.

The binary: `--llama-server PATH`, else $BOREALIS_LLAMA_SERVER (the variable the test
suite reads too), else `llama-server` on PATH.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from borealis_local.errors import BackendError, InvalidRequestError, ServerUnavailableError

# Loading a model takes seconds; a server that is not healthy after this is broken.
START_TIMEOUT_S = 300
BINARY_HINT = (
    "install llama.cpp (its llama-server), or in a checkout of borealis-local run "
    "`bash .ci/llama-tools.sh`, then give --llama-server PATH or set BOREALIS_LLAMA_SERVER"
)


def find_binary(given: str | None = None) -> Path:
    """The llama-server executable to start, or an error that says how to get one."""
    named = given or os.environ.get("BOREALIS_LLAMA_SERVER")
    if named:
        path = Path(named).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InvalidRequestError(f"{path} is not an executable llama-server: {BINARY_HINT}")
        return path
    found = shutil.which("llama-server")
    if found is None:
        raise InvalidRequestError(
            f"--start-server needs llama-server, not found on PATH: {BINARY_HINT}"
        )
    return Path(found)


def free_port() -> int:
    """A loopback port nothing listens on (the OS picked it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """llama-server for one GGUF, as a context manager: `with LocalServer(...) as s:`
    then `s.base_url` (ending in /v1)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        parallel: int,
        ctx_size: int | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ):
        from borealis_local.templates import jinja_template

        if parallel < 1:
            raise InvalidRequestError("--parallel must be 1 or more")
        self.binary = find_binary(binary)
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        self._template = tempfile.NamedTemporaryFile(
            "w", prefix="borealis-", suffix=".jinja", encoding="utf-8"
        )
        self._template.write(jinja_template())
        self._template.flush()
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")
        self.parallel = parallel
        self.args = [
            "--model", str(model_path), "--jinja", "--chat-template-file", self._template.name,
            "--parallel", str(parallel), "--kv-unified",
            *(["--ctx-size", str(ctx_size)] if ctx_size else []),
            *extra_args,
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LocalServer:
        self.process = subprocess.Popen(
            [str(self.binary), *self.args], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log()
                self.close()
                raise BackendError(f"llama-server exited at start ({self.binary}):\n{log}")
            if self._healthy():
                return self
            time.sleep(0.2)
        log = self.log()
        self.close()
        raise ServerUnavailableError(
            f"llama-server was not healthy within {START_TIMEOUT_S} s:\n{log}"
        )

    def __exit__(self, *exc) -> None:
        self.close()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False  # not listening yet, or 503 while it loads the model

    def log(self) -> str:
        """The end of the server's log (for errors)."""
        return Path(self._log.name).read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()
        self._template.close()

    def description(self) -> dict[str, object]:
        """What the results record of the server started."""
        return {"binary": str(self.binary), "args": self.args[self.args.index("--parallel") : -4]}


__all__ = ["LocalServer", "find_binary", "free_port"]
