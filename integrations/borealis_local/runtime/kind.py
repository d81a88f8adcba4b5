"""What a kind of runtime tells the rest of the project: the registry's entry contract.

Each backend module (llama_cpp, ollama, openai_compat) defines one `RuntimeKind`; the
registry (`runtime.registry`) lists them. Nothing outside a kind's own module decides
by its name what to do with it: resolve, embeddings, the bench and both framework
adapters ask the kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from borealis_local.runtime.base import Backend, Options
    from borealis_local.runtime.embeddings import Embedder


@dataclass(frozen=True)
class Settings:
    """The settings every front end offers (adapters, CLI, bench), whatever runs the
    model; each kind maps them to its constructor's arguments. None: not given."""

    timeout: float | None = None  # seconds a server may stay silent
    num_ctx: int | None = None  # the context window in tokens
    api_key: str | None = None  # for a server that wants one
    host: str | None = None  # a server's address, where the name does not carry it


@dataclass(frozen=True)
class BenchTarget:
    """What the bench needs of a model before it starts a child process for it."""

    server_model: str | None = None  # the server's name for it (servers)
    base_url: str | None = None
    path: str | None = None  # the checked GGUF (in-process)
    quant: str | None = None
    file_bytes: int | None = None


class RuntimeKind(ABC):
    """One kind of runtime: which model names it takes and how to open them."""

    name: ClassVar[str]  # as results and rows name it: "llama.cpp", "ollama", "openai"
    in_process: ClassVar[bool]  # True: the model runs in this process, one call at a time
    prefix: ClassVar[str | None] = None  # a name starting with it is this kind's ("openai:")

    @abstractmethod
    def recognise(self, name: str) -> dict[str, Any] | None:
        """The constructor arguments a model name means to this kind, or None when the
        name is not this kind's. Opens nothing; may look for a file on disk."""

    @abstractmethod
    def arguments(self, settings: Settings) -> dict[str, Any]:
        """Constructor arguments for the common settings this kind has a use for."""

    @abstractmethod
    def open_backend(self, arguments: dict[str, Any], options: Options | None) -> Backend:
        """A chat backend for these constructor arguments."""

    @abstractmethod
    def open_embedder(self, arguments: dict[str, Any]) -> Embedder:
        """An embedder for these constructor arguments."""

    def context_window(self, arguments: dict[str, Any]) -> int | None:
        """The context a backend opened with these arguments will have, when known
        without a network call or loading anything."""
        return None

    @abstractmethod
    def bench_target(self, arguments: dict[str, Any]) -> BenchTarget:
        """The facts the bench records of the model, checked before any child starts."""

    def bench_arguments(self, request_timeout: float) -> dict[str, Any]:
        """Constructor arguments the bench's chat view adds (a server's timeout)."""
        return {}

    def server_memory(self, backend: Backend) -> dict[str, Any]:
        """Memory the server reports for the loaded model, as bench row fields."""
        return {}
