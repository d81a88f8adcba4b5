"""What is measured: tests, the model as a runtime opens it, and configurations.

A configuration is one model on one runtime with fixed settings (threads, GPU layers,
flash attention, KV cache types, batch sizes) and the tests run on it, one result row
each; it runs in a child process of its own (`child.run_config`). Flash attention is
llama.cpp's value, as llama-bench's JSON records it: -1 auto (the default of both),
0 off, 1 on.

- `ppN` / `tgN` (optionally `@ dD`), llama.cpp in-process, exactly llama-bench's method
  (`llama_bench`);
- `chatN`, the user-facing view through the runtime's Backend (`chat_view`): time to
  first token and end-to-end tokens/second, with `concurrency` > 1 (servers) that many
  streams at once;
- `image`, llama.cpp in-process with a vision projector (`image_view`): a chat message
  with one image through the Backend, its encode time, the prompt's evaluation with it
  and the projector's load time and memory;
- for Ollama and OpenAI-compatible servers, `ppN` and `tgN` from the rates the server
  reports (`serving`).

Memory is read by `probes`; every row has the fields of `row.ResultRow`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from borealis_local.bench.row import Identity
from borealis_local.errors import InvalidRequestError
from borealis_local.runtime.llama_cpp import FLASH_ATTN_AUTO, FLASH_ATTN_OFF, FLASH_ATTN_ON

KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
# llama-cpp-python's micro-batch, which the runtime backend (the chat view) keeps.
CHAT_UBATCH = 512


@dataclass(frozen=True)
class Test:
    """One row: a prompt-processing, generation or chat test, llama-bench's shapes."""

    __test__ = False  # not a pytest test class, despite the name

    n_prompt: int = 0
    n_gen: int = 0
    n_depth: int = 0
    chat: bool = False
    image: bool = False  # a chat message with one image; n_gen is the answer's length

    def __post_init__(self):
        for name in ("n_prompt", "n_gen", "n_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidRequestError(f"{name} must be a whole number >= 0, not {value!r}")
        if (self.chat or self.image) and (self.n_gen < 1 or self.n_prompt or self.n_depth):
            raise InvalidRequestError("a chat test takes only n_gen >= 1 (the answer's length)")
        if self.chat and self.image:
            raise InvalidRequestError("a test is a chat test or an image test, not both")
        if not (self.n_prompt or self.n_gen):
            raise InvalidRequestError("a test needs n_prompt or n_gen above 0")

    @property
    def name(self) -> str:
        """llama-bench's test label: pp512, tg128, pp512+tg128, tg128 @ d4096; chat128;
        image."""
        if self.image:
            return "image"
        if self.chat:
            return f"chat{self.n_gen}"
        if self.n_prompt and not self.n_gen:
            label = f"pp{self.n_prompt}"
        elif self.n_gen and not self.n_prompt:
            label = f"tg{self.n_gen}"
        else:
            label = f"pp{self.n_prompt}+tg{self.n_gen}"
        return f"{label} @ d{self.n_depth}" if self.n_depth else label


@dataclass(frozen=True)
class Target:
    """A model as a runtime will open it, resolved (and checked) before any child starts."""

    name: str
    runtime: str
    path: str | None = None  # the GGUF, for llama.cpp
    server_model: str | None = None  # the server's model name (Ollama, OpenAI-compatible)
    base_url: str | None = None
    label: str | None = None  # e.g. "stand-in: Gemma 3 270M base, not Borealis"
    quant: str | None = None
    file_bytes: int | None = None

    @property
    def in_process(self) -> bool:
        """Whether the runtime runs the model in this process (llama-bench's method
        applies) rather than on a server."""
        from borealis_local.runtime import registry

        return registry.kind_named(self.runtime).in_process


@dataclass(frozen=True)
class Config:
    """One model on one runtime with fixed settings; its tests run in one child process."""

    target: Target
    tests: tuple[Test, ...]
    reps: int = 5
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    flash_attn: int = FLASH_ATTN_AUTO  # -1 auto, 0 off, 1 on (llama.cpp's flash_attn_type)
    type_k: str = "f16"
    type_v: str = "f16"
    n_batch: int = 2048
    n_ubatch: int = 512
    concurrency: int = 1
    warmup: bool = True
    request_timeout: float = 600.0
    # The `image` test's picture (a file, or "synthetic") and projector, resolved by
    # `image_view.prepare` before any child starts.
    image: str | None = None
    mmproj: str | None = None
    mmproj_label: str | None = None

    def __post_init__(self):
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequestError(f"{name} must be a whole number >= 1, not {value!r}")

        for name in ("reps", "n_batch", "n_ubatch", "concurrency"):
            positive(name)
        if self.n_threads is not None:
            positive("n_threads")
        if isinstance(self.flash_attn, bool):  # True/False: on/off, as llama.cpp's value
            object.__setattr__(self, "flash_attn", int(self.flash_attn))
        if self.flash_attn not in (FLASH_ATTN_AUTO, FLASH_ATTN_OFF, FLASH_ATTN_ON):
            raise InvalidRequestError(
                f"flash_attn must be -1 (auto), 0 (off) or 1 (on), not {self.flash_attn!r}")
        for name in ("type_k", "type_v"):
            if getattr(self, name) not in KV_CACHE_TYPES:
                raise InvalidRequestError(
                    f"{name} {getattr(self, name)!r} is not a KV cache type: use one of "
                    + ", ".join(KV_CACHE_TYPES)
                )
        if not self.tests:
            raise InvalidRequestError("nothing to measure: give -p, -n or --chat above 0")
        in_process = self.target.in_process
        if in_process and self.concurrency > 1:
            raise InvalidRequestError(
                "concurrent streams measure a server: llama.cpp in-process answers one at "
                "a time (serve the model with llama-server and bench openai:MODEL@URL)"
            )
        if not in_process and any(t.n_depth for t in self.tests):
            raise InvalidRequestError("-d (depth) is for llama.cpp in-process, not servers")
        if any(t.image for t in self.tests):
            if not in_process:
                raise InvalidRequestError(
                    "--image measures llama.cpp in-process with the model's projector: "
                    "bench the GGUF itself (and --mmproj), not a server"
                )
            if self.image is None or self.mmproj is None:
                raise InvalidRequestError("an image test needs an image and a projector "
                                          "(--image FILE and --mmproj FILE)")

    def identity(self, test: Test) -> Identity:
        """What names this test's row; settings a server owns are None."""
        local = self.target.in_process
        # The chat view (images too) runs the runtime's backend: f16 KV cache, llama.cpp's
        # micro-batch.
        chat = local and (test.chat or test.image)
        return Identity(
            runtime=self.target.runtime,
            model=self.target.name,
            test=test.name,
            n_threads=self.n_threads if local else None,
            n_gpu_layers=self.n_gpu_layers if local else None,
            flash_attn=self.flash_attn if local else None,
            type_k=("f16" if chat else self.type_k) if local else None,
            type_v=("f16" if chat else self.type_v) if local else None,
            n_batch=self.n_batch if local else None,
            n_ubatch=(CHAT_UBATCH if chat else self.n_ubatch) if local else None,
            concurrency=self.concurrency,
            image=self.image if test.image else None,
            mmproj=self.mmproj if test.image else None,
        )

    def key(self, test: Test) -> str:
        return self.identity(test).key()


def resolve_target(name: str, *, label: str | None = None) -> Target:
    """The runtime and model a name means (the registry's rules), checked when it is
    a local GGUF, so a bad name fails here with a clear message, before any child."""
    from borealis_local.runtime import registry

    kind, arguments = registry.describe(name)
    facts = kind.bench_target(arguments)
    return Target(name, kind.name, path=facts.path, server_model=facts.server_model,
                  base_url=facts.base_url, label=label, quant=facts.quant,
                  file_bytes=facts.file_bytes)


def default_threads() -> int:
    """Physical cores, as llama-bench's default: hyperthread siblings count once."""
    sets = set()
    for sibling in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/thread_siblings"):
        try:
            sets.add(sibling.read_text().strip())
        except OSError:
            continue
    return len(sets) or os.cpu_count() or 1


def gpu_build() -> str | None:
    """The GPU backend of the installed llama.cpp build (CUDA, Metal, …), or None."""
    from borealis_local.runtime.llama_cpp import gpu_backend

    return gpu_backend()


__all__ = [
    "CHAT_UBATCH",
    "KV_CACHE_TYPES",
    "Config",
    "Target",
    "Test",
    "default_threads",
    "gpu_build",
    "resolve_target",
]
