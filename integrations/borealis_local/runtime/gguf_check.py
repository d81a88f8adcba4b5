"""Check a GGUF file before llama.cpp opens it.

llama.cpp (as built by llama-cpp-python 0.3.36) refuses a truncated file with just
"Failed to load model from file" and leaves the reason on stderr, which `verbose=False`
hides; and it loads a model of another architecture, which our chat format and catalog
do not fit. This module finds the reason first and raises `InvalidModelFileError` with
a message that says what is wrong and what to do: a missing or foreign file, an
unsupported GGUF version, a file truncated anywhere (header, metadata, tensor-info
table, tensor data), counts no file of that size could hold, or a model of another
architecture.

The header is read by `borealis_local.gguf_header` (every read checked against the
file size; arrays skipped, so the whole check takes 30-60 ms on the stand-in's 262k
vocabulary, where `gguf.GGUFReader` takes 13-23 s); this module adds what llama.cpp
requires of it and the messages that say what to do.
"""

from __future__ import annotations

import mmap
import stat
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from borealis_local.errors import InvalidModelFileError
from borealis_local.gguf_header import HeaderReader, TensorInfo, download_again, fetch_again

# GGUF versions llama.cpp reads: v1 (2023) was dropped; v3 is current.
SUPPORTED_VERSIONS = (2, gguf.GGUF_VERSION)

# How people call the architectures we name in messages.
_ARCHITECTURE_NAMES = {"gemma3": "Gemma 3"}


@dataclass(frozen=True)
class GGUFInfo:
    """What the check learnt about a GGUF file that llama.cpp can open."""

    path: Path
    version: int
    architecture: str
    tensor_count: int
    file_size: int
    metadata: dict[str, Any]
    """Scalar metadata (numbers, booleans, strings); arrays are in `metadata_array_lengths`."""
    metadata_array_lengths: dict[str, int]
    """The length of each array in the metadata (the vocabulary, scores, token types, …)."""
    name: str | None = None
    file_type: str | None = None
    """The quantisation the file states in `general.file_type`, e.g. `Q4_K_M`."""
    context_length: int | None = None
    block_count: int | None = None
    alignment: int = gguf.GGUF_DEFAULT_ALIGNMENT
    data_offset: int = 0
    """Where the tensor data starts; it ends at `file_size` at the latest."""
    tensor_types: dict[str, int] = field(default_factory=dict)
    """How many tensors of each ggml type (`Q4_K`, `F32`, …)."""

    @property
    def vocab_size(self) -> int | None:
        return self.metadata_array_lengths.get(gguf.Keys.Tokenizer.LIST)


def check_gguf(path: str | Path, *, architectures: Collection[str] = ("gemma3",)) -> GGUFInfo:
    """Check that `path` is a complete GGUF of one of `architectures`, without loading it.

    Raises `InvalidModelFileError` naming the problem and what to do about it.
    """
    path = Path(path).expanduser()
    file_size = _file_size(path)
    try:
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            return _Walk(path, data, file_size).check(tuple(architectures))
    except OSError as error:
        raise _unreadable(path, error) from error


def _file_size(path: Path) -> int:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise InvalidModelFileError(
            f"no such model file: {path} — check the path, or download it with "
            "`borealis pull SIZE` (`borealis list` shows the models)"
        ) from None
    except OSError as error:
        raise _unreadable(path, error) from error
    if stat.S_ISDIR(status.st_mode):
        raise InvalidModelFileError(
            f"{path} is a directory, not a model file — give the path of the .gguf file in it"
        )
    if not stat.S_ISREG(status.st_mode):
        raise InvalidModelFileError(
            f"{path} is not a regular file (a device, pipe or socket) — give the path of a "
            ".gguf file"
        )
    size = status.st_size
    if size == 0:
        raise InvalidModelFileError(
            f"{path} is empty (0 bytes) — the download never started or failed; "
            f"{fetch_again(path)}"
        )
    return size


def _unreadable(path: Path, error: OSError) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"cannot read {path}: {error.strerror or error} — check that the file and its "
        "folders are readable by you (ls -l)"
    )


