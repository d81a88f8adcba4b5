"""Any OpenAI-compatible server: llama-server, vLLM, `python -m llama_cpp.server`.

The server applies its own chat template (start llama-server with
`--chat-template-file modelfiles/templates/borealis.jinja`); we send messages for chat
and text for raw completion, through the `openai` client, sync and async.

Options. temperature, top_p, max_tokens, stop and seed are OpenAI parameters. The
others go in the request body, named as each server reads them: llama-server and
llama_cpp.server read `top_k`, `min_p`, `repeat_penalty`; vLLM reads `top_k`, `min_p`,
`repetition_penalty`. We send both penalty names: each server ignores the one it does
not know (vLLM logs it). Unset temperature, top_k and top_p get the catalog's SAMPLING
defaults, so every runtime samples Borealis alike. `num_ctx` cannot change on a running
server: it is checked against the context the server reports (llama-server:
/v1/models `meta.n_ctx`, the same number as /props `default_generation_settings.n_ctx`;
vLLM: `max_model_len`) and a larger one is refused; a server that reports none is
trusted to reject an oversized prompt itself. `json_schema` (it wins over `json_mode`)
becomes `response_format` json_schema, `json_mode` `{"type": "json_object"}`; for raw
completion llama-server reads a top-level `json_schema` instead, so we send both.

Usage comes from the stream's usage chunk (we ask for it), cached prompt tokens from its
`prompt_tokens_details` or llama-server's `cache_n`. A server that sends no usage but
sends llama-server timings gets its counts from them (prompt = prompt_n + cache_n);
with neither, a warning says so and the usage reads as zeros.

Timings: llama-server puts a `timings` object on its last chunk; its prompt and
generation times are used (source "llama-server"). Otherwise both are measured here
(source "client": generation from first to last token). Time to first token is always
the caller's: from the request's creation to the first text.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from borealis_local.catalog import DEFAULT_NUM_CTX, SAMPLING, parse_name
from borealis_local.errors import (
    BackendError,
    BackendTimeoutError,
    BorealisError,
    ContextOverflowError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
    StreamInterruptedError,
    UnknownModelError,
)
from borealis_local.runtime.base import (
    IMAGE_BREAK,
    Backend,
    Chunk,
    Options,
    Request,
    Timings,
    Usage,
)
from borealis_local.runtime.embeddings import Embedder
from borealis_local.runtime.kind import BenchTarget, RuntimeKind, Settings

# Local servers take any key; the client library insists on one.
PLACEHOLDER_API_KEY = "no-key-needed"

START_HINT = (
    "start one, e.g. `llama-server -m borealis-270m-Q4_K_M.gguf --jinja "
    "--chat-template-file modelfiles/templates/borealis.jinja --port 8080` "
    "(base_url http://127.0.0.1:8080/v1) or `vllm serve <model>`, or check base_url"
)
CONTEXT_HINT = (
    "the context is fixed when the server starts: `llama-server -c N`, "
    "`vllm serve --max-model-len N`"
)

# vLLM's words for an oversized prompt (it has no error type for it):
# "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens
# (2990 in the messages, 10 in the completion)." Newer versions: "...your request has
# 3000 input tokens."
_VLLM_OVERFLOW = re.compile(
    r"maximum context length is (\d+) tokens.*?(\d+) (?:input )?tokens", re.S
)
_UNKNOWN = object()


class OpenAIBackend(Backend):
    """A model served by an OpenAI-compatible server at `base_url` (ending in /v1)."""

    kind = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        options: Options | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ):
        super().__init__(model, options)
        import openai

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._settings = dict(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY,
            timeout=timeout,  # bounds the connect and every read, so nothing hangs
            max_retries=max_retries,
        )
        self._client = openai.OpenAI(**self._settings)
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._server_ctx: Any = _UNKNOWN
        self._warned_no_usage = False

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """/v1/embeddings for this model, one vector per text, in the texts' order."""
        with self._translated(started=False):
            response = self._client.embeddings.create(model=self.model, input=texts)
        return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    def _async_client(self):
        """An AsyncOpenAI for the running loop: its connections belong to one loop."""
        import openai

        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, openai.AsyncOpenAI(**self._settings))
        return self._async[1]

    # -- streaming -------------------------------------------------------------------

    def _stream(self, request: Request) -> Iterator[Chunk]:
        with self._translated(started=False):
            if request.options.num_ctx is not None:
                self._check_num_ctx(request.options.num_ctx, self._sync_server_context())
            stream = self._open(self._client, request)
        reader = _StreamReader(request)
        try:
            with self._translated(started=True):
                for raw in stream:
                    chunk = reader.feed(raw)
                    if chunk is not None:
                        yield chunk
        finally:
            stream.close()
        yield self._last_chunk(reader)

    async def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        client = self._async_client()
        with self._translated(started=False):
            if request.options.num_ctx is not None:
                self._check_num_ctx(
                    request.options.num_ctx, await self._async_server_context(client)
                )
            stream = await self._open(client, request)
        reader = _StreamReader(request)
        try:
            with self._translated(started=True):
                async for raw in stream:
                    chunk = reader.feed(raw)
                    if chunk is not None:
                        yield chunk
        finally:
            await stream.close()
        yield self._last_chunk(reader)

    def _open(self, client, request: Request):
        """Start the streamed request (a coroutine for the async client)."""
        standard, extra = self._parameters(request)
        common = dict(model=self.model, stream=True, stream_options={"include_usage": True})
        if request.messages is not None:
            return client.chat.completions.create(
                messages=[_wire_message(m) for m in request.messages],
                **common, **standard, extra_body=extra,
            )  # fmt: skip
        return client.completions.create(
            prompt=request.prompt, **common, **standard, extra_body=extra
        )

    def _last_chunk(self, reader: _StreamReader) -> Chunk:
        if reader.finish_reason is None:
            raise StreamInterruptedError(
                f"the server at {self.base_url} ended the answer without a finish reason "
                "(it stopped or crashed mid-stream); try again"
            )
        usage = reader.usage()
        if usage is None and not self._warned_no_usage:
            self._warned_no_usage = True
            warnings.warn(
                f"the server at {self.base_url} sent no token counts (usage): "
                "usage is unknown and reads as zeros",
                stacklevel=2,
            )
        return Chunk("", reader.finish_reason, usage, reader.timings())

    # -- options ---------------------------------------------------------------------

    def _parameters(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        """(OpenAI parameters, extra body fields) for these options."""
        o = request.options
        standard = {
            "temperature": SAMPLING.temperature if o.temperature is None else o.temperature,
            "top_p": SAMPLING.top_p if o.top_p is None else o.top_p,
        }
        for name in ("max_tokens", "seed"):
            if getattr(o, name) is not None:
                standard[name] = getattr(o, name)
        if o.stop:
            standard["stop"] = list(o.stop)
        extra: dict[str, Any] = {"top_k": SAMPLING.top_k if o.top_k is None else o.top_k}
        if o.min_p is not None:
            extra["min_p"] = o.min_p
        if o.repeat_penalty is not None:
            extra["repeat_penalty"] = o.repeat_penalty  # llama-server, llama_cpp.server
            extra["repetition_penalty"] = o.repeat_penalty  # vLLM
        response_format = _response_format(o)
        if response_format is not None and request.messages is not None:
            standard["response_format"] = response_format
        elif response_format is not None:
            extra["response_format"] = response_format  # vLLM's /v1/completions
            extra["json_schema"] = o.json_schema or {"type": "object"}  # llama-server's
        return standard, extra

    def _check_num_ctx(self, num_ctx: int, n_ctx: int | None) -> None:
        """Refuse a context the server does not have (None: it did not say)."""
        if n_ctx is not None and num_ctx > n_ctx:
            raise InvalidRequestError(
                f"num_ctx={num_ctx}, but the server at {self.base_url} runs with a "
                f"{n_ctx}-token context; {CONTEXT_HINT}"
            )

    def _sync_server_context(self) -> int | None:
        import openai

        if self._server_ctx is _UNKNOWN:
            try:
                self._server_ctx = _context_from_models(self._client.models.list().data, self.model)
            except openai.APIStatusError:  # no model list here: the server cannot tell
                self._server_ctx = None
        return self._server_ctx

    async def _async_server_context(self, client) -> int | None:
        import openai

        if self._server_ctx is _UNKNOWN:
            try:
                page = await client.models.list()
                self._server_ctx = _context_from_models(page.data, self.model)
            except openai.APIStatusError:
                self._server_ctx = None
        return self._server_ctx

    # -- errors ----------------------------------------------------------------------

    @contextmanager
    def _translated(self, *, started: bool):
        """Raise the openai client's errors as ours, with what to do next."""
        import openai

        try:
            yield
        except BorealisError:
            raise
        except openai.APIError as error:
            raise self._translate(error, started) from error

    def _translate(self, error, started: bool) -> BorealisError:
        import openai

        url = self.base_url
        if isinstance(error, openai.APITimeoutError):
            where = "in the middle of the answer" if started else "before answering"
            return BackendTimeoutError(
                f"the server at {url} went silent {where} for {self.timeout:g} s; "
                "raise timeout= if it is busy or slow"
            )
        if isinstance(error, openai.APIConnectionError):
            if started:
                return StreamInterruptedError(
                    f"the connection to {url} broke in the middle of the answer "
                    "(did the server stop?); try again"
                )
            return ServerUnavailableError(
                f"no OpenAI-compatible server answers at {url}: {START_HINT}"
            )
        if isinstance(error, openai.APIStatusError):
            return self._translate_status(error)
        if started:  # an error event inside the stream
            return StreamInterruptedError(f"the server at {url} failed mid-answer: {error.message}")
        return BackendError(f"the server at {url} answered with something unexpected: {error}")

    def _translate_status(self, error) -> BorealisError:
        url, status, body = self.base_url, error.status_code, error.body
        message = body.get("message", error.message) if isinstance(body, Mapping) else error.message
        overflow = _context_overflow(body, message)
        if overflow is not None:
            prompt_tokens, n_ctx = overflow
            return ContextOverflowError(
                f"the prompt is {prompt_tokens} tokens but the server at {url} has a "
                f"{n_ctx}-token context: shorten the prompt, or restart the server with a "
                f"larger one ({CONTEXT_HINT})",
                prompt_tokens=prompt_tokens,
                n_ctx=n_ctx,
            )
        if status == 404 or (status == 400 and re.search(r"model .*not found", message)):
            return ModelNotFoundError(
                f"the server at {url} has no model {self.model!r} ({message}); list its "
                "models at GET /v1/models, and check that base_url ends in /v1"
            )
        if status in (401, 403):
            return BackendError(
                f"the server at {url} refused the API key ({message}): "
                "pass api_key= or set OPENAI_API_KEY"
            )
        if status == 503:
            return ServerUnavailableError(
                f"the server at {url} is not ready ({message}); wait until it has "
                "loaded the model and try again"
            )
        if re.search(r"mmproj|image input is not supported|multimodal", message, re.I):
            return InvalidRequestError(
                f"the server at {url} takes no images ({message}): start llama-server with "
                "--mmproj MMPROJ.gguf (the vision projector beside the 4b, 12b or 27b GGUF)"
            )
        if status in (400, 422):
            return InvalidRequestError(f"the server at {url} rejected the request: {message}")
        return BackendError(f"the server at {url} failed with HTTP {status}: {message}")

    @property
    def device(self) -> str | None:
        """None: the server knows where it runs, and neither llama-server nor vLLM says."""
        return None

    def image_refusal(self) -> str | None:
        return None  # image parts go as OpenAI's image_url parts (data: URLs)


def _wire_message(message: dict) -> dict:
    """A normalised message as OpenAI's chat API takes it: images as image_url parts,
    each between text parts that end and begin with a blank line (base.IMAGE_BREAK).
    llama-server joins a message's parts into one text (its media marker where an image
    stands, a newline between two text parts: common/chat.cpp to_json_oaicompat), so it
    then reads "…\n\n<image>\n\n…" as Gemma 3 was tuned; servers that template the
    parts with Google's template (vLLM) trim each text part, and their processor adds
    the blank lines itself."""
    if isinstance(message["content"], str):
        return message
    parts, text = [], ""
    for part in message["content"]:
        if part["type"] == "text":
            text += part["text"]
            continue
        parts.append({"type": "text", "text": text + IMAGE_BREAK})
        parts.append({"type": "image_url", "image_url": {"url": part["image"].data_url()}})
        text = IMAGE_BREAK
    parts.append({"type": "text", "text": text})
    return {"role": message["role"], "content": parts}


class _StreamReader:
    """Turns streamed chat or completion chunks into ours, and keeps what the last
    chunk must carry: finish reason, usage, timings."""

    def __init__(self, request: Request):
        self.started = request.started
        self.first_token: float | None = None
        self.last_token: float | None = None
        self.finish_reason: str | None = None
        self.server_usage = None
        self.server_timings: Mapping[str, Any] | None = None

    def feed(self, raw) -> Chunk | None:
        """Our chunk for this piece of the stream, or None when it carries no text."""
        if raw.usage is not None:
            self.server_usage = raw.usage
        timings = (raw.model_extra or {}).get("timings")
        if isinstance(timings, Mapping):
            self.server_timings = timings
        if not raw.choices:
            return None
        choice = raw.choices[0]
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
        delta = getattr(choice, "delta", None)  # chat; raw completions carry .text
        text = (delta.content if delta is not None else choice.text) or ""
        if not text:
            return None
        now = time.perf_counter()
        self.first_token = self.first_token or now
        self.last_token = now
        return Chunk(text)

    def usage(self) -> Usage | None:
        t = self.server_timings or {}
        cached = int(t.get("cache_n", 0))  # llama-server: prompt tokens reused from its cache
        if self.server_usage is not None:
            u = self.server_usage
            details = getattr(u, "prompt_tokens_details", None)
            cached = getattr(details, "cached_tokens", None) or cached
            return Usage(u.prompt_tokens, u.completion_tokens, cached_tokens=cached)
        if "prompt_n" in t and "predicted_n" in t:
            return Usage(int(t["prompt_n"]) + cached, int(t["predicted_n"]), cached_tokens=cached)
        return None

    def timings(self) -> Timings:
        ttft = None if self.first_token is None else (self.first_token - self.started) * 1000
        t = self.server_timings
        if t is not None and "prompt_ms" in t and "predicted_ms" in t:
            return Timings(
                prompt_ms=t["prompt_ms"],
                generation_ms=t["predicted_ms"],
                ttft_ms=ttft,
                source="llama-server",
            )
        generation = None
        if self.first_token is not None:
            generation = (self.last_token - self.first_token) * 1000
        return Timings(generation_ms=generation, ttft_ms=ttft, source="client")


def _response_format(options: Options) -> dict[str, Any] | None:
    if options.json_schema is not None:
        schema = dict(options.json_schema)
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    if options.json_mode:
        return {"type": "json_object"}
    return None


def _context_from_models(entries: list, model: str) -> int | None:
    """The server's context size from its model list, when it tells it."""
    chosen = [m for m in entries if m.id == model] or (entries if len(entries) == 1 else [])
    if not chosen:
        return None
    extra = chosen[0].model_extra or {}
    meta = extra.get("meta")
    n_ctx = meta.get("n_ctx") if isinstance(meta, Mapping) else extra.get("max_model_len")
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def _context_overflow(body: Any, message: str) -> tuple[int, int] | None:
    """(prompt tokens, context size) when the error says the prompt does not fit."""
    if isinstance(body, Mapping) and body.get("type") == "exceed_context_size_error":
        return int(body.get("n_prompt_tokens", 0)), int(body.get("n_ctx", 0))
    match = _VLLM_OVERFLOW.search(message)
    if match and int(match.group(2)) >= int(match.group(1)):  # else: max_tokens too large
        return int(match.group(2)), int(match.group(1))
    return None


# -- the registry's entry ------------------------------------------------------------------


class OpenAIEmbedder(Embedder):
    """/v1/embeddings, with the chat backend's connection and error handling."""

    kind = "openai"

    def __init__(self, model: str, base_url: str, **backend_kwargs: Any):
        super().__init__(model)
        self._backend = OpenAIBackend(model, base_url, **backend_kwargs)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._backend.embed(texts)

    def close(self) -> None:
        self._backend.close()


class OpenAIRuntime(RuntimeKind):
    """`openai:MODEL@BASE_URL`: any OpenAI-compatible server."""

    name = "openai"
    in_process = False
    prefix = "openai:"

    def recognise(self, name: str) -> dict[str, Any] | None:
        if not name.startswith("openai:"):
            return None
        model, at, base_url = name.removeprefix("openai:").partition("@")
        if not (model and at and base_url.startswith(("http://", "https://"))):
            raise InvalidRequestError(
                f"{name!r}: write an OpenAI-compatible server as openai:MODEL@BASE_URL, "
                "e.g. openai:borealis-4b@http://127.0.0.1:8080/v1"
            )
        return {"model": model, "base_url": base_url}

    def arguments(self, settings: Settings) -> dict[str, Any]:
        # The registry's RetryPolicy retries, once: the client's own retries stay off.
        arguments: dict[str, Any] = {"max_retries": 0}
        if settings.timeout is not None:
            arguments["timeout"] = settings.timeout
        if settings.api_key is not None:
            arguments["api_key"] = settings.api_key
        return arguments

    def open_backend(self, arguments: dict[str, Any], options: Options | None) -> Backend:
        return OpenAIBackend(options=options, **arguments)

    def open_embedder(self, arguments: dict[str, Any]) -> Embedder:
        return OpenAIEmbedder(**arguments)

    def context_window(self, arguments: dict[str, Any]) -> int | None:
        """Our llama-server presets' context for a catalog model name; else unknown
        without asking the server."""
        try:
            model, _ = parse_name(arguments["model"])
        except UnknownModelError:
            return None
        return DEFAULT_NUM_CTX[model.size]

    def bench_target(self, arguments: dict[str, Any]) -> BenchTarget:
        return BenchTarget(server_model=arguments["model"], base_url=arguments["base_url"])

    def bench_arguments(self, request_timeout: float) -> dict[str, Any]:
        return {"timeout": request_timeout}


OPENAI = OpenAIRuntime()
