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
from borealis_local.hub import hf_internals
from borealis_local.hub.download import PARTIAL_SUFFIX
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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "size": self.size,
                "where": self.where, "state": self.state}


def local_files(cache_dir: str | os.PathLike | None = None) -> list[LocalFile]:
    """Borealis GGUFs in the Hugging Face cache, in $BOREALIS_MODELS and wherever a file
    was verified; and partial downloads, which are never taken for a model."""
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
    return sorted(found.values(), key=lambda local: (local.name, str(local.path)))


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
    catalog = catalog_file(filename)
    if catalog is None or not path.is_file():
        return None
    model, quant = catalog
    state = "partial" if partial else recorded_state(path)
    return LocalFile(f"{model.name}:{quant}", path, path.stat().st_size, where, state)


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


def llama_server_preset(model: Model, quant: str, path: Path) -> str:
    """The model's llama-server preset section (presets.py), with the local file in
    place of the hub repo."""
    from borealis_local.presets import llama_server_presets

    lines = llama_server_presets(quant).splitlines()
    start = lines.index(f"[{model.name}]")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    section = [
        f"model = {path}" if line.startswith("hf-repo =") else line
        for line in lines[start:end]
    ]
    return "\n".join(section) + "\n"
