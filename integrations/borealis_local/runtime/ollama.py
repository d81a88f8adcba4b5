"""Ollama, through the official `ollama` client: `Client` for sync streams, `AsyncClient`
natively for async ones. (`borealis_local.ollama_install` installs Borealis into Ollama.)

Models are named as Ollama names them: `borealis:4b` (made by `borealis create 4b`) or
`huggingface.co/NbAiLab/borealis-4b-gguf:Q4_K_M`. Chat goes to /api/chat, where the model's own
TEMPLATE (ours: `templates.ollama_template()`) renders the messages; a raw completion
goes to /api/generate with `raw=True`, so no template touches it.

Options travel as a plain dict (`ollama.Options` silently drops `min_p`): temperature,
top_k, top_p, min_p, repeat_penalty, seed, num_predict (= max_tokens), stop, num_ctx.
Temperature, top_k and top_p that neither the call nor the model's own parameters set
get the catalog's SAMPLING, so a model pulled straight from the hub samples like one
made by `borealis create`. `json_schema` becomes `format=<schema>` (it wins over
`json_mode`, which becomes `format="json"`). `keep_alive` is checked as Ollama reads it
(api/types.go Duration: a number of seconds, negative for ever, or a Go duration string
such as "5m" or "1h30m"); a bare number in a string ("300") is sent as that many
seconds, as Ollama reads OLLAMA_KEEP_ALIVE, since Ollama would refuse it with a 400.

Seeds. Ollama caches prompts (v0.30+ whenever `shift` is not false: llama-server's
cache_prompt), and a prompt evaluated partly from the cache gives logits that differ in
their last bits from one evaluated afresh. So the same seed gives the same answer only
from the same cache state: nothing here promises more.

Usage and timings are Ollama's own: prompt_eval_count and eval_count; load, prompt-eval
and eval durations (ns -> ms, source "ollama"). Time to first token is measured here,
from the request's creation to the first text.

The context window. Ollama fits an over-long prompt silently: it drops the oldest
messages (keeping system messages and the last one), its runner then cuts the front of
the tokens, and an answer that fills the window shifts it, forgetting the prompt's
start. We never let that pass unnoticed, in three layers:

1. Before sending, when tokens can be counted here, the prompt is counted exactly and
   ContextOverflowError raised if prompt + max_tokens (at least one token, to answer)
   exceeds num_ctx: the call's, else the model's (its /api/show parameters), else
   Ollama's default 4096. num_ctx is always sent, so Ollama uses the number we checked
   (a server's OLLAMA_CONTEXT_LENGTH cannot silently differ). The count renders the
   messages with `templates.render` (token for token the prompt Ollama's Go template
   gives: tests/test_token_parity.py) and tokenizes them with a Gemma 3 tokenizer: the
   `tokenizer` argument (a callable text -> token count, or the path of a Gemma 3
   GGUF, loaded vocab-only), else the model's GGUF blob when Ollama runs on this
   machine and llama-cpp-python is installed. /api/show's modelfile has one FROM per
   file, the model's first and then one per vision projector (server/images.go): the
   first that is readable here, has a vocabulary and is not a `clip` projector is the
   tokenizer. Without one, a warning says once why and how to give one.
2. Every request asks Ollama to refuse rather than fit: `truncate: false` (no dropped
   messages, no runner cut). Ollama refuses in its version's words, all raised here as
   ContextOverflowError: v0.12.6-v0.24 "the input length exceeds the context length";
   v0.30+ llama-server's own body as the message ("request (N tokens) exceeds the
   available context size (M tokens)", type exceed_context_size_error, with
   n_prompt_tokens and n_ctx, read here: an exact count even without a tokenizer), or
   "the prompt is longer than the context length currently available".
   An answer that fills the window must stop ("length"), not shift it. With the prompt
   counted, num_predict is bounded to the room left (max_tokens, else num_ctx minus the
   prompt), so the window cannot fill and `shift` is not sent. Uncounted, `shift: false`
   is sent, and that has a cost on v0.30+: shift is a load-time setting there
   (server/sched.go), so a runner loaded by other clients with shift on (the default
   below num_ctx 8192) is reloaded, and back again for them; and shift false also turns
   off llama-server's prompt cache for the request (cache_prompt = shift), so the whole
   prompt is evaluated every time. A tokenizer avoids both. Ollama reads `truncate` and
   `shift` since late 2025 (api/types.go); older servers ignore them. ollama-python 0.6
   has no parameter for them: `ollama_wire` sends them, the one module that touches the
   client's private parts.
3. After the answer, two checks on what Ollama reports, sound on any server version:
   prompt_eval_count (the prompt tokens the runner kept; on v0.30+ only those it
   evaluated, the cached ones not counted) reaching num_ctx means the runner cut the
   prompt or left no room to answer; uncounted, prompt_eval_count below a lower bound
   of the prompt's size means messages were dropped (counted, layer 1 already proved
   that nothing needed dropping; and uncounted, shift false keeps v0.30's cache off, so
   the count is the whole prompt). Usage reports the counted prompt when there is one,
   the cached part as cached_tokens. The bound is weak by
   necessity: no Gemma 3 token spans more than 31 UTF-8 bytes (measured on the
   vocabulary), so the messages need at least BOS + ceil(bytes / 31) tokens, about a
   tenth of a typical count. So without a tokenizer, an old server (one that ignores
   `truncate`) dropping a few messages is NOT caught: no sound check exists for that.

Images. Ollama's chat takes a message's images as its `images` (base64) and its text as
`content`; the template sees text only. Ollama (server/prompt.go imageTaggedMessages)
numbers the conversation's images and writes each as "[img-N]" where the content says
"[img]", in order (with no "[img]" left, it puts the tags before the text); from v0.30,
which runs llama-server, it replaces each "[img-N]" with llama-server's media marker and
sends the images as multimodal_data to /completion (llm/llama_server.go), and libmtmd
puts <start_of_image>, the image's 256 soft tokens and <end_of_image> there. So an image
part goes as "[img]" between blank lines (base.IMAGE_BREAK: Gemma 3 was tuned with
them; libmtmd does not add them), and a request whose text says "[img" itself is
refused (Ollama would put an image there). Ollama's chat does not check that the model
sees images (only /api/show's capabilities say "vision": a projector layer, or a vision
tower in the GGUF), so that is checked here, before sending. Ollama before v0.30 ran
Gemma 3 on its own engine, which adds the blank lines itself (model/models/gemma3
PostTokenize): there the image stands between two of each. A counted prompt counts each
image as its soft tokens and the two tokens around them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from borealis_local import templates
from borealis_local.catalog import CHAT_FORMAT, DEFAULT_NUM_CTX, MODELS, SAMPLING, SIZES
from borealis_local.errors import (
    BackendError,
    BackendTimeoutError,
    BorealisError,
    ContextOverflowError,
    InvalidModelFileError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
    StreamInterruptedError,
)
from borealis_local.runtime import ollama_wire
from borealis_local.runtime.base import (
    Backend,
    Chunk,
    Options,
    Request,
    Timings,
    Usage,
    has_images,
    image_text,
    images_in,
    with_images_as,
)
from borealis_local.runtime.embeddings import Embedder
from borealis_local.runtime.kind import BenchTarget, RuntimeKind, Settings

DEFAULT_HOST = "http://127.0.0.1:11434"
# Ollama's num_ctx when neither the request nor the model sets one (FACTS.md).
OLLAMA_DEFAULT_NUM_CTX = 4096
# The longest piece in Gemma 3's vocabulary, in UTF-8 bytes (tests check it on the
# real vocabulary): every token covers at most this much text.
GEMMA3_MAX_TOKEN_BYTES = 31
START_HINT = "start it with `ollama serve`, or set OLLAMA_HOST"
# What stands for an image in a message's content (server/prompt.go imageTaggedMessages).
IMAGE_TAG = "[img]"
# How each Ollama version says a prompt does not fit num_ctx (see layer 2 above).
_INPUT_TOO_LONG = (
    "exceeds the context length",  # v0.12.6-v0.24 runners; v0.30+ /api/embed
    "exceeds the available context size",  # v0.30+: llama-server's message
    "longer than the context length currently available",  # v0.30+, issue 16
)
_EXCEED_CONTEXT_TYPE = "exceed_context_size_error"  # llama-server's error type
# Go's time.ParseDuration: [-+] then (decimal number, unit) one or more times, or "0".
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")
_SECONDS = re.compile(r"[-+]?\d+")

TokenCounter = Callable[[str], int]


def ollama_host(host: str | None = None) -> str:
    """The Ollama server to use: `host`, else $OLLAMA_HOST, else Ollama's default."""
    return host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


