"""How much memory a Borealis model needs, from the catalog's shapes (what `borealis
recommend` fits to a machine: `recommend`).

The estimate adds what llama.cpp allocates and touches:

- weights: every tensor of the Gemma 3 shape at the type llama.cpp's quantiser gives
  it for that quant (`tensors.tensor_types`). With a real file, its own tensor table
  is used instead. On CPU, llama.cpp repacks Q4_0/Q4_K
  matrices for faster kernels into a second copy ("CPU_REPACK"), and the mmap'd
  originals stay resident too (1.4 GiB of 4b's 3.8 at Q4_K_M): the peak resident set
  (`Estimate.total`) counts both; what must fit (`Estimate.needed`) does not count the
  originals, clean page cache that is never read again and that the kernel takes back
  first.
- KV cache: f16 K and V per layer and cell. Global layers get `n_ctx` cells; sliding-
  window layers `window + n_ubatch` rounded up to 256 (`Shape.kv_cache_bytes`), as
  llama-server, Ollama and our llama.cpp backend (`swa_full=False`,
  `runtime.llama_cpp.DEFAULT_SWA_FULL`) open them. With `swa_full=True` (llama.cpp's
  context default, which llama-cpp-python's own `Llama()` keeps unless told) every
  layer gets `n_ctx` cells: for 4b at 16k that is 2.1 GiB instead of 0.5 GiB.
- compute: llama.cpp reserves a graph buffer for the worst batch (`n_ubatch` tokens,
  each with logits): the logits alone are n_vocab x n_ubatch x 4 bytes, 512 MiB for
  Gemma's 262k vocabulary. A GPU allocates all of it. On the CPU the pages are taken
  only when written, and llama-cpp-python asks for one row of logits per batch, so
  what a process holds is the attention of a full batch at the deepest context plus
  the batch's activations (`COMPUTE_*`, fitted to measured peaks). Without flash
  attention that attention is the K·Q scores, f32, one row per head and cell; with it
  (llama.cpp's `auto` turns it on on the CPU and on GPUs that run it: the default
  here, in llama-server and in llama-bench) only the f16 mask, one row per cell.
- overhead: the Python process with llama-cpp-python loaded, and the vocabulary and
  graph bookkeeping llama.cpp builds at load (`BASELINE_BYTES`, `VOCAB_BYTES`).
- images (`images=True`, the 4b, 12b and 27b only): the vision projector (mmproj) that
  libmtmd loads beside the model, on the GPU when the layers are: its weights
  (`projector_weight_bytes`, from the catalog's `VisionTower` shape) and the compute
  buffer clip.cpp reserves for one 896 px image (`projector_compute_bytes`, a formula
  fitted to the reservations llama.cpp logged here on the CPU), plus the decoded image
  and its scratch in RAM (`IMAGE_SCRATCH_BYTES`). The text-only sizes add nothing.

Validated against peaks measured on CPU (VmHWM of a child process that loads the
model and fills its context): see tests/test_estimate.py.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

from borealis_local.bench.tensors import tensor_bytes, tensor_kind, tensor_types
from borealis_local.catalog import (
    DEFAULT_NUM_CTX,
    DEFAULT_QUANT,
    SHAPES,
    SIZES,
    VISION,
    Shape,
    VisionTower,
    check_quant,
)
from borealis_local.errors import BorealisError
from borealis_local.runtime.llama_cpp import DEFAULT_SWA_FULL

GiB = 1 << 30
MiB = 1 << 20

Runtime = Literal["llama-cpp-python", "llama-server", "ollama"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
# Which runtimes give every sliding-window layer a full-size cache (see above): ours
# follows the llama.cpp backend's default.
FULL_SWA = {"llama-cpp-python": DEFAULT_SWA_FULL, "llama-server": False, "ollama": False}
# Whether flash attention runs: llama.cpp's `auto` (our backend's and llama-server's
# default) resolves on where the device runs it; Ollama is planned without it (its
# OLLAMA_FLASH_ATTENTION), the larger buffer.
FLASH_ATTN = {"llama-cpp-python": True, "llama-server": True, "ollama": False}
DEFAULT_RUNTIME: Runtime = "llama-cpp-python"
N_UBATCH = 512
# llama.cpp pads the context to 256 cells.
CTX_PAD = 256
KV_BYTES = 2  # f16 K and V, llama.cpp's default cache type

# Measured here (llama-cpp-python 0.3.36, CPU): a Python process with llama_cpp
# imported holds 47 MiB; loading a Gemma 3 model adds 47 MiB beyond its buffers (the
# 262k-token vocabulary, its lookup tables, the graph metadata).
BASELINE_BYTES = 47 * MiB
VOCAB_BYTES = 47 * MiB
# The compute buffers. llama.cpp's reserve (its log, "compute buffer size") is the
# larger of the worst batch's logits and its attention at full depth: K·Q, f32, one
# row per head and cell (softmax works in place) and one for the mask, plus the
# batch's activations, about one FFN and three hidden widths (4b: 522, 1186 and 2338
# MiB at 2k, 64k and 128k, matched to 1 MiB; at 16k, where the two are close, llama.cpp
# reserves 568 MiB against 522). What a CPU process touches with its context
# full was fitted to peaks of 270m, 1b and 4b: the same scores, activations of about
# three FFN and three hidden widths, and 18 MiB of scratch at the first decode.
F32, F16 = 4, 2
RESERVED_FFN_WIDTHS, RESERVED_HIDDEN_WIDTHS = 1, 3
IN_USE_FFN_WIDTHS, IN_USE_HIDDEN_WIDTHS = 3, 3
FIRST_DECODE_BYTES = 18 * MiB
# The vision projector's compute buffer, as clip.cpp reserves it for one image (its log,
# "compute buffer size"), matched to the MiB on the CPU for the 27-block tower (and any
# of 2 or more blocks): with flash attention one FFN and three hidden widths of f32 per
# patch (121.25 MiB); without, K·Q's f32 scores for every head and pair of patches (1 GiB)
# and six hidden widths (1132 MiB). The text-width projection comes after, on 256 tokens.
PROJECTOR_FFN_WIDTHS, PROJECTOR_HIDDEN_WIDTHS = 1, 3
PROJECTOR_HIDDEN_WIDTHS_NO_FLASH = 6
# What a CPU process holds beyond the projector's weights and compute buffer once it has
# loaded it and encoded an image (the decoded picture, its resized f32 copy, clip.cpp's
# graph): 81 MiB measured here (24 at load, 57 at the first encode).
IMAGE_SCRATCH_BYTES = 80 * MiB
# Bytes per weight of an mmproj's matrices, by its file type; embeddings and vectors stay
# F32 (convert_hf_to_gguf keeps Gemma 3's patch and position embeddings F32).
PROJECTOR_DTYPES = {"F32": 4.0, "F16": 2.0, "BF16": 2.0, "Q8_0": 34 / 32}
DEFAULT_PROJECTOR_DTYPE = "F16"


# -- memory ------------------------------------------------------------------------------

# Where the model runs: weights in RAM, every layer offloaded, or one memory for both.
Device = Literal["cpu", "gpu", "unified"]
DEVICES: tuple[Device, ...] = get_args(Device)
# ggml-cpu repacks these types into interleaved layouts (x86 AVX2+, Arm NEON), a second
# copy next to the mmap'd file ("CPU_REPACK model buffer", seen here for Q4_K and Q4_0,
# not Q8_0/Q5_0/Q6_K); the token embeddings are read row by row and stay as they are.
REPACKED_TYPES = frozenset({"Q4_0", "Q4_K"})
REPACKING_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})


@dataclass(frozen=True)
class Estimate:
    """Expected memory of one model at one context, in bytes, and where it lives."""

    size: str
    quant: str
    n_ctx: int
    runtime: Runtime
    device: Device
    weights: int
    repack: int
    kv_cache: int
    compute: int
    overhead: int
    source: str = "catalog shape"
    """Where the weights figure comes from: the catalog's shape, or a GGUF's own tensors."""
    flash_attn: bool = True
    """Whether flash attention runs (it sizes the compute buffer)."""
    swa_full: bool = False
    """Whether the sliding-window layers have a full-size cache (it sizes the KV cache)."""
    projector: int = 0
    """The vision projector's weights, when images are planned for (0: text only)."""
    projector_compute: int = 0
    """The compute buffer the projector reserves for one image (an estimate: see
    `projector_compute_bytes`)."""

    @property
    def total(self) -> int:
        """The peak resident set a process shows (VmHWM): what was validated."""
        return (self.weights + self.repack + self.kv_cache + self.compute + self.overhead
                + self.projector + self.projector_compute)

    @property
    def needed(self) -> int:
        """What must fit: the total less the mmap'd originals of repacked tensors, which
        are never read again and are clean page cache the kernel takes back first."""
        return self.total - self.repack

    @property
    def device_bytes(self) -> int:
        """What must fit in GPU memory (0 on CPU; with unified memory, part of RAM)."""
        if self.device == "cpu":
            return 0
        # libmtmd puts the projector on the GPU whenever the model's layers are there.
        return (self.weights + self.kv_cache + self.compute + self.projector
                + self.projector_compute)

    @property
    def host_bytes(self) -> int:
        """What must fit in RAM: everything on CPU and with unified memory; with the
        layers offloaded, the process and its vocabulary."""
        return self.needed if self.device != "gpu" else self.overhead

    def to_dict(self) -> dict:
        return asdict(self) | {
            "total": self.total,
            "needed": self.needed,
            "host_bytes": self.host_bytes,
            "device_bytes": self.device_bytes,
        }


