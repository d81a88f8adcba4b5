"""The `image` test: a chat message with one image, through the llama.cpp backend and its
vision projector (mmproj, through libmtmd), as a user sends one.

Each rep asks about the image with a prompt that starts differently and a seed (so the
backend evaluates the whole prompt: no cached image is reused), and the backend's own
figures are kept: the image's encode time (`Timings.image_encode_ms`: the vision tower
and projector), the prompt's evaluation with the image (`prompt_ms`, which includes the
encoding, and its tokens, the image's included) and the time to the first token. One
untimed warm-up first, as every test has.

Before any child starts, `prepare` checks the picture and the model, and finds the
projector: the file given, else the model's own (beside it or in the hub cache, where
`borealis pull` puts it), or for `synthetic` (the default for the stand-in, which has
none) one written once by `synth.synthesize_projector` for the model's width into
borealis-local's cache folder, where the stand-in lives too. A synthetic projector's
row says so (`mmproj_label`), and says when its encoder is reduced in depth.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from borealis_local.bench.measure import Config, Target, Test
from borealis_local.bench.run import summary
from borealis_local.errors import InvalidRequestError

SYNTHETIC = "synthetic"
"""`--image synthetic` (a generated picture) and `--mmproj synthetic` (random weights)."""
IMAGE_ANSWER_TOKENS = 4
"""The answer's length: the test measures the image and the prompt, not generation."""
IMAGE_MESSAGE = "Kva viser biletet? Svar med éin setning."
# The generated picture: Gemma 3's input size, so nothing is resized before encoding.
SYNTHETIC_IMAGE_SIZE = 896


def synthetic_image():
    """A generated test picture (a colour gradient, 896 x 896 PNG): `--image synthetic`."""
    from PIL import Image as PILImage

    from borealis_local.runtime.images import as_image

    side = SYNTHETIC_IMAGE_SIZE
    ramp = PILImage.linear_gradient("L").resize((side, side))
    picture = PILImage.merge("RGB", (ramp, ramp.rotate(90), ramp.rotate(180)))
    return as_image(picture)


def bench_image(source: str):
    """The picture `--image` names: a file (checked and decoded), or `synthetic`."""
    from borealis_local.runtime.images import as_image

    if source == SYNTHETIC:
        return synthetic_image()
    try:
        return as_image(Path(source).expanduser())
    except InvalidRequestError as error:
        raise type(error)(f"--image: {error}") from None


def prepare(target: Target, image: str, mmproj: str | None, *, layers: int | None = None,
            progress: Callable[[str], None] | None = None) -> dict[str, str | None]:
    """The `image` test's settings for `target` (Config's `image`, `mmproj`,
    `mmproj_label`), checked: a model that sees images (or a GGUF not in the catalog),
    a picture that decodes, a projector file (`synthetic`: written here once, with
    `layers` encoder blocks, Gemma 3's 27 by default)."""
    if not target.in_process or target.path is None:
        raise InvalidRequestError(
            f"--image measures llama.cpp in-process with the model's projector: "
            f"{target.name} runs on a server; bench its GGUF with --mmproj"
        )
    check_model(target.name)
    bench_image(image)  # a bad file fails here, before any child starts
    if mmproj is None:
        from borealis_local.runtime.resolve import find_local_projector

        found = find_local_projector(target.path)  # beside it, or in the hub cache
        if found is None:
            raise InvalidRequestError(
                f"--image needs {target.name}'s vision projector and none is beside it "
                "or in the hub cache: `borealis pull SIZE` fetches it with the weights "
                "(4b, 12b, 27b), or give --mmproj FILE (the mmproj-….gguf from the "
                "model's GGUF repo), or --mmproj synthetic for one with random weights "
                "(speed and memory only)"
            )
        mmproj = str(found)
    if mmproj == SYNTHETIC:
        path = synthetic_projector(_text_width(Path(target.path)), layers, progress)
    elif layers is not None:
        raise InvalidRequestError("--mmproj-layers shapes a synthetic projector: "
                                  "add --mmproj synthetic")
    else:
        from borealis_local.runtime.gguf_check import check_gguf

        path = check_gguf(Path(mmproj).expanduser(), architectures=("clip",)).path
    return {"image": image, "mmproj": str(path), "mmproj_label": projector_label(path)}


def check_model(name: str) -> None:
    """Refuse a catalog model that sees no images (270m, 1b), before it is looked for."""
    from borealis_local.runtime.base import text_only_refusal

    refusal = text_only_refusal(name)
    if refusal:
        raise InvalidRequestError(f"--image: {refusal}")


