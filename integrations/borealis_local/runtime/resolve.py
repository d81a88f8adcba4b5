"""Where a model name points on this machine: local GGUF paths and catalog models.

The registry (`runtime.registry`) decides which runtime takes a name; these are the
rules the in-process llama.cpp kind uses to recognise its names.
"""

from __future__ import annotations

import os
from pathlib import Path

from borealis_local.catalog import Model
from borealis_local.errors import ModelNotFoundError

MODELS_DIR_ENV = "BOREALIS_MODELS"


def looks_like_path(name: str) -> bool:
    """Whether a model name is a file path. Ollama names hold slashes too (`user/model`,
    `huggingface.co/…`): only these are paths."""
    return name.endswith(".gguf") or name.startswith(("/", "./", "../", "~"))


def find_local_gguf(model: Model, quant: str) -> Path:
    """The catalog model's GGUF on this machine: in $BOREALIS_MODELS, or in the
    Hugging Face cache where `borealis pull` puts it."""
    filename = model.gguf_filename(quant)
    models_dir = os.environ.get(MODELS_DIR_ENV)
    if models_dir and (Path(models_dir) / filename).is_file():
        return Path(models_dir) / filename
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        cached = None
    else:
        cached = try_to_load_from_cache(repo_id=model.gguf_repo, filename=filename)
    if isinstance(cached, str):
        return Path(cached)
    raise ModelNotFoundError(
        f"{model.name}:{quant} is not on this machine: download it with "
        f"`{model.pull_command(quant)}` (or put {filename} in ${MODELS_DIR_ENV}), "
        f"or use it through Ollama as {model.ollama_tag}"
    )


def find_local_projector(model_path: str | os.PathLike) -> Path | None:
    """The vision projector (mmproj GGUF) for a local model file, for
    `LlamaCppBackend(mmproj=…)`: beside the file, or in the hub cache for a catalog
    model (`hub.find_projector`); None for a text-only model or when there is none."""
    from borealis_local.hub.projector import find_projector

    return find_projector(model_path)
