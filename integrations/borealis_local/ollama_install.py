"""Installing Borealis into Ollama: `borealis create`, through Ollama's create API.

The model gets our Go chat template, the catalog's parameters and its licence; its
weights come from a local GGUF (uploaded as a blob) or from the hub (Ollama pulls them).
A 4b, 12b or 27b created from a local GGUF brings its vision projector (the mmproj GGUF
beside it, `hub.find_projector`) as a second file: Ollama makes a projector GGUF a
projector layer of the model (server/create.go, isProjectorGGUF), so the model takes
images. Ollama ignores uploaded files when the model comes from the hub (`from`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from borealis_local import templates
from borealis_local.catalog import DEFAULT_QUANT, Model
from borealis_local.errors import BackendError, BorealisError, InvalidModelFileError
from borealis_local.modelfile import license_text, ollama_parameters
from borealis_local.runtime.ollama import ollama_host, translate_error


class CreateProgress(NamedTuple):
    """One step of `create_model`, for a progress display."""

    status: str
    completed: int | None = None
    total: int | None = None


def create_model(
    model: Model,
    *,
    quant: str = DEFAULT_QUANT,
    from_path: str | os.PathLike | None = None,
    tag: str | None = None,
    num_ctx: int | None = None,
    host: str | None = None,
    timeout: float | None = 600.0,
    mmproj: str | os.PathLike | None = None,
    find_mmproj: bool = True,
) -> Iterator[CreateProgress]:
    """Install a Borealis model into Ollama as `tag` (default `model.ollama_tag`),
    yielding progress.

    The model gets our Go chat template, the catalog's parameters (stop <end_of_turn>,
    SAMPLING, num_ctx = `model.default_num_ctx` unless given) and its licence. Its
    weights come from a local GGUF (`from_path`: checked, then uploaded as a blob; the
    client hashes the whole file first, which takes a while for large ones) or from the
    hub (`model.hub_reference(quant)`, which Ollama pulls). `mmproj`: the vision
    projector to upload with a local GGUF; by default (`find_mmproj`) the one beside it.
    """
    import ollama

    host = ollama_host(host)
    tag = tag or model.ollama_tag
    path = Path(from_path) if from_path is not None else None
    if path is not None:
        _check_gguf(path, model)
    projector = _projector(model, path, mmproj, find_mmproj)
    client = ollama.Client(host=host, timeout=timeout)
    try:
        with _create_errors(host, tag, model, from_hub=path is None, timeout=timeout):
            client.list()  # fail fast, before hashing a file of gigabytes
            if path is not None:
                size = path.stat().st_size
                yield CreateProgress(f"uploading {path.name}", 0, size)
                digest = client.create_blob(path)
                yield CreateProgress(f"uploaded {path.name} as {digest}", size, size)
                source: dict[str, Any] = {"files": {path.name: digest}}
                if projector is not None:
                    size = projector.stat().st_size
                    yield CreateProgress(f"uploading the vision projector {projector.name}",
                                         0, size)
                    digest = client.create_blob(projector)
                    yield CreateProgress(f"uploaded {projector.name} as {digest}", size, size)
                    source["files"][projector.name] = digest
            else:
                source = {"from_": model.hub_reference(quant)}
            parts = client.create(
                tag,
                template=templates.ollama_template(),
                license=license_text(model),
                parameters=ollama_parameters(model, num_ctx),
                stream=True,
                **source,
            )
            for part in parts:
                yield CreateProgress(part.status or "", part.completed, part.total)
    finally:
        client.close()


def _projector(
    model: Model, path: Path | None, mmproj: str | os.PathLike | None, find: bool
) -> Path | None:
    """The projector to upload with the model file, checked to fit the model."""
    from borealis_local.hub.projector import find_projector, projector_problems, read_projector

    if mmproj is None:
        if path is None or model.vision is None or not find:
            return None
        return find_projector(path)
    if path is None:
        raise BorealisError(
            "a vision projector needs the model from a local file (--from FILE.gguf): "
            "Ollama ignores uploaded files when the model comes from the hub"
        )
    projector = Path(mmproj).expanduser()
    problems = projector_problems(read_projector(projector), model, complete=False)
    if problems:
        raise InvalidModelFileError(f"{projector} does not fit {model.name}: "
                                    + "; ".join(problems))
    return projector


def _check_gguf(path: Path, model: Model) -> None:
    """The full checker when this install has it, else the magic bytes."""
    try:
        from borealis_local.runtime.gguf_check import check_gguf
    except ImportError:
        _check_gguf_magic(path, model)
    else:
        check_gguf(path)


def _check_gguf_magic(path: Path, model: Model) -> None:
    if not path.is_file():
        raise InvalidModelFileError(f"{path} is not a file: give the path of a Borealis GGUF")
    with path.open("rb") as file:
        head = file.read(4)
    if head != b"GGUF":
        raise InvalidModelFileError(
            f"{path} is not a GGUF file (it starts with {head!r}, not b'GGUF'): give a "
            f"{model.name} .gguf file, e.g. {model.gguf_filename()} from {model.gguf_repo}"
        )


@contextmanager
def _create_errors(host: str, tag: str, model: Model, *, from_hub: bool, timeout):
    import ollama

    try:
        yield
    except ollama.ResponseError as error:
        message = error.error
        if "GGUF" in message:
            raise InvalidModelFileError(f"Ollama refused the file: {message}") from error
        hint = ""
        if from_hub and model.gated:
            hint = (
                f". The hub repo is gated: accept the licence at https://huggingface.co/"
                f"{model.gguf_repo} and add your Ollama key (~/.ollama/id_ed25519.pub) to "
                "your Hugging Face account, or download the GGUF and use --from FILE"
            )
        raise BackendError(f"Ollama at {host} could not create {tag}: {message}{hint}") from error
    except BorealisError:
        raise
    except Exception as error:
        translated = translate_error(error, host, tag, timeout)
        if translated is None:
            raise
        raise translated from error
