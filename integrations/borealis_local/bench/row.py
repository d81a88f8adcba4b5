"""One benchmark result: a row with llama-bench's JSON fields, then ours.

`ResultRow` is the one schema every writer, reader and table uses. Its fields are
declared in the order a CSV's columns take: llama-bench's fields first, in
llama-bench's order (FACTS.md), then ours. A row writes the fields it has in the order
it got them, as the dict it replaces did: a measured row in the order the child
filled it in, a row read from a file (ours, or llama-bench's own `-o json`) in that
file's order, with keys this schema does not know kept. A field a row lacks (a server
has no host peak; llama-bench writes none of ours) reads as None and is not written.

As a read-only mapping (`row["avg_ts"]`, `row.get("ttft_ms")`, `dict(row)`) a row is
the JSON object it is written as, so scripts written against llama-bench's rows keep
working. `to_dict()` and `from_dict()` are the JSON boundary.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

# `runtime` of a row that llama-bench itself wrote (no kind of ours has this name).
LLAMA_BENCH = "llama-bench"
# `backends` of a row measured on a server; "CPU" is a llama.cpp build without a GPU.
SERVER_BACKENDS = "server"
CPU_BACKENDS = "CPU"


class HostScope(StrEnum):
    """What a row's host peak covers."""

    TEST = "test"  # the peak was reset before the test (Linux /proc/self/clear_refs)
    PROCESS = "process"  # the process's peak so far (ru_maxrss, macOS)


# Who measured a rate: the runtime itself, or the client's own clock.
TimingsSource = Literal["llama.cpp", "llama-server", "ollama", "client"]
# Where a GPU figure comes from, and whether it is this process's or the device's growth.
GpuBytesSource = Literal["nvml-process", "nvml-device-delta", "nvidia-smi-process",
                         "nvidia-smi-device-delta"]

_LLAMA_BENCH = {"llama_bench": True}
_BOOKKEEPING = {"json": False}


def _llama_bench() -> Any:
    return field(default=None, metadata=_LLAMA_BENCH)


@dataclass(frozen=True)
class Identity:
    """What makes two rows the same measurement point (a resumed sweep skips it); a
    setting the runtime owns (a server's threads) is None."""

    runtime: str | None
    model: str | None
    test: str | None
    n_threads: int | None
    n_gpu_layers: int | None
    flash_attn: int | None
    type_k: str | None
    type_v: str | None
    n_batch: int | None
    n_ubatch: int | None
    concurrency: int | None
    # The image test's picture and projector: two image rows with different ones are
    # different points. None on every other row, and then left out of the key and the
    # dict (so text rows' keys and JSON stay as they were).
    image: str | None = None
    mmproj: str | None = None

    def key(self) -> str:
        """The point as one string, as rows store it in `config_key`."""
        return json.dumps(list(self.to_dict().values()))

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in _IMAGE_IDENTITY:
            if values[name] is None:
                del values[name]
        return values


_IMAGE_IDENTITY = ("image", "mmproj")