class OllamaBackend(Backend):
    """A model served by Ollama at `host` ($OLLAMA_HOST, else http://127.0.0.1:11434)."""

    kind = "ollama"

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        options: Options | None = None,
        keep_alive: float | str | timedelta | None = None,
        timeout: float = 120.0,
        tokenizer: TokenCounter | str | os.PathLike | None = None,
    ):
        super().__init__(model, options)
        import ollama

        self.host = ollama_host(host)
        self.keep_alive = ollama_keep_alive(keep_alive)
        self.timeout = timeout
        # httpx applies the timeout to the connect and to every read: nothing hangs.
        self._client = ollama.Client(host=self.host, timeout=timeout)
        self._tokenizer = _checked_tokenizer(tokenizer)
        self._info: _ModelInfo | None = None
        self._blob_choice: tuple[str | None, str] | None = None  # (tokenizer GGUF, why not)
        self._warned_no_tokenizer = False

    def close(self) -> None:
        self._client.close()

    def image_refusal(self) -> str | None:
        return None  # whether the model sees images is /api/show's: `_check_images`

    def loaded_models(self) -> list:
        """Ollama's /api/ps: the models it holds in memory, with size and size_vram."""
        with self._errors():
            return list(self._client.ps().models)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Ollama's /api/embed for this model, one vector per text (as Ollama gives it)."""
        with self._errors():
            response = self._client.embed(model=self.model, input=texts)
        return [list(vector) for vector in response.embeddings]

    # -- streaming -------------------------------------------------------------------

    def _stream(self, request: Request) -> Iterator[Chunk]:
        with self._errors():
            if self._info is None:
                self._info = _ModelInfo.from_show(self._client.show(self.model))
            self._check_images(request, self._info)
            budget = self._budget(request, self._info)
        self._warn_if_uncounted(budget)
        call = self._call(request, self._info, budget)
        reader = _Reader(request, budget, self.host)
        parts = ollama_wire.stream(self._client, call)
        try:
            with self._errors(budget):
                for part in parts:
                    chunk = reader.feed(part)
                    if chunk is not None:
                        yield chunk
        finally:
            parts.close()
        yield reader.finish()

    async def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        import ollama

        # One AsyncClient per request: its connections belong to the running loop, and
        # leaving the `async with` closes them, whichever loop the next call runs on.
        async with ollama.AsyncClient(host=self.host, timeout=self.timeout) as client:
            async for chunk in self._astream_with(client, request):
                yield chunk

    async def _astream_with(self, client, request: Request) -> AsyncIterator[Chunk]:
        with self._errors():
            if self._info is None:
                self._info = _ModelInfo.from_show(await client.show(self.model))
            self._check_images(request, self._info)
        # Counting may load a tokenizer and tokenize a long prompt: not on the loop.
        with self._errors():
            budget = await asyncio.to_thread(self._budget, request, self._info)
        self._warn_if_uncounted(budget)
        call = self._call(request, self._info, budget)
        reader = _Reader(request, budget, self.host)
        parts = await ollama_wire.astream(client, call)
        try:
            with self._errors(budget):
                async for part in parts:
                    chunk = reader.feed(part)
                    if chunk is not None:
                        yield chunk
        finally:
            await parts.aclose()
        yield reader.finish()

    # -- one request -----------------------------------------------------------------

    def _budget(self, request: Request, info: _ModelInfo) -> _Budget:
        """The context this request gets, and its prompt counted when we can (layer 1)."""
        if request.prompt is not None and not request.prompt:
            raise InvalidRequestError(
                "the prompt is empty: Ollama takes an empty prompt as an order to load the "
                "model, not to generate"
            )
        n_ctx = request.options.num_ctx or info.num_ctx or OLLAMA_DEFAULT_NUM_CTX
        counter = self._counter(info)
        counted = None
        if counter is not None:
            counted = counter(_prompt_text(request)) + _image_soft_tokens(request)
        if counted is not None:
            _check_fits(counted, request.options.max_tokens, n_ctx)
        return _Budget(n_ctx, counted, minimum_prompt_tokens(request))

    def _check_images(self, request: Request, info: _ModelInfo) -> None:
        """Refuse images the model cannot see, and text Ollama would read as an image."""
        if not has_images(request.messages):
            return
        if info.capabilities is not None and "vision" not in info.capabilities:
            raise InvalidRequestError(
                f"{self.model} in Ollama does not see images (its capabilities: "
                f"{', '.join(info.capabilities) or 'none'}): it was made without its vision "
                "projector. `borealis pull 4b` fetches the projector with the weights (4b, "
                "12b, 27b) and `borealis create 4b` then makes the model with it"
            )
        for text in _texts(request.messages):
            if "[img" in text:
                raise InvalidRequestError(
                    "a message with images says \"[img\" in its text: Ollama marks where "
                    "images go as [img] and [img-N], so it would put an image there. "
                    "Write it otherwise (e.g. \"[ img\")"
                )

    def _counter(self, info: _ModelInfo) -> TokenCounter | None:
        if callable(self._tokenizer):
            return self._tokenizer
        if self._tokenizer is not None:
            return gguf_token_counter(self._tokenizer)
        if self._blob_choice is None:
            if importlib.util.find_spec("llama_cpp") is None:
                self._blob_choice = (None, "llama-cpp-python is missing")
            else:
                self._blob_choice = tokenizer_blob(info.blobs)
        blob = self._blob_choice[0]
        return gguf_token_counter(blob) if blob is not None else None

    def _warn_if_uncounted(self, budget: _Budget) -> None:
        if budget.counted is None and not self._warned_no_tokenizer:
            self._warned_no_tokenizer = True
            why = self._blob_choice[1] if self._blob_choice else "no tokenizer"
            warnings.warn(
                f"OllamaBackend cannot count {self.model!r}'s tokens here ({why}), so an "
                "over-long prompt is caught by Ollama itself (truncate=false, recent "
                "versions) or, on older servers, only when grossly cut, and shift=false is "
                "sent (on Ollama 0.30+ it can reload the model and turns off its prompt "
                "cache). For an exact check before sending, pass tokenizer=PATH of the "
                "model's GGUF (any Gemma 3 GGUF will do) with llama-cpp-python installed, "
                "or tokenizer=a function text -> token count",
                stacklevel=3,
            )

    def _call(self, request: Request, info: _ModelInfo, budget: _Budget) -> ollama_wire.Call:
        """The request, with truncate/shift (layer 2; ollama_wire says how it is sent)."""
        fields = dict(
            model=self.model,
            stream=True,
            format=_format(request.options),
            options=_ollama_options(request.options, budget, info),
            keep_alive=self.keep_alive,
        )
        if request.messages is not None:
            call = ollama_wire.chat_call(_wire_messages(request.messages), **fields)
        else:
            call = ollama_wire.generate_call(request.prompt, raw=True, **fields)
        call.body["truncate"] = False
        if budget.counted is None:  # the answer could fill the window: stop, never shift
            call.body["shift"] = False
        return call

    @contextmanager
    def _errors(self, budget: _Budget | None = None):
        """Raise the client's and httpx's errors as ours, keeping the server's message."""
        try:
            yield
        except BorealisError:
            raise
        except Exception as error:
            translated = translate_error(error, self.host, self.model, self.timeout, budget)
            if translated is None:
                raise
            raise translated from error


