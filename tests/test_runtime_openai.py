"""OpenAIBackend against a real llama-server on loopback (tests/llama_server_support.py).

The model is the stand-in Gemma 3 270M *base* model: its answers mean nothing, so the
tests assert tokens, structure, stopping, usage, timings and errors, never content.
Raw prompts that count ("1, 2, 3,") at temperature 0 make a base model's stopping
predictable enough to test stop sequences and lengths.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import llama_server_support as support
import pytest

from borealis_local import templates
from borealis_local.errors import (
    BackendTimeoutError,
    ContextOverflowError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
    StreamInterruptedError,
)
from borealis_local.runtime.base import Completion
from borealis_local.runtime.openai_compat import OpenAIBackend

pytestmark = pytest.mark.slow

# The real llama-server's fixtures, shared with other modules through the support file.
llama_server_binary = support.llama_server_binary
llama_server_process = support.llama_server_process
llama_server = support.llama_server

MESSAGES = [
    {"role": "system", "content": "Svar kort."},
    {"role": "user", "content": "Hva heter hovedstaden i Norge?"},
]
COUNTING = "1, 2, 3, 4, 5,"


@pytest.fixture
def backend(llama_server):
    with OpenAIBackend("borealis-270m", llama_server, timeout=30) as backend:
        yield backend


@pytest.fixture(scope="module")
def vocab(llama_cpp, gemma_gguf):
    """The model's own tokenizer (no weights), to count what the server should see."""
    return llama_cpp.Llama(str(gemma_gguf), vocab_only=True, verbose=False)


def check_completion(result: Completion, max_tokens: int) -> None:
    assert result.backend == "openai" and result.model == "borealis-270m"
    assert result.finish_reason in ("stop", "length")
    assert 1 <= result.usage.completion_tokens <= max_tokens
    assert result.usage.prompt_tokens > 0
    assert result.timings.source == "llama-server"
    assert result.timings.prompt_ms > 0 and result.timings.ttft_ms > 0
    assert result.device is None


def test_chat(backend):
    result = backend.chat(MESSAGES, max_tokens=8)
    check_completion(result, 8)


async def test_async_chat(backend):
    result = await backend.achat(MESSAGES, max_tokens=8)
    check_completion(result, 8)


def test_stream_last_chunk_carries_finish_usage_and_timings(backend):
    chunks = list(backend.stream_chat(MESSAGES, max_tokens=12, temperature=0))
    *text_chunks, last = chunks
    assert len([c for c in text_chunks if c.text]) >= 2
    assert all(c.finish_reason is None and c.usage is None for c in text_chunks)
    assert last.finish_reason in ("stop", "length")
    assert 1 <= last.usage.completion_tokens <= 12
    assert last.timings.source == "llama-server"
    assert last.timings.generation_ms > 0 and last.timings.ttft_ms > 0


async def test_async_stream(backend):
    chunks = [c async for c in backend.astream_complete(COUNTING, max_tokens=6, temperature=0)]
    assert chunks[-1].finish_reason == "length" and chunks[-1].usage.completion_tokens == 6
    assert sum(1 for c in chunks if c.text) >= 2


def test_raw_completion_gets_one_bos_and_no_template(backend, vocab):
    result = backend.complete(COUNTING, max_tokens=6, temperature=0)
    assert result.text.strip()
    assert "<start_of_turn>" not in result.text
    # llama-server adds BOS to a raw prompt: BOS + the text's tokens, nothing else.
    assert result.usage.prompt_tokens == len(vocab.tokenize(COUNTING.encode(), add_bos=True))


def test_chat_prompt_tokens_match_the_rendered_template_with_one_bos(backend, vocab):
    rendered = templates.render(MESSAGES)  # starts with "<bos>" (the template renders it)
    tokens = vocab.tokenize(rendered.encode(), add_bos=False, special=True)
    assert tokens.count(2) == 1 and tokens[0] == 2
    result = backend.chat(MESSAGES, max_tokens=1)
    # Equal counts: llama-server strips the template's <bos> before adding its own.
    assert result.usage.prompt_tokens == len(tokens)


