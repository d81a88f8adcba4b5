"""OllamaBackend and create_model against OllamaDouble, a test double of the Ollama server
(tests/ollama_double.py): Ollama's REST protocol on 127.0.0.1, real llama.cpp inference
on the stand-in Gemma 3 270M, and the model's Go template rendered by Go itself.

The stand-in is a base model: tests assert tokens, structure, stopping, usage and
errors, never what it says.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
import warnings

import pytest
from ollama_double import OllamaDouble

from borealis_local import templates
from borealis_local.catalog import get_model
from borealis_local.errors import (
    BackendTimeoutError,
    ContextOverflowError,
    InvalidModelFileError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
    StreamInterruptedError,
    StructuredOutputError,
)
from borealis_local.modelfile import license_text
from borealis_local.ollama_install import create_model
from borealis_local.runtime.ollama import (
    GEMMA3_MAX_TOKEN_BYTES,
    OllamaBackend,
    gguf_token_counter,
)

httpx = pytest.importorskip("httpx")
ollama = pytest.importorskip("ollama")

pytestmark = pytest.mark.slow

MODEL = get_model("270m")
TAG = MODEL.ollama_tag
# The stand-in GGUF's sha256 (FACTS.md): the digest its upload must get.
STAND_IN_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
TIMEOUT = 180  # generous: the double serves one request at a time, and CI may be loaded
QUESTION = [{"role": "user", "content": "Hva er hovedstaden i Norge?"}]
STORY = "Det var en gang"
LONG = [{"role": "user", "content": " ".join(["ord"] * 300)}]  # about 300 tokens
NO_TOKENIZER = "ignore:OllamaBackend cannot count"


@pytest.fixture(scope="module")
def double(go_renderer, llama_cpp, tmp_path_factory):
    with OllamaDouble(go_renderer, home=tmp_path_factory.mktemp("ollama-double")) as server:
        yield server


@pytest.fixture(scope="module")
def progress(double, gemma_gguf):
    """Borealis 270M (the stand-in's weights) created in the double, as `borealis create`
    does it; the progress it reported."""
    return list(create_model(MODEL, from_path=gemma_gguf, host=double.url, timeout=TIMEOUT))


@pytest.fixture
def backend(double, progress):
    with OllamaBackend(TAG, host=double.url, timeout=TIMEOUT) as ollama_backend:
        yield ollama_backend


@pytest.fixture(scope="module")
def client(double):
    with ollama.Client(host=double.url, timeout=TIMEOUT) as official:
        yield official


@pytest.fixture(scope="module")
def count_tokens(gemma_gguf):
    return gguf_token_counter(gemma_gguf)


@pytest.fixture
def elsewhere(double):
    """The double as an Ollama on another machine: its blob paths do not exist here."""
    double.same_machine = False
    yield double
    double.same_machine = True


@pytest.fixture
def old_server(elsewhere):
    """...and as an Ollama from before `truncate` and `shift`: it fits prompts silently."""
    elsewhere.understands_truncate = False
    yield elsewhere
    elsewhere.understands_truncate = True


@pytest.fixture
def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server():
    """Accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def chats_sent(double) -> int:
    return len(double.requests_to("/api/chat"))


def last_body(double, path="/api/chat") -> dict:
    return double.requests_to(path)[-1].body


# -- create ------------------------------------------------------------------------------


def test_create_uploads_the_gguf_and_reports_progress(progress, gemma_gguf):
    size = gemma_gguf.stat().st_size
    assert progress[0] == (f"uploading {gemma_gguf.name}", 0, size)
    assert progress[1].completed == progress[1].total == size
    assert STAND_IN_SHA256 in progress[1].status
    statuses = [step.status for step in progress]
    assert f"using existing layer sha256:{STAND_IN_SHA256}" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]


