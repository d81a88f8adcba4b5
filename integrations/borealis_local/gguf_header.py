"""Reading a GGUF's header: the metadata and the tensor table, every read bounded.

One reader for the file check before llama.cpp opens a model (`runtime.gguf_check`,
which skips the arrays) and for what needs the whole header (`read_header`: the
tokenizer a synthetic model copies, a file's own tensor table for the memory
estimate). Every read is checked against the file's size, so a truncated or damaged
file raises `InvalidModelFileError` saying where, never reads past the end.

Why not `gguf.GGUFReader`: it has no option to skip arrays and turns each of the
262,144 vocabulary strings into numpy objects (13-23 s on the stand-in Gemma 3 270M);
it also reads past the end of a truncated file without saying so. Skipping, this
reader seeks past arrays (fixed-size ones in one step, string arrays by hopping from
length to length, about 60 ms for 262k strings); reading them, it builds plain lists
(about a second). The `gguf` package supplies the format's constants.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from borealis_local.catalog import parse_name
from borealis_local.errors import InvalidModelFileError, UnknownModelError

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


@dataclass(frozen=True)
class Field:
    """One metadata entry, as GGUFWriter.add_key_value takes it."""

    type: gguf.GGUFValueType
    value: Any
    sub_type: gguf.GGUFValueType | None = None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    """ggml order: the row length first."""
    type: gguf.GGMLQuantizationType
    offset: int = 0
    """Where its data starts, from the start of the tensor data."""

    @property
    def nbytes(self) -> int:
        block, size = gguf.GGML_QUANT_SIZES[self.type]
        return math.prod(self.dims) // block * size


@dataclass(frozen=True)
class Header:
    metadata: dict[str, Field]
    tensors: list[TensorInfo]


def read_header(path: str | Path) -> Header:
    """The metadata (arrays as lists) and tensor table of a GGUF `check_gguf` accepted."""
    path = Path(path)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader = HeaderReader(path, data, len(data))
        reader.skip(8, "the magic and version")  # checked by check_gguf
        tensor_count = reader.u64("the tensor count")
        kv_count = reader.u64("the metadata entry count")
        metadata, _ = reader.metadata(kv_count, arrays=True)
        tensors = reader.tensor_infos(tensor_count)
    return Header(metadata, tensors)


class HeaderReader:
    """Bounded reads over a GGUF, from the start: the caller walks it part by part
    (counts, `metadata`, `tensor_infos`); `section` names the part in errors."""

    def __init__(self, path: Path, data: mmap.mmap, file_size: int):
        self.path = path
        self.data = data
        self.size = file_size
        self.pos = 0
        self.section = "header"

    # -- bounded reads ---------------------------------------------------------------

    def take(self, nbytes: int, what: str) -> bytes:
        end = self.pos + nbytes
        if end > self.size:
            raise self.truncated(f"{what} (bytes {self.pos:,} to {end:,})")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct, what: str) -> Any:
        return fmt.unpack(self.take(fmt.size, what))[0]

    def u32(self, what: str) -> int:
        return self.unpack(_U32, what)

    def u64(self, what: str) -> int:
        return self.unpack(_U64, what)

    def string(self, what: str, errors: str = "replace") -> str:
        length = self.u64(f"the length of {what}")
        return self.take(length, what).decode("utf-8", errors=errors)

    def skip(self, nbytes: int, what: str) -> None:
        if self.pos + nbytes > self.size:
            raise self.truncated(f"{what} (bytes {self.pos:,} to {self.pos + nbytes:,})")
        self.pos += nbytes

    def _skip_strings(self, count: int, what: str) -> None:
        # Strings are length-prefixed, so each length says where the next starts:
        # hop from length to length (about 0.2 µs a string) without building objects.
        pos, size, data, unpack = self.pos, self.size, self.data, _U64.unpack_from
        for index in range(count):
            if pos + 8 > size:
                self.pos = pos
                raise self.truncated(f"string {index:,} of {count:,} in {what}")
            pos += 8 + unpack(data, pos)[0]
        if pos > size:
            raise self.truncated(f"the last string of {what} (it ends at byte {pos:,})")
        self.pos = pos

    def check_room(self, count: int, item_bytes: int, claim: str) -> None:
        """Reject a count the rest of the file cannot hold, before looping or allocating."""
        room = (self.size - self.pos) // item_bytes
        if count > room:
            raise InvalidModelFileError(
                f"{self.path} is truncated or corrupt in the {self.section}: {claim}, but "
                f"the {self.size - self.pos:,} bytes left in the file have room for at most "
                f"{room:,} — the file is incomplete or damaged; {fetch_again(self.path)}"
            )

    # -- metadata ----------------------------------------------------------------------

    def metadata(self, kv_count: int, *, arrays: bool) -> tuple[dict[str, Field], dict[str, int]]:
        """The entries, and the length of each array. Arrays are read into lists when
        `arrays`, else skipped (their values are then not among the entries)."""
        self.section = "metadata"
        self.check_room(kv_count, MIN_KV_BYTES, f"the header says there are {kv_count:,} entries")
        fields: dict[str, Field] = {}
        array_lengths: dict[str, int] = {}
        # Keys as llama.cpp reads them; with arrays read, undecodable bytes survive.
        key_errors = "surrogateescape" if arrays else "replace"
        for index in range(kv_count):
            key = self.string(f"the key of entry {index:,} of {kv_count:,}", key_errors)
            if key in fields or key in array_lengths:
                raise self.corrupt(f"the metadata key {key!r} appears twice")
            value_type = self._value_type(key, self.u32(f"the type of {key!r}"))
            if value_type != gguf.GGUFValueType.ARRAY:
                fields[key] = Field(value_type, self._value(key, value_type, key_errors))
            elif arrays:
                fields[key] = self._array(key)
                array_lengths[key] = len(fields[key].value)
            else:
                array_lengths[key] = self._skip_array(key)
        return fields, array_lengths

    def _value_type(self, key: str, raw: int) -> gguf.GGUFValueType:
        try:
            return gguf.GGUFValueType(raw)
        except ValueError:
            raise self.corrupt(f"the metadata key {key!r} has unknown value type {raw}") from None

    def _value(self, key: str, value_type: gguf.GGUFValueType, errors: str) -> Any:
        if value_type == gguf.GGUFValueType.STRING:
            return self.string(f"the value of {key!r}", errors)
        return self.unpack(_SCALARS[value_type], f"the value of {key!r}")

    def _array_header(self, key: str) -> tuple[gguf.GGUFValueType, int]:
        element_type = self._value_type(key, self.u32(f"the element type of {key!r}"))
        length = self.u64(f"the length of {key!r}")
        if element_type == gguf.GGUFValueType.ARRAY:
            raise self.corrupt(f"{key!r} is an array of arrays, which llama.cpp does not read")
        if element_type == gguf.GGUFValueType.STRING:
            self.check_room(length, 8, f"{key!r} says it holds {length:,} strings")
        return element_type, length

    def _skip_array(self, key: str) -> int:
        element_type, length = self._array_header(key)
        if element_type == gguf.GGUFValueType.STRING:
            self._skip_strings(length, repr(key))
        else:
            self.skip(length * _SCALARS[element_type].size, repr(key))
        return length

    def _array(self, key: str) -> Field:
        import numpy as np

        element_type, length = self._array_header(key)
        if element_type == gguf.GGUFValueType.STRING:
            what = f"a string of {key!r}"
            values = [self.string(what, "surrogateescape") for _ in range(length)]
        else:
            dtype = np.dtype(_SCALARS[element_type].format)
            raw = self.take(length * dtype.itemsize, repr(key))
            values = np.frombuffer(raw, dtype).tolist()
        return Field(gguf.GGUFValueType.ARRAY, values, element_type)

    # -- the tensor table --------------------------------------------------------------

    def tensor_infos(self, count: int) -> list[TensorInfo]:
        self.section = "tensor-info table"
        self.check_room(
            count, MIN_TENSOR_INFO_BYTES, f"the header says there are {count:,} tensors"
        )
        tensors: list[TensorInfo] = []
        names: set[str] = set()
        for index in range(count):
            tensor = self._tensor_info(f"tensor {index:,} of {count:,}")
            if tensor.name in names:
                raise self.corrupt(f"the tensor name {tensor.name!r} appears twice")
            names.add(tensor.name)
            tensors.append(tensor)
        return tensors

    def _tensor_info(self, what: str) -> TensorInfo:
        name = self.string(f"the name of {what}")
        if len(name.encode()) >= MAX_TENSOR_NAME:
            raise self.corrupt(f"the tensor name {name[:80]!r} is longer than llama.cpp allows")
        n_dims = self.u32(f"the dimension count of {name!r}")
        if n_dims > MAX_DIMS:
            raise self.corrupt(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = [self.unpack(_I64, f"the shape of {name!r}") for _ in range(n_dims)]
        ggml_type = self._tensor_type(name, self.u32(f"the type of {name!r}"))
        offset = self.u64(f"the data offset of {name!r}")
        self._check_shape(name, shape, ggml_type)
        return TensorInfo(name, tuple(shape), ggml_type, offset)

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

    def _check_shape(self, name: str, shape: list[int], ggml_type: gguf.GGMLQuantizationType):
        block_size = gguf.GGML_QUANT_SIZES[ggml_type][0]
        if any(n < 0 for n in shape):
            raise self.corrupt(f"tensor {name!r} has a negative dimension in {shape}")
        row_length = shape[0] if shape else 1
        if row_length % block_size:
            raise self.corrupt(
                f"tensor {name!r} has rows of {row_length} values, not a multiple of the "
                f"{ggml_type.name} block size {block_size}"
            )

    # -- errors ----------------------------------------------------------------------

    def truncated(self, detail: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is truncated in the {self.section}: the file ends after "
            f"{self.size:,} bytes, inside {detail} — {download_again(self.path)}"
        )

    def corrupt(self, detail: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is not a valid GGUF: {detail} — the file is damaged; "
            f"{fetch_again(self.path)}"
        )


def _gguf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:  # a vendored copy
        return "(this version)"


def download_again(path: Path) -> str:
    return "the download was probably interrupted; " + fetch_again(path)


def fetch_again(path: Path) -> str:
    """How to get the file again: the `borealis pull` line when it has a Borealis file name."""
    stem, _, quant = path.name.removesuffix(".gguf").rpartition("-")
    try:
        model, quant = parse_name(f"{stem}:{quant}")
    except UnknownModelError:
        return "download the file again"
    if model.gguf_filename(quant) != path.name:
        return "download the file again"
    return f"run `{model.pull_command(quant)}` again or re-download it"


__all__ = [
    "Field",
    "Header",
    "HeaderReader",
    "TensorInfo",
    "download_again",
    "fetch_again",
    "read_header",
]
