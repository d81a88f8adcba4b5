"""One exception hierarchy for the whole project.

Every message says what went wrong and what to do next, so the CLI can print it as
one line and exit non-zero.
"""


class BorealisError(Exception):
    """Base class of every error borealis-local raises on purpose."""


class UnknownModelError(BorealisError, KeyError):
    """A model name, size, variant or quantisation the catalog does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ModelfileError(BorealisError):
    """A Modelfile that Ollama would reject, with the line it fails on."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"(line {self.line}): {self.message}" if self.line else self.message


class InvalidRequestError(BorealisError, ValueError):
    """An option or message no backend accepts (a negative temperature, a tool role)."""


class InvalidModelFileError(BorealisError):
    """A file that is missing, not a GGUF, truncated or for another architecture.

    Raised before llama.cpp opens the file, so a bad file never crashes the process.
    """


class BackendError(BorealisError):
    """A runtime (llama.cpp, Ollama, an OpenAI-compatible server) failed."""


class ServerUnavailableError(BackendError):
    """The server is not running or not reachable at its address."""


class ModelNotFoundError(BackendError):
    """The runtime has no model by that name."""


class ContextOverflowError(BackendError):
    """The prompt does not fit the context window: we never truncate silently."""

    def __init__(self, message: str, *, prompt_tokens: int, n_ctx: int):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class BackendTimeoutError(BackendError, TimeoutError):
    """The runtime did not answer in time."""


class StreamInterruptedError(BackendError):
    """The connection broke in the middle of a streamed answer."""
