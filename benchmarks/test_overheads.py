"""Per-call overheads, with pytest-benchmark: what borealis-local adds around a model.

    pytest benchmarks/ --benchmark-only --benchmark-group-by=group

- `template`: rendering the Borealis chat format (templates.render), the work every
  llama.cpp call does before tokenizing.
- `request`: building a request (options merged and checked, messages checked), and a
  whole call through the Backend contract on a backend that generates nothing: the
  runtime layer's own cost per call.
- `adapter-null-64`: the adapters' own cost, without a model: a 64-chunk answer from a
  backend that generates nothing, through the raw runtime call, ChatBorealis.invoke and
  Borealis.chat. Their difference from the raw call, against the time a 64-token
  answer takes (about 1.3 s on 2 cores for the 270M), is the adapters' overhead, free
  of the machine's noise.
- `adapter-64-tokens`: one 64-token chat answer from the stand-in Gemma 3 270M, through
  the raw runtime, LangChain's ChatBorealis and LlamaIndex's Borealis, with the same
  seed (so the same tokens: every call resets the cache and evaluates the whole prompt).
  The acceptance line: each adapter's mean within 2% of the raw call's. Skipped when
  an integration is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from borealis_local import templates
from borealis_local.runtime.base import Backend, Chunk, Options, Request, Timings, Usage

CONVERSATION = [
    {"role": "system", "content": "Svar kort og presist på bokmål."},
    {"role": "user", "content": "Hva er hovedstaden i Norge?"},
    {"role": "assistant", "content": "Oslo er hovedstaden i Norge."},
    {"role": "user", "content": "Og hvor mange bor der, omtrent?"},
]
QUESTION = [{"role": "user", "content": "Skriv et kort dikt om fjorden om kvelden."}]
TOKENS, SEED, N_CTX, THREADS = 64, 7, 1024, 2


class NullBackend(Backend):
    """Answers at once, `chunks` one-token pieces: only the runtime layer (and whatever
    wraps it) runs. Takes and ignores a real backend's constructor arguments."""

    kind = "null"

    def __init__(self, model: str = "null", options: Options | None = None, *,
                 chunks: int = 1, **ignored):
        super().__init__(model, options)
        self.chunks = chunks

    def _stream(self, request: Request) -> Iterator[Chunk]:
        for _ in range(self.chunks - 1):
            yield Chunk(" ord")
        yield Chunk(" ord", finish_reason="length", usage=Usage(20, self.chunks),
                    timings=Timings(generation_ms=1.0, source="null"))


@pytest.fixture
def null_models(monkeypatch):
    """Every model name opens a NullBackend of 64 chunks, in the runtime and adapters."""

    def open_null(name, **arguments):
        return NullBackend(name, chunks=TOKENS)

    from borealis_local.runtime import registry

    # Both adapters open their models through the registry's shared cache.
    monkeypatch.setattr(registry, "open_backend", open_null)
    registry.SHARED.close()
    yield open_null
    registry.SHARED.close()


@pytest.mark.benchmark(group="template")
def test_render_a_conversation(benchmark):
    text = benchmark(templates.render, CONVERSATION)
    assert text.startswith("<bos><start_of_turn>user\n")


@pytest.mark.benchmark(group="request")
def test_build_a_request(benchmark):
    backend = NullBackend("null", Options(temperature=0.3))  # one chunk
    request = benchmark(backend._request, messages=CONVERSATION, options={"max_tokens": 64})
    assert request.options.max_tokens == 64


@pytest.mark.benchmark(group="request")
def test_a_whole_call_on_a_backend_that_generates_nothing(benchmark):
    backend = NullBackend("null")
    completion = benchmark(backend.chat, CONVERSATION, max_tokens=64)
    assert completion.finish_reason == "stop"


NULL_MODEL = "./null-model.gguf"  # named like a GGUF, never opened: null_models answers


@pytest.mark.benchmark(group="adapter-null-64")
def test_raw_call_on_the_null_backend(benchmark, null_models):
    backend = null_models(NULL_MODEL)
    completion = benchmark(backend.chat, QUESTION, max_tokens=TOKENS)
    assert completion.usage.completion_tokens == TOKENS


@pytest.mark.benchmark(group="adapter-null-64")
def test_langchain_on_the_null_backend(benchmark, null_models):
    pytest.importorskip("langchain_borealis")
    from langchain_borealis import ChatBorealis

    llm = ChatBorealis(model=NULL_MODEL, max_tokens=TOKENS)
    message = benchmark(llm.invoke, QUESTION[0]["content"])
    assert message.content == " ord" * TOKENS


@pytest.mark.benchmark(group="adapter-null-64")
def test_llama_index_on_the_null_backend(benchmark, null_models):
    pytest.importorskip("llama_index.llms.borealis")
    from llama_index.core.llms import ChatMessage

    from llama_index.llms.borealis import Borealis

    llm = Borealis(model=NULL_MODEL, max_tokens=TOKENS)
    messages = [ChatMessage(role="user", content=QUESTION[0]["content"])]
    response = benchmark(llm.chat, messages)
    assert response.message.content == " ord" * TOKENS


def _run(benchmark, call):
    """Five timed rounds after one warm-up; the answer's token count is recorded."""
    result = benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)
    return result


@pytest.mark.benchmark(group="adapter-64-tokens")
def test_raw_runtime_call(benchmark, stand_in):
    from borealis_local.runtime.registry import open_backend

    with open_backend(str(stand_in), n_ctx=N_CTX, n_threads=THREADS) as backend:
        completion = _run(benchmark, lambda: backend.chat(QUESTION, max_tokens=TOKENS, seed=SEED))
    benchmark.extra_info["completion_tokens"] = completion.usage.completion_tokens


@pytest.mark.benchmark(group="adapter-64-tokens")
def test_langchain_chat_borealis(benchmark, stand_in):
    pytest.importorskip("langchain_borealis")
    from langchain_borealis import ChatBorealis

    llm = ChatBorealis(model=str(stand_in), max_tokens=TOKENS, seed=SEED, num_ctx=N_CTX,
                       backend_kwargs={"n_threads": THREADS})
    message = _run(benchmark, lambda: llm.invoke(QUESTION[0]["content"]))
    usage = message.usage_metadata or {}
    benchmark.extra_info["completion_tokens"] = usage.get("output_tokens")


@pytest.mark.benchmark(group="adapter-64-tokens")
def test_llama_index_borealis(benchmark, stand_in):
    pytest.importorskip("llama_index.llms.borealis")
    from llama_index.core.llms import ChatMessage

    from llama_index.llms.borealis import Borealis

    llm = Borealis(model=str(stand_in), max_tokens=TOKENS, context_window=N_CTX,
                   additional_kwargs={"seed": SEED}, backend_kwargs={"n_threads": THREADS})
    messages = [ChatMessage(role="user", content=QUESTION[0]["content"])]
    response = _run(benchmark, lambda: llm.chat(messages))
    benchmark.extra_info["completion_tokens"] = (response.raw or {}).get("usage", {}).get(
        "completion_tokens") if isinstance(response.raw, dict) else None