# -- what a request needs to know ------------------------------------------------------


@dataclass(frozen=True)
class _ModelInfo:
    """What /api/show says about a model that matters here."""

    parameters: Mapping[str, str]  # name -> value as Ollama prints it (last one wins)
    blobs: tuple[str, ...]  # the modelfile's FROMs: the model's blob, then projectors'
    capabilities: tuple[str, ...] | None = None  # None: a server too old to say

    @property
    def num_ctx(self) -> int | None:
        try:
            return int(float(self.parameters["num_ctx"]))
        except (KeyError, ValueError):
            return None

    @classmethod
    def from_show(cls, show) -> _ModelInfo:
        parameters = {}
        for line in (show.parameters or "").splitlines():
            name, _, value = line.strip().partition(" ")
            if name:
                parameters[name] = value.strip()
        blobs = tuple(
            line.removeprefix("FROM ").strip()
            for line in (show.modelfile or "").splitlines()
            if line.startswith("FROM ")
        )
        capabilities = show.capabilities
        return cls(parameters, blobs, None if capabilities is None else tuple(capabilities))


def tokenizer_blob(blobs: tuple[str, ...]) -> tuple[str | None, str]:
    """The GGUF among /api/show's FROM paths whose vocabulary counts the prompt: the first
    readable here that is not a `clip` projector and has tokenizer.ggml.tokens. Returns
    (path, "") or (None, why none would do)."""
    from borealis_local.runtime.gguf_check import check_gguf

    reasons = []
    for blob in blobs:
        if not (os.path.isabs(blob) and os.access(blob, os.R_OK)):
            reasons.append(
                f"{blob} is not readable here (Ollama runs elsewhere, or as another user)"
            )
            continue
        try:
            info = check_gguf(blob, architectures=("gemma3", "clip"))
        except InvalidModelFileError as error:
            reasons.append(str(error))
            continue
        if info.architecture == "clip":
            reasons.append(f"{blob} is a vision projector (clip)")
        elif not info.vocab_size:
            reasons.append(f"{blob} has no vocabulary (tokenizer.ggml.tokens)")
        else:
            return blob, ""
    return None, "; ".join(reasons) or "/api/show names no model file"