def test_server_applies_our_template_and_strips_its_bos(llama_server_process, vocab):
    server = llama_server_process
    prompt = server.post("/apply-template", {"messages": MESSAGES})["prompt"]
    assert prompt == templates.render(MESSAGES, bos_token="")
    tokenized = server.post("/tokenize", {"content": prompt, "add_special": True})["tokens"]
    assert tokenized == vocab.tokenize(templates.render(MESSAGES).encode(), False, True)


def test_stop_sequence_ends_the_answer(backend):
    # The stop is taken from the model's own free answer: which words it picks differs
    # between CPUs, so nothing here names one.
    backend.complete(COUNTING, max_tokens=24, temperature=0)  # the same cache state for both
    free = backend.complete(COUNTING, max_tokens=24, temperature=0)
    words = free.text.split()
    assert len(words) >= 3, free.text
    stop = words[len(words) // 2]
    stopped = backend.complete(COUNTING, max_tokens=24, temperature=0, stop=[stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stopped.usage.completion_tokens < free.usage.completion_tokens


def test_max_tokens_ends_with_length(backend):
    result = backend.complete(COUNTING, max_tokens=5, temperature=0)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5


def test_same_seed_same_text(backend):
    first = backend.chat(MESSAGES, max_tokens=16, temperature=1.0, seed=1234)
    second = backend.chat(MESSAGES, max_tokens=16, temperature=1.0, seed=1234)
    assert first.text == second.text
    assert first.usage.completion_tokens == second.usage.completion_tokens


def test_repeated_prompt_reports_cached_tokens(backend):
    messages = [{"role": "user", "content": "Nevn tre norske byer."}]
    first = backend.chat(messages, max_tokens=2)
    second = backend.chat(messages, max_tokens=2)
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens


def test_json_schema_output_parses_and_matches(backend):
    schema = {
        "type": "object",
        "properties": {"svar": {"enum": ["ja", "nei"]}},
        "required": ["svar"],
        "additionalProperties": False,
    }
    # llama-server's grammar allows up to 22 whitespace characters in each of the
    # object's few gaps: 128 tokens hold the longest object it allows, so it closes
    # whatever the model picks.
    question = 'Er Oslo i Norge? Svar med JSON, for eksempel {"svar": "ja"}.'
    result = backend.chat(
        [{"role": "user", "content": question}], max_tokens=128, temperature=0, json_schema=schema
    )
    assert result.finish_reason == "stop"
    answer = json.loads(result.text)
    assert set(answer) == {"svar"} and answer["svar"] in ("ja", "nei")


async def test_sixteen_concurrent_requests_all_complete(backend):
    results = await asyncio.gather(
        *(
            backend.achat([{"role": "user", "content": f"Tall {i}"}], max_tokens=4)
            for i in range(16)
        )
    )
    assert len(results) == 16
    for result in results:
        assert result.finish_reason in ("stop", "length")
        assert 1 <= result.usage.completion_tokens <= 4


def test_prompt_over_the_context_is_refused_with_the_numbers(backend, llama_server_process):
    long_prompt = "ord " * 3000
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(long_prompt, max_tokens=1)
    error = caught.value
    assert error.prompt_tokens > error.n_ctx == 2048
    assert "2048" in str(error) and "-c N" in str(error)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # vLLM's words (it has no error type for this), old and new.
        (
            "This model's maximum context length is 2048 tokens. However, you requested "
            "3000 tokens (2990 in the messages, 10 in the completion).",
            (3000, 2048),
        ),
        (
            "This model's maximum context length is 2048 tokens. However, your request has "
            "2100 input tokens. Please reduce the length of the input messages.",
            (2100, 2048),
        ),
        # A prompt that fits with too large a max_tokens is not an overflow.
        (
            "'max_tokens' is too large: 4000. This model's maximum context length is 2048 "
            "tokens and your request has 100 input tokens (4000 > 2048 - 100).",
            None,
        ),
    ],
)
def test_vllm_overflow_messages_are_read(message, expected):
    from borealis_local.runtime.openai_compat import _context_overflow

    assert _context_overflow({"type": "BadRequestError", "message": message}, message) == expected


def test_num_ctx_beyond_the_servers_context_is_refused(backend):
    with pytest.raises(InvalidRequestError, match="fixed when the server starts"):
        backend.chat(MESSAGES, num_ctx=4096, max_tokens=1)
    assert backend.chat(MESSAGES, num_ctx=2048, max_tokens=1).usage.completion_tokens == 1


def test_wrong_path_is_reported_as_no_such_model(llama_server_process):
    # A real 404 from the real server: the path is not its API.
    url = f"{llama_server_process.root}/not-the-api/v1"
    with OpenAIBackend("borealis-270m", url, timeout=10, max_retries=0) as backend:
        with pytest.raises(ModelNotFoundError, match="/v1"):
            backend.chat(MESSAGES, max_tokens=1)


def test_no_server_is_reported_within_the_timeout():
    url = f"http://127.0.0.1:{support.free_port()}/v1"
    started = time.monotonic()
    with OpenAIBackend("borealis-270m", url, timeout=5) as backend:
        with pytest.raises(ServerUnavailableError, match="llama-server") as caught:
            backend.chat(MESSAGES)
    assert url in str(caught.value)
    assert time.monotonic() - started < 10  # connection refused, two quick retries


def test_silent_server_times_out():
    # A loopback socket that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        started = time.monotonic()
        with OpenAIBackend("borealis-270m", url, timeout=1, max_retries=0) as backend:
            with pytest.raises(BackendTimeoutError, match="timeout="):
                backend.chat(MESSAGES)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": -1},
        {"top_p": 1.5},
        {"top_k": 2.5},
        {"max_tokens": 0},
        {"stop": [""]},
        {"num_ctx": "large"},
        {"mirostat": 2},
    ],
)
def test_invalid_options_are_refused_before_any_request(options):
    # Nothing listens there: had a request gone out, ServerUnavailableError would say so.
    url = f"http://127.0.0.1:{support.free_port()}/v1"
    with OpenAIBackend("borealis-270m", url, timeout=5, max_retries=0) as backend:
        with pytest.raises(InvalidRequestError):
            backend.chat(MESSAGES, **options)


