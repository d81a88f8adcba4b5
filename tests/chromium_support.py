"""A real headless Chromium (Debian's `chromium`) for tests of HTML pages.

`load_page(path, expression)` starts a fresh Chromium (its own profile, nothing shared
between loads), opens the file over the DevTools protocol (a WebSocket, through the
`websockets` library) and returns what the page did while it loaded: every URL it
asked for, every console error, uncaught exception and browser log error (a failed
load, a Content-Security-Policy refusal), and the value of a JavaScript expression
evaluated in the loaded page (how a test reads the rendered DOM).

The flags keep Chromium off the network it cannot reach here (no component updates,
sync, QUIC or background requests) and out of a sandbox that containers refuse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",  # Chromium picks one and writes it to DevToolsActivePort
)
# Seconds: starting takes about one here, loading a report well under one; a browser
# that takes longer than these is broken, and the test says so instead of hanging.
START_TIMEOUT_S = 30
LOAD_TIMEOUT_S = 60


def find_chromium() -> str | None:
    """Chromium's executable: $BOREALIS_CHROMIUM, else `chromium` on PATH."""
    return os.environ.get("BOREALIS_CHROMIUM") or shutil.which("chromium")


@dataclass
class PageLoad:
    """What a page did while it loaded, and what the expression gave."""

    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    value: Any = None


def load_page(path: Path, expression: str, *, binary: str | None = None) -> PageLoad:
    """Load `path` (as a file:// URL) in a fresh headless Chromium, wait for its load
    event, then evaluate `expression` there; its value must be JSON-serialisable."""
    binary = binary or find_chromium()
    if binary is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    with _browser(binary) as page_socket, _connected(page_socket) as devtools:
        return devtools.load(Path(path).resolve().as_uri(), expression)


@contextlib.contextmanager
def _browser(binary: str) -> Iterator[str]:
    """A running Chromium with a fresh profile; yields its first page's WebSocket URL
    and stops the browser (and its helper processes) afterwards."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so it stops as a whole
        )
        try:
            yield _page_socket(process, Path(profile) / "DevToolsActivePort")
        finally:
            _stop(process)


def _page_socket(process: subprocess.Popen, port_file: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Chromium exited at start ({process.returncode}): "
                f"{process.stderr.read().decode(errors='replace')[-2000:]}"
            )
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.05)
    raise RuntimeError(f"Chromium opened no DevTools page in {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    process.stderr.close()


@contextlib.contextmanager
def _connected(url: str) -> Iterator[_DevTools]:
    from websockets.sync.client import connect

    with connect(url, max_size=None, open_timeout=START_TIMEOUT_S) as socket:
        yield _DevTools(socket)


class _DevTools:
    """Commands to one page and the events it sends back (the DevTools protocol)."""

    def __init__(self, socket):
        self.socket = socket
        self.last_id = 0
        self.deadline = 0.0
        self.page = PageLoad("about:blank")
        self.loaded: set[str] = set()  # loader ids whose documents fired their load event

    def load(self, url: str, expression: str) -> PageLoad:
        self.deadline = time.monotonic() + LOAD_TIMEOUT_S
        self.page = PageLoad(url)
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Page.setLifecycleEventsEnabled", enabled=True)
        navigation = self.call("Page.navigate", url=url)
        if navigation.get("errorText"):
            raise RuntimeError(f"Chromium could not open {url}: {navigation['errorText']}")
        # This document's load event (not about:blank's, which may come late), even if
        # it arrived before navigate's answer did.
        while navigation["loaderId"] not in self.loaded:
            self.receive()
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"the expression failed: {result['exceptionDetails']}")
        self.page.value = result["result"].get("value")
        return self.page

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = self.receive()
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message.get("result", {})

    def receive(self) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the page did not load in {LOAD_TIMEOUT_S} s")
        message = json.loads(self.socket.recv(timeout=left))
        self.record(message.get("method"), message.get("params", {}))
        return message

    def record(self, event: str | None, params: dict[str, Any]) -> None:
        page = self.page
        if event == "Page.lifecycleEvent" and params.get("name") == "load":
            self.loaded.add(params["loaderId"])
        elif event == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif event == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            page.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
            )
        elif event == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            page.errors.append(
                details.get("exception", {}).get("description")
                or details.get("text", "an uncaught exception")
            )
        elif event == "Log.entryAdded" and params["entry"].get("level") == "error":
            page.errors.append(params["entry"].get("text", ""))