@dataclass(frozen=True)
class _Budget:
    n_ctx: int
    counted: int | None  # the prompt's exact tokens, when a tokenizer was at hand
    minimum: int  # a lower bound of the prompt's tokens, always sound


def _wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised messages as Ollama's chat takes them: an image part as IMAGE_TAG in the
    text, its bytes in base64 in the message's `images`."""
    wired = []
    for message in messages:
        if isinstance(message["content"], str):
            wired.append(message)
            continue
        parts = message["content"]
        wired.append({
            "role": message["role"],
            "content": image_text(parts, IMAGE_TAG),
            "images": [part["image"].base64() for part in parts if part["type"] == "image"],
        })  # fmt: skip
    return wired


def _texts(messages: list[dict[str, Any]] | None) -> list[str]:
    """Every text of normalised messages, typed parts included."""
    texts = []
    for message in messages or ():
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts += [part["text"] for part in content if part["type"] == "text"]
    return texts


def _image_soft_tokens(request: Request) -> int:
    """The soft tokens of the request's images, which the template's text does not hold
    (`_prompt_text` holds the tokens around them)."""
    from borealis_local.catalog import GEMMA3_VISION

    return len(images_in(request.messages)) * GEMMA3_VISION.tokens_per_image


def _prompt_text(request: Request) -> str:
    """The text Ollama tokenizes, with <bos> written out (Ollama adds it), and where an
    image stands the two tokens libmtmd puts around its soft tokens."""
    if request.messages is not None:
        around = CHAT_FORMAT.start_of_image + CHAT_FORMAT.end_of_image
        return templates.render(with_images_as(request.messages, around))
    return CHAT_FORMAT.bos + request.prompt


