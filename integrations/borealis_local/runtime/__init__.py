"""One runtime layer over llama.cpp (in-process), Ollama and OpenAI-compatible servers.

Backends load their client library only when constructed, so importing this package
stays light.
"""

from borealis_local.runtime.base import Backend, Chunk, Completion, Options, Timings, Usage

__all__ = ["Backend", "Chunk", "Completion", "Options", "Timings", "Usage"]
