"""The vision projector (mmproj GGUF) of Borealis 4b, 12b and 27b: which file in a repo
listing it is, which file on this machine belongs to a model, and what it is.

Which file. The projector's name in the Borealis GGUF repos is not published, so it is
found as `llama-server -hf` finds it (llama.cpp common/download.cpp, find_best_mmproj):
a `.gguf` whose name holds `mmproj`, in the model file's folder or one above it; the
deepest such folder first, then the quantisation nearest the model file's in bits (the
number in the name's last tag: F16 and BF16 are 16, Q8_0 is 8), then the first in the
listing. Following llama.cpp exactly means `borealis pull 4b` and `llama-server -hf
NbAiLab/borealis-4b-gguf` fetch the same file.

On this machine. A projector is looked for next to the model file (the same folder: a
hub cache snapshot, `--local-dir`, $BOREALIS_MODELS) and, for a catalog model, in the
hub cache's snapshots of its repo. A folder can hold the projectors of several models,
so only one whose projection width (`clip.vision.projection_dim`) is the model's hidden
size is taken (libmtmd refuses any other), and among those one whose name holds the
model's own name comes first; then the rule above.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis_local.catalog import MODELS, Model, model_named
from borealis_local.errors import InvalidModelFileError

MMPROJ_MARK = "mmproj"
PROJECTION_DIM_KEY = "clip.vision.projection_dim"
_SPLIT = re.compile(r"^(.+)-([0-9]{5})-of-([0-9]{5})$", re.IGNORECASE)
_TAG = re.compile(r"[-.]([A-Z0-9_]+)$", re.IGNORECASE)


def is_projector_name(path: str) -> bool:
    """Whether a repo path or file name is a projector GGUF, as llama.cpp tells them."""
    return path.endswith(".gguf") and MMPROJ_MARK in path.rsplit("/", 1)[-1]


def quant_bits(path: str) -> int:
    """The bits of a GGUF name's quantisation tag (Q4_K_M 4, F16 16, BF16 16, none 0)."""
    stem = path.removesuffix(".gguf")
    if match := _SPLIT.match(stem):
        stem = match[1]
    tag = _TAG.search(stem)
    digits = re.search(r"[0-9]+", tag[1]) if tag else None
    return int(digits[0]) if digits else 0


def pick_projector(listing: Iterable[str], model_path: str) -> str | None:
    """The projector `llama-server -hf` would take for `model_path` from a repo listing
    (paths relative to the repo), or None when the listing has none."""
    model_dir = model_path.split("/")[:-1]
    model_bits = quant_bits(model_path)
    best: tuple[int, int] | None = None
    chosen = None
    for path in listing:
        if not is_projector_name(path):
            continue
        folder = path.split("/")[:-1]
        if folder != model_dir[: len(folder)]:
            continue  # not in the model's folder nor above it
        rank = (-len(folder), abs(quant_bits(path) - model_bits))
        if best is None or rank < best:
            best, chosen = rank, path
    return chosen


@dataclass(frozen=True)
class ProjectorHeader:
    """What a projector GGUF's header says, checked against the model it is for."""

    projection_dim: int | None
    projector_type: str | None
    block_count: int | None
    file_type: str | None
    tensor_count: int

    @property
    def summary(self) -> str:
        return (
            f"clip ({self.projector_type or 'no projector type'}), "
            f"{self.block_count} encoder blocks, projects to {self.projection_dim}, "
            f"{self.tensor_count} tensor(s), {self.file_type or 'no stated quantisation'}"
        )


def read_projector(path: str | os.PathLike) -> ProjectorHeader:
    """A projector's header; InvalidModelFileError when it is not a complete clip GGUF."""
    from borealis_local.runtime.gguf_check import check_gguf

    info = check_gguf(path, architectures=("clip",))
    metadata: dict[str, Any] = info.metadata
    return ProjectorHeader(
        projection_dim=_int(metadata.get(PROJECTION_DIM_KEY)),
        projector_type=metadata.get("clip.projector_type"),
        block_count=_int(metadata.get("clip.vision.block_count")),
        file_type=info.file_type,
        tensor_count=info.tensor_count,
    )


def projector_problems(
    header: ProjectorHeader, model: Model, *, complete: bool = True
) -> list[str]:
    """Where a projector's header does not fit `model` (empty when it fits). With
    `complete=False` only what loading needs (libmtmd refuses another projection width);
    a reduced-depth synthetic projector then passes."""
    tower = model.vision
    if tower is None:
        return [f"{model.name} is text-only: it takes no vision projector"]
    problems = []
    if header.projection_dim != model.shape.hidden:
        problems.append(
            f"the projector projects to {header.projection_dim}, {model.name}'s hidden "
            f"size is {model.shape.hidden}: it is another model's projector"
        )
    if not complete:
        return problems
    if header.projector_type != tower.projector_type:
        problems.append(
            f"the projector type is {header.projector_type or 'not stated'}, Gemma 3's is "
            f"{tower.projector_type}"
        )
    if header.block_count != tower.layers:
        problems.append(
            f"the encoder has {header.block_count} blocks, Gemma 3's {tower.encoder} has "
            f"{tower.layers}"
        )
    return problems