def minimum_prompt_tokens(request: Request) -> int:
    """A lower bound of the prompt's tokens that needs no tokenizer: BOS, plus the
    messages' (or raw prompt's) UTF-8 bytes over the longest Gemma 3 token, plus one
    per image."""
    texts = _texts(request.messages) if request.messages else [request.prompt]
    size = sum(len(text.encode()) for text in texts)
    return 1 + math.ceil(size / GEMMA3_MAX_TOKEN_BYTES) + len(images_in(request.messages))


def _check_fits(counted: int, max_tokens: int | None, n_ctx: int) -> None:
    room = max_tokens or 1
    if counted + room > n_ctx:
        suggestion = 1024 * math.ceil((counted + room) / 1024)
        raise ContextOverflowError(
            f"the prompt is {counted} tokens and the answer needs {room} more "
            f"({'max_tokens' if max_tokens else 'at least one'}), but num_ctx is {n_ctx}: "
            "Ollama would cut the prompt silently, so it was not sent. Shorten the prompt, "
            f"lower max_tokens or pass num_ctx={suggestion} (within the model's context length)",
            prompt_tokens=counted,
            n_ctx=n_ctx,
        )


def _ollama_options(options: Options, budget: _Budget, info: _ModelInfo) -> dict[str, Any]:
    num_predict = options.max_tokens
    if num_predict is None and budget.counted is not None:
        num_predict = budget.n_ctx - budget.counted  # the room left: the window never fills
    chosen: dict[str, Any] = {
        "temperature": options.temperature,
        "top_k": options.top_k,
        "top_p": options.top_p,
        "min_p": options.min_p,
        "repeat_penalty": options.repeat_penalty,
        "seed": options.seed,
        "num_predict": num_predict,
        "stop": list(options.stop) or None,
        "num_ctx": budget.n_ctx,
    }
    for name in ("temperature", "top_k", "top_p"):
        if chosen[name] is None and name not in info.parameters:
            chosen[name] = getattr(SAMPLING, name)
    return {name: value for name, value in chosen.items() if value is not None}


