"""One way to name a model, whatever runs it.

    borealis-open-4b:Q8_0        a catalog name: the GGUF on this machine, in llama.cpp
    ./borealis-4b-Q4_K_M.gguf    a local GGUF file, in llama.cpp
    borealis:4b, hf.co/…         an Ollama tag (`ollama:NAME` forces Ollama)
    openai:MODEL@BASE_URL        any OpenAI-compatible server (llama-server, vLLM, …)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from borealis_local.catalog import Model, parse_name
from borealis_local.errors import InvalidRequestError, ModelNotFoundError, UnknownModelError
from borealis_local.runtime.base import Backend, Options

MODELS_DIR_ENV = "BOREALIS_MODELS"


def describe(name: str) -> tuple[str, dict[str, Any]]:
    """Which backend a name means and its arguments, without opening anything."""
    name = name.strip()
    if not name:
        raise InvalidRequestError("no model named: give a catalog name, a .gguf path, "
                                  "an Ollama tag or openai:MODEL@URL")
    if name.startswith("openai:"):
        model, at, base_url = name.removeprefix("openai:").partition("@")
        if not (model and at and base_url.startswith(("http://", "https://"))):
            raise InvalidRequestError(
                f"{name!r}: write an OpenAI-compatible server as openai:MODEL@BASE_URL, "
                "e.g. openai:borealis-4b@http://127.0.0.1:8080/v1"
            )
        return "openai", {"model": model, "base_url": base_url}
    if name.startswith("ollama:"):
        return "ollama", {"model": name.removeprefix("ollama:")}
    if _looks_like_path(name):
        return "llama.cpp", {"model_path": Path(name).expanduser()}
    try:
        model, quant = parse_name(name)
    except UnknownModelError:
        return "ollama", {"model": name}  # `borealis:4b`, `hf.co/…`, `gemma3`
    return "llama.cpp", {
        "model_path": find_local_gguf(model, quant),
        "name": f"{model.name}:{quant}",
        "n_ctx": model.default_num_ctx,
    }


def open_backend(name: str, *, options: Options | None = None, **kwargs: Any) -> Backend:
    """The backend for a model name; `kwargs` go to that backend's constructor."""
    kind, arguments = describe(name)
    arguments.update(kwargs)
    if kind == "openai":
        from borealis_local.runtime.openai_compat import OpenAIBackend

        return OpenAIBackend(options=options, **arguments)
    if kind == "ollama":
        from borealis_local.runtime.ollama import OllamaBackend

        return OllamaBackend(options=options, **arguments)
    from borealis_local.runtime.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(options=options, **arguments)


def _looks_like_path(name: str) -> bool:
    # Ollama names hold slashes too (`hf.co/…`, `user/model:tag`): only these are paths.
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