def models_for_projector(path: Path, width: int | None = None) -> list[Model]:
    """The catalog's vision models a projector file can belong to: by the hub cache
    repo it sits in, else by its name, else by its projection width."""
    repo = _cache_repo(path)
    by_repo = [model for model in MODELS if model.gguf_repo == repo]
    if by_repo:
        return by_repo
    named = _named_in(path.name, (model for model in MODELS if model.vision is not None))
    if named:
        return named
    if width is None:
        return []
    return [model for model in MODELS
            if model.vision is not None and model.shape.hidden == width]


def _named_in(filename: str, models: Iterable[Model]) -> list[Model]:
    """The models whose name is in `filename`, longest name first (borealis-open-4b is
    not taken for borealis-4b: neither name holds the other)."""
    stem = filename.lower()
    return sorted((m for m in models if m.name in stem), key=lambda m: -len(m.name))[:1]


def _cache_repo(path: Path) -> str | None:
    """The repo of a file in the hub cache (models--ORG--NAME/snapshots/COMMIT/…)."""
    for parent in path.parents:
        if parent.name.startswith("models--"):
            return parent.name.removeprefix("models--").replace("--", "/", 1)
    return None


def find_projector(model_path: str | os.PathLike) -> Path | None:
    """The vision projector for the model GGUF at `model_path`, or None.

    Looked for next to the model file and, for a catalog model, in the hub cache's
    snapshots of its repo; only a projector that fits the model (its projection width is
    the model's hidden size) is taken. A catalog model that is text-only (270m, 1b) has
    none. This reads a few GGUF headers; it never asks the network.
    """
    path = Path(model_path).expanduser()
    model = model_named(path.name) if path.name.endswith(".gguf") else None
    if model is not None and model.vision is None:
        return None
    width = model.shape.hidden if model is not None else _model_width(path)
    if width is None:
        return None
    candidates = _candidates(path, model)
    # A synthetic projector (random weights) is only ever used when given by name: found
    # by itself it would turn every image into noise without a word.
    fitting = [c for c in candidates if _projection_dim(c) == width and not is_synthetic(c)]
    if not fitting:
        return None
    if model is not None:
        named = [c for c in fitting if model.name in c.name.lower()]
        fitting = named or fitting
    by_name = {candidate.name: candidate for candidate in fitting}
    # Every candidate is in a folder of its own here: llama.cpp's rule on the names.
    chosen = pick_projector(sorted(by_name), path.name)
    return by_name[chosen] if chosen else None


def _candidates(path: Path, model: Model | None) -> list[Path]:
    folders = [path.parent]
    if model is not None:
        folders += _cache_snapshots(model)
    seen: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for candidate in sorted(folder.iterdir()):
                if is_projector_name(candidate.name) and candidate.is_file():
                    seen.setdefault(candidate.name, candidate)  # next to the model first
    return list(seen.values())


def _cache_snapshots(model: Model) -> list[Path]:
    """The hub cache's snapshot folders of the model's repo, the one refs/main names
    first."""
    from borealis_local.hub import hf_internals

    try:
        repo_dir = hf_internals.blobs_dir(model.gguf_repo, None).parent
    except ImportError:  # no huggingface_hub: no hub cache to look in
        return []
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return []
    main = repo_dir / "refs" / "main"
    first = main.read_text().strip() if main.is_file() else None
    return sorted(snapshots.iterdir(), key=lambda folder: folder.name != first)


def is_synthetic(path: str | os.PathLike) -> bool:
    """Whether a GGUF says it is synthetic (`borealis synth`: random weights, not a
    model), by its general.tags."""
    from borealis_local.gguf_header import read_header

    try:
        tags = read_header(Path(path)).metadata.get("general.tags")
    except (OSError, InvalidModelFileError):
        return False
    return tags is not None and "synthetic" in tags.value


def _projection_dim(path: Path) -> int | None:
    try:
        return read_projector(path).projection_dim
    except InvalidModelFileError:
        return None  # a broken or partial file is not a projector to load


def _model_width(path: Path) -> int | None:
    """The hidden size a GGUF's header states (`ARCH.embedding_length`)."""
    from borealis_local.runtime.gguf_check import check_gguf

    try:
        info = check_gguf(path, architectures=("gemma3",))
    except InvalidModelFileError:
        return None
    return _int(info.metadata.get(f"{info.architecture}.embedding_length"))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