def _format(options: Options) -> dict | str | None:
    if options.json_schema is not None:
        return dict(options.json_schema)
    return "json" if options.json_mode else None


# -- tokenizers --------------------------------------------------------------------------

_counters: dict[str, TokenCounter] = {}
_counters_lock = threading.Lock()


def gguf_token_counter(path: str | os.PathLike) -> TokenCounter:
    """Counts tokens with a GGUF's vocabulary (loaded vocab-only, once per file).

    Special tokens written in the text (<bos>, <start_of_turn>) count as one token each,
    as Ollama parses them; no BOS is added.
    """
    key = os.path.realpath(path)
    with _counters_lock:
        if key not in _counters:
            _counters[key] = _load_counter(key)
        return _counters[key]


def _load_counter(path: str) -> TokenCounter:
    import llama_cpp

    from borealis_local.runtime import llama_log

    llama_log.install()
    try:
        vocab = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    except ValueError as error:
        raise InvalidModelFileError(
            f"cannot read a tokenizer from {path} ({error}): give a Gemma 3 GGUF"
        ) from error
    lock = threading.Lock()

    def count(text: str) -> int:
        with lock:
            return len(vocab.tokenize(text.encode(), add_bos=False, special=True))

    return count


def _checked_tokenizer(tokenizer):
    if tokenizer is None or callable(tokenizer):
        return tokenizer
    path = Path(tokenizer)
    if not path.is_file():
        raise InvalidRequestError(
            f"tokenizer {path} is not a file: give the path of a Gemma 3 GGUF (any Borealis "
            "GGUF will do) or a function text -> token count"
        )
    if importlib.util.find_spec("llama_cpp") is None:
        raise InvalidRequestError(
            "a GGUF tokenizer needs llama-cpp-python: pip install 'borealis-local[llama-cpp]', "
            "or pass a function text -> token count"
        )
    return str(path)


# -- reading the answer ------------------------------------------------------------------


class _Reader:
    """Turns Ollama's NDJSON parts into Chunks, and its done part into the last one."""

    def __init__(self, request: Request, budget: _Budget, host: str):
        self.request = request
        self.budget = budget
        self.host = host
        self.first_text_at: float | None = None
        self.done = None
        self.done_text = ""

    def feed(self, part) -> Chunk | None:
        message = getattr(part, "message", None)
        text = (message.content if message is not None else part.response) or ""
        if text and self.first_text_at is None:
            self.first_text_at = time.perf_counter()
        if part.done:
            self.done, self.done_text = part, text
            return None
        return Chunk(text) if text else None

    def finish(self) -> Chunk:
        part = self.done
        if part is None:
            raise StreamInterruptedError(
                f"Ollama at {self.host} ended the answer without its final message: the "
                "server stopped or the connection broke; try again"
            )
        kept = part.prompt_eval_count or 0
        _check_prompt_kept(kept, self.budget)
        # Counted, the prompt is what we counted; v0.30+ reports only the evaluated part.
        prompt = max(self.budget.counted or 0, kept)
        cached = prompt - kept if kept else 0
        usage = Usage(prompt, part.eval_count or 0, cached)
        first = self.first_text_at or time.perf_counter()
        timings = Timings(
            load_ms=_ms(part.load_duration),
            prompt_ms=_ms(part.prompt_eval_duration),
            generation_ms=_ms(part.eval_duration),
            ttft_ms=(first - self.request.started) * 1000,
            source="ollama",
        )
        reason = _finish_reason(part, self.request.options.max_tokens)
        return Chunk(self.done_text, finish_reason=reason, usage=usage, timings=timings)


