"""The registry of runtimes: which kind runs a model name, and the models opened so far.

    borealis-open-4b:Q8_0        a catalog name: the GGUF on this machine, in llama.cpp
    ./borealis-4b-Q4_K_M.gguf    a local GGUF file, in llama.cpp
    borealis:4b, huggingface.co/…  an Ollama tag (`ollama:NAME` forces Ollama)
    openai:MODEL@BASE_URL        any OpenAI-compatible server (llama-server, vLLM, …)

A name with a kind's prefix (`openai:`, `ollama:`) is that kind's; any other goes to
the kinds in `KINDS` order, and the first that recognises it takes it. Adding a
runtime is one backend module with a `RuntimeKind` and one line in `KINDS`.

Beside the registry live the process-wide cache of opened models, shared by every
LangChain and LlamaIndex instance (a GGUF takes seconds and gigabytes to open), and the
one retry policy both frameworks use.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from borealis_local.errors import BackendTimeoutError, InvalidRequestError, ServerUnavailableError
from borealis_local.runtime.base import Backend, Chunk, Options
from borealis_local.runtime.embeddings import Embedder
from borealis_local.runtime.kind import RuntimeKind, Settings
from borealis_local.runtime.llama_cpp import LLAMA_CPP
from borealis_local.runtime.ollama import OLLAMA
from borealis_local.runtime.openai_compat import OPENAI

# Order matters for names without a prefix: a path or catalog name is llama.cpp's,
# anything else is taken for an Ollama tag.
KINDS: tuple[RuntimeKind, ...] = (OPENAI, LLAMA_CPP, OLLAMA)


def kind_named(name: str) -> RuntimeKind:
    """The kind results and bench rows call `name` ("llama.cpp", "ollama", "openai")."""
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise InvalidRequestError(
        f"no runtime {name!r}: the runtimes are {', '.join(k.name for k in KINDS)}"
    )


def runs_in_process(kind_name: str | None) -> bool:
    """Whether results labelled with this runtime ran the model in-process (False for
    a name no kind has, e.g. a row from another tool)."""
    return any(kind.name == kind_name and kind.in_process for kind in KINDS)


def describe(name: str) -> tuple[RuntimeKind, dict[str, Any]]:
    """Which kind runs a model name, and its constructor arguments; opens nothing."""
    name = name.strip()
    if not name:
        raise InvalidRequestError("no model named: give a catalog name, a .gguf path, "
                                  "an Ollama tag or openai:MODEL@URL")
    candidates = [k for k in KINDS if k.prefix and name.startswith(k.prefix)] or KINDS
    for kind in candidates:
        arguments = kind.recognise(name)
        if arguments is not None:
            return kind, arguments
    raise InvalidRequestError(f"no runtime takes the model name {name!r}")


def arguments_for(name: str, settings: Settings, extra: Mapping[str, Any] | None = None):
    """The kind for `name` and the constructor arguments the common settings map to,
    then `extra` (a caller's backend_kwargs, which win)."""
    kind, _ = describe(name)
    return kind, {**kind.arguments(settings), **(extra or {})}


def open_backend(name: str, *, options: Options | None = None, **kwargs: Any) -> Backend:
    """The chat backend for a model name; `kwargs` go to that backend's constructor."""
    kind, arguments = describe(name)
    return kind.open_backend({**arguments, **kwargs}, options)


def open_embedder(name: str, **kwargs: Any) -> Embedder:
    """The embedder for a model name; `kwargs` go to its constructor."""
    kind, arguments = describe(name)
    return kind.open_embedder({**arguments, **kwargs})


# -- models opened once per process ----------------------------------------------------

Purpose = Literal["chat", "embedding"]


class SharedModels:
    """Opened models, one per (purpose, name, arguments), for the whole process."""

    def __init__(self) -> None:
        self._opened: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, purpose: Purpose, name: str, arguments: Mapping[str, Any],
            open_model: Callable[[], Any]) -> Any:
        key = (purpose, name, _hashable(arguments))
        with self._lock:
            if key not in self._opened:
                self._opened[key] = open_model()
            return self._opened[key]

    def close(self, purpose: Purpose | None = None) -> None:
        """Close the models opened for `purpose` (every one, when None)."""
        with self._lock:
            chosen = [k for k in self._opened if purpose in (None, k[0])]
            models = [self._opened.pop(k) for k in chosen]
        for model in models:
            model.close()


SHARED = SharedModels()


def shared_backend(name: str, settings: Settings | None = None,
                   backend_kwargs: Mapping[str, Any] | None = None) -> Backend:
    """The chat backend for a model name and settings, opened once per process."""
    settings = settings or Settings()
    _, arguments = arguments_for(name, settings, backend_kwargs)
    options = Options(num_ctx=settings.num_ctx)

    def open_model() -> Backend:
        try:
            return open_backend(name, options=options, **arguments)
        except TypeError as error:  # an argument this kind of backend does not take
            raise InvalidRequestError(
                f"{name!r}: {error}; check backend_kwargs against this backend"
            ) from error

    return SHARED.get("chat", name, {"num_ctx": settings.num_ctx, **arguments}, open_model)


def shared_embedder(name: str, **kwargs: Any) -> Embedder:
    """The embedder for a model name and arguments, opened once per process."""
    return SHARED.get("embedding", name, kwargs, lambda: open_embedder(name, **kwargs))


def _hashable(value: Any) -> Any:
    # repr for the rest: arguments may be paths or callables, which need not hash alike.
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set)):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


# -- retries -----------------------------------------------------------------------------

# Only a runtime that is down or slow is worth asking again; other errors would recur.
RETRYABLE = (BackendTimeoutError, ServerUnavailableError)
T = TypeVar("T")


def backoff(attempt: int) -> float:
    """Seconds to wait before retry `attempt + 1`: 0.5, 1, 2, … up to 8."""
    return min(0.5 * 2**attempt, 8.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a stream that failed because the runtime was down or timed out, before any
    text arrived: once text has reached the caller, a retry would repeat it."""

    max_retries: int = 2

    def call(self, make: Callable[[], T]) -> T:
        """A whole answer (chat, complete): it reaches the caller only when it is done."""
        for attempt in range(self.max_retries + 1):
            try:
                return make()
            except RETRYABLE:
                if attempt == self.max_retries:
                    raise
            time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    async def acall(self, make: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return await make()
            except RETRYABLE:
                if attempt == self.max_retries:
                    raise
            await asyncio.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def stream(self, open_stream: Callable[[], Iterator[Chunk]]) -> Iterator[Chunk]:
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                for chunk in open_stream():
                    started = True
                    yield chunk
                return
            except RETRYABLE:
                if started or attempt == self.max_retries:
                    raise
            time.sleep(backoff(attempt))

    async def astream(
        self, open_stream: Callable[[], AsyncIterator[Chunk]]
    ) -> AsyncIterator[Chunk]:
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                async for chunk in open_stream():
                    started = True
                    yield chunk
                return
            except RETRYABLE:
                if started or attempt == self.max_retries:
                    raise
            await asyncio.sleep(backoff(attempt))