def test_server_killed_mid_stream_interrupts_without_hanging(llama_server_binary, gemma_gguf):
    with support.start_llama_server(llama_server_binary, gemma_gguf, ctx=512, parallel=1) as server:
        # A generous timeout for the first token (a loaded machine is slow to start);
        # the point is what happens after the kill, which must take far less.
        with OpenAIBackend("borealis-270m", server.base_url, timeout=60) as backend:
            stream = backend.stream_complete(COUNTING, max_tokens=400, temperature=0)
            first = next(stream)
            assert first.text and first.finish_reason is None
            server.kill()
            started = time.monotonic()
            with pytest.raises(StreamInterruptedError):
                for _ in stream:
                    pass
            assert time.monotonic() - started < 10


async def test_server_killed_mid_async_stream_interrupts(llama_server_binary, gemma_gguf):
    with support.start_llama_server(llama_server_binary, gemma_gguf, ctx=512, parallel=1) as server:
        with OpenAIBackend("borealis-270m", server.base_url, timeout=60) as backend:
            stream = backend.astream_complete(COUNTING, max_tokens=400, temperature=0)
            first = await stream.__anext__()
            assert first.text and first.finish_reason is None
            server.kill()
            started = time.monotonic()
            with pytest.raises(StreamInterruptedError):
                async for _ in stream:
                    pass
            assert time.monotonic() - started < 10
