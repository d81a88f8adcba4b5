"""What is on this machine, and how to run it: Borealis GGUFs in the Hugging Face
cache, in $BOREALIS_MODELS and wherever one was verified (with the state the record of
verified files gives each, or "partial" for a download not finished); the Borealis
models in Ollama; and the llama-server preset for a pulled file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from borealis_local.catalog import MODELS, Model
from borealis_local.errors import InvalidModelFileError
from borealis_local.hub import hf_internals
from borealis_local.hub.download import PARTIAL_SUFFIX
from borealis_local.hub.projector import (
    find_projector,
    is_projector_name,
    models_for_projector,
    read_projector,
)
from borealis_local.hub.record import RecordedState, recorded_paths, recorded_state
from borealis_local.hub.verification import catalog_file


@dataclass(frozen=True)
class LocalFile:
    """A Borealis GGUF (or a partial download of one) on this machine."""

    name: str
    """`borealis-4b:Q4_K_M`."""
    path: Path
    size: int
    where: str
    """"HF cache", "$BOREALIS_MODELS" or "elsewhere" (a file verified by path)."""
    state: Literal["partial"] | RecordedState
    """"verified", "not verified", "hash mismatch" or "partial"."""
    projector_of: str | None = None
    """For a vision projector (mmproj GGUF): the model it belongs to, `borealis-4b`."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "size": self.size,
                "where": self.where, "state": self.state, "projector_of": self.projector_of}


def local_files(cache_dir: str | os.PathLike | None = None) -> list[LocalFile]:
    """Borealis GGUFs in the Hugging Face cache, in $BOREALIS_MODELS and wherever a file
    was verified, the vision projectors of 4b, 12b and 27b among them; and partial
    downloads, which are never taken for a model."""
    from borealis_local.runtime.resolve import MODELS_DIR_ENV

    found: dict[Path, LocalFile] = {}
    candidates = list(_cached_files(cache_dir))
    models_dir = os.environ.get(MODELS_DIR_ENV)
    if models_dir:
        candidates += [(path, "$" + MODELS_DIR_ENV) for path in Path(models_dir).glob("*")]
    candidates += [(path, "elsewhere") for path in recorded_paths()]
    for path, where in candidates:
        local = _local_file(path, where)
        if local is not None:
            found.setdefault(path.resolve(), local)
    return sorted(found.values(), key=_listed_order)


def _listed_order(local: LocalFile) -> tuple:
    """By model, each model's files before its projector."""
    model = local.name.split(" ", 1)[0].split(":", 1)[0]
    return model, local.projector_of is not None, local.name, str(local.path)


def _cached_files(cache_dir: str | os.PathLike | None) -> Iterator[tuple[Path, str]]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    repos = {model.gguf_repo for model in MODELS}
    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return
    for repo in cache.repos:
        if repo.repo_id in repos and repo.repo_type == "model":
            for revision in repo.revisions:
                yield from ((cached.file_path, "HF cache") for cached in revision.files)
    # A repo with only a partial download has no snapshot yet, which the scan skips.
    for repo_id in sorted(repos):
        blobs = hf_internals.blobs_dir(repo_id, cache_dir)
        yield from ((partial, "HF cache") for partial in blobs.glob("*" + PARTIAL_SUFFIX))


def _local_file(path: Path, where: str) -> LocalFile | None:
    filename, partial = path.name, path.name.endswith(PARTIAL_SUFFIX)
    if partial:  # NAME.gguf.ETAG.partial
        filename = filename.removesuffix(PARTIAL_SUFFIX).rpartition(".")[0]
    if is_projector_name(filename):
        return _local_projector(path, where, partial)
    catalog = catalog_file(filename)
    if catalog is None or not path.is_file():
        return None
    model, quant = catalog
    state = "partial" if partial else recorded_state(path)
    return LocalFile(f"{model.name}:{quant}", path, path.stat().st_size, where, state)


def _local_projector(path: Path, where: str, partial: bool) -> LocalFile | None:
    """A projector whose model is known: by the cache repo it is in, by its name, or (a
    complete file) by its projection width; others are not Borealis files."""
    if not path.is_file():
        return None
    width = None
    if not partial:
        try:
            width = read_projector(path).projection_dim
        except InvalidModelFileError:
            width = None
    models = models_for_projector(path, width)
    if not models:
        return None
    owner = " or ".join(model.name for model in models)
    state = "partial" if partial else recorded_state(path)
    return LocalFile(f"{owner} vision projector", path, path.stat().st_size, where, state,
                     projector_of=owner)


def ollama_models(host: str | None = None) -> tuple[list[dict[str, Any]] | None, str]:
    """The Borealis models in Ollama and a line saying where Ollama is; None instead of
    the list when Ollama cannot be asked (that is not an error here)."""
    try:
        import httpx
        import ollama
    except ImportError:
        return None, "the Ollama client is not installed (pip install 'borealis-local[ollama]')"
    from borealis_local.runtime.ollama import ollama_host

    host = ollama_host(host)
    client = ollama.Client(host=host, timeout=5)
    try:
        listed = client.list()
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError):
        return None, f"Ollama is not running at {host} (start it with `ollama serve`)"
    finally:
        client.close()
    models = [
        {"name": model.model, "size": model.size}
        for model in listed.models
        if "borealis" in (model.model or "").lower()
    ]
    return models, f"Ollama at {host}"


def llama_server_preset(model: Model, quant: str, path: Path,
                        mmproj: Path | None = None) -> str:
    """The model's llama-server preset section (presets.py), with the local file in
    place of the hub repo, and its vision projector (`mmproj`, else the one
    `find_projector` finds beside it) where it has one."""
    from borealis_local.presets import local_preset

    if mmproj is None and model.vision is not None:
        mmproj = find_projector(path)
    return local_preset(model, path, mmproj)
