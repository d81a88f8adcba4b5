"""The files under modelfiles/ that people use directly, generated from the catalog.

They are committed so they work from a plain checkout; a test fails when a committed
file differs from what the generator makes (`borealis modelfile --write` mends it).
"""

from __future__ import annotations

from pathlib import Path

from borealis_local.catalog import MODELS
from borealis_local.modelfile import render_modelfile
from borealis_local.presets import JINJA_TEMPLATE_PATH, llama_server_presets
from borealis_local.templates import jinja_template, ollama_template

DEFAULT_DIR = Path("modelfiles")


def generated_artefacts() -> dict[str, str]:
    """Every generated file, by its path under modelfiles/."""
    files = {model.modelfile_name: render_modelfile(model) for model in MODELS}
    files["templates/borealis.gotmpl"] = ollama_template()
    files[Path(JINJA_TEMPLATE_PATH).relative_to(DEFAULT_DIR).as_posix()] = jinja_template()
    files["llama-server/borealis.ini"] = llama_server_presets()
    return files


def write_artefacts(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every generated file; returns the paths whose contents changed."""
    changed = []
    for name, text in generated_artefacts().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale_artefacts(directory: Path = DEFAULT_DIR) -> list[Path]:
    """The generated files that are missing or differ from the generator."""
    return [
        directory / name
        for name, text in generated_artefacts().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
