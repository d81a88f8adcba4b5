"""Images in: every form a caller gives one, checked once, and the refusals."""

from __future__ import annotations

import base64
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image as PILImage

from borealis_local.errors import ImageError, InvalidRequestError
from borealis_local.runtime.images import Image, as_image


def encoded(image_format: str, size=(32, 24), mode="RGB") -> bytes:
    out = io.BytesIO()
    PILImage.new(mode, size, color=(200, 30, 60) if mode == "RGB" else 1).save(
        out, format=image_format
    )
    return out.getvalue()


PNG = encoded("PNG")


def decodes_to(image: Image, size) -> None:
    with PILImage.open(io.BytesIO(image.data)) as back:
        assert back.size == size == (image.width, image.height)
        assert back.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[image.mime]


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_png_and_jpeg_pass_unchanged(fmt, mime):
    data = encoded(fmt)
    image = as_image(data)
    assert image.data == data and image.mime == mime and (image.width, image.height) == (32, 24)


@pytest.mark.parametrize("fmt", ["WEBP", "GIF", "BMP", "TIFF"])
def test_other_formats_pillow_reads_become_png(fmt):
    image = as_image(encoded(fmt))
    assert image.mime == "image/png"
    decodes_to(image, (32, 24))


def test_a_pil_image_becomes_png_whatever_its_mode():
    decodes_to(as_image(PILImage.new("RGB", (10, 8))), (10, 8))
    palette = PILImage.new("P", (5, 4))
    image = as_image(palette)
    with PILImage.open(io.BytesIO(image.data)) as back:
        assert back.mode == "RGB" and back.size == (5, 4)


def test_paths_file_urls_and_data_urls(tmp_path):
    path = tmp_path / "bilde.png"
    path.write_bytes(PNG)
    for source in (path, str(path), path.as_uri()):
        assert as_image(source).data == PNG
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    image = as_image(data_url)
    assert image.data == PNG and image.data_url() == data_url
    assert base64.b64decode(image.base64()) == PNG


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"not an image at all", "not an image Pillow can decode.*PNG or JPEG"),
        (PNG[: len(PNG) // 2], "not an image Pillow can decode"),  # truncated
        ("data:image/png,rawtext", "must be base64"),
        ("data:image/png;base64,@@@", "base64 is broken"),
        ("ftp://example.org/a.png", "must be data:, http: or https:, not ftp:"),
        (42, "not int"),
    ],
)
def test_what_is_no_image_is_a_clear_error(source, message):
    with pytest.raises(ImageError, match=message):
        as_image(source)


def test_missing_files_and_directories_are_named(tmp_path):
    with pytest.raises(ImageError, match="no such image file: .*missing.png"):
        as_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        as_image(tmp_path)


def test_too_many_bytes_or_pixels_is_refused_before_decoding(tmp_path):
    with pytest.raises(ImageError, match=f"is {len(PNG)} bytes, over the 10 bytes limit: scale"):
        as_image(PNG, max_bytes=10)
    (tmp_path / "big.png").write_bytes(PNG)
    with pytest.raises(ImageError, match="over the 10 bytes limit"):
        as_image(tmp_path / "big.png", max_bytes=10)
    with pytest.raises(ImageError, match=r"32 × 24 pixels, over the 500-pixel limit"):
        as_image(PNG, max_pixels=500)
    with pytest.raises(ImageError, match="pixel limit"):
        as_image(PILImage.new("RGB", (40, 40)), max_pixels=500)


def test_an_image_error_is_an_invalid_request():
    assert issubclass(ImageError, InvalidRequestError)


# --- http(s) images, from a real server on loopback ------------------------------------


class Images(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/ok.png":
            self._send(PNG)
        elif self.path == "/slow.png":
            time.sleep(2)
            self._send(PNG)
        elif self.path == "/big.png":
            self._send(PNG, length=str(10_000_000))
        elif self.path == "/unannounced.png":
            self._send(PNG * 20, length=None)  # no Content-Length: counted as read
        else:
            self.send_error(404)

    def _send(self, body: bytes, length: str | None = "") -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if length is not None:
            self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_http_image_is_fetched(image_server):
    assert as_image(f"{image_server}/ok.png").data == PNG


def test_a_failing_or_slow_or_huge_url_is_a_clear_error(image_server):
    with pytest.raises(ImageError, match="failed: HTTP 404"):
        as_image(f"{image_server}/missing.png")
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"failed .*timeout 0.5 s"):
        as_image(f"{image_server}/slow.png", timeout=0.5)
    assert time.monotonic() - started < 1.9  # it gave up before the server answered
    with pytest.raises(ImageError, match="9.5 MiB, over the 1.0 MiB limit"):
        as_image(f"{image_server}/big.png", max_bytes=2**20)
    with pytest.raises(ImageError, match=f"over the {len(PNG) * 2:,} bytes limit"):
        as_image(f"{image_server}/unannounced.png", max_bytes=len(PNG) * 2)


def test_a_closed_port_fails_at_once():
    with pytest.raises(ImageError, match="download it and pass the file"):
        as_image("http://127.0.0.1:9/none.png", timeout=2)

