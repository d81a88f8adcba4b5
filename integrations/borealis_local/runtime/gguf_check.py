"""Check a GGUF file before llama.cpp opens it.

llama.cpp (as built by llama-cpp-python 0.3.36) refuses a truncated file with just
"Failed to load model from file" and leaves the reason on stderr, which `verbose=False`
hides; and it loads a model of another architecture, which our chat format and catalog
do not fit. This module finds the reason first and raises `InvalidModelFileError` with
a message that says what is wrong and what to do: a missing or foreign file, an
unsupported GGUF version, a file truncated anywhere (header, metadata, tensor-info
table, tensor data), counts no file of that size could hold, or a model of another
architecture.

Why a header walk of our own rather than `gguf.GGUFReader`: the reader has no option
to skip arrays (its constructor takes only `path` and `mode`) and turns each of the
262,144 vocabulary strings into numpy objects, which took 13-23 s on the stand-in
Gemma 3 270M; it also reads past the end of a truncated file without saying so. This
walk seeks past arrays (fixed-size ones in one step, string arrays by hopping from
length to length, about 60 ms for 262k strings) and checks every read against the
file size: the whole check takes 30-60 ms on the stand-in. The `gguf` package still
supplies the format's constants: the magic, versions, value and tensor types, quant
block sizes, key names.
"""

from __future__ import annotations

import mmap
import stat
import struct
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from borealis_local.catalog import parse_name
from borealis_local.errors import InvalidModelFileError, UnknownModelError

# GGUF versions llama.cpp reads: v1 (2023) was dropped; v3 is current.
SUPPORTED_VERSIONS = (2, gguf.GGUF_VERSION)
# llama.cpp's limits (ggml.h: GGML_MAX_DIMS, GGML_MAX_NAME).
MAX_DIMS = 4
MAX_TENSOR_NAME = 64
# The smallest a metadata entry can be (key length, a 1-byte key, type, a 1-byte
# value) and a tensor-info entry (name length, empty name, n_dims, type, offset):
# a count that needs more bytes than the file has left is rejected before looping.
MIN_KV_BYTES = 8 + 1 + 4 + 1
MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8

_SCALARS = {
    gguf.GGUFValueType.UINT8: struct.Struct("<B"),
    gguf.GGUFValueType.INT8: struct.Struct("<b"),
    gguf.GGUFValueType.UINT16: struct.Struct("<H"),
    gguf.GGUFValueType.INT16: struct.Struct("<h"),
    gguf.GGUFValueType.UINT32: struct.Struct("<I"),
    gguf.GGUFValueType.INT32: struct.Struct("<i"),
    gguf.GGUFValueType.FLOAT32: struct.Struct("<f"),
    gguf.GGUFValueType.BOOL: struct.Struct("<?"),
    gguf.GGUFValueType.UINT64: struct.Struct("<Q"),
    gguf.GGUFValueType.INT64: struct.Struct("<q"),
    gguf.GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = _SCALARS[gguf.GGUFValueType.UINT32]
_U64 = _SCALARS[gguf.GGUFValueType.UINT64]
_I64 = _SCALARS[gguf.GGUFValueType.INT64]

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


@dataclass
class _Tensor:
    name: str
    offset: int
    nbytes: int


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
            f"{_fetch_again(path)}"
        )
    return size


def _unreadable(path: Path, error: OSError) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"cannot read {path}: {error.strerror or error} — check that the file and its "
        "folders are readable by you (ls -l)"
    )


