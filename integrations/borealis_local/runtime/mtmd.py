"""Images in-process: a Gemma 3 projector (mmproj GGUF) through llama.cpp's libmtmd.

llama-cpp-python 0.3.36 ships `MTMDChatHandler`, but it reads the chat template from the
GGUF's metadata (the stand-in has none; Borealis' is not ours), clears the KV cache on
every call (a follow-up question would encode its image again: 73 s per image for the
full-depth tower on these CPUs) and fetches image URLs without a timeout. So the backend
uses the same libmtmd calls it makes, through llama-cpp-python's public `mtmd_cpp`
bindings: the prompt is split into text and image chunks here (`Projector.tokenize`),
and each chunk is evaluated at a position the backend chooses (`Projector.evaluate`),
so what the KV cache already holds, images included, is reused.

An image chunk's positions are keyed by the image's SHA-256 (`ImageChunk.keys`), so a
cached prefix is found by comparing keys, text tokens and images alike, as llama-server
matches images by content.
"""

from __future__ import annotations

import ctypes
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis_local.errors import BackendError, InvalidRequestError
from borealis_local.runtime import llama_log
from borealis_local.runtime.images import Image

# A position of the KV cache: a text token's id, or (image digest, index) for an image's.
Key = int | tuple[str, int]


@dataclass(frozen=True)
class TextChunk:
    tokens: list[int]

    @property
    def keys(self) -> list[Key]:
        return list(self.tokens)


@dataclass(frozen=True)
class ImageChunk:
    digest: str
    n_tokens: int
    handle: Any  # libmtmd's chunk; valid while its Prompt is open

    @property
    def keys(self) -> list[Key]:
        return [(self.digest, i) for i in range(self.n_tokens)]


