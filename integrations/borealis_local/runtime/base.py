"""The contract every runtime backend keeps, and what they share.

Streaming is the primitive: a backend implements `_stream` (and, when its client has
native async, `_astream`); chat, completion, their async forms and the non-streaming
calls are built on it here, once. Every result and the last chunk of every stream
carry usage, the finish reason and timings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from borealis_local.catalog import CHAT_FORMAT
from borealis_local.errors import (
    InvalidRequestError,
    StreamInterruptedError,
    StructuredOutputError,
)

ROLES = ("system", "user", "assistant")
# Why an answer ended: its end of turn or a stop sequence, or max_tokens / the context.
FinishReason = Literal["stop", "length"]
# Who timed it: the runtime itself, or this process (test doubles name themselves).
TimingSource = Literal["llama.cpp", "ollama", "llama-server", "client"]


@dataclass(frozen=True)
class Options:
    """Generation options, named as in the issue and mapped by each backend.

    None means "the backend's default" (for Borealis: the catalog's sampling).
    """

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    num_ctx: int | None = None
    # Constrained output: a JSON schema, or any JSON object (json_mode).
    json_schema: Mapping[str, Any] | None = None
    json_mode: bool = False

    def merged(self, **overrides: Any) -> Options:
        """These options with per-call overrides (None leaves a field as it is)."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidRequestError(
                f"unknown option(s) {', '.join(sorted(unknown))}: the options are "
                + ", ".join(f.name for f in dataclasses.fields(self))
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "stop" in given:
            stop = given["stop"]
            given["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        return dataclasses.replace(self, **given).validated()

    def validated(self) -> Options:
        def check(name: str, ok: bool, what: str) -> None:
            value = getattr(self, name)
            if value is not None and not ok:
                raise InvalidRequestError(f"{name} must be {what}, not {value!r}")

        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        def integer(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        t, k, p, m = self.temperature, self.top_k, self.top_p, self.min_p
        check("temperature", number(t) and t >= 0, "a number >= 0")
        check("top_k", integer(k) and k >= 0, "an integer >= 0 (0 turns it off)")
        check("top_p", number(p) and 0 < p <= 1, "a number in (0, 1]")
        check("min_p", number(m) and 0 <= m <= 1, "a number in [0, 1]")
        rp = self.repeat_penalty
        check("repeat_penalty", number(rp) and rp > 0, "a number > 0")
        check("seed", integer(self.seed), "an integer")
        mt, nc = self.max_tokens, self.num_ctx
        check("max_tokens", integer(mt) and mt >= 1, "an integer >= 1")
        check("num_ctx", integer(nc) and nc >= 1, "an integer >= 1")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidRequestError(f"stop must be non-empty strings, not {self.stop!r}")
        if self.json_schema is not None and not isinstance(self.json_schema, Mapping):
            raise InvalidRequestError("json_schema must be a JSON schema object (a dict)")
        return self


def defuse_control_tokens(text: str) -> str:
    """Keep text that spells a Gemma control token from becoming that token.

    llama.cpp, llama-server and Ollama parse special tokens in the templated prompt, so
    a message or a retrieved source holding "<end_of_turn>" could close its turn and
    forge another. A zero-width space after the "<" keeps it plain text.
    """
    for token in CHAT_FORMAT.control_tokens:
        if token in text:
            text = text.replace(token, token[0] + "\u200b" + token[1:])
    return text


def normalise_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check roles and contents, strip text of surrounding whitespace as Google's Gemma 3
    template does, so every backend feeds the model the same tokens, and defuse
    control-token text.

    A content is text or a list of parts: text (`{"type": "text", "text": ...}`) and
    images (OpenAI's `{"type": "image_url", "image_url": {"url": ...}}`, or
    `{"type": "image", "image": bytes | PIL image | path | URL}`). Parts without an image
    become the string Google's template makes of them (each text trimmed, joined), so a
    typed message without images is exactly its string form; with images the content
    stays a list of `{"type": "text", "text"}` and `{"type": "image", "image": Image}`,
    each image decoded and checked (runtime/images.py) before any backend sees it.
    """
    result = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequestError(
                f"message {i} has role {role!r}: Borealis takes {', '.join(ROLES)}"
            )
        if isinstance(content, str):
            content = defuse_control_tokens(content.strip())
        elif isinstance(content, list | tuple):
            # Google's template reads a typed system message by its first part only;
            # more would be dropped, so more is refused.
            if role == "system" and len(content) != 1:
                raise InvalidRequestError(_ONE_SYSTEM_PART.format(i=i))
            content = _normalised_parts(content, i)
            if role == "system" and not isinstance(content, str):
                raise InvalidRequestError(_ONE_SYSTEM_PART.format(i=i))
        else:
            raise InvalidRequestError(
                f"message {i} content must be text or a list of parts, not {type(content)}"
            )
        result.append({"role": role, "content": content})
    if not result:
        raise InvalidRequestError("no messages: give at least one")
    return result


_ONE_SYSTEM_PART = (
    "message {i}: a system message takes one text part (Gemma 3 has no system turn: "
    "its text is folded into the first user turn)"
)


def _normalised_parts(parts, index: int) -> str | list[dict[str, Any]]:
    normalised: list[dict[str, Any]] = []
    for n, part in enumerate(parts):
        part_type = part.get("type") if isinstance(part, Mapping) else None
        if part_type == "text" and isinstance(part.get("text"), str):
            text = defuse_control_tokens(part["text"].strip())
            if normalised and normalised[-1]["type"] == "text":
                normalised[-1] = {"type": "text", "text": normalised[-1]["text"] + text}
            else:
                normalised.append({"type": "text", "text": text})
        elif part_type in ("image_url", "image"):
            from borealis_local.runtime.images import as_image

            source = part.get(part_type)
            if part_type == "image_url" and isinstance(source, Mapping):
                source = source.get("url")
            if source is None:
                raise InvalidRequestError(
                    f"message {index} part {n}: the {part_type} part has no image"
                )
            normalised.append({"type": "image", "image": as_image(source)})
        else:
            raise InvalidRequestError(
                f"message {index} part {n} is {part!r}: give text parts "
                '({"type": "text", "text": ...}) or images ({"type": "image_url", '
                '"image_url": {"url": ...}})'
            )
    if not any(part["type"] == "image" for part in normalised):
        return "".join(part["text"] for part in normalised).strip()
    return normalised


def has_images(messages: Iterable[Mapping[str, Any]] | None) -> bool:
    """Whether normalised messages hold an image part."""
    return any(not isinstance(m["content"], str) for m in messages or ())


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the runtime reused from its cache instead of evaluating again.
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Timings:
    """Milliseconds. `source` says who measured: the runtime itself or the client."""

    load_ms: float | None = None
    prompt_ms: float | None = None
    generation_ms: float | None = None
    ttft_ms: float | None = None
    source: TimingSource | str = "client"
    # Encoding the prompt's images (the vision tower and projector), where the runtime
    # says. llama.cpp's prompt_ms includes it: it times from the prompt's first batch to
    # its last.
    image_encode_ms: float | None = None

    @staticmethod
    def rate(tokens: int, ms: float | None) -> float | None:
        return tokens / (ms / 1000) if ms and tokens else None


@dataclass
class Chunk:
    """A piece of a streamed answer; the last one carries finish reason, usage, timings."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    timings: Timings | None = None


@dataclass
class Completion:
    text: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    model: str
    backend: str
    device: str | None = None

    @property
    def generation_tokens_per_second(self) -> float | None:
        return Timings.rate(self.usage.completion_tokens, self.timings.generation_ms)

    @property
    def prompt_tokens_per_second(self) -> float | None:
        # Runtimes time only the prompt tokens they evaluated, not the cached ones.
        evaluated = self.usage.prompt_tokens - self.usage.cached_tokens
        return Timings.rate(evaluated, self.timings.prompt_ms)


@dataclass
class Request:
    """One call: either chat messages (already normalised) or a raw prompt."""

    options: Options
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    started: float = field(default_factory=time.perf_counter)


# Gemma 3's processor (transformers) puts an image as "\n\n<start_of_image>" + its 256
# soft tokens + "<end_of_image>\n\n" where the template wrote <start_of_image>, and so
# did Ollama's own Gemma 3 engine (model/models/gemma3 PostTokenize, before v0.30);
# libmtmd, and so llama-server and Ollama 0.30+, add only the start and end tokens. The
# blank lines are ours to write, as the model was tuned with them.
IMAGE_BREAK = "\n\n"


def image_text(parts: list[dict[str, Any]], marker: str) -> str:
    """A normalised typed content as one text, each image as `marker` between blank
    lines: what the template's string form is given where a runtime marks images in
    text (libmtmd's marker in-process, Ollama's `[img]`)."""
    return "".join(
        part["text"] if part["type"] == "text" else IMAGE_BREAK + marker + IMAGE_BREAK
        for part in parts
    )


def with_images_as(messages: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    """Normalised messages with every typed content as `image_text` (string contents
    as they are): the chat a runtime that marks images in text templates."""
    return [
        m if isinstance(m["content"], str)
        else {"role": m["role"], "content": image_text(m["content"], marker)}
        for m in messages
    ]  # fmt: skip


def images_in(messages: Iterable[Mapping[str, Any]] | None) -> list[Any]:
    """The images of normalised messages, in order."""
    return [
        part["image"]
        for message in messages or ()
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part["type"] == "image"
    ]


def text_only_refusal(model: str) -> str | None:
    """Why a catalog model that sees no images cannot take one (None if it can or the
    name is not the catalog's)."""
    from borealis_local.catalog import SIZES, VISION, model_named

    found = model_named(model)
    if found is None or found.vision is not None:
        return None
    larger = ", ".join(size for size in SIZES if size in VISION)
    variant = "" if found.variant == "full" else f" --variant {found.variant}"
    return (
        f"{found.name} is a text-only model (Gemma 3 {found.size} has no vision tower): "
        f"images need borealis {larger}, e.g. `borealis pull 4b{variant}`"
    )


class Backend(ABC):
    """A model on one runtime. Subclasses implement `_stream`; see the module doc."""

    kind: ClassVar[str]

    def image_refusal(self) -> str | None:
        """Why this backend cannot take image parts now, and what to do; None if it can."""
        return (
            "this runtime does not take images: serve the model with llama-server "
            "--mmproj and use openai:MODEL@URL"
        )

    def __init__(self, model: str, options: Options | None = None):
        self.model = model
        self.options = (options or Options()).validated()

    # -- what a backend implements -------------------------------------------------

    @abstractmethod
    def _stream(self, request: Request) -> Iterator[Chunk]:
        """Yield the answer's chunks; the last carries finish reason, usage, timings."""

    async def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        """Async streaming; by default the sync stream runs in a worker thread, so the
        event loop never blocks."""
        async for chunk in _iterate_in_thread(lambda: self._stream(request)):
            yield chunk

    @property
    def device(self) -> str | None:
        """Where the model runs, when the backend can tell (e.g. "CPU", "CUDA0")."""
        return None

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release the model or connection."""

    # -- built on _stream, once for every backend ------------------------------------

    def _request(self, messages=None, prompt=None, options: Mapping[str, Any] | None = None):
        opts = self.options.merged(**(options or {}))
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidRequestError("prompt must be text")
        msgs = normalise_messages(messages) if messages is not None else None
        if has_images(msgs):
            refusal = text_only_refusal(self.model) or self.image_refusal()
            if refusal:
                raise InvalidRequestError(f"{self.model} on {self.kind}: {refusal}")
        return Request(options=opts, messages=msgs, prompt=prompt)

    def stream_chat(self, messages: Iterable[Mapping[str, Any]], **options: Any) -> Iterator[Chunk]:
        request = self._request(messages=messages, options=options)
        return _json_checked(self._stream(request), request.options)

    def stream_complete(self, prompt: str, **options: Any) -> Iterator[Chunk]:
        request = self._request(prompt=prompt, options=options)
        return _json_checked(self._stream(request), request.options)

    def chat(self, messages: Iterable[Mapping[str, Any]], **options: Any) -> Completion:
        return self._collect(self.stream_chat(messages, **options))

    def complete(self, prompt: str, **options: Any) -> Completion:
        return self._collect(self.stream_complete(prompt, **options))

    def astream_chat(
        self, messages: Iterable[Mapping[str, Any]], **options: Any
    ) -> AsyncIterator[Chunk]:
        request = self._request(messages=messages, options=options)
        return _ajson_checked(self._astream(request), request.options)

    def astream_complete(self, prompt: str, **options: Any) -> AsyncIterator[Chunk]:
        request = self._request(prompt=prompt, options=options)
        return _ajson_checked(self._astream(request), request.options)

    async def achat(self, messages: Iterable[Mapping[str, Any]], **options: Any) -> Completion:
        return await self._acollect(self.astream_chat(messages, **options))

    async def acomplete(self, prompt: str, **options: Any) -> Completion:
        return await self._acollect(self.astream_complete(prompt, **options))

    def _collect(self, chunks: Iterable[Chunk]) -> Completion:
        parts, last = [], None
        for chunk in chunks:
            parts.append(chunk.text)
            last = chunk
        return self.completion_of("".join(parts), last)

    async def _acollect(self, chunks: AsyncIterator[Chunk]) -> Completion:
        parts, last = [], None
        async for chunk in chunks:
            parts.append(chunk.text)
            last = chunk
        return self.completion_of("".join(parts), last)

    def completion_of(self, text: str, last: Chunk | None) -> Completion:
        """The Completion of a streamed answer: its text and its last chunk."""
        if last is None or last.finish_reason is None:
            raise StreamInterruptedError(f"{self.kind}: the answer ended without a finish reason")
        return Completion(
            text=text,
            finish_reason=last.finish_reason,
            usage=last.usage or Usage(),
            timings=last.timings or Timings(),
            model=self.model,
            backend=self.kind,
            device=self.device,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_checked(chunks: Iterator[Chunk], options: Options) -> Iterator[Chunk]:
    """The stream as it is, except that a JSON-constrained answer that max_tokens cut
    before its JSON closed ends in StructuredOutputError instead of its last chunk."""
    if options.json_schema is None and not options.json_mode:
        yield from chunks
        return
    text = []
    try:
        for chunk in chunks:
            text.append(chunk.text)
            if chunk.finish_reason == "length":
                _check_json_closed("".join(text), options)
            yield chunk
    finally:
        # Raising here leaves the backend's stream suspended, holding its model lock:
        # close it now, not when the garbage collector gets to it.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def _ajson_checked(chunks: AsyncIterator[Chunk], options: Options) -> AsyncIterator[Chunk]:
    constrained = options.json_schema is not None or options.json_mode
    text = []
    try:
        async for chunk in chunks:
            if constrained:
                text.append(chunk.text)
                if chunk.finish_reason == "length":
                    _check_json_closed("".join(text), options)
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _check_json_closed(text: str, options: Options) -> None:
    try:
        json.loads(text)
    except ValueError:
        if options.max_tokens is None:
            limit, fix = "filled the context", "open the model with a larger num_ctx"
        else:
            limit = f"reached max_tokens={options.max_tokens}"
            fix = "raise max_tokens, or leave it unset, for structured output"
        raise StructuredOutputError(
            f"the answer {limit} before its JSON was complete ({len(text)} characters "
            f"so far): {fix}",
            text=text,
            max_tokens=options.max_tokens,
        ) from None


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


async def _iterate_in_thread(make_iterator: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking iterator in a worker thread and hand its items to the event loop.

    Leaving the async loop early stops the worker after its current item.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        iterator = None
        try:
            iterator = make_iterator()
            for item in iterator:
                put(item)
                if stop.is_set():
                    break
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failure(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            put(_DONE)

    worker = loop.run_in_executor(None, work)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        await asyncio.shield(worker)
