"""One exception hierarchy for the whole project, in this one module.

Every message says what went wrong and what to do next, so the CLI can print it as
one line and exit non-zero. Every error pickles whole (its keyword fields included),
so the benchmark's child process hands the parent the error itself.
"""


class BorealisError(Exception):
    """Base class of every error borealis-local raises on purpose."""

    def __reduce__(self):
        # Exception pickles as cls(*args), which loses keyword-only fields (n_ctx, …).
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[BorealisError], args: tuple, state: dict) -> BorealisError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


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


class StructuredOutputError(BackendError, ValueError):
    """A JSON-constrained answer (json_schema, json_mode) that max_tokens cut before its
    JSON closed: the text is kept, and the fix is a larger max_tokens."""

    def __init__(self, message: str, *, text: str, max_tokens: int | None):
        super().__init__(message)
        self.text = text
        self.max_tokens = max_tokens


# -- getting the weights -----------------------------------------------------------------


class HubError(BorealisError):
    """The hub refused the request or could not be reached, and the cache cannot stand in."""


class HubUnreachableError(HubError):
    """No answer from the hub: no network, a proxy in the way, or HF_HUB_OFFLINE=1."""


class DownloadInterruptedError(HubError):
    """The download broke off; the part already fetched is kept and resumed next time."""


class LicenseNotAcceptedError(BorealisError):
    """A model whose licence restricts its use, pulled before the licence was accepted."""


class ChecksumMismatchError(InvalidModelFileError):
    """A file whose SHA-256 is not the one published for it."""

    def __init__(self, message: str, *, expected: str, actual: str):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


# -- prompts -------------------------------------------------------------------------------


class UnknownLanguageError(InvalidRequestError):
    """A language code other than nb, nn or en (or auto, where text decides)."""


# -- images --------------------------------------------------------------------------------


class ImageError(InvalidRequestError):
    """An image that cannot be used: undecodable, of a format no runtime reads, too
    large, or not to be had (a missing file, a URL that fails or times out)."""
