"""What Ollama gets for every Borealis size and variant, from the catalog: Modelfiles,
the parameters `borealis create` sends, and the hub-side `template` and `params` files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from borealis_local.catalog import CHAT_FORMAT, DEFAULT_QUANT, SAMPLING, Model
from borealis_local.errors import BorealisError
from borealis_local.licences import license_text
from borealis_local.templates import GENERATED_NOTE, ollama_template

GiB = 1024**3


def _triple_quoted(text: str, what: str) -> str:
    # Modelfile strings have no escapes: a value holding """ cannot be written at all.
    if '"""' in text:
        raise BorealisError(f'{what} contains """, which a Modelfile cannot quote: remove it')
    return f'"""{text}"""'


def _header(
    model: Model, *, from_path: str | None, system: str | None, mmproj: str | None = None
) -> list[str]:
    kind = "full" if model.variant == "full" else "open (no press material)"
    lines = [
        f"# {model.name}: Borealis {model.size.upper()}, {kind} variant.",
        "# The National Library of Norway's Norwegian-centric (Bokmål, Nynorsk, English)",
        "# instruction-tuned model, based on Gemma 3.",
        f"# Licence: {model.license.name}, {model.license.url} (LICENSE below).",
    ]
    if model.gated and from_path is None:
        page = f"https://huggingface.co/{model.gguf_repo}"
        local = f"borealis modelfile {model.size} --from FILE.gguf"
        lines += [
            f"# The hub repo is gated: accept the licence at {page}",
            "# and add your Ollama key (~/.ollama/id_ed25519.pub) to your Hugging Face account, or",
            f"# download the GGUF and use `{local}` instead.",
        ]
    if model.vision is not None:
        lines += _vision_header(model, from_path=from_path, mmproj=mmproj)
    lines += [
        "#",
        "# Create and run it:",
        f"#   ollama create {model.ollama_tag} -f modelfiles/{model.modelfile_name}",
        f"#   ollama run {model.ollama_tag}",
        "#",
    ]
    if system is None:
        lines += [
            "# No SYSTEM: Borealis has its system prompt baked into the weights. A system",
            "# message you send is folded into the first user turn, as Gemma 3 was trained.",
        ]
    else:
        lines += ["# SYSTEM is set below; the template folds it into the first user turn."]
    lines.append(f"# {GENERATED_NOTE}")
    return lines


def _vision_header(model: Model, *, from_path: str | None, mmproj: str | None) -> list[str]:
    """What the Modelfile does with Gemma 3's vision projector (mmproj GGUF). Ollama makes
    a FROM of a local projector GGUF a projector layer (server/create.go,
    isProjectorGGUF) and runs it beside the model; it ignores local files when FROM
    names a model to pull instead (CreateHandler takes `from` before `files`)."""
    variant = "" if model.variant == "full" else f" --variant {model.variant}"
    local = f"borealis modelfile {model.size}{variant} --from FILE.gguf"
    if mmproj is not None:
        return [
            "# Images: the second FROM is the model's vision projector (mmproj GGUF); Ollama",
            "# makes it the model's projector layer, so the model takes images.",
        ]
    if from_path is not None:
        return [
            "# No vision projector was found beside the GGUF, so this Modelfile serves text.",
            f"# `{model.pull_command()}` fetches the projector (mmproj) next to the model;",
            f"# then `{local}` adds it as a second FROM, for images.",
        ]
    text = (
        "Images: Ollama takes Gemma 3's vision projector (mmproj GGUF) only as a second FROM "
        "of a local file, never beside a FROM of the hub; whether the hub's registry serves "
        f"this repo's projector to Ollama is not confirmed. For images, `{model.pull_command()}` "
        f"(the GGUF and its projector), then `{local}` or `borealis create {model.size}"
        f"{variant} --from FILE.gguf`, which add the projector's FROM line."
    )
    return ["# " + line for line in textwrap.wrap(text, 86, break_on_hyphens=False)]


