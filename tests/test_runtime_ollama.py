"""OllamaBackend and create_model against OllamaDouble, a test double of the Ollama server
(tests/ollama_double.py): Ollama's REST protocol on 127.0.0.1, real llama.cpp inference
on the stand-in Gemma 3 270M, and the model's Go template rendered by Go itself.

Every test runs against each profile of the double (`ollama_profile` in conftest.py:
Ollama v0.12.6-v0.24 with its Go runners, and v0.30+ on llama-server); a test marked
ollama_profile(X) is about one profile's behaviour and runs against that one only.

The stand-in is a base model: tests assert tokens, structure, stopping, usage and
errors, never what it says.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import socket
import time
import warnings
from datetime import timedelta

import pytest
from ollama_double import OllamaDouble, llama_server_overflow

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
    tokenizer_blob,
    translate_error,
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
def double(go_renderer, llama_cpp, tmp_path_factory, ollama_profile):
    home = tmp_path_factory.mktemp("ollama-double")
    with OllamaDouble(go_renderer, home=home, profile=ollama_profile) as server:
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
    # Ollama 0.30+ caches prompts: a seed repeats an answer only from the same cache
    # state, which a first identical request sets up (as test_ollama_real does).
    backend.chat(QUESTION, **settings)
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
    backend.complete(STORY, max_tokens=12, temperature=0)  # the same cache state for both
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
    # Counted here, the answer cannot fill the window: shift is left to the server.
    assert body["truncate"] is False and "shift" not in body
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


CONVERSATION = [
    {"role": "system", "content": "Svar kort."},
    {"role": "user", "content": "første " * 60},
    {"role": "assistant", "content": "Ja."},
    {"role": "user", "content": "andre " * 60},
    {"role": "assistant", "content": "Nei."},
    {"role": "user", "content": "Og nå?"},
]


def _fitted(count_tokens, conversation, num_ctx):
    """server/prompt.go chatPrompt: the prompt's tokens after dropping the oldest messages
    (keeping system messages and the last) until it fits; and the full count."""

    def tokens_from(start: int) -> int:
        kept = [m for m in conversation[:start] if m["role"] == "system"]
        return count_tokens(templates.render(kept + conversation[start:]))

    full = tokens_from(0)
    return next(n for n in map(tokens_from, range(len(conversation))) if n <= num_ctx), full


@pytest.mark.ollama_profile("ollama-0.24")
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


@pytest.mark.ollama_profile("ollama-0.30")
def test_ollama_030_fits_long_prompts_to_one_token_below_num_ctx(double, progress, count_tokens):
    """v0.30 drops messages as before, then cuts the tokens to num_ctx - 1 itself
    (llm/llama_server.go completionPromptForRequest). shift=false keeps the prompt cache
    off, so prompt_eval_count is the whole prompt."""
    options = {"num_ctx": 128, "num_predict": 1, "temperature": 0}
    common = {"model": TAG, "options": options, "stream": False, "shift": False}
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        reply = http.post("/api/chat", json={**common, "messages": CONVERSATION}).json()
        cut = http.post("/api/generate", json={**common, "prompt": "ord " * 300, "raw": True})
    fitted, full = _fitted(count_tokens, CONVERSATION, 128)
    assert full > 128 and reply["prompt_eval_count"] == fitted < full
    assert cut.json()["prompt_eval_count"] == 127


def test_an_over_long_prompt_is_refused_before_sending(backend, double, count_tokens):
    before = chats_sent(double)
    with pytest.raises(ContextOverflowError, match="was not sent") as error:
        backend.chat(LONG, num_ctx=256)
    assert error.value.n_ctx == 256
    assert error.value.prompt_tokens == count_tokens(templates.render(LONG)) > 256
    with pytest.raises(ContextOverflowError, match="max_tokens"):
        backend.chat(QUESTION, num_ctx=64, max_tokens=60)  # fits alone, not with the answer
    assert chats_sent(double) == before


def test_without_a_tokenizer_ollama_refuses_and_we_raise(elsewhere, progress, count_tokens):
    before = chats_sent(elsewhere)
    with OllamaBackend(TAG, host=elsewhere.url, timeout=TIMEOUT) as blind:
        with pytest.warns(UserWarning, match="not readable here.*tokenizer=PATH"):
            with pytest.raises(ContextOverflowError, match="Ollama refused the prompt") as error:
                blind.chat(LONG, num_ctx=256)
        assert error.value.n_ctx == 256 and error.value.prompt_tokens > 256
        assert last_body(elsewhere)["shift"] is False  # uncounted: never shift the window
        if elsewhere.profile == "ollama-0.30":  # llama-server's own count, exact
            assert error.value.prompt_tokens == count_tokens(templates.render(LONG))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once is enough
            assert blind.chat(QUESTION, max_tokens=2).finish_reason == "length"
    assert chats_sent(elsewhere) == before + 2


@pytest.mark.ollama_profile("ollama-0.24")  # 0.30 always reads truncate
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


# -- what differs between Ollama versions (issue 16) ------------------------------------


def _response_error(raw: str, status: int):
    return ollama.ResponseError(raw, status)


class _Budget:  # the fields translate_error reads
    def __init__(self, n_ctx, counted=None, minimum=10):
        self.n_ctx, self.counted, self.minimum = n_ctx, counted, minimum


@pytest.mark.parametrize(
    "body, status, prompt_tokens, n_ctx",
    [
        # v0.12.6-v0.24 runners; uncounted: the least a refused prompt can be.
        ('{"error":"the input length exceeds the context length"}', 400, 257, 256),
        # v0.30+: llama-server's body as Ollama's message, with the exact count.
        (json.dumps({"error": llama_server_overflow(302, 256)}), 400, 302, 256),
        # v0.30+ with truncation on and no context shift (issue 16's reading).
        (
            '{"error":"the prompt is longer than the context length currently available"}',
            400,
            257,
            256,
        ),
        # The same llama-server body as an error line mid-stream (status -1 in the client).
        (llama_server_overflow(900, 512), -1, 900, 512),
    ],
    ids=["0.24", "0.30-nested", "0.30-no-shift", "0.30-mid-stream"],
)
def test_every_overflow_form_is_a_context_overflow(body, status, prompt_tokens, n_ctx):
    error = translate_error(_response_error(body, status), "h", TAG, 1, _Budget(256))
    assert isinstance(error, ContextOverflowError)
    assert (error.prompt_tokens, error.n_ctx) == (prompt_tokens, n_ctx)
    assert "{" not in str(error)  # the message, not the JSON around it


def test_an_unrelated_nested_error_keeps_its_message():
    nested = json.dumps({"error": json.dumps({"error": {"code": 500, "message": "boom"}})})
    error = translate_error(_response_error(nested, 500), "h", TAG, 1, _Budget(256))
    assert "boom" in str(error) and not isinstance(error, ContextOverflowError)


@pytest.mark.ollama_profile("ollama-0.30")
def test_ollama_030_refuses_a_prompt_that_fills_the_window(double, progress, count_tokens):
    """llama-server refuses prompt >= num_ctx (0.24's runners: > num_ctx), its JSON body
    as Ollama's message."""
    prompt = "ord " * 40
    exact = count_tokens("<bos>" + prompt)
    body = {"model": TAG, "prompt": prompt, "raw": True, "stream": False, "truncate": False,
            "options": {"num_ctx": exact, "num_predict": 1}}  # fmt: skip
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        refused = http.post("/api/generate", json=body)
        body["options"]["num_ctx"] = exact + 1
        accepted = http.post("/api/generate", json=body)
    assert refused.status_code == 400
    inner = json.loads(refused.json()["error"])["error"]
    assert inner["type"] == "exceed_context_size_error"
    assert (inner["n_prompt_tokens"], inner["n_ctx"]) == (exact, exact)
    assert accepted.status_code == 200


@pytest.mark.ollama_profile("ollama-0.24")
def test_ollama_024_accepts_a_prompt_of_exactly_num_ctx(double, progress, count_tokens):
    prompt = "ord " * 40
    exact = count_tokens("<bos>" + prompt)
    body = {"model": TAG, "prompt": prompt, "raw": True, "stream": False, "truncate": False,
            "options": {"num_ctx": exact, "num_predict": 1}}  # fmt: skip
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        assert http.post("/api/generate", json=body).json()["prompt_eval_count"] == exact
        body["options"]["num_ctx"] = exact - 1
        refused = http.post("/api/generate", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"] == "the input length exceeds the context length"


@pytest.mark.ollama_profile("ollama-0.30")
def test_the_no_context_shift_refusal_is_a_context_overflow(backend, double):
    double.fail_next(400, "the prompt is longer than the context length currently available")
    with pytest.raises(ContextOverflowError, match="currently available") as error:
        backend.chat(QUESTION, max_tokens=2)
    assert error.value.n_ctx == MODEL.default_num_ctx


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    """A tiny vision projector GGUF (architecture clip, no vocabulary)."""
    import gguf
    import numpy as np

    path = tmp_path_factory.mktemp("mmproj") / "mmproj.gguf"
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_type("projector")
    writer.add_vision_block_count(1)
    writer.add_tensor("v.patch_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def vision_tag(client, progress, projector):
    """A model with a projector, as Ollama makes it from a model GGUF and an mmproj."""
    files = {
        "stand-in.gguf": f"sha256:{STAND_IN_SHA256}",
        "mmproj.gguf": client.create_blob(projector),
    }
    client.create("vision", files=files, template=templates.ollama_template())
    return "vision"


def test_show_lists_the_projector_after_the_model(client, vision_tag):
    froms = [line for line in client.show(vision_tag).modelfile.splitlines()
             if line.startswith("FROM ")]  # fmt: skip
    assert len(froms) == 2 and froms[0].endswith(f"sha256-{STAND_IN_SHA256}")


def test_a_model_with_a_projector_is_counted_with_its_own_gguf(double, vision_tag, count_tokens):
    with OllamaBackend(vision_tag, host=double.url, timeout=TIMEOUT) as seeing:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # counted: no warning
            result = seeing.chat(QUESTION, max_tokens=2)
            with pytest.raises(ContextOverflowError, match="was not sent"):
                seeing.chat(LONG, num_ctx=256)
    assert result.usage.prompt_tokens == count_tokens(templates.render(QUESTION))


def test_the_tokenizer_is_never_a_projector_or_a_file_without_vocabulary(
    gemma_gguf, projector, tmp_path
):
    from hub_support import make_gguf

    bare = make_gguf(tmp_path / "no-vocab.gguf", nbytes=4096)
    assert tokenizer_blob((str(gemma_gguf), str(projector))) == (str(gemma_gguf), "")
    assert tokenizer_blob((str(projector), str(gemma_gguf)))[0] == str(gemma_gguf)
    blob, why = tokenizer_blob((str(projector), str(bare)))
    assert blob is None and "vision projector" in why and "no vocabulary" in why
    assert "not readable here" in tokenizer_blob(("/nowhere/sha256-00",))[1]


def test_shift_is_sent_only_when_the_answer_could_fill_the_window(backend, double, count_tokens):
    prompt = count_tokens(templates.render(QUESTION))
    result = backend.chat(QUESTION, num_ctx=prompt + 3, temperature=0)  # no max_tokens
    body = last_body(double)
    assert "shift" not in body and body["options"]["num_predict"] == 3
    assert result.usage.completion_tokens <= 3
    double.same_machine = False  # uncounted from here on
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with OllamaBackend(TAG, host=double.url, timeout=TIMEOUT) as blind:
                blind.chat(QUESTION, max_tokens=2)
    finally:
        double.same_machine = True
    assert last_body(double)["shift"] is False


def raw_generate(double, **fields) -> None:
    """A raw /api/generate straight to the double, with these request fields."""
    body = {"model": TAG, "prompt": STORY, "raw": True, "stream": False, **fields}
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        assert http.post("/api/generate", json=body).status_code == 200


@pytest.mark.ollama_profile("ollama-0.30")
def test_ollama_030_reloads_when_shift_or_num_ctx_differs(double, progress):
    generate = functools.partial(raw_generate, double)

    one = {"num_ctx": 1024, "num_predict": 1}
    generate(options=one)  # shift unset below 8192: context shift on
    before = double.reloads
    generate(options=one, shift=True)  # the same setting: no reload
    assert double.reloads == before
    generate(options=one, shift=False)
    generate(options=one)
    generate(options={**one, "num_ctx": 512})
    assert double.reloads == before + 3


@pytest.mark.ollama_profile("ollama-0.24")
def test_ollama_024_reloads_only_when_num_ctx_differs(double, progress):
    generate = functools.partial(raw_generate, double)

    one = {"num_ctx": 1024, "num_predict": 1}
    generate(options=one)
    before = double.reloads
    generate(options=one, shift=False)
    generate(options=one)
    assert double.reloads == before
    generate(options={**one, "num_ctx": 512})
    assert double.reloads == before + 1


@pytest.mark.ollama_profile("ollama-0.30")
def test_ollama_030_caches_prompts_and_counts_only_what_it_evaluates(double, backend, count_tokens):
    prompt = "Det var en gang en konge som hadde tre døtre, og"
    full = count_tokens("<bos>" + prompt)
    body = {"model": TAG, "prompt": prompt, "raw": True, "stream": False,
            "options": {"num_ctx": MODEL.default_num_ctx, "num_predict": 2}}  # fmt: skip
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        http.post("/api/generate", json=body)
        cached = http.post("/api/generate", json=body).json()["prompt_eval_count"]
        afresh = http.post("/api/generate", json={**body, "shift": False}).json()
    assert 1 <= cached < full and afresh["prompt_eval_count"] == full
    # The backend reports the whole prompt, the cached part as cached_tokens.
    backend.complete(prompt, max_tokens=2)
    result = backend.complete(prompt, max_tokens=2)
    assert result.usage.prompt_tokens == full and 0 < result.usage.cached_tokens < full


def test_keep_alive_is_sent_as_ollama_reads_it(double, progress):
    sent = []
    for given in ("300", "5m", "1h30m", -1, timedelta(minutes=2)):
        with OllamaBackend(TAG, host=double.url, timeout=TIMEOUT, keep_alive=given) as kept:
            kept.chat(QUESTION, max_tokens=1)
        sent.append(last_body(double)["keep_alive"])
    assert sent == [300, "5m", "1h30m", -1, 120.0]
    for wrong in ("5 minutes", "300 s", "soon", True):
        with pytest.raises(InvalidRequestError, match="keep_alive"):
            OllamaBackend(TAG, host=double.url, keep_alive=wrong)


def test_the_double_parses_keep_alive_as_go_does(double, progress):
    body = {"model": TAG, "prompt": STORY, "raw": True, "stream": False,
            "options": {"num_predict": 1}}  # fmt: skip
    with httpx.Client(base_url=double.url, timeout=TIMEOUT) as http:
        bare = http.post("/api/generate", json={**body, "keep_alive": "300"})
        unit = http.post("/api/generate", json={**body, "keep_alive": "5x"})
        fine = http.post("/api/generate", json={**body, "keep_alive": "1m30s"})
    assert bare.status_code == 400 and bare.json()["error"] == (
        'time: missing unit in duration "300"'
    )
    assert unit.status_code == 400 and "unknown unit" in unit.json()["error"]
    assert fine.status_code == 200


@pytest.mark.parametrize("streamed", ["sync", "async"])
async def test_an_error_line_mid_stream_is_stream_interrupted(backend, double, streamed):
    message = "llama runner process has terminated: exit status 2"
    double.error_next_stream(2, message)
    received = []
    with pytest.raises(StreamInterruptedError, match=message):
        if streamed == "sync":
            for chunk in backend.stream_complete(STORY, max_tokens=16, temperature=0):
                received.append(chunk)
        else:
            async for chunk in backend.astream_complete(STORY, max_tokens=16, temperature=0):
                received.append(chunk)
    assert received  # text came before the error


def test_create_keeps_typical_p_and_adds_a_licence(client, progress):
    made = client.create("typical", from_=TAG, parameters={"typical_p": 0.9}, license="Mer.")
    assert made.status == "success"
    show = client.show("typical")
    assert "typical_p" in show.parameters
    assert show.license.startswith(license_text(MODEL)) and show.license.endswith("Mer.")


def test_ps_reports_the_runners_num_ctx(backend, client):
    backend.chat(QUESTION, max_tokens=1, num_ctx=1024)
    (entry,) = [m for m in client.ps().models if m.model == TAG]
    assert entry.context_length == 1024
