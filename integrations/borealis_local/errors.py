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