class Prompt:
    """A templated prompt with its images, as libmtmd tokenised it. Close it (or use it
    as a context manager) to free libmtmd's chunks."""

    def __init__(self, chunks: list[TextChunk | ImageChunk], handle: Any, mtmd_cpp):
        self.chunks = chunks
        self.keys: list[Key] = [key for chunk in chunks for key in chunk.keys]
        self._handle, self._mtmd_cpp = handle, mtmd_cpp

    def __len__(self) -> int:
        return len(self.keys)

    def close(self) -> None:
        if self._handle is not None:
            self._mtmd_cpp.mtmd_input_chunks_free(self._handle)
            self._handle = None

    def __enter__(self) -> Prompt:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Projector:
    """A projector loaded beside a llama-cpp-python `Llama` (the same weights' text model).

    `marker` is the text that stands for an image in a prompt given to `tokenize`: random
    per projector, so no text a user writes can stand for an image (llama-server draws
    its marker at random for the same reason)."""

    def __init__(self, path: str | Path, llama, *, use_gpu: bool, flash_attn: bool,
                 n_threads: int | None = None):
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd_cpp

        from borealis_local.runtime.gguf_check import check_gguf

        self.path = Path(path).expanduser()
        check_gguf(self.path, architectures=("clip",))
        self._mtmd_cpp, self._llama = mtmd_cpp, llama
        self.marker = f"<__image_{secrets.token_hex(8)}__>"
        llama_log.install_mtmd()
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = n_threads or llama.n_threads
        params.media_marker = self.marker.encode()
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        started = time.perf_counter()
        mark = llama_log.mark()
        self._ctx = mtmd_cpp.mtmd_init_from_file(str(self.path).encode(), llama.model, params)
        if not self._ctx:
            raise BackendError(
                f"llama.cpp could not load the projector {self.path} for this model (a "
                "projector must come from the same model's GGUF repo: its width must match "
                f"the text model's). It said:\n{llama_log.recent()}"
            )
        self.load_ms = (time.perf_counter() - started) * 1000
        self.load_log = llama_log.text_since(mark)
        if not mtmd_cpp.mtmd_support_vision(self._ctx):
            self.close()
            raise BackendError(f"{self.path} is a projector without a vision encoder")

    def close(self) -> None:
        if self._ctx is not None:
            self._mtmd_cpp.mtmd_free(self._ctx)
            self._ctx = None

    def tokenize(self, text: str, images: list[Image]) -> Prompt:
        """The prompt's chunks: `text` (special tokens parsed, no BOS added: the template
        writes it) with `self.marker` where each of `images` stands, in order."""
        mtmd_cpp = self._mtmd_cpp
        if text.count(self.marker) != len(images):
            raise InvalidRequestError(
                f"the prompt has {text.count(self.marker)} image places for {len(images)} "
                "images"
            )
        bitmaps = [self._bitmap(image) for image in images]
        handle = mtmd_cpp.mtmd_input_chunks_init()
        try:
            encoded = text.encode("utf-8")
            text_input = mtmd_cpp.mtmd_input_text()
            text_input.text, text_input.text_len = encoded, len(encoded)
            text_input.add_special, text_input.parse_special = False, True
            array = (mtmd_cpp.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            result = mtmd_cpp.mtmd_tokenize(
                self._ctx, handle, ctypes.byref(text_input), array, len(bitmaps))
            if result != 0:
                mtmd_cpp.mtmd_input_chunks_free(handle)
                raise BackendError(
                    f"libmtmd could not split the prompt (error {result}). It said:\n"
                    f"{llama_log.recent()}"
                )
        finally:
            for bitmap in bitmaps:
                mtmd_cpp.mtmd_bitmap_free(bitmap)
        return Prompt(self._chunks(handle), handle, mtmd_cpp)

    def _bitmap(self, image: Image):
        mtmd_cpp = self._mtmd_cpp
        buffer = (ctypes.c_uint8 * len(image.data)).from_buffer_copy(image.data)
        bitmap = mtmd_cpp.mtmd_helper_bitmap_init_from_buf(
            self._ctx, buffer, len(image.data), False)
        if not bitmap:
            # images.as_image decoded it with Pillow already; libmtmd (stb_image) reads
            # PNG and JPEG, which is what as_image hands on.
            raise InvalidRequestError(
                f"llama.cpp could not decode a {image.mime} image of {image.width}x"
                f"{image.height}: save it as PNG and try again"
            )
        mtmd_cpp.mtmd_bitmap_set_id(bitmap, image.digest.encode())
        return bitmap

    def _chunks(self, handle) -> list[TextChunk | ImageChunk]:
        mtmd_cpp = self._mtmd_cpp
        chunks: list[TextChunk | ImageChunk] = []
        for i in range(mtmd_cpp.mtmd_input_chunks_size(handle)):
            chunk = mtmd_cpp.mtmd_input_chunks_get(handle, i)
            if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t()
                pointer = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                chunks.append(TextChunk([pointer[j] for j in range(count.value)]))
            else:
                digest = mtmd_cpp.mtmd_input_chunk_get_id(chunk).decode()
                # Positions it takes: Gemma 3's images take one per token (no M-RoPE).
                n_pos = mtmd_cpp.mtmd_input_chunk_get_n_pos(chunk)
                chunks.append(ImageChunk(digest, n_pos, chunk))
        return chunks

    def evaluate(self, chunk: ImageChunk, position: int, n_batch: int) -> tuple[int, float]:
        """Encode the image and put its tokens in the KV cache at `position`; the next
        position and the milliseconds the encoder took."""
        mtmd_cpp = self._mtmd_cpp
        import llama_cpp

        started = time.perf_counter()
        if mtmd_cpp.mtmd_encode_chunk(self._ctx, chunk.handle) != 0:
            raise BackendError(f"libmtmd could not encode an image. It said:\n{llama_log.recent()}")
        encode_ms = (time.perf_counter() - started) * 1000
        embeddings = mtmd_cpp.mtmd_get_output_embd(self._ctx)
        next_position = llama_cpp.llama_pos(0)
        result = mtmd_cpp.mtmd_helper_decode_image_chunk(
            self._ctx, self._llama.ctx, chunk.handle, embeddings, position, 0, n_batch,
            ctypes.byref(next_position), mtmd_cpp.mtmd_helper_post_decode_callback(),
            None,
        )
        if result != 0:
            raise BackendError(
                f"llama.cpp could not evaluate an image's tokens (error {result}). It said:"
                f"\n{llama_log.recent()}"
            )
        return next_position.value, encode_ms