def ollama_parameters(model: Model, num_ctx: int | None = None) -> dict[str, Any]:
    """The parameters every Ollama form of the model carries (Modelfile, create, the
    hub's params file): stop on end of turn, Gemma 3's sampling, the context."""
    num_ctx = num_ctx or model.default_num_ctx
    if num_ctx < 1:
        raise BorealisError(f"num_ctx must be a positive number of tokens, not {num_ctx}")
    if num_ctx > model.context_length:
        raise BorealisError(
            f"num_ctx {num_ctx} is over {model.name}'s context length "
            f"{model.context_length}: choose at most {model.context_length}"
        )
    return {
        "stop": [CHAT_FORMAT.end_of_turn],
        "temperature": SAMPLING.temperature,
        "top_k": SAMPLING.top_k,
        "top_p": SAMPLING.top_p,
        "num_ctx": num_ctx,
    }


def hub_files(model: Model) -> dict[str, str]:
    """The files a hub repo can carry for Ollama, which it then uses instead of its own
    guess (the hub's Ollama documentation): `template`, a Go template, and `params`,
    JSON with Modelfile parameter names. The same template and parameters as our
    Modelfiles. No `system` file: Borealis needs no system prompt. The template file
    holds exactly the template: a trailing newline would end up in every prompt."""
    return {
        "template": ollama_template(),
        "params": json.dumps(ollama_parameters(model), indent=2) + "\n",
    }


def write_hub_files(directory: Path) -> list[Path]:
    """Every repo's hub files, in DIRECTORY/<owner>/<repo>/."""
    from borealis_local.catalog import MODELS

    written = []
    for model in MODELS:
        folder = directory / model.gguf_repo
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in hub_files(model).items():
            (folder / name).write_text(text)
            written.append(folder / name)
    return written


def render_modelfile(
    model: Model,
    *,
    quant: str = DEFAULT_QUANT,
    from_path: str | Path | None = None,
    num_ctx: int | None = None,
    system: str | None = None,
    mmproj: str | Path | None = None,
) -> str:
    """One Modelfile. `from_path` points FROM at a local GGUF instead of the hub;
    `mmproj`, the model's vision projector beside it, becomes a second FROM line."""
    if mmproj is not None and (from_path is None or model.vision is None):
        raise BorealisError(
            f"{model.name} is text-only: it takes no vision projector" if model.vision is None
            else "a projector needs a local model file (--from FILE.gguf): Ollama ignores "
            "local files when FROM names a model to pull"
        )
    mmproj = None if mmproj is None else str(mmproj)
    if from_path is not None:
        from_path = str(from_path)
        source = from_path
    else:
        source = model.hub_reference(quant)
    parameters = ollama_parameters(model, num_ctx)
    num_ctx = parameters["num_ctx"]
    kv_gib = model.shape.kv_cache_bytes(num_ctx) / GiB
    lines = _header(model, from_path=from_path, system=system, mmproj=mmproj)
    lines += ["", f"FROM {source}"]
    if mmproj is not None:
        lines.append(f"FROM {mmproj}")
    lines += [
        "",
        f"TEMPLATE {_triple_quoted(ollama_template(), 'the template')}",
        "",
        "# Gemma 3 ends every turn with this token.",
        *(f'PARAMETER stop "{stop}"' for stop in parameters["stop"]),
        f"# Sampling: {SAMPLING.source}.",
        f"PARAMETER temperature {parameters['temperature']:g}",
        f"PARAMETER top_k {parameters['top_k']}",
        f"PARAMETER top_p {parameters['top_p']:g}",
        "# Context: Ollama's default (4096 on most machines) silently cuts long prompts from the",
        f"# front, retrieved documents first. {num_ctx} tokens "
        f"(the model takes {model.context_length}) need about",
        f"# {kv_gib:.2f} GiB of f16 KV cache on top of the weights (Gemma 3's sliding-window",
        "# layers keep only their window). Raise it for longer documents if memory allows.",
        f"PARAMETER num_ctx {num_ctx}",
    ]
    if system is not None:
        lines += ["", f"SYSTEM {_triple_quoted(system, 'the system prompt')}"]
    lines += ["", f"LICENSE {_triple_quoted(license_text(model), 'the licence')}", ""]
    return "\n".join(lines)