class _Walk:
    """One pass over the header, metadata and tensor-info table, every read bounded."""

    def __init__(self, path: Path, data: mmap.mmap, file_size: int):
        self.path = path
        self.data = data
        self.size = file_size
        self.pos = 0
        self.section = "header"

    def check(self, architectures: tuple[str, ...]) -> GGUFInfo:
        self._check_magic()
        version = self._check_version()
        tensor_count = self._u64("the tensor count")
        kv_count = self._u64("the metadata entry count")
        metadata, array_lengths = self._read_metadata(kv_count)
        architecture = self._check_architecture(metadata, architectures)
        alignment = self._alignment(metadata)
        tensors, tensor_types = self._read_tensor_infos(tensor_count)
        data_offset = _align(self.pos, alignment) if tensors else self.pos
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
            tensor_types=dict(tensor_types),
        )

    # -- bounded reads ---------------------------------------------------------------

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.pos + nbytes
        if end > self.size:
            raise self._truncated(f"{what} (bytes {self.pos:,} to {end:,})")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _unpack(self, fmt: struct.Struct, what: str) -> Any:
        return fmt.unpack(self._take(fmt.size, what))[0]

    def _u32(self, what: str) -> int:
        return self._unpack(_U32, what)

    def _u64(self, what: str) -> int:
        return self._unpack(_U64, what)

    def _string(self, what: str) -> str:
        length = self._u64(f"the length of {what}")
        return self._take(length, what).decode("utf-8", errors="replace")

    def _skip(self, nbytes: int, what: str) -> None:
        if self.pos + nbytes > self.size:
            raise self._truncated(f"{what} (bytes {self.pos:,} to {self.pos + nbytes:,})")
        self.pos += nbytes

    def _skip_strings(self, count: int, what: str) -> None:
        # Strings are length-prefixed, so each length says where the next starts:
        # hop from length to length (about 0.2 µs a string) without building objects.
        pos, size, data, unpack = self.pos, self.size, self.data, _U64.unpack_from
        for index in range(count):
            if pos + 8 > size:
                self.pos = pos
                raise self._truncated(f"string {index:,} of {count:,} in {what}")
            pos += 8 + unpack(data, pos)[0]
        if pos > size:
            raise self._truncated(f"the last string of {what} (it ends at byte {pos:,})")
        self.pos = pos

    def _check_room(self, count: int, item_bytes: int, claim: str) -> None:
        """Reject a count the rest of the file cannot hold, before looping or allocating."""
        room = (self.size - self.pos) // item_bytes
        if count > room:
            raise InvalidModelFileError(
                f"{self.path} is truncated or corrupt in the {self.section}: {claim}, but "
                f"the {self.size - self.pos:,} bytes left in the file have room for at most "
                f"{room:,} — the file is incomplete or damaged; {_fetch_again(self.path)}"
            )

    # -- the parts of the file -------------------------------------------------------

    def _check_magic(self) -> None:
        head = bytes(self.data[:64])
        magic = gguf.GGUF_MAGIC.to_bytes(4, "little")
        if head[:4] == magic:
            self.pos = 4
            return
        if len(head) < 4 and magic.startswith(head):
            raise self._truncated("the 4-byte magic 'GGUF'")
        raise InvalidModelFileError(
            f"{self.path} is not a GGUF model file: {_what_it_looks_like(head, self.path)}"
        )

    def _check_version(self) -> int:
        version = self._u32("the GGUF version")
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

    def _read_metadata(self, kv_count: int) -> tuple[dict[str, Any], dict[str, int]]:
        self.section = "metadata"
        self._check_room(kv_count, MIN_KV_BYTES, f"the header says there are {kv_count:,} entries")
        metadata: dict[str, Any] = {}
        array_lengths: dict[str, int] = {}
        for index in range(kv_count):
            key = self._string(f"the key of entry {index:,} of {kv_count:,}")
            if key in metadata or key in array_lengths:
                raise self._corrupt(f"the metadata key {key!r} appears twice")
            value_type = self._value_type(key, self._u32(f"the type of {key!r}"))
            if value_type == gguf.GGUFValueType.ARRAY:
                array_lengths[key] = self._skip_array(key)
            else:
                metadata[key] = self._read_value(key, value_type)
        return metadata, array_lengths

    def _value_type(self, key: str, raw: int) -> gguf.GGUFValueType:
        try:
            return gguf.GGUFValueType(raw)
        except ValueError:
            raise self._corrupt(f"the metadata key {key!r} has unknown value type {raw}") from None

    def _read_value(self, key: str, value_type: gguf.GGUFValueType) -> Any:
        if value_type == gguf.GGUFValueType.STRING:
            return self._string(f"the value of {key!r}")
        return self._unpack(_SCALARS[value_type], f"the value of {key!r}")

    def _skip_array(self, key: str) -> int:
        element_type = self._value_type(key, self._u32(f"the element type of {key!r}"))
        length = self._u64(f"the length of {key!r}")
        if element_type == gguf.GGUFValueType.ARRAY:
            raise self._corrupt(f"{key!r} is an array of arrays, which llama.cpp does not read")
        if element_type == gguf.GGUFValueType.STRING:
            self._check_room(length, 8, f"{key!r} says it holds {length:,} strings")
            self._skip_strings(length, repr(key))
        else:
            self._skip(length * _SCALARS[element_type].size, repr(key))
        return length

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
            raise self._corrupt(f"general.alignment is {alignment!r}, not a power of two")
        return alignment

    def _read_tensor_infos(self, count: int) -> tuple[list[_Tensor], Counter[str]]:
        self.section = "tensor-info table"
        self._check_room(
            count, MIN_TENSOR_INFO_BYTES, f"the header says there are {count:,} tensors"
        )
        tensors: list[_Tensor] = []
        types: Counter[str] = Counter()
        names: set[str] = set()
        for index in range(count):
            tensor, type_name = self._read_tensor_info(f"tensor {index:,} of {count:,}")
            if tensor.name in names:
                raise self._corrupt(f"the tensor name {tensor.name!r} appears twice")
            names.add(tensor.name)
            tensors.append(tensor)
            types[type_name] += 1
        return tensors, types

    def _read_tensor_info(self, what: str) -> tuple[_Tensor, str]:
        name = self._string(f"the name of {what}")
        if len(name.encode()) >= MAX_TENSOR_NAME:
            raise self._corrupt(f"the tensor name {name[:80]!r} is longer than llama.cpp allows")
        n_dims = self._u32(f"the dimension count of {name!r}")
        if n_dims > MAX_DIMS:
            raise self._corrupt(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = [self._unpack(_I64, f"the shape of {name!r}") for _ in range(n_dims)]
        ggml_type = self._tensor_type(name, self._u32(f"the type of {name!r}"))
        offset = self._u64(f"the data offset of {name!r}")
        return _Tensor(name, offset, self._tensor_bytes(name, shape, ggml_type)), ggml_type.name

    def _tensor_type(self, name: str, raw: int) -> gguf.GGMLQuantizationType:
        try:
            ggml_type = gguf.GGMLQuantizationType(raw)
            gguf.GGML_QUANT_SIZES[ggml_type]
        except (ValueError, KeyError):
            raise InvalidModelFileError(
                f"{self.path}: tensor {name!r} has ggml type {raw}, which gguf "
                f"{_gguf_version()} does not know — the file is corrupt, or newer than this "
                "installation: upgrade llama-cpp-python and gguf, or download the file again"
            ) from None
        return ggml_type

    def _tensor_bytes(
        self, name: str, shape: list[int], ggml_type: gguf.GGMLQuantizationType
    ) -> int:
        block_size, block_bytes = gguf.GGML_QUANT_SIZES[ggml_type]
        if any(n < 0 for n in shape):
            raise self._corrupt(f"tensor {name!r} has a negative dimension in {shape}")
        row_length = shape[0] if shape else 1
        if row_length % block_size:
            raise self._corrupt(
                f"tensor {name!r} has rows of {row_length} values, not a multiple of the "
                f"{ggml_type.name} block size {block_size}"
            )
        elements = 1
        for n in shape:
            elements *= n
        return elements // block_size * block_bytes

    def _check_tensor_data(self, tensors: list[_Tensor], data_offset: int, alignment: int) -> None:
        expected = 0
        for tensor in tensors:
            # llama.cpp requires the tensors in file order, each padded to the alignment.
            if tensor.offset != expected:
                raise self._corrupt(
                    f"tensor {tensor.name!r} starts at data offset {tensor.offset:,}, "
                    f"but the tensors before it end at {expected:,}"
                )
            expected += _align(tensor.nbytes, alignment)
        data_end = max((data_offset + t.offset + t.nbytes for t in tensors), default=data_offset)
        if data_end > self.size:
            raise InvalidModelFileError(
                f"{self.path} is truncated: the tensor data ends at byte {data_end:,} but the "
                f"file has {self.size:,} bytes — {_download_again(self.path)}"
            )

    # -- errors ----------------------------------------------------------------------

    def _truncated(self, detail: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is truncated in the {self.section}: the file ends after "
            f"{self.size:,} bytes, inside {detail} — {_download_again(self.path)}"
        )

    def _corrupt(self, detail: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is not a valid GGUF: {detail} — the file is damaged; "
            f"{_fetch_again(self.path)}"
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


def _gguf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:  # a vendored copy
        return "(this version)"


def _what_it_looks_like(head: bytes, path: Path) -> str:
    """Name the common things found where a GGUF was expected, with what to do."""
    text = head.lstrip().lower()
    again = _fetch_again(path)
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


def _download_again(path: Path) -> str:
    return "the download was probably interrupted; " + _fetch_again(path)


def _fetch_again(path: Path) -> str:
    """How to get the file again: the `borealis pull` line when it has a Borealis file name."""
    stem, _, quant = path.name.removesuffix(".gguf").rpartition("-")
    try:
        model, quant = parse_name(f"{stem}:{quant}")
    except UnknownModelError:
        return "download the file again"
    if model.gguf_filename(quant) != path.name:
        return "download the file again"
    return f"run `{model.pull_command(quant)}` again or re-download it"