def _check_prompt_kept(kept: int, budget: _Budget) -> None:
    """Layer 3: what the runner reports it kept must be the whole prompt."""
    if not kept:  # the server sent no count
        return
    if kept >= budget.n_ctx:
        raise ContextOverflowError(
            f"Ollama kept {kept} prompt tokens in a {budget.n_ctx}-token context (num_ctx): "
            "it cut the prompt or left no room to answer, so the answer cannot be trusted. "
            "Shorten the prompt or raise num_ctx",
            prompt_tokens=budget.counted or kept,
            n_ctx=budget.n_ctx,
        )
    if budget.counted is None and kept < budget.minimum:
        raise ContextOverflowError(
            f"Ollama evaluated {kept} prompt tokens, but these messages cannot be fewer than "
            f"{budget.minimum}: it dropped part of the prompt to fit num_ctx={budget.n_ctx} "
            "(a server that ignores truncate=false). Shorten the prompt or raise num_ctx",
            prompt_tokens=budget.counted or budget.minimum,
            n_ctx=budget.n_ctx,
        )


def _finish_reason(part, max_tokens: int | None) -> str:
    if part.done_reason in ("stop", "length"):
        return part.done_reason
    # Servers that send no done_reason: a full num_predict means the length stopped it.
    return "length" if max_tokens and (part.eval_count or 0) >= max_tokens else "stop"


def _ms(ns: int | None) -> float | None:
    return ns / 1e6 if ns is not None else None


# -- errors --------------------------------------------------------------------------------


def translate_error(error, host, model, timeout, budget=None) -> BorealisError | None:
    """Our error for one the client or httpx raised, or None when it is not theirs."""
    import httpx
    import ollama

    if isinstance(error, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)):
        return ServerUnavailableError(f"Ollama is not running at {host} — {START_HINT} ({error})")
    if isinstance(error, httpx.TimeoutException):
        return BackendTimeoutError(
            f"Ollama at {host} did not answer within {timeout} s ({type(error).__name__}): "
            "a large model may still be loading; raise timeout="
        )
    if isinstance(error, (httpx.TransportError, json.JSONDecodeError)):  # or a torn JSON line
        return StreamInterruptedError(
            f"the connection to Ollama at {host} broke in the middle of the answer ({error}); "
            "try again"
        )
    if not isinstance(error, ollama.ResponseError):
        return None
    message, detail = server_message(error.error)
    status = error.status_code
    if status == 404:
        return ModelNotFoundError(
            f"Ollama at {host} has no model {model!r} ({message}): {install_hint(model)}"
        )
    overflow = detail.get("type") == _EXCEED_CONTEXT_TYPE or any(
        wording in message for wording in _INPUT_TOO_LONG
    )
    if overflow and (budget is not None or detail):
        n_ctx = _int(detail.get("n_ctx")) or (budget.n_ctx if budget else 0)
        # llama-server's count is exact; else the least a refused prompt can be.
        prompt_tokens = _int(detail.get("n_prompt_tokens")) or (
            max(budget.counted or 0, budget.minimum, budget.n_ctx + 1) if budget else n_ctx + 1
        )
        return ContextOverflowError(
            f"Ollama refused the prompt: {message} (num_ctx={n_ctx}). Shorten the "
            "prompt or raise num_ctx",
            prompt_tokens=prompt_tokens,
            n_ctx=n_ctx,
        )
    if status == 400 or ('option "' in message and "must be" in message):
        return InvalidRequestError(f"Ollama refused the request: {message}")
    if status == -1:  # an error line in the middle of a streamed answer
        return StreamInterruptedError(
            f"Ollama at {host} failed in the middle of the answer: {message}"
        )
    return BackendError(f"Ollama at {host} failed: {message} (HTTP {status})")


