"""llama-server router presets (`llama-server --models-preset borealis.ini`)."""

from __future__ import annotations

from pathlib import Path

from borealis_local.catalog import DEFAULT_QUANT, MODELS, SAMPLING, Model
from borealis_local.templates import GENERATED_NOTE

# Relative to the directory llama-server starts in: the repository root.
JINJA_TEMPLATE_PATH = "modelfiles/templates/borealis.jinja"


def llama_server_presets(quant: str = DEFAULT_QUANT) -> str:
    """One section per size and variant, each complete on its own so it can be copied.

    Keys are llama-server's long options without the dashes (llama.cpp docs/preset.md).
    """
    lines = [
        "# llama-server router presets for every Borealis size and variant.",
        "# Start llama-server in the borealis-local repository root (the template path is",
        "# relative):  llama-server --models-preset modelfiles/llama-server/borealis.ini",
        "# Full models are gated: accept the licence on their hub page and set HF_TOKEN.",
        "# For 4b, 12b and 27b, hf-repo also fetches the repo's vision projector (mmproj),",
        "# as -hf does; add `no-mmproj = true` to a section to serve text only.",
        f"# Sampling: {SAMPLING.source}.",
        f"# {GENERATED_NOTE}",
        "version = 1",
    ]
    for model in MODELS:
        lines += ["", *_section(model, [f"hf-repo = {model.gguf_repo}:{quant}"])]
    return "\n".join(lines) + "\n"


def local_preset(model: Model, path: str | Path, mmproj: str | Path | None = None) -> str:
    """The model's section for a local file (`model = PATH`), with `mmproj = PATH` when
    the file has a vision projector (`hub.find_projector`)."""
    source = [f"model = {path}"]
    if mmproj is not None:
        source.append(f"mmproj = {mmproj}")
    return "\n".join(_section(model, source)) + "\n"


def _section(model: Model, source: list[str]) -> list[str]:
    return [
        f"[{model.name}]",
        *source,
        "jinja = true",
        f"chat-template-file = {JINJA_TEMPLATE_PATH}",
        f"ctx-size = {model.default_num_ctx}",
        f"temp = {SAMPLING.temperature:g}",
        f"top-k = {SAMPLING.top_k}",
        f"top-p = {SAMPLING.top_p:g}",
    ]
