"""The key behaviours of OllamaBackend and create_model against a REAL Ollama.

Opt-in: skipped unless OLLAMA_HOST is set (e.g. OLLAMA_HOST=http://127.0.0.1:11434).
It needs a Borealis model in that Ollama, named by BOREALIS_OLLAMA_MODEL (default
`borealis:270m`, made by `borealis create 270m`). With BOREALIS_OLLAMA_GGUF set to a
Borealis (or any Gemma 3) GGUF, it also creates `borealis-test:latest` from that file
and deletes it afterwards. With BOREALIS_OLLAMA_VISION_MODEL naming a model made with
its projector (`borealis pull 4b --ollama`), it sends that model an image.

    OLLAMA_HOST=http://127.0.0.1:11434 pytest -m ollama tests/test_ollama_real.py

Answers are asserted on structure, stopping and usage, never on content.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path

import pytest

from borealis_local import templates
from borealis_local.catalog import get_model
from borealis_local.errors import ContextOverflowError, ModelNotFoundError
from borealis_local.ollama_install import create_model
from borealis_local.runtime.ollama import OllamaBackend, gguf_token_counter

HOST = os.environ.get("OLLAMA_HOST")
TAG = os.environ.get("BOREALIS_OLLAMA_MODEL", get_model("270m").ollama_tag)
GGUF = os.environ.get("BOREALIS_OLLAMA_GGUF")
VISION_TAG = os.environ.get("BOREALIS_OLLAMA_VISION_MODEL")
TIMEOUT = 300  # a cold model load on a slow machine
QUESTION = [{"role": "user", "content": "Hva er hovedstaden i Norge?"}]
STORY = "Det var en gang"

ollama = pytest.importorskip("ollama")
httpx = pytest.importorskip("httpx")

pytestmark = [
    pytest.mark.ollama,
    pytest.mark.skipif(not HOST, reason="set OLLAMA_HOST to run the tests against a real Ollama"),
]


@pytest.fixture(scope="module")
def client():
    with ollama.Client(host=HOST, timeout=TIMEOUT) as official:
        try:
            official.show(TAG)
        except ollama.ResponseError as error:
            pytest.skip(f"{TAG} is not in the Ollama at {HOST} ({error.error}): run "
                        "`borealis create 270m`, or set BOREALIS_OLLAMA_MODEL")  # fmt: skip
        yield official


@pytest.fixture
def backend(client):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "OllamaBackend cannot count")
        with OllamaBackend(TAG, host=HOST, timeout=TIMEOUT) as real:
            yield real


def test_chat_streams_and_ends_with_usage_and_timings(backend):
    *texts, last = backend.stream_chat(QUESTION, max_tokens=6, temperature=0)
    assert all(chunk.finish_reason is None for chunk in texts)
    assert last.finish_reason == "length" and last.usage.completion_tokens == 6
    assert last.usage.prompt_tokens > 0
    assert last.timings.source == "ollama" and last.timings.generation_ms > 0
    assert last.timings.ttft_ms > 0


def test_prompt_tokens_equal_our_count_when_the_blob_is_readable_here(client):
    """Ollama's Go template and our Jinja template give the same tokens (the parity tests
    prove it with Go's engine; this checks it against Ollama itself). The first FROM is
    the model's GGUF (projectors follow it). shift=false keeps Ollama 0.30+'s prompt
    cache off, so prompt_eval_count is the whole prompt."""
    blob = next(
        (line[5:].strip() for line in client.show(TAG).modelfile.splitlines()
         if line.startswith("FROM ")),
        None,
    )  # fmt: skip
    if not blob or not os.access(blob, os.R_OK):
        pytest.skip("Ollama's blobs are not readable here")
    pytest.importorskip("llama_cpp")
    body = {"model": TAG, "messages": QUESTION, "stream": False, "shift": False,
            "truncate": False, "options": {"num_predict": 1}}  # fmt: skip
    reply = httpx.post(f"{HOST.rstrip('/')}/api/chat", json=body, timeout=TIMEOUT).json()
    expected = gguf_token_counter(blob)(templates.render(QUESTION))
    assert reply["prompt_eval_count"] == expected


async def test_a_seed_makes_answers_reproducible(backend):
    settings = dict(temperature=1.0, seed=42, max_tokens=8)
    # Ollama reuses its prompt cache, which changes the logits' last bits: start from the
    # same cache state for both answers.
    backend.chat(QUESTION, **settings)
    first = backend.chat(QUESTION, **settings)
    again = await backend.achat(QUESTION, **settings)
    assert first.text == again.text


def test_raw_completion_and_a_stop_sequence(backend):
    backend.complete(STORY, max_tokens=12, temperature=0)  # the same cache state for both
    full = backend.complete(STORY, max_tokens=12, temperature=0)
    assert full.finish_reason == "length" and full.usage.prompt_tokens > 0
    stop = full.text.split()[len(full.text.split()) // 2]
    stopped = backend.complete(STORY, max_tokens=12, temperature=0, stop=[stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.index(stop)]


def test_a_json_schema_gives_json_that_parses(backend):
    schema = {
        "type": "object",
        "properties": {"answer": {"enum": ["ja", "nei"]}, "sure": {"type": "boolean"}},
        "required": ["answer", "sure"],
    }
    question = [{"role": "user", "content": "Er Oslo hovedstaden i Norge? Svar i JSON."}]
    reply = json.loads(backend.chat(question, json_schema=schema, temperature=0).text)
    assert reply["answer"] in ("ja", "nei") and isinstance(reply["sure"], bool)


async def test_concurrent_async_requests_all_finish(backend):
    results = await asyncio.gather(
        *(backend.achat(QUESTION, max_tokens=4, seed=i) for i in range(8))
    )
    assert all(r.finish_reason in ("stop", "length") and r.usage.prompt_tokens for r in results)


def test_an_unknown_model_says_how_to_install_it(client):
    with OllamaBackend("borealis:27b-absent", host=HOST, timeout=TIMEOUT) as missing:
        with pytest.raises(ModelNotFoundError, match="borealis create"):
            missing.chat(QUESTION)


def test_an_over_long_prompt_is_never_answered_silently(backend):
    """Whichever layer catches it here (our count, truncate=false, or the post-check on a
    server that ignores truncate), the caller gets ContextOverflowError."""
    long = [{"role": "user", "content": " ".join(["ord"] * 600)}]
    with pytest.raises(ContextOverflowError) as error:
        backend.chat(long, num_ctx=256, max_tokens=4)
    assert error.value.n_ctx == 256


def test_keep_alive_in_bare_seconds_is_accepted(client):
    """Ollama refuses the string "300" (Go's time.ParseDuration): it is sent as 300 s."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "OllamaBackend cannot count")
        with OllamaBackend(TAG, host=HOST, timeout=TIMEOUT, keep_alive="300") as kept:
            assert kept.chat(QUESTION, max_tokens=1).usage.completion_tokens >= 0


def test_ollamas_own_refusal_is_a_context_overflow(client):
    """A tokenizer that undercounts lets the prompt reach Ollama, which refuses it in its
    version's words (0.24's runners, or llama-server's body on 0.30+)."""
    long = [{"role": "user", "content": " ".join(["ord"] * 600)}]
    with OllamaBackend(TAG, host=HOST, timeout=TIMEOUT, tokenizer=lambda _: 1) as blind:
        with pytest.raises(ContextOverflowError) as error:
            blind.chat(long, num_ctx=256, max_tokens=4)
    assert error.value.n_ctx == 256 and error.value.prompt_tokens > 256


@pytest.mark.skipif(not GGUF, reason="set BOREALIS_OLLAMA_GGUF to a GGUF to test creation")
def test_create_from_a_local_gguf(client):
    tag = "borealis-test:latest"
    try:
        steps = list(create_model(get_model("270m"), from_path=Path(GGUF), tag=tag, host=HOST))
        assert steps[-1].status == "success"
        show = client.show(tag)
        assert show.template == templates.ollama_template()
        assert "num_ctx" in show.parameters
    finally:
        try:
            client.delete(tag)
        except ollama.ResponseError:
            pass


@pytest.mark.skipif(not VISION_TAG, reason="set BOREALIS_OLLAMA_VISION_MODEL to a model "
                    "made with its projector (`borealis pull 4b --ollama`)")
def test_an_image_is_seen_and_counted(client):
    import io

    from PIL import Image

    from borealis_local.catalog import GEMMA3_VISION

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buffer, "PNG")
    words = [{"type": "text", "text": "Hva er dette?"}]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "OllamaBackend cannot count")
        with OllamaBackend(VISION_TAG, host=HOST, timeout=TIMEOUT) as seeing:
            with_image = seeing.chat([{"role": "user", "content": [
                *words, {"type": "image", "image": buffer.getvalue()}]}], max_tokens=4, seed=1)
            without = seeing.chat([{"role": "user", "content": words}], max_tokens=4, seed=1)
    assert with_image.usage.completion_tokens >= 1
    # The image's soft tokens, its two bounds and the blank lines around it.
    assert with_image.usage.prompt_tokens >= without.usage.prompt_tokens + (
        GEMMA3_VISION.tokens_per_image + 2)
