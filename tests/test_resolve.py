"""One way to name a model: each form reaches the right kind of runtime (the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from borealis_local.errors import InvalidRequestError, ModelNotFoundError
from borealis_local.runtime import registry, resolve


@pytest.mark.parametrize(
    ("name", "kind", "arguments"),
    [
        ("openai:borealis-27b@http://10.0.0.5:8000/v1", "openai",
         {"model": "borealis-27b", "base_url": "http://10.0.0.5:8000/v1"}),
        ("borealis:4b", "ollama", {"model": "borealis:4b"}),
        ("hf.co/NbAiLab/borealis-4b-gguf:Q8_0", "ollama",
         {"model": "hf.co/NbAiLab/borealis-4b-gguf:Q8_0"}),
        ("ollama:borealis-4b", "ollama", {"model": "borealis-4b"}),
        ("gemma3", "ollama", {"model": "gemma3"}),
        ("./models/x.gguf", "llama.cpp", {"model_path": Path("models/x.gguf")}),
        ("/data/borealis-4b-Q4_K_M.gguf", "llama.cpp",
         {"model_path": Path("/data/borealis-4b-Q4_K_M.gguf")}),
    ],
)
def test_names_map_to_backends(name, kind, arguments):
    found, found_arguments = registry.describe(name)
    assert (found.name, found_arguments) == (kind, arguments)


@pytest.mark.parametrize(
    "name", ["openai:borealis", "openai:@http://x", "openai:m@localhost:8080", "  "]
)
def test_malformed_names_say_how_to_write_them(name):
    with pytest.raises(InvalidRequestError):
        registry.describe(name)


def test_catalog_name_finds_the_file_in_the_models_dir(tmp_path, monkeypatch, gemma_gguf):
    (tmp_path / "borealis-open-270m-Q4_K_M.gguf").symlink_to(gemma_gguf)
    monkeypatch.setenv(resolve.MODELS_DIR_ENV, str(tmp_path))
    kind, arguments = registry.describe("borealis-open-270m")
    assert kind.name == "llama.cpp" and kind.in_process
    assert arguments["model_path"] == tmp_path / "borealis-open-270m-Q4_K_M.gguf"
    assert arguments["n_ctx"] == 32768 and arguments["name"] == "borealis-open-270m:Q4_K_M"


@pytest.mark.slow
def test_open_backend_runs_a_catalog_model(tmp_path, monkeypatch, gemma_gguf):
    (tmp_path / "borealis-270m-Q4_K_M.gguf").symlink_to(gemma_gguf)
    monkeypatch.setenv(resolve.MODELS_DIR_ENV, str(tmp_path))
    with registry.open_backend("borealis-270m", n_ctx=512, n_threads=2) as backend:
        result = backend.complete("Hei", max_tokens=2)
    assert result.model == "borealis-270m:Q4_K_M" and result.usage.completion_tokens == 2


def test_a_catalog_model_not_on_disk_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(resolve.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError) as error:
        registry.describe("borealis-12b:Q8_0")
    message = str(error.value)
    assert "borealis pull 12b --quant Q8_0" in message
    assert "borealis:12b" in message
