"""The GGUF check that runs before llama.cpp opens a model file.

Real files throughout: the stand-in Gemma 3 270M GGUF, copies of it cut at each part
of the format, and small GGUFs written with the `gguf` package's own GGUFWriter.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import gguf
import numpy as np
import pytest

from borealis_local.errors import InvalidModelFileError
from borealis_local.runtime.gguf_check import GGUFInfo, check_gguf

# The stand-in's layout (gemma-3-270m-q4_k_m.gguf, sha256 a5fd3b62…), read once with
# gguf.GGUFReader, which is too slow (13-23 s) to run in the suite: the header is bytes
# 0-24, the metadata 24 to 6,511,167 (the vocabulary strings from byte 934, the scores
# from 4,413,497), the tensor-info table to 6,525,112 and the tensor data from 6,525,120
# to the end of the file.
STAND_IN_SIZE = 253_113_024
STAND_IN_TENSORS = 236
METADATA = (24, 6_511_167)
TENSOR_INFO_TABLE = (6_511_167, 6_525_112)
DATA_OFFSET = 6_525_120


@pytest.fixture(scope="module")
def stand_in(gemma_gguf: Path) -> Path:
    assert gemma_gguf.stat().st_size == STAND_IN_SIZE, "the stand-in model changed"
    return gemma_gguf


def cut_copy(source: Path, length: int, target: Path) -> Path:
    """A copy of `source` truncated to `length` bytes, without copying the tensor data.

    The check reads only what precedes the tensor data, so the bytes from there on are
    left as a sparse hole (zeros that take no disk space): a 253 MB copy costs 6.5 MB.
    """
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(src.read(min(length, DATA_OFFSET)))
        dst.truncate(length)
    return target


def expect_error(path: Path, *fragments: str, **kwargs) -> str:
    with pytest.raises(InvalidModelFileError) as caught:
        check_gguf(path, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def write_small_gguf(path: Path, arch: str = "llama") -> Path:
    """A real GGUF of two tiny tensors, written by the gguf package's own writer."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name("tiny test model")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_array("tokenizer.ggml.tokens", ["<pad>", "<bos>", "hello"])
    writer.add_tensor("token_embd.weight", np.ones((3, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def patched(path: Path, offset: int, fmt: str, value: int) -> Path:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(struct.pack(fmt, value))
    return path


# -- a good file ---------------------------------------------------------------------


def test_the_stand_in_passes_quickly(stand_in, record_property):
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        info = check_gguf(stand_in)
        timings.append(time.perf_counter() - started)
    record_property("check_seconds", [round(t, 4) for t in timings])
    print(f"check_gguf on the stand-in: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")

    assert isinstance(info, GGUFInfo)
    assert (info.architecture, info.version, info.block_count) == ("gemma3", 3, 18)
    assert info.tensor_count == STAND_IN_TENSORS
    assert info.file_size == STAND_IN_SIZE
    assert info.data_offset == DATA_OFFSET
    assert info.file_type == "Q4_K_M"
    assert info.context_length == 32_768
    assert info.vocab_size == 262_144
    assert info.metadata["tokenizer.ggml.bos_token_id"] == 2
    assert "tokenizer.ggml.tokens" not in info.metadata  # arrays are counted, not kept
    assert info.metadata_array_lengths["tokenizer.ggml.scores"] == 262_144
    assert sum(info.tensor_types.values()) == STAND_IN_TENSORS
    assert min(timings) < 0.5


# -- truncated copies ----------------------------------------------------------------


@pytest.mark.parametrize(
    "length, fragments",
    [
        pytest.param(2, ["truncated in the header", "magic"], id="inside-the-magic"),
        pytest.param(
            12,
            ["truncated in the header", "inside the tensor count (bytes 8 to 16)"],
            id="in-the-counts",
        ),
        pytest.param(
            20, ["truncated in the header", "inside the metadata entry count"], id="in-the-kv-count"
        ),
        pytest.param(
            3_000_000,
            ["truncated in the metadata", "of 262,144 in 'tokenizer.ggml.tokens'"],
            id="in-the-vocabulary",
        ),
        pytest.param(
            5_000_000,
            ["truncated in the metadata", "'tokenizer.ggml.scores'"],
            id="in-the-scores",
        ),
        pytest.param(
            sum(TENSOR_INFO_TABLE) // 2,
            ["truncated in the tensor-info table", "inside the data offset of 'blk.8."],
            id="in-the-tensor-info-table",
        ),
        pytest.param(
            100_000_000,
            ["is truncated: the tensor data ends at byte 253,113,024", "has 100,000,000 bytes"],
            id="in-the-tensor-data",
        ),
        pytest.param(
            STAND_IN_SIZE - 1,
            ["is truncated: the tensor data ends at byte 253,113,024", "has 253,113,023 bytes"],
            id="one-byte-short",
        ),
    ],
)
def test_a_truncated_copy_says_where_it_ends(stand_in, tmp_path, length, fragments):
    copy = cut_copy(stand_in, length, tmp_path / "gemma-3-270m-q4_k_m.gguf")
    assert copy.stat().st_size == length
    expect_error(copy, *fragments, "download was probably interrupted")


def test_a_truncated_borealis_file_names_the_pull_command(stand_in, tmp_path):
    copy = cut_copy(stand_in, 3_000_000, tmp_path / "borealis-open-1b-Q8_0.gguf")
    expect_error(copy, "run `borealis pull 1b --variant open --quant Q8_0` again")


def test_a_truncated_copy_is_rejected_where_llama_cpp_gives_no_reason(
    stand_in, tmp_path, llama_cpp
):
    """The point of the check: llama.cpp refuses this copy (or, in older builds, crashed),
    but says only that loading failed. It runs in a subprocess so a crash cannot take
    the test run with it."""
    copy = cut_copy(stand_in, 3_000_000, tmp_path / "cut.gguf")
    ours = expect_error(copy, "truncated in the metadata")

    script = (
        "import json, sys, llama_cpp\n"
        "try:\n"
        "    llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=2, verbose=False)\n"
        "    print(json.dumps({'loaded': True}))\n"
        "except Exception as error:\n"
        "    print(json.dumps({'loaded': False, 'error': str(error)}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(copy)], capture_output=True, text=True, timeout=120
    )
    if run.returncode < 0:  # killed by a signal: the crash this check prevents
        return
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    assert theirs["loaded"] is False
    reason = theirs["error"].replace(str(copy), "FILE")
    assert "truncated" not in reason and "metadata" not in reason
    print(f"llama.cpp: {theirs['error']!r}\nborealis-local: {ours!r}")


# -- not a GGUF ----------------------------------------------------------------------


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.gguf"
    path.write_bytes(random.Random(0).randbytes(4096))
    expect_error(path, "is not a GGUF model file", "does not start with 'GGUF'")


def test_an_empty_file(tmp_path):
    path = tmp_path / "borealis-4b-Q4_K_M.gguf"
    path.touch()
    expect_error(path, "is empty (0 bytes)", "run `borealis pull 4b` again")


def test_a_git_lfs_pointer(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818\n"
        "size 253113024\n"
    )
    expect_error(path, "is a Git LFS pointer", "git lfs pull")


def test_an_html_error_page(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("<!DOCTYPE html>\n<html><head><title>401 Unauthorized</title></head></html>")
    expect_error(path, "is an HTML page", "token")


def test_a_safetensors_file(tmp_path):
    header = b'{"__metadata__":{"format":"pt"}}'
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    expect_error(path, "is a safetensors file", "-gguf repository")


def test_other_text(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("Not Found\n")
    expect_error(path, "is a text file (it starts with 'Not Found')")


def test_a_file_shorter_than_the_magic_that_is_not_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK")
    expect_error(path, "is not a GGUF model file")


# -- not a file ----------------------------------------------------------------------


def test_a_directory(tmp_path):
    expect_error(tmp_path, "is a directory", "path of the .gguf file")


def test_a_missing_path(tmp_path):
    expect_error(tmp_path / "nowhere.gguf", "no such model file", "borealis pull")


def test_an_unreadable_file(tmp_path, monkeypatch):
    """A double for the permission error: these tests may run as root, who reads all."""
    path = write_small_gguf(tmp_path / "locked.gguf")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    expect_error(path, "cannot read", "Permission denied", "readable")


# -- versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, fragment",
    [
        (1, "GGUF version 1 (2023)"),
        (4, "GGUF version 4, newer than the 3"),
        (0x03000000, "big-endian"),
        (0, "its GGUF version is 0"),
    ],
)
def test_an_unsupported_version(tmp_path, version, fragment):
    path = patched(write_small_gguf(tmp_path / "small.gguf"), 4, "<I", version)
    expect_error(path, "cannot be opened", fragment)


# -- architecture --------------------------------------------------------------------


def test_another_architecture_is_refused_by_default(tmp_path):
    path = write_small_gguf(tmp_path / "tiny-llama.gguf", arch="llama")
    expect_error(path, "is a llama model; borealis-local runs Gemma 3 (gemma3) models")


def test_another_architecture_is_accepted_when_asked_for(tmp_path):
    path = write_small_gguf(tmp_path / "tiny-llama.gguf", arch="llama")
    info = check_gguf(path, architectures=("llama",))
    assert (info.architecture, info.tensor_count, info.block_count) == ("llama", 2, 1)
    assert (info.name, info.context_length) == ("tiny test model", 64)
    assert info.metadata_array_lengths == {"tokenizer.ggml.tokens": 3}
    assert info.tensor_types == {"F32": 2}


def test_the_wrong_architecture_lists_every_one_accepted(tmp_path):
    path = write_small_gguf(tmp_path / "tiny-llama.gguf", arch="llama")
    expect_error(
        path, "runs Gemma 3 (gemma3) or qwen3 (qwen3) models", architectures=("gemma3", "qwen3")
    )


# -- absurd counts and corrupt fields ------------------------------------------------


def array_length_offset(path: Path, key: str) -> int:
    """Where the length of the metadata array `key` sits (after its key and two types)."""
    return path.read_bytes().index(key.encode()) + len(key) + 4 + 4


@pytest.mark.parametrize(
    "locate, fragments",
    [
        (lambda path: 8, ["truncated or corrupt", "there are 1,000,000,000,000 tensors"]),
        (lambda path: 16, ["truncated or corrupt", "there are 1,000,000,000,000 entries"]),
        (
            lambda path: array_length_offset(path, "tokenizer.ggml.tokens"),
            ["truncated or corrupt", "'tokenizer.ggml.tokens' says it holds 1,000,000,000,000"],
        ),
        (lambda path: 24, ["truncated in the metadata", "the key of entry 0", "1,000,000,000,"]),
    ],
    ids=["tensor-count", "metadata-count", "string-array-length", "key-length"],
)
def test_an_absurd_count_is_refused_fast_without_allocating(tmp_path, locate, fragments):
    path = write_small_gguf(tmp_path / "small.gguf")
    patched(path, locate(path), "<Q", 10**12)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        expect_error(path, *fragments, architectures=("llama",))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 1_000_000


def tensor_type_offset(path: Path, name: str, n_dims: int) -> int:
    """Where the ggml type of tensor `name` sits in its tensor-info entry."""
    data = path.read_bytes()
    start = data.index(struct.pack("<Q", len(name)) + name.encode()) + 8 + len(name)
    return start + 4 + 8 * n_dims


def test_an_unknown_tensor_type(tmp_path):
    path = write_small_gguf(tmp_path / "small.gguf")
    patched(path, tensor_type_offset(path, "token_embd.weight", 2), "<I", 4)  # Q4_2, removed
    expect_error(path, "'token_embd.weight' has ggml type 4", architectures=("llama",))


def test_tensor_data_out_of_place(tmp_path):
    path = write_small_gguf(tmp_path / "small.gguf")
    type_at = tensor_type_offset(path, "output_norm.weight", 1)
    patched(path, type_at + 4, "<Q", 64)  # its data offset: 96 (3x8 floats) is right
    expect_error(path, "'output_norm.weight' starts at data offset 64", architectures=("llama",))


def test_an_alignment_that_is_not_a_power_of_two(tmp_path):
    writer = gguf.GGUFWriter(tmp_path / "odd.gguf", "llama")
    writer.add_uint32(gguf.Keys.General.ALIGNMENT, 24)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    expect_error(tmp_path / "odd.gguf", "not a power of two", architectures=("llama",))


def test_a_big_sparse_file_costs_only_its_header(stand_in, tmp_path):
    """The check reads the header, never the tensor data: a full-length copy whose data
    is a hole passes, which is why it stays fast on a 27b file."""
    copy = cut_copy(stand_in, STAND_IN_SIZE, tmp_path / "hole.gguf")
    assert check_gguf(copy).tensor_count == STAND_IN_TENSORS
    assert os.stat(copy).st_blocks * 512 < 10_000_000