def test_the_created_model_keeps_template_parameters_and_licence(client, progress, gemma_gguf):
    show = client.show(TAG)
    assert show.template == templates.ollama_template()
    assert show.license == license_text(MODEL)
    parameters = {tuple(line.split(None, 1)) for line in show.parameters.splitlines()}
    assert ("num_ctx", str(MODEL.default_num_ctx)) in parameters
    assert ("stop", '"<end_of_turn>"') in parameters
    assert {("temperature", "1"), ("top_k", "64"), ("top_p", "0.95")} <= parameters
    blob = next(line for line in show.modelfile.splitlines() if line.startswith("FROM "))
    assert blob.endswith(f"sha256-{STAND_IN_SHA256}")


def test_create_refuses_a_file_that_is_not_gguf_before_contacting_ollama(double, tmp_path):
    bad = tmp_path / "borealis-270m-Q4_K_M.gguf"
    bad.write_bytes(b"<html>Not found</html>" * 10)
    before = len(double.requests)
    with pytest.raises(InvalidModelFileError):
        list(create_model(MODEL, from_path=bad, host=double.url, timeout=TIMEOUT))
    assert len(double.requests) == before


def test_create_without_ollama_says_how_to_start_it(closed_port):
    with pytest.raises(ServerUnavailableError, match="ollama serve"):
        list(create_model(MODEL, host=f"http://127.0.0.1:{closed_port}", timeout=10))


# -- answers -----------------------------------------------------------------------------


def test_chat_streams_text_then_usage_and_timings(backend, count_tokens):
    *texts, last = backend.stream_chat(QUESTION, max_tokens=6, temperature=0)
    assert texts and all(chunk.text and chunk.finish_reason is None for chunk in texts)
    assert last.finish_reason == "length"
    assert last.usage.prompt_tokens == count_tokens(templates.render(QUESTION))
    assert last.usage.completion_tokens == 6
    timings = last.timings
    assert timings.source == "ollama"
    assert timings.load_ms >= 0 and timings.prompt_ms > 0 and timings.generation_ms > 0
    assert 0 < timings.ttft_ms < 60_000


async def test_sync_async_and_streamed_answers_agree_under_a_seed(backend):
    settings = dict(temperature=1.0, seed=11, max_tokens=8)
    first = backend.chat(QUESTION, **settings)
    again = backend.chat(QUESTION, **settings)
    awaited = await backend.achat(QUESTION, **settings)
    streamed = [chunk.text async for chunk in backend.astream_chat(QUESTION, **settings)]
    assert first.text and first.text == again.text == awaited.text == "".join(streamed)
    assert awaited.usage == first.usage and awaited.backend == "ollama"


def test_raw_completion_goes_to_generate_untemplated(backend, double, count_tokens):
    result = backend.complete(STORY, max_tokens=5, temperature=0)
    body = last_body(double, "/api/generate")
    assert body["raw"] is True and body["prompt"] == STORY
    assert result.usage.prompt_tokens == count_tokens("<bos>" + STORY)
    assert result.finish_reason == "length" and result.usage.completion_tokens == 5


