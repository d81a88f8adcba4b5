"""One way to name a model: each form reaches the right kind of runtime (the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from borealis_local.errors import (
    BackendTimeoutError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
)
from borealis_local.runtime import registry, resolve
from borealis_local.runtime.base import Backend, Chunk, Request, Usage
from borealis_local.runtime.kind import BenchTarget, RuntimeKind


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


# -- the registry: adding a kind, retries, models shared across frameworks -------------


class EchoBackend(Backend):
    """A runtime that repeats the last message: enough to show a new kind plugs in."""

    kind = "echo"

    def _stream(self, request: Request):
        text = request.messages[-1]["content"] if request.messages else request.prompt
        yield Chunk(text, finish_reason="stop", usage=Usage(1, 1))


class EchoRuntime(RuntimeKind):
    name = "echo"
    in_process = True
    prefix = "echo:"

    def recognise(self, name):
        return {"model": name.removeprefix("echo:")}

    def arguments(self, settings):
        return {}

    def open_backend(self, arguments, options):
        return EchoBackend(arguments["model"], options)

    def open_embedder(self, arguments):
        raise NotImplementedError

    def bench_target(self, arguments):
        return BenchTarget(path=arguments["model"])


@pytest.fixture
def echo_kind(monkeypatch):
    monkeypatch.setattr(registry, "KINDS", (EchoRuntime(), *registry.KINDS))
    registry.SHARED.close()
    yield
    registry.SHARED.close()


def test_a_new_runtime_is_one_kind_in_the_registry(echo_kind):
    from llama_index.core.llms import ChatMessage

    from langchain_borealis import ChatBorealis
    from llama_index.llms.borealis import Borealis

    kind, arguments = registry.describe("echo:hei")
    assert (kind.name, arguments, kind.in_process) == ("echo", {"model": "hei"}, True)
    assert registry.runs_in_process("echo") and not registry.runs_in_process("nobody")
    assert ChatBorealis(model="echo:x").invoke("Hei på deg").content == "Hei på deg"
    answer = Borealis(model="echo:x").chat([ChatMessage(role="user", content="Hallo")])
    assert answer.message.content == "Hallo"
    from borealis_local.bench.measure import resolve_target

    assert resolve_target("echo:x").in_process


def test_langchain_and_llama_index_share_one_opened_model(echo_kind):
    from langchain_borealis import ChatBorealis
    from llama_index.llms.borealis import Borealis

    first = ChatBorealis(model="echo:shared", num_ctx=256)._backend("echo:shared")
    second = Borealis(model="echo:shared", context_window=256)._backend()
    assert first is second
    assert ChatBorealis(model="echo:shared")._backend("echo:shared") is not first  # other num_ctx


class Flaky:
    """Fails `failures` times with `error` (after `chunks_first` chunks), then answers."""

    def __init__(self, failures: int, error: Exception, chunks_first: int = 0):
        self.failures, self.error, self.chunks_first, self.calls = failures, error, chunks_first, 0

    def stream(self):
        self.calls += 1
        if self.calls <= self.failures:
            yield from (Chunk("x") for _ in range(self.chunks_first))
            raise self.error
        yield Chunk("ok", finish_reason="stop")


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(registry, "backoff", lambda attempt: 0.0)


def test_retries_a_server_that_was_down_before_any_text(no_backoff):
    flaky = Flaky(2, ServerUnavailableError("down"))
    assert [c.text for c in registry.RetryPolicy(2).stream(flaky.stream)] == ["ok"]
    assert flaky.calls == 3


def test_gives_up_after_max_retries_and_never_repeats_text(no_backoff):
    down = Flaky(5, BackendTimeoutError("slow"))
    with pytest.raises(BackendTimeoutError):
        list(registry.RetryPolicy(1).stream(down.stream))
    assert down.calls == 2
    midway = Flaky(1, ServerUnavailableError("died"), chunks_first=2)
    with pytest.raises(ServerUnavailableError):
        list(registry.RetryPolicy(3).stream(midway.stream))
    assert midway.calls == 1  # text had reached the caller: no retry
    other = Flaky(1, InvalidRequestError("bad option"))
    with pytest.raises(InvalidRequestError):
        registry.RetryPolicy(3).call(lambda: list(other.stream()))
    assert other.calls == 1  # only a runtime that is down or slow is asked again


async def test_async_retries_alike(no_backoff):
    flaky = Flaky(1, ServerUnavailableError("down"))

    async def stream():
        for chunk in flaky.stream():
            yield chunk

    assert [c.text async for c in registry.RetryPolicy(1).astream(stream)] == ["ok"]
    again = Flaky(1, ServerUnavailableError("down"))

    async def answer():
        return list(again.stream())

    assert [c.text for c in await registry.RetryPolicy(1).acall(answer)] == ["ok"]