def estimate(
    size: str,
    quant: str = DEFAULT_QUANT,
    n_ctx: int | None = None,
    *,
    runtime: Runtime = DEFAULT_RUNTIME,
    device: Device = "cpu",
    n_ubatch: int = N_UBATCH,
    gguf_path: str | Path | None = None,
    depth: int | None = None,
    flash_attn: bool | None = None,
    swa_full: bool | None = None,
    images: bool = False,
    tower: VisionTower | None = None,
) -> Estimate:
    """Expected peak memory of `size` at `quant` with an `n_ctx`-token context in use.

    `device`: "cpu" (weights in RAM), "gpu" (every layer offloaded: weights, KV cache
    and compute buffers in VRAM) or "unified" (Apple silicon: one memory for both).
    With `gguf_path`, the weights are that file's own tensors. `depth`: how many tokens
    the context holds at the peak (default: all `n_ctx`, the memory to plan for).
    `flash_attn`, `swa_full`: as the model is opened (default: the runtime's defaults,
    `FLASH_ATTN` and `FULL_SWA`). `images`: add the vision projector (F16, as the GGUF
    repos' mmproj files are) for a size that sees images; a text-only size adds nothing,
    unless `tower` gives the projector to plan for (a stand-in with a synthetic one).
    """
    shape, quant = _shape(size), check_quant(quant)
    n_ctx = _padded(n_ctx or DEFAULT_NUM_CTX[size])
    check_choice(runtime, RUNTIMES, "runtime")
    check_choice(device, DEVICES, "device")
    if gguf_path is None:
        plan, source = _shape_plan(size, quant), "catalog shape"
    else:
        plan, source = _file_plan(gguf_path), f"tensors of {Path(gguf_path).name}"
    weights = sum(tensor_bytes(dims, ggml_type) for dims, _, ggml_type in plan)
    on_cpu = device == "cpu"
    flash = FLASH_ATTN[runtime] if flash_attn is None else flash_attn
    tower = (tower or VISION.get(size)) if images else None
    projector = projector_weight_bytes(tower, shape.hidden) if tower else 0
    projector_compute = projector_compute_bytes(tower, flash_attn=flash) if tower else 0
    return Estimate(
        size=size,
        quant=quant,
        n_ctx=n_ctx,
        runtime=runtime,
        device=device,
        weights=weights,
        repack=_repack_bytes(plan) if on_cpu else 0,
        kv_cache=kv_cache_bytes(shape, n_ctx, runtime=runtime, n_ubatch=n_ubatch,
                                swa_full=swa_full),
        compute=(
            compute_in_use(shape, min(depth or n_ctx, n_ctx), n_ubatch, flash_attn=flash)
            if on_cpu
            else compute_reserved(shape, n_ctx, n_ubatch, flash_attn=flash)
        ),
        overhead=BASELINE_BYTES + VOCAB_BYTES + (IMAGE_SCRATCH_BYTES if tower else 0),
        source=source,
        flash_attn=flash,
        swa_full=FULL_SWA[runtime] if swa_full is None else swa_full,
        projector=projector,
        projector_compute=projector_compute,
    )


