"""Pictures and typed messages for the image tests (in-process and Ollama)."""

from __future__ import annotations

import io

import pytest

from borealis_local.bench.synth import synthesize_projector
from borealis_local.catalog import SHAPES

# One encoder block instead of Gemma 3's 27: an image encodes in a few seconds on two
# cores, and the tokens it yields do not depend on the depth.
LAYERS = 1


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    """A synthetic Gemma 3 projector for the stand-in's width (random weights)."""
    return synthesize_projector(tmp_path_factory.mktemp("mmproj"), SHAPES["270m"].hidden,
                                layers=LAYERS)


def png(color: str, size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def image(data: bytes) -> dict:
    return {"type": "image", "image": data}


def user(*parts) -> list[dict]:
    return [{"role": "user", "content": list(parts)}]
