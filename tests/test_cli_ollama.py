"""`borealis create` and `borealis chat` against the Ollama test double, as a user runs
them (OLLAMA_HOST pointing at the double; Ollama itself cannot be installed here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from ollama_double import OllamaDouble

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def double(go_renderer, llama_cpp, tmp_path_factory, ollama_profile):
    """The double in each profile (conftest.py ollama_profile: Ollama 0.24 and 0.30)."""
    home = tmp_path_factory.mktemp("ollama-home")
    with OllamaDouble(go_renderer, home=home, profile=ollama_profile) as server:
        yield server


def borealis(double, *args, stdin=""):
    env = {**os.environ, "OLLAMA_HOST": double.url}
    return subprocess.run(
        [sys.executable, "-m", "borealis_local.cli", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=300,
    )


def test_create_then_chat(double, gemma_gguf):
    created = borealis(double, "create", "270m", "--variant", "open", "--from", str(gemma_gguf))
    assert created.returncode == 0, created.stderr
    assert "created borealis-open:270m" in created.stdout
    model = double.models[next(iter(double.models))]
    assert model.template.startswith("{{- /* Borealis chat template for Ollama")
    chat = borealis(double, "chat", "borealis-open:270m", "--max-tokens", "3", "--seed", "1",
                    stdin="Hei\n")
    assert chat.returncode == 0, chat.stderr
    assert "[3 tokens" in chat.stderr


def test_chat_with_a_model_ollama_lacks_names_the_fix(double):
    chat = borealis(double, "chat", "borealis:27b", stdin="Hei\n")
    assert chat.returncode == 1
    assert "borealis create" in chat.stderr and chat.stderr.strip().count("\n") == 0


def test_create_from_a_file_that_is_not_gguf(double, tmp_path):
    fake = tmp_path / "borealis-4b-Q4_K_M.gguf"
    fake.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    created = borealis(double, "create", "4b", "--from", str(fake))
    assert created.returncode == 1
    assert "LFS" in created.stderr or "not a GGUF" in created.stderr