@dataclass(frozen=True, eq=False)
class ResultRow(Mapping):
    """One test's result. Equal to another row, or to a dict, with the same JSON."""

    # -- llama-bench's fields, in its order ------------------------------------------
    build_commit: str | None = _llama_bench()
    build_number: int | None = _llama_bench()
    cpu_info: str | None = _llama_bench()
    gpu_info: str | None = _llama_bench()
    backends: str | None = _llama_bench()  # "CPU", "CUDA", "Metal", …; "server"
    model_filename: str | None = _llama_bench()
    model_type: str | None = _llama_bench()
    model_size: int | None = _llama_bench()  # tensor bytes
    model_n_params: int | None = _llama_bench()
    n_batch: int | None = _llama_bench()
    n_ubatch: int | None = _llama_bench()
    n_threads: int | None = _llama_bench()
    type_k: str | None = _llama_bench()
    type_v: str | None = _llama_bench()
    n_gpu_layers: int | None = _llama_bench()
    split_mode: str | None = _llama_bench()
    main_gpu: int | None = _llama_bench()
    no_kv_offload: bool | None = _llama_bench()
    flash_attn: int | bool | None = _llama_bench()  # -1 auto, 0 off, 1 on (as llama-bench)
    use_mmap: bool | None = _llama_bench()
    embeddings: bool | None = _llama_bench()
    n_prompt: int | None = _llama_bench()
    n_gen: int | None = _llama_bench()
    n_depth: int | None = _llama_bench()
    test_time: str | None = _llama_bench()
    avg_ns: int | None = _llama_bench()
    stddev_ns: int | None = _llama_bench()
    avg_ts: float | None = _llama_bench()
    stddev_ts: float | None = _llama_bench()
    samples_ns: list[int] | None = _llama_bench()
    samples_ts: list[float] | None = _llama_bench()
    # -- ours: what ran --------------------------------------------------------------
    runtime: str | None = None  # the kind's name ("llama.cpp", "ollama", "openai")
    model: str | None = None  # the name it was given
    label: str | None = None  # e.g. the stand-in's "not Borealis"
    test: str | None = None  # llama-bench's label (pp512, tg128 @ d4096) or chatN
    quant: str | None = None
    model_file_bytes: int | None = None
    n_ctx: int | None = None
    reps: int | None = None
    concurrency: int | None = None
    load_ms: float | None = None
    # -- memory (llama.cpp in-process) -----------------------------------------------
    peak_host_bytes: int | None = None
    peak_host_scope: HostScope | None = None
    host_baseline_bytes: int | None = None
    rss_anon_bytes: int | None = None
    rss_file_bytes: int | None = None
    gpu_bytes: int | None = None
    gpu_bytes_source: GpuBytesSource | None = None
    buffers: dict[str, int] | None = None  # llama.cpp's log: "CPU KV" -> bytes
    # -- the chat view, and servers' own figures --------------------------------------
    ttft_ms: float | None = None
    stddev_ttft_ms: float | None = None
    samples_ttft_ms: list[float] | None = None
    completion_tokens: list[int] | None = None
    prompt_tokens: int | None = None
    tokens: list[int] | None = None  # per rep, the tokens a server's rate counts
    prompt_ts: float | None = None
    gen_ts: float | None = None
    timings_source: TimingsSource | None = None
    server_model_bytes: int | None = None
    server_vram_bytes: int | None = None
    # -- an image through the vision projector (the `image` test) ----------------------
    image: str | None = None  # the file measured, or "synthetic" (a generated picture)
    image_tokens: int | None = None  # the soft tokens it takes in the prompt (Gemma 3: 256)
    image_encode_ms: float | None = None  # median over the reps, one image each
    samples_image_encode_ms: list[float] | None = None
    mmproj: str | None = None  # the projector GGUF
    mmproj_label: str | None = None  # e.g. a synthetic projector's "random weights"
    mmproj_load_ms: float | None = None
    mmproj_file_bytes: int | None = None
    mmproj_weight_bytes: int | None = None  # as llama.cpp loaded them (its log)
    mmproj_compute_bytes: int | None = None  # its compute buffers (its log)
    # -- the software, and bookkeeping -----------------------------------------------
    borealis_version: str | None = None
    runtime_version: str | None = None
    platform: str | None = None
    python: str | None = None
    pid: int | None = None  # the child process that measured it
    config_key: str | None = None  # `Identity.key()`
    # -- not fields of the JSON --------------------------------------------------------
    extra: dict[str, Any] = field(default_factory=dict, metadata=_BOOKKEEPING)
    """Keys a file had that this schema does not know, kept as they were."""
    present: tuple[str, ...] | None = field(default=None, metadata=_BOOKKEEPING)
    """The keys this row has, in their order; None: every field, in the schema's."""

    # -- building ----------------------------------------------------------------------

    @classmethod
    def llama_bench_template(cls) -> ResultRow:
        """A row with llama-bench's fields, all None: where a measured row starts."""
        return cls(present=LLAMA_BENCH_FIELDS)

    def updated(self, **values: Any) -> ResultRow:
        """This row with `values` set; keys it did not have come last (dict.update)."""
        unknown = set(values) - _FIELD_SET
        if unknown:
            raise TypeError(f"not fields of a result row: {', '.join(sorted(unknown))}")
        added = tuple(name for name in values if name not in self._key_set)
        return dataclasses.replace(self, present=(*self.keys(), *added), **values)

    def identity(self) -> Identity:
        return Identity(**{name: getattr(self, name) for name in _IDENTITY_NAMES})

    @property
    def gpu_build(self) -> bool:
        """Whether llama.cpp ran on a GPU build (so its GPU layers mean something)."""
        return self.backends not in (None, CPU_BACKENDS, SERVER_BACKENDS)

    # -- the JSON boundary ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRow:
        """A row from its JSON object: known keys to fields, the rest kept in `extra`."""
        if isinstance(data, ResultRow):
            return data
        known = {key: value for key, value in data.items() if key in _FIELD_SET}
        extra = {key: value for key, value in data.items() if key not in _FIELD_SET}
        return cls(**known, extra=extra, present=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the row's keys, in its order."""
        return {key: self[key] for key in self}

    # -- a read-only mapping, as the JSON object ---------------------------------------

    def keys(self):  # a tuple: ordered, and cheap for the mapping methods below
        if self.present is not None:
            return self.present
        return (*FIELD_NAMES, *self.extra)

    @functools.cached_property
    def _key_set(self) -> frozenset[str]:
        return frozenset(self.keys())

    def __getitem__(self, key: str) -> Any:
        if key in self._key_set:
            return getattr(self, key) if key in _FIELD_SET else self.extra[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self._key_set

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # rows hold lists: not hashable


def _json_fields() -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(ResultRow) if f.metadata.get("json", True))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in _json_fields())
"""Every field of the JSON, in the schema's order (a CSV's columns)."""
LLAMA_BENCH_FIELDS: tuple[str, ...] = tuple(
    f.name for f in _json_fields() if f.metadata.get("llama_bench")
)
"""llama-bench's fields, in its order: every measured row carries them."""
_FIELD_SET = frozenset(FIELD_NAMES)
_IDENTITY_NAMES = tuple(f.name for f in dataclasses.fields(Identity))


def as_row(row: ResultRow | Mapping[str, Any]) -> ResultRow:
    """A row as given, or made from the dict it was written as."""
    return row if isinstance(row, ResultRow) else ResultRow.from_dict(row)


def identity_key(row: ResultRow | Mapping[str, Any]) -> str:
    """A row's measurement point as one string (rows from the same point share it)."""
    return as_row(row).identity().key()


__all__ = [
    "FIELD_NAMES",
    "LLAMA_BENCH",
    "LLAMA_BENCH_FIELDS",
    "GpuBytesSource",
    "HostScope",
    "Identity",
    "ResultRow",
    "TimingsSource",
    "as_row",
    "identity_key",
]