def server_message(raw: Any) -> tuple[str, dict[str, Any]]:
    """Ollama's error message, and llama-server's error object when it carries one.

    Ollama v0.30+ passes llama-server's error body on as its message, a JSON text
    ({"error": {"message": ..., "type": ..., "n_prompt_tokens": ...}}); the client hands
    that on as text, or (for an error line mid-stream, which it decodes once more) as
    the object itself."""
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            raw = json.loads(raw)
        except ValueError:
            pass
    if isinstance(raw, dict):
        detail = raw.get("error") if isinstance(raw.get("error"), dict) else raw
        text = detail.get("message") or raw.get("error")
        return str(text if isinstance(text, str) else json.dumps(raw)), detail
    return str(raw), {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ollama_keep_alive(value: float | str | timedelta | None) -> float | str | None:
    """`keep_alive` as Ollama accepts it (api/types.go Duration.UnmarshalJSON): a number
    of seconds (negative: for ever) or a Go duration string ("5m", "1h30m", "0");
    a timedelta or a string of whole seconds ("300") becomes seconds. Anything else is
    refused here, where Ollama would answer every request with a 400."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _SECONDS.fullmatch(value.strip()):
            return int(value)
        if _GO_DURATION.fullmatch(value):
            return value
    raise InvalidRequestError(
        f"keep_alive={value!r} is not a duration Ollama reads: give seconds (a number; "
        'negative keeps the model loaded for ever) or a Go duration such as "5m", '
        '"1h30m" or "300s"'
    )


def install_hint(tag: str) -> str:
    """What to run to get `tag` into Ollama."""
    for model in MODELS:
        if tag.lower() == model.ollama_tag:
            variant = " --variant open" if model.variant == "open" else ""
            return f"run `borealis create {model.size}{variant}`"
    if tag.lower().startswith(("hf.co/", "huggingface.co/")):
        return f"run `ollama pull {tag}`, or `borealis create SIZE` to install Borealis"
    return (
        f"run `borealis create SIZE --name {tag}` to install Borealis under that name "
        f"(sizes: {', '.join(SIZES)}), or `ollama pull {tag}` for a model from a registry"
    )


# -- the registry's entry ------------------------------------------------------------------


class OllamaEmbedder(Embedder):
    """Ollama's /api/embed, with the chat backend's connection and error handling."""

    kind = "ollama"

    def __init__(self, model: str, **backend_kwargs: Any):
        super().__init__(model)
        self._backend = OllamaBackend(model, **backend_kwargs)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._backend.embed(texts)

    def close(self) -> None:
        self._backend.close()


class OllamaRuntime(RuntimeKind):
    """`ollama:NAME`, and any name no other kind takes (`borealis:4b`, `bge-m3`)."""

    name = "ollama"
    in_process = False
    prefix = "ollama:"

    def recognise(self, name: str) -> dict[str, Any] | None:
        return {"model": name.removeprefix("ollama:")}

    def arguments(self, settings: Settings) -> dict[str, Any]:
        given = {"timeout": settings.timeout, "host": settings.host}
        return {k: v for k, v in given.items() if v is not None}

    def open_backend(self, arguments: dict[str, Any], options: Options | None) -> Backend:
        return OllamaBackend(options=options, **arguments)

    def open_embedder(self, arguments: dict[str, Any]) -> Embedder:
        return OllamaEmbedder(**arguments)

    def context_window(self, arguments: dict[str, Any]) -> int:
        """Our Modelfiles' num_ctx for a Borealis tag, else Ollama's own default."""
        tag = arguments["model"].removesuffix(":latest")
        model = next((m for m in MODELS if m.ollama_tag == tag), None)
        return DEFAULT_NUM_CTX[model.size] if model is not None else OLLAMA_DEFAULT_NUM_CTX

    def bench_target(self, arguments: dict[str, Any]) -> BenchTarget:
        return BenchTarget(server_model=arguments["model"])

    def bench_arguments(self, request_timeout: float) -> dict[str, Any]:
        return {"timeout": request_timeout}

    def server_memory(self, backend: Backend) -> dict[str, Any]:
        """The loaded model's size and the part of it in VRAM (/api/ps)."""
        try:
            for entry in backend.loaded_models():
                if backend.model in (entry.model, entry.name):
                    return {"server_model_bytes": entry.size, "server_vram_bytes": entry.size_vram}
        except BorealisError:  # ps is informative only; the rates stand without it
            return {}
        return {}


OLLAMA = OllamaRuntime()
