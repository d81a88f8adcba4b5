"""Images for the image-text sizes (4b, 12b, 27b): every way a caller gives one, checked
and turned into one form before any backend sees it.

An image comes as raw bytes, a PIL image, a local path, a `data:` URL, or an `http(s)`
URL (fetched with a timeout and a size limit, as OpenAI's own API fetches one). It is
decoded once here, so a broken file is a clear error naming the fix, never a crash in
llama.cpp or a server's 400 later. What comes out (`Image`) holds PNG or JPEG bytes
(other formats PIL reads are converted to PNG: llama.cpp's stb_image reads neither WebP
nor AVIF), the size, and the forms the backends send: a data URL (OpenAI-compatible
servers) and base64 (Ollama's `images`).

Limits: 20 MB of encoded bytes (OpenAI's limit for one image), 50 megapixels decoded
(above it PIL's decompression-bomb guard would start to warn; Gemma 3 sees 896 × 896
anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis_local.errors import ImageError

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000
FETCH_TIMEOUT_S = 10.0
# What every runtime reads as it is; other formats PIL decodes become PNG.
PASSED_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg"}


@dataclass(frozen=True)
class Image:
    """A checked image: PNG or JPEG bytes, their MIME type, and the size in pixels."""

    data: bytes
    mime: str
    width: int
    height: int

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def digest(self) -> str:
        """SHA-256 of the bytes: the same image is the same image to a prompt cache."""
        return hashlib.sha256(self.data).hexdigest()

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"


def as_image(
    source: Any,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    timeout: float = FETCH_TIMEOUT_S,
) -> Image:
    """The image `source` names or holds (bytes, a PIL image, an `Image`, a path, a
    `data:` or `http(s)` URL), decoded and checked."""
    if isinstance(source, Image):
        return source
    if _is_pil_image(source):
        return _from_pil(source, max_pixels)
    if isinstance(source, bytes | bytearray | memoryview):
        return _decoded(bytes(source), "the image bytes", max_bytes, max_pixels)
    if isinstance(source, Path):
        return _decoded(_read_file(source, max_bytes), str(source), max_bytes, max_pixels)
    if isinstance(source, str):
        data, where = _bytes_of(source, max_bytes, timeout)
        return _decoded(data, where, max_bytes, max_pixels)
    raise ImageError(
        f"an image must be bytes, a PIL image, a path or a URL, not {type(source).__name__}"
    )


def _bytes_of(text: str, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme == "data":
        return _from_data_url(text), "the data: URL"
    if scheme in ("http", "https"):
        return _fetch(text, max_bytes, timeout), text
    if scheme == "file":
        text = urllib.request.url2pathname(urllib.parse.urlsplit(text).path)
    elif scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive
        raise ImageError(f"an image URL must be data:, http: or https:, not {scheme}:")
    path = Path(text).expanduser()
    return _read_file(path, max_bytes), str(path)


def _from_data_url(url: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ImageError("a data: URL image must be base64: data:image/png;base64,...")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("the data: URL's base64 is broken; encode the image again") from None


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(_too_large(str(path), size, max_bytes))
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no such image file: {path}") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image file") from None
    except OSError as error:
        raise ImageError(f"cannot read {path}: {error.strerror or error}") from None


def _fetch(url: str, max_bytes: int, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "borealis-local"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ImageError(_too_large(url, int(length), max_bytes))
            data = response.read(max_bytes + 1)  # one byte more tells "too large"
    except urllib.error.HTTPError as error:
        raise ImageError(f"fetching the image {url} failed: HTTP {error.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ImageError(
            f"fetching the image {url} failed ({reason}); download it and pass the file, "
            f"or check the address (timeout {timeout:g} s)"
        ) from None
    if len(data) > max_bytes:
        raise ImageError(_too_large(url, len(data), max_bytes))
    return data


def _too_large(where: str, size: int, max_bytes: int) -> str:
    return (
        f"the image {where} is {_amount(size)}, over the {_amount(max_bytes)} limit: "
        "scale it down (Gemma 3 sees images at 896 × 896 pixels)"
    )


def _amount(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**17 else f"{n:,} bytes"


def _pil():
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise ImageError("images need Pillow: pip install 'borealis-local[vision]'") from None
    return PILImage


def _is_pil_image(value: Any) -> bool:
    try:
        from PIL import Image as PILImage
    except ImportError:
        return False
    return isinstance(value, PILImage.Image)


def _decoded(data: bytes, where: str, max_bytes: int, max_pixels: int) -> Image:
    if len(data) > max_bytes:
        raise ImageError(_too_large(where, len(data), max_bytes))
    pil = _pil()
    try:
        with pil.open(io.BytesIO(data)) as probe:
            image_format, (width, height) = probe.format, probe.size
            _check_pixels(where, width, height, max_pixels)
            probe.load()  # decodes every pixel: a truncated file fails here, not later
            if image_format in PASSED_AS_IS:
                return Image(data, PASSED_AS_IS[image_format], width, height)
            return _from_pil(probe, max_pixels)
    except ImageError:
        raise
    except pil.DecompressionBombError:
        raise ImageError(f"{where} decodes to too many pixels (over {max_pixels:,})") from None
    except (pil.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageError(
            f"{where} is not an image Pillow can decode ({error}); use a PNG or JPEG file"
        ) from None


def _check_pixels(where: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"{where} is {width} × {height} pixels, over the {max_pixels:,}-pixel limit: "
            "scale it down (Gemma 3 sees images at 896 × 896)"
        )


def _from_pil(picture, max_pixels: int) -> Image:
    """A PIL image as PNG (RGBA or RGB kept, other modes made RGB)."""
    _check_pixels("the PIL image", picture.width, picture.height, max_pixels)
    if picture.mode not in ("RGB", "RGBA", "L"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return Image(out.getvalue(), "image/png", picture.width, picture.height)