def test_a_stop_sequence_ends_the_answer(backend):
    full = backend.complete(STORY, max_tokens=12, temperature=0).text
    words = full.split()
    stop = words[len(words) // 2]
    stopped = backend.complete(STORY, max_tokens=12, temperature=0, stop=[stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[: full.index(stop)]


def test_options_reach_ollama_as_a_plain_dict(double, progress):
    with OllamaBackend(TAG, host=double.url, timeout=TIMEOUT, keep_alive="2m") as chosen:
        chosen.chat(
            QUESTION, temperature=0.5, top_k=20, top_p=0.9, min_p=0.05, repeat_penalty=1.2,
            seed=3, max_tokens=4, stop=["\n\n"], num_ctx=1024,
        )  # fmt: skip
    body = last_body(double)
    assert body["options"] == {
        "temperature": 0.5, "top_k": 20, "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.2,
        "seed": 3, "num_predict": 4, "stop": ["\n\n"], "num_ctx": 1024,
    }  # fmt: skip
    assert body["keep_alive"] == "2m"
    assert body["truncate"] is False and body["shift"] is False
    assert "format" not in body


def test_unset_sampling_and_context_come_from_the_model_or_the_catalog(double, client, progress):
    with OllamaBackend(TAG, host=double.url, timeout=TIMEOUT) as borealis:
        borealis.chat(QUESTION, max_tokens=2)
    assert last_body(double)["options"] == {"num_predict": 2, "num_ctx": MODEL.default_num_ctx}
    # A model with our template but no parameters, as one pulled straight from the hub.
    files = {"stand-in.gguf": f"sha256:{STAND_IN_SHA256}"}
    made = client.create("plain", files=files, template=templates.ollama_template())
    assert made.status == "success"
    with OllamaBackend("plain", host=double.url, timeout=TIMEOUT) as plain:
        plain.chat(QUESTION, max_tokens=2)
    assert last_body(double)["options"] == {
        "temperature": 1.0, "top_k": 64, "top_p": 0.95, "num_predict": 2, "num_ctx": 4096,
    }  # fmt: skip


def test_a_json_schema_gives_json_that_parses(backend, double):
    schema = {
        "type": "object",
        "properties": {"answer": {"enum": ["ja", "nei"]}, "sure": {"type": "boolean"}},
        "required": ["answer", "sure"],
    }
    question = [{"role": "user", "content": "Er Oslo hovedstaden i Norge? Svar i JSON."}]
    # The grammar bounds this object to under 40 characters: 64 tokens always hold it.
    result = backend.chat(question, json_schema=schema, temperature=0, max_tokens=64)
    assert last_body(double)["format"] == schema
    reply = json.loads(result.text)
    assert reply["answer"] in ("ja", "nei") and isinstance(reply["sure"], bool)


def test_json_mode_asks_for_json(backend, double):
    # Two tokens hold "{}" at most: an object that closed, or a cut that is said.
    try:
        result = backend.chat(QUESTION, json_mode=True, max_tokens=2)
    except StructuredOutputError as error:
        assert error.max_tokens == 2
    else:
        assert isinstance(json.loads(result.text), dict)
    assert last_body(double)["format"] == "json"


async def test_sixteen_concurrent_async_requests_all_finish(backend, double):
    before = chats_sent(double)
    questions = [[{"role": "user", "content": f"Spørsmål nummer {i}?"}] for i in range(16)]
    results = await asyncio.gather(
        *(backend.achat(question, max_tokens=4, temperature=0) for question in questions)
    )
    assert all(r.finish_reason in ("stop", "length") and r.usage.prompt_tokens for r in results)
    assert chats_sent(double) == before + 16


# -- failures ------------------------------------------------------------------------------


async def test_a_refused_connection_is_server_unavailable_at_once(closed_port):
    host = f"http://127.0.0.1:{closed_port}"
    started = time.perf_counter()
    with OllamaBackend(TAG, host=host, timeout=10) as nowhere:
        with pytest.raises(ServerUnavailableError, match=f"not running at {host}.*ollama serve"):
            nowhere.chat(QUESTION)
        with pytest.raises(ServerUnavailableError):
            await nowhere.achat(QUESTION)
    assert time.perf_counter() - started < 5


def test_a_server_that_never_answers_is_a_timeout(silent_server):
    started = time.perf_counter()
    with OllamaBackend(TAG, host=silent_server, timeout=0.5) as silent:
        with pytest.raises(BackendTimeoutError):
            silent.chat(QUESTION)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("cleanly", [False, True], ids=["socket-closed", "no-done-line"])
def test_a_stream_cut_mid_way_is_stream_interrupted(backend, double, cleanly):
    double.break_next_stream(3, cleanly=cleanly)
    received = []
    started = time.perf_counter()
    with pytest.raises(StreamInterruptedError):
        for chunk in backend.stream_complete(STORY, max_tokens=16, temperature=0):
            received.append(chunk)
    assert received and time.perf_counter() - started < 30


async def test_an_async_stream_cut_mid_way_is_stream_interrupted(backend, double):
    double.break_next_stream(2)
    with pytest.raises(StreamInterruptedError):
        await backend.acomplete(STORY, max_tokens=16, temperature=0)


@pytest.mark.parametrize(
    "tag, hint",
    [
        ("borealis:12b", "run `borealis create 12b`"),
        ("borealis-open:1b", "run `borealis create 1b --variant open`"),
        ("mystery:7b", "`borealis create SIZE --name mystery:7b`"),
    ],
)
def test_an_unknown_model_says_how_to_install_it(double, tag, hint):
    before = chats_sent(double)
    with OllamaBackend(tag, host=double.url, timeout=TIMEOUT) as missing:
        with pytest.raises(ModelNotFoundError, match="not found") as error:
            missing.chat(QUESTION)
    assert hint in str(error.value)
    assert chats_sent(double) == before


def test_invalid_options_are_refused_before_sending(backend, double):
    before = chats_sent(double)
    for options in ({"temperature": -1}, {"top_p": 2}, {"tempreature": 1}, {"max_tokens": 0}):
        with pytest.raises(InvalidRequestError):
            backend.chat(QUESTION, **options)
    assert chats_sent(double) == before


def test_options_ollama_rejects_are_an_invalid_request(double, client, progress):
    """A model whose own parameter has the wrong type: Ollama fails every request."""
    client.create("broken", from_=TAG, parameters={"temperature": "hot"})
    with OllamaBackend("broken", host=double.url, timeout=TIMEOUT) as broken:
        with pytest.raises(InvalidRequestError, match='option "temperature" must be of type'):
            broken.chat(QUESTION, max_tokens=2)


# -- the context window --------------------------------------------------------------------


def test_the_double_fits_long_prompts_silently_as_ollama_does(client, progress, count_tokens):
    """What the backend guards against, on the double as on Ollama without truncate=false."""
    conversation = [
        {"role": "system", "content": "Svar kort."},
        {"role": "user", "content": "første " * 60},
        {"role": "assistant", "content": "Ja."},
        {"role": "user", "content": "andre " * 60},
        {"role": "assistant", "content": "Nei."},
        {"role": "user", "content": "Og nå?"},
    ]
    options = {"num_ctx": 128, "num_predict": 1, "temperature": 0}
    reply = client.chat(TAG, messages=conversation, options=options)

    def tokens_from(start: int) -> int:  # Ollama keeps the system messages it drops
        kept = [m for m in conversation[:start] if m["role"] == "system"]
        return count_tokens(templates.render(kept + conversation[start:]))

    full = tokens_from(0)
    fitted = next(n for n in map(tokens_from, range(len(conversation))) if n <= 128)
    assert full > 128 and reply.prompt_eval_count == fitted < full
    # The last message alone is too long: the runner cuts the tokens to num_ctx.
    cut = client.generate(TAG, prompt="ord " * 300, raw=True, options=options)
    assert cut.prompt_eval_count == 128


def test_an_over_long_prompt_is_refused_before_sending(backend, double, count_tokens):
    before = chats_sent(double)
    with pytest.raises(ContextOverflowError, match="was not sent") as error:
        backend.chat(LONG, num_ctx=256)
    assert error.value.n_ctx == 256
    assert error.value.prompt_tokens == count_tokens(templates.render(LONG)) > 256
    with pytest.raises(ContextOverflowError, match="max_tokens"):
        backend.chat(QUESTION, num_ctx=64, max_tokens=60)  # fits alone, not with the answer
    assert chats_sent(double) == before


def test_without_a_tokenizer_ollama_refuses_and_we_raise(elsewhere, progress):
    before = chats_sent(elsewhere)
    with OllamaBackend(TAG, host=elsewhere.url, timeout=TIMEOUT) as blind:
        with pytest.warns(UserWarning, match="tokenizer=PATH"):
            with pytest.raises(ContextOverflowError, match="exceeds the context length") as error:
                blind.chat(LONG, num_ctx=256)
        assert error.value.n_ctx == 256 and error.value.prompt_tokens > 256
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once is enough
            assert blind.chat(QUESTION, max_tokens=2).finish_reason == "length"
    assert chats_sent(elsewhere) == before + 2


@pytest.mark.filterwarnings(NO_TOKENIZER)
def test_old_servers_silent_cuts_are_caught_after_the_answer(old_server, progress):
    with OllamaBackend(TAG, host=old_server.url, timeout=TIMEOUT) as blind:
        # The runner cut the prompt to num_ctx tokens.
        with pytest.raises(ContextOverflowError, match="kept 128 prompt tokens"):
            blind.complete("ord " * 300, num_ctx=128, max_tokens=2)
        # Ollama dropped a message far larger than what it kept.
        dropped = [
            {"role": "user", "content": "ord " * 1500},
            {"role": "assistant", "content": "Ja."},
            {"role": "user", "content": "Og nå?"},
        ]
        with pytest.raises(ContextOverflowError, match="cannot be fewer than"):
            blind.chat(dropped, num_ctx=128, max_tokens=2)


def test_a_tokenizer_can_be_given(elsewhere, progress, gemma_gguf, tmp_path):
    before = chats_sent(elsewhere)
    with OllamaBackend(TAG, host=elsewhere.url, timeout=TIMEOUT, tokenizer=gemma_gguf) as given:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ContextOverflowError, match="was not sent"):
                given.chat(LONG, num_ctx=256)
    with OllamaBackend(TAG, host=elsewhere.url, timeout=TIMEOUT, tokenizer=lambda _: 5000) as f:
        with pytest.raises(ContextOverflowError) as error:
            f.chat(QUESTION, num_ctx=4096)
    assert error.value.prompt_tokens == 5000
    assert chats_sent(elsewhere) == before
    with pytest.raises(InvalidRequestError, match="Gemma 3 GGUF"):
        OllamaBackend(TAG, host=elsewhere.url, tokenizer=tmp_path / "missing.gguf")


def test_no_gemma3_token_spans_more_than_31_bytes(llama_cpp, gemma_gguf):
    """The lower bound of the post-check rests on this (the stand-in has Borealis's
    tokenizer)."""
    vocab = llama_cpp.Llama(model_path=str(gemma_gguf), vocab_only=True, verbose=False)
    longest = max(len(vocab.detokenize([i], special=True)) for i in range(vocab.n_vocab()))
    assert longest == GEMMA3_MAX_TOKEN_BYTES


# -- the double itself ------------------------------------------------------------------


def test_the_double_answers_in_shapes_the_client_parses(double, client, backend):
    backend.chat(QUESTION, max_tokens=1)
    assert TAG in [model.model for model in client.list().models]
    assert TAG in [model.model for model in client.ps().models]
    assert client.show(TAG).modelinfo["general.architecture"] == "gemma3"
    version = httpx.get(f"{double.url}/api/version", timeout=TIMEOUT).json()
    assert "version" in version


def test_the_double_verifies_uploaded_blobs(double):
    data = b"not really a model"
    right = "sha256:" + hashlib.sha256(data).hexdigest()
    wrong = "sha256:" + "0" * 64
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        mismatch = http.post(f"/api/blobs/{wrong}", content=data)
        assert mismatch.status_code == 400 and "digest mismatch" in mismatch.json()["error"]
        assert http.head(f"/api/blobs/{wrong}").status_code == 404
        assert http.post(f"/api/blobs/{right}", content=data).status_code == 201
        assert http.head(f"/api/blobs/{right}").status_code == 200
        assert http.post(f"/api/blobs/{right}", content=data).status_code == 200
        assert http.post("/api/blobs/sha256:nope", content=data).status_code == 400