def _shape(size: str) -> Shape:
    if size not in SHAPES:
        raise BorealisError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    return SHAPES[size]


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise BorealisError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")


def _padded(n_ctx: int) -> int:
    if n_ctx < 1:
        raise BorealisError(f"num_ctx must be at least 1, not {n_ctx}")
    return -(-n_ctx // CTX_PAD) * CTX_PAD


@functools.cache
def _shape_plan(size: str, quant: str) -> tuple:
    return tuple((s.dims, s.kind, t) for s, t in tensor_types(SHAPES[size], quant))


def _file_plan(path: str | Path) -> list:
    from borealis_local.gguf_header import read_header
    from borealis_local.runtime.gguf_check import check_gguf

    header = read_header(check_gguf(path).path)
    return [(t.dims, tensor_kind(t.name), t.type) for t in header.tensors]


def _repack_bytes(plan) -> int:
    if platform.machine().lower() not in REPACKING_MACHINES:
        return 0
    return sum(
        tensor_bytes(dims, ggml_type)
        for dims, tensor, ggml_type in plan
        if ggml_type.name in REPACKED_TYPES and tensor != "token_embd" and len(dims) == 2
    )


def kv_cache_bytes(
    shape: Shape, n_ctx: int, *, runtime: Runtime = DEFAULT_RUNTIME, n_ubatch: int = N_UBATCH,
    swa_full: bool | None = None,
) -> int:
    """f16 K and V for every layer: all `n_ctx` cells with a full-size sliding-window
    cache (`swa_full`; default: the runtime's, `FULL_SWA`), else `Shape.kv_cache_bytes`."""
    if FULL_SWA[runtime] if swa_full is None else swa_full:
        return shape.layers * n_ctx * 2 * shape.kv_heads * shape.head_dim * KV_BYTES
    return shape.kv_cache_bytes(n_ctx, n_ubatch=n_ubatch, bytes_per_value=KV_BYTES)


def compute_reserved(shape: Shape, n_ctx: int, n_ubatch: int = N_UBATCH, *,
                     flash_attn: bool = True) -> int:
    """The graph buffer llama.cpp allocates (all of it on a GPU): the worst batch's
    logits, or its attention at full depth when that is larger (long contexts)."""
    logits = n_ubatch * F32 * (shape.vocab + 2 * shape.hidden)
    widths = RESERVED_FFN_WIDTHS * shape.ffn + RESERVED_HIDDEN_WIDTHS * shape.hidden
    attention = _attention_bytes(shape, n_ctx, n_ubatch, flash_attn)
    return max(logits, attention + n_ubatch * F32 * widths)


def compute_in_use(shape: Shape, depth: int, n_ubatch: int = N_UBATCH, *,
                   flash_attn: bool = True) -> int:
    """What a CPU process touches of that buffer with `depth` tokens in its context (the
    last batch of them attending to all); pages never written stay unallocated, and
    llama-cpp-python asks for one row of logits a batch."""
    tokens = min(depth, n_ubatch)
    widths = IN_USE_FFN_WIDTHS * shape.ffn + IN_USE_HIDDEN_WIDTHS * shape.hidden
    attention = _attention_bytes(shape, _padded(depth), tokens, flash_attn)
    return attention + tokens * F32 * widths + FIRST_DECODE_BYTES


def _attention_bytes(shape: Shape, n_ctx: int, n_ubatch: int, flash_attn: bool) -> int:
    """What attention of one batch against every cell keeps: without flash attention
    K·Q, f32, one row per head, plus the mask; with it the f16 mask only (the scores
    are made tile by tile). On the stand-in llama.cpp reserved 1291.8 MiB without it at
    128k and 1042.8 MiB with it at 1M cells (514.5, the logits, up to 256k)."""
    if flash_attn:
        return n_ubatch * F16 * n_ctx
    return n_ubatch * F32 * n_ctx * (shape.heads + 1)


# -- the vision projector ----------------------------------------------------------------


def projector_weight_bytes(tower: VisionTower, text_hidden: int,
                           dtype: str = DEFAULT_PROJECTOR_DTYPE) -> int:
    """The tensor bytes of a Gemma 3 mmproj: a SigLIP encoder of `tower`'s shape and the
    projection to `text_hidden`, matrices at `dtype`, the rest F32.

    Per block: attention's four square matrices and the FFN's two, with their biases and
    two layer norms; then the patch embedding (a 14 x 14 x 3 convolution per hidden
    unit), one position embedding per patch, the last norm, the soft-embedding norm and
    the projection. 27 blocks into 2560 (4b) make 420 M parameters, 0.85 GB at F16.
    """
    if dtype not in PROJECTOR_DTYPES:
        raise BorealisError(
            f"unknown projector type {dtype!r}: choose one of {', '.join(PROJECTOR_DTYPES)}"
        )
    h, ffn = tower.hidden, tower.ffn
    matrices = tower.layers * (4 * h * h + 2 * h * ffn) + text_hidden * h
    vectors = tower.layers * (4 * h + h + ffn + 4 * h) + 2 * h + h + h
    embeddings = tower.patch_size**2 * 3 * h + tower.patches * h
    return round(matrices * PROJECTOR_DTYPES[dtype]) + F32 * (vectors + embeddings)


def projector_compute_bytes(tower: VisionTower, *, flash_attn: bool = True) -> int:
    """The compute buffer clip.cpp reserves to encode one image (see `PROJECTOR_*`):
    an estimate fitted to the sizes llama.cpp logged on the CPU; a GPU's was not
    measured."""
    patches = tower.patches
    if flash_attn:
        widths = PROJECTOR_FFN_WIDTHS * tower.ffn + PROJECTOR_HIDDEN_WIDTHS * tower.hidden
        return patches * F32 * widths
    scores = patches * patches * tower.heads
    return patches * F32 * (scores // patches + PROJECTOR_HIDDEN_WIDTHS_NO_FLASH * tower.hidden)


__all__ = [
    "DEVICES",
    "RUNTIMES",
    "Device",
    "Estimate",
    "Runtime",
    "compute_in_use",
    "compute_reserved",
    "estimate",
    "kv_cache_bytes",
    "projector_compute_bytes",
    "projector_weight_bytes",
]