class _Walk:
    """One pass over the header, metadata and tensor-info table, in the order llama.cpp
    reads them, so the first problem found is the one reported."""

    def __init__(self, path: Path, data: mmap.mmap, file_size: int):
        self.path = path
        self.data = data
        self.size = file_size
        self.read = HeaderReader(path, data, file_size)

    def check(self, architectures: tuple[str, ...]) -> GGUFInfo:
        self._check_magic()
        version = self._check_version()
        tensor_count = self.read.u64("the tensor count")
        kv_count = self.read.u64("the metadata entry count")
        fields, array_lengths = self.read.metadata(kv_count, arrays=False)
        metadata = {key: entry.value for key, entry in fields.items()}
        architecture = self._check_architecture(metadata, architectures)
        alignment = self._alignment(metadata)
        tensors = self.read.tensor_infos(tensor_count)
        end = self.read.pos
        data_offset = _align(end, alignment) if tensors else end
        self._check_tensor_data(tensors, data_offset, alignment)
        return GGUFInfo(
            path=self.path,
            version=version,
            architecture=architecture,
            tensor_count=tensor_count,
            file_size=self.size,
            metadata=metadata,
            metadata_array_lengths=array_lengths,
            name=metadata.get(gguf.Keys.General.NAME),
            file_type=_file_type(metadata.get(gguf.Keys.General.FILE_TYPE)),
            context_length=metadata.get(gguf.Keys.LLM.CONTEXT_LENGTH.format(arch=architecture)),
            block_count=metadata.get(gguf.Keys.LLM.BLOCK_COUNT.format(arch=architecture)),
            alignment=alignment,
            data_offset=data_offset,
            tensor_types=dict(Counter(t.type.name for t in tensors)),
        )

    def _check_magic(self) -> None:
        head = bytes(self.data[:64])
        magic = gguf.GGUF_MAGIC.to_bytes(4, "little")
        if head[:4] == magic:
            self.read.pos = 4
            return
        if len(head) < 4 and magic.startswith(head):
            raise self.read.truncated("the 4-byte magic 'GGUF'")
        raise InvalidModelFileError(
            f"{self.path} is not a GGUF model file: {_what_it_looks_like(head, self.path)}"
        )

    def _check_version(self) -> int:
        version = self.read.u32("the GGUF version")
        if version in SUPPORTED_VERSIONS:
            return version
        if version and version & 0xFFFF == 0:
            problem = (
                "it is a big-endian GGUF and llama.cpp here reads little-endian files only"
                " — download the little-endian file"
            )
        elif version == 1:
            problem = (
                "it is GGUF version 1 (2023), which llama.cpp no longer reads — download a "
                "current file"
            )
        elif version > gguf.GGUF_VERSION:
            problem = (
                f"it is GGUF version {version}, newer than the {gguf.GGUF_VERSION} this "
                "llama.cpp reads — upgrade llama-cpp-python and gguf"
            )
        else:
            problem = f"its GGUF version is {version}, which no llama.cpp reads"
        raise InvalidModelFileError(f"{self.path} cannot be opened: {problem}")

    def _check_architecture(self, metadata: dict[str, Any], wanted: tuple[str, ...]) -> str:
        architecture = metadata.get(gguf.Keys.General.ARCHITECTURE)
        runs = " or ".join(f"{_ARCHITECTURE_NAMES.get(a, a)} ({a})" for a in wanted)
        if not isinstance(architecture, str):
            raise InvalidModelFileError(
                f"{self.path} does not say which architecture it is (no "
                f"{gguf.Keys.General.ARCHITECTURE!r} in its metadata), so llama.cpp cannot "
                f"load it; borealis-local runs {runs} models"
            )
        if architecture not in wanted:
            borealis = " — download a Borealis GGUF (`borealis list` shows them)"
            raise InvalidModelFileError(
                f"{self.path} is a {architecture} model; borealis-local runs {runs} models"
                + (borealis if "gemma3" in wanted else "")
            )
        return architecture

    def _alignment(self, metadata: dict[str, Any]) -> int:
        alignment = metadata.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise self.read.corrupt(f"general.alignment is {alignment!r}, not a power of two")
        return alignment

    def _check_tensor_data(self, tensors: list[TensorInfo], data_offset: int,
                           alignment: int) -> None:
        expected = 0
        for tensor in tensors:
            # llama.cpp requires the tensors in file order, each padded to the alignment.
            if tensor.offset != expected:
                raise self.read.corrupt(
                    f"tensor {tensor.name!r} starts at data offset {tensor.offset:,}, "
                    f"but the tensors before it end at {expected:,}"
                )
            expected += _align(tensor.nbytes, alignment)
        data_end = max((data_offset + t.offset + t.nbytes for t in tensors), default=data_offset)
        if data_end > self.size:
            raise InvalidModelFileError(
                f"{self.path} is truncated: the tensor data ends at byte {data_end:,} but the "
                f"file has {self.size:,} bytes — {download_again(self.path)}"
            )


def _align(offset: int, alignment: int) -> int:
    return offset + (-offset % alignment)


def _file_type(raw: Any) -> str | None:
    """`general.file_type` as the quantisation's usual name (15 -> `Q4_K_M`)."""
    if not isinstance(raw, int):
        return None
    try:
        name = gguf.LlamaFileType(raw & ~gguf.LlamaFileType.GUESSED).name
    except ValueError:
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _what_it_looks_like(head: bytes, path: Path) -> str:
    """Name the common things found where a GGUF was expected, with what to do."""
    text = head.lstrip().lower()
    again = fetch_again(path)
    if text.startswith(b"version https://git-lfs"):
        return (
            "it is a Git LFS pointer (a small text file standing in for the model) — the "
            "repository was cloned without Git LFS; run `git lfs pull` in it, or " + again
        )
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return (
            "it is an HTML page (an error or login page saved instead of the model; gated "
            "repositories need the licence accepted and a token) — " + again
        )
    if head[8:10] == b'{"':
        return (
            "it is a safetensors file (Hugging Face weights); llama.cpp needs the GGUF from "
            "the model's -gguf repository — " + again
        )
    if text.startswith((b"{", b"[")):
        return "it is JSON (perhaps an error answer from a server) — " + again
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return (
            "it is a GGML/GGJT model from before GGUF (2023), which llama.cpp no longer reads "
            "— download a GGUF"
        )
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (perhaps a PyTorch checkpoint) — " + again
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        shown = head[:40].decode("ascii").splitlines()[0]
        return f"it is a text file (it starts with {shown!r}) — " + again
    return f"it does not start with 'GGUF' (it starts with bytes {head[:8].hex(' ')}) — " + again