def _text_width(model: Path) -> int:
    """The text model's hidden size, which its projector's output must match."""
    from borealis_local.gguf_header import read_header

    metadata = read_header(model).metadata
    architecture = metadata["general.architecture"].value
    return int(metadata[f"{architecture}.embedding_length"].value)


def synthetic_projector(text_hidden: int, layers: int | None = None,
                        progress: Callable[[str], None] | None = None) -> Path:
    """A synthetic Gemma 3 projector for `text_hidden` in borealis-local's cache folder,
    written once (to a temporary name first, so an interrupted write is never used)."""
    from borealis_local.bench.synth import synthesize_projector, synthetic_projector_filename
    from borealis_local.catalog import GEMMA3_VISION
    from borealis_local.paths import state_dir

    layers = GEMMA3_VISION.layers if layers is None else layers
    cache = state_dir()
    path = cache / synthetic_projector_filename(text_hidden, layers)
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress(f"writing a synthetic vision projector into {path} (once)")
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        written = synthesize_projector(scratch, text_hidden, layers=layers, progress=progress)
        os.replace(written, path)
    return path


def projector_label(path: Path) -> str | None:
    """What a row says of a projector that is not a real one (None for a real one):
    random weights, and a reduced encoder's depth."""
    from borealis_local.catalog import GEMMA3_VISION
    from borealis_local.gguf_header import read_header
    from borealis_local.hub.projector import is_synthetic

    if not is_synthetic(path):
        return None
    metadata = read_header(path).metadata
    label = "synthetic projector: random weights, not a model"
    blocks = metadata.get("clip.vision.block_count")
    if blocks is not None and blocks.value != GEMMA3_VISION.layers:
        label += (f"; REDUCED to {blocks.value} of {GEMMA3_VISION.layers} encoder blocks "
                  "(encodes faster than the real one)")
    return label


# -- the measurement (in the child) -----------------------------------------------------


def image_reps(backend, image, test: Test, config: Config) -> tuple[dict[str, Any], dict]:
    """The `image` test's reps through `backend` (a LlamaCppBackend with its projector):
    `summary`'s statistics of the prompt's evaluation with the image (its tokens per
    second), and the image fields, as row fields."""
    from borealis_local.runtime.base import normalise_messages
    from borealis_local.runtime.mtmd import ImageChunk

    def message(rep: int) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [
            {"type": "text", "text": f"({rep + 1}) {IMAGE_MESSAGE}"},
            {"type": "image", "image": image},
        ]}]

    def ask(rep: int, max_tokens: int):
        # A seed makes the backend evaluate the whole prompt, the image included.
        return backend.chat(message(rep), max_tokens=max_tokens, seed=(rep + 2) * 100)

    with backend.image_prompt(normalise_messages(message(0))) as prompt:
        image_tokens = sum(c.n_tokens for c in prompt.chunks if isinstance(c, ImageChunk))
    # The runtime reports the model's load once, with the first answer it gives.
    load_ms = ask(-1, 1).timings.load_ms if config.warmup else None
    samples_ns, samples_ts, encode_ms, ttft, tokens = [], [], [], [], []
    prompt_tokens = source = None
    for rep in range(config.reps):
        completion = ask(rep, test.n_gen)
        timings, usage = completion.timings, completion.usage
        if load_ms is None:
            load_ms = timings.load_ms
        prompt_tokens, source = usage.prompt_tokens, timings.source
        samples_ns.append(round(timings.prompt_ms * 1e6))
        samples_ts.append(1000 * usage.prompt_tokens / timings.prompt_ms)
        encode_ms.append(timings.image_encode_ms)
        ttft.append(timings.ttft_ms or 0.0)
        tokens.append(usage.completion_tokens)
    stats = summary(samples_ns, samples_ts)
    extra = {
        "ttft_ms": statistics.fmean(ttft),
        "stddev_ttft_ms": statistics.stdev(ttft) if len(ttft) > 1 else 0.0,
        "samples_ttft_ms": ttft,
        "completion_tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "prompt_ts": stats["avg_ts"],
        "timings_source": source,
        "load_ms": load_ms,
        "image_tokens": image_tokens,
        "image_encode_ms": statistics.median(encode_ms),
        "samples_image_encode_ms": encode_ms,
    }
    return stats, extra


__all__ = [
    "IMAGE_ANSWER_TOKENS",
    "SYNTHETIC",
    "bench_image",
    "check_model",
    "image_reps",
    "prepare",
    "projector_label",
    "synthetic_image",
    "synthetic_projector",
]
