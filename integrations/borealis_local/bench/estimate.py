"""How much memory a Borealis model needs, from the catalog's shapes: `borealis recommend`.

The estimate adds what llama.cpp allocates and touches:

- weights: every tensor of the Gemma 3 shape (`gemma3_tensors`: tied embeddings, per
  layer attention, q/k norms, FFN and norms; the 4b+ vision tower is not loaded for
  text) at the type llama.cpp's quantiser gives it for that quant (`tensor_types`: the
  K-quant mixes bump some tensors to more bits and fall back to other types where a
  row length is not a multiple of 256, which is most of 270m and 1b). With a real
  file, its own tensor table is used instead. On CPU, llama.cpp repacks Q4_0/Q4_K
  matrices for faster kernels into a second copy ("CPU_REPACK"), and the mmap'd
  originals stay resident too (1.4 GiB of 4b's 3.8 at Q4_K_M): the peak resident set
  (`Estimate.total`) counts both; what must fit (`Estimate.needed`) does not count the
  originals, clean page cache that is never read again and that the kernel takes back
  first.
- KV cache: f16 K and V per layer and cell. Global layers get `n_ctx` cells; sliding-
  window layers `window + n_ubatch` rounded up to 256 (`Shape.kv_cache_bytes`) in
  llama-server and Ollama, but llama-cpp-python's `Llama()` keeps llama.cpp's context
  default `swa_full=true` (it passes `swa_full` only when given; the log says "using
  full-size SWA cache"), so there every layer gets `n_ctx` cells: for 4b at 16k that
  is 2.1 GiB instead of 0.5 GiB.
- compute: llama.cpp reserves a graph buffer for the worst batch (`n_ubatch` tokens,
  each with logits): the logits alone are n_vocab x n_ubatch x 4 bytes, 512 MiB for
  Gemma's 262k vocabulary. A GPU allocates all of it. On the CPU the pages are taken
  only when written, and llama-cpp-python asks for one row of logits per batch, so
  what a process holds is the attention scores of a full batch at the deepest context
  plus the batch's activations (`COMPUTE_*`, fitted to measured peaks).
- overhead: the Python process with llama-cpp-python loaded, and the vocabulary and
  graph bookkeeping llama.cpp builds at load (`BASELINE_BYTES`, `VOCAB_BYTES`).

Validated against peaks measured on CPU (VmHWM of a child process that loads the
model and fills its context): see tests/test_estimate.py.
"""

from __future__ import annotations

import functools
import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from borealis_local.catalog import (
    DEFAULT_NUM_CTX,
    DEFAULT_QUANT,
    QUANTS,
    SHAPES,
    SIZES,
    Shape,
    check_quant,
)
from borealis_local.errors import BorealisError

if TYPE_CHECKING:
    import gguf

GiB = 1 << 30
MiB = 1 << 20

RUNTIMES = ("llama-cpp-python", "llama-server", "ollama")
# Which runtimes give every sliding-window layer a full-size cache (see above).
FULL_SWA = {"llama-cpp-python": True, "llama-server": False, "ollama": False}
DEFAULT_RUNTIME = "llama-cpp-python"
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
F32 = 4
RESERVED_FFN_WIDTHS, RESERVED_HIDDEN_WIDTHS = 1, 3
IN_USE_FFN_WIDTHS, IN_USE_HIDDEN_WIDTHS = 3, 3
FIRST_DECODE_BYTES = 18 * MiB


# -- the shapes' tensors -----------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a Gemma 3 GGUF: its name and dimensions in ggml order."""

    name: str
    dims: tuple[int, ...]
    layer: int | None = None

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    @property
    def is_matrix(self) -> bool:
        return len(self.dims) >= 2

    @property
    def kind(self) -> str:
        """`attn_v`, `ffn_down`, `token_embd`, … (the name without block and suffix)."""
        return _kind(self.name)


def gemma3_tensors(shape: Shape) -> list[TensorSpec]:
    """The tensors llama.cpp's gemma3 loader reads, in the order convert_hf_to_gguf writes.

    Tied embeddings: `token_embd` is also the output matrix. The vision tower of the
    4b+ sizes lives in a separate mmproj file and is not loaded for text.
    """
    hidden, head_dim = shape.hidden, shape.head_dim
    q_width, kv_width = shape.heads * head_dim, shape.kv_heads * head_dim
    tensors = [
        TensorSpec("output_norm.weight", (hidden,)),
        TensorSpec("token_embd.weight", (hidden, shape.vocab)),
    ]
    per_layer = (  # alphabetical, as in published GGUFs
        ("attn_k", (hidden, kv_width)),
        ("attn_k_norm", (head_dim,)),
        ("attn_norm", (hidden,)),
        ("attn_output", (q_width, hidden)),
        ("attn_q", (hidden, q_width)),
        ("attn_q_norm", (head_dim,)),
        ("attn_v", (hidden, kv_width)),
        ("ffn_down", (shape.ffn, hidden)),
        ("ffn_gate", (hidden, shape.ffn)),
        ("ffn_norm", (hidden,)),
        ("ffn_up", (hidden, shape.ffn)),
        ("post_attention_norm", (hidden,)),
        ("post_ffw_norm", (hidden,)),
    )
    for layer in range(shape.layers):
        tensors += [TensorSpec(f"blk.{layer}.{n}.weight", d, layer) for n, d in per_layer]
    return tensors


def parameter_count(shape: Shape) -> int:
    return sum(spec.elements for spec in gemma3_tensors(shape))


# -- the quantiser's type mix ---------------------------------------------------------------

# ggml types by name (gguf.GGMLQuantizationType's); gguf is imported only where sizes
# are needed, so `import borealis_local.bench.estimate` and the CLI stay light.
# The base type of each catalog quant (llama.cpp: llama_model_quantize_impl).
BASE_TYPES = {
    "BF16": "BF16",
    "Q8_0": "Q8_0",
    "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K",
    "Q4_K_M": "Q4_K",
    "Q3_K_M": "Q3_K",
    "Q2_K": "Q2_K",
}
# When a row length is not a multiple of a K-quant's 256-value block, llama.cpp falls
# back to a type with 32-value blocks (llama-quant.cpp, "using fallback quantization").
FALLBACKS = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def _more_bits(index: int, count: int) -> bool:
    """llama.cpp's `use_more_bits`: the first and last eighth, and every third between."""
    eighth = count // 8
    return index < eighth or index >= 7 * count // 8 or (index - eighth) % 3 == 2


def tensor_types(shape: Shape, quant: str) -> list[tuple[TensorSpec, gguf.GGMLQuantizationType]]:
    """Each tensor with the type llama.cpp's quantiser gives it for `quant`.

    A description of llama.cpp's rules (llama-quant.cpp, llama_tensor_get_type) as they
    apply to Gemma 3, checked against llama.cpp's own choices for every size and quant
    (tests/test_estimate.py, its quantiser's dry run).
    """
    import gguf

    quant = check_quant(quant)
    base = BASE_TYPES[quant]
    gqa = shape.heads // shape.kv_heads
    plan = []
    for spec in gemma3_tensors(shape):
        if not spec.is_matrix:
            chosen = "F32"
        elif quant in ("BF16", "Q8_0"):
            chosen = base
        else:
            chosen = _fit_rows(spec, _mixed_type(spec, quant, base, shape, gqa))
        plan.append((spec, gguf.GGMLQuantizationType[chosen]))
    return plan


def _mixed_type(spec: TensorSpec, quant: str, base: str, shape: Shape, gqa: int) -> str:
    kind, layer, layers = spec.kind, spec.layer or 0, shape.layers
    if kind == "token_embd":  # tied: quantised as the output matrix
        return "Q8_0" if spec.dims[0] % _block_size(base) else "Q6_K"
    if kind == "attn_v":
        if quant == "Q2_K":
            return "Q4_K" if gqa >= 4 else "Q3_K"
        if quant == "Q3_K_M":
            return "Q5_K" if layer < 2 else "Q4_K"
        if quant in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, layers):
            return "Q6_K"
    if kind == "ffn_down":
        if quant == "Q2_K":
            return "Q3_K"
        if quant == "Q3_K_M":
            return "Q5_K" if layer < layers // 16 else "Q4_K"
        if quant in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, layers):
            return "Q6_K"
    if kind == "attn_output" and quant in ("Q2_K", "Q3_K_M"):
        return "Q3_K" if quant == "Q2_K" else "Q4_K"
    return base


def _fit_rows(spec: TensorSpec, chosen: str) -> str:
    if spec.dims[0] % _block_size(chosen) == 0:
        return chosen
    fallback = FALLBACKS.get(chosen, "F16")
    return fallback if spec.dims[0] % _block_size(fallback) == 0 else "F16"


def _block_size(type_name: str) -> int:
    import gguf

    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]][0]


def tensor_bytes(dims: tuple[int, ...], ggml_type: gguf.GGMLQuantizationType) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[ggml_type]
    return math.prod(dims) // block * size


# -- memory ------------------------------------------------------------------------------

DEVICES = ("cpu", "gpu", "unified")
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
    runtime: str
    device: str
    weights: int
    repack: int
    kv_cache: int
    compute: int
    overhead: int
    source: str = "catalog shape"
    """Where the weights figure comes from: the catalog's shape, or a GGUF's own tensors."""

    @property
    def total(self) -> int:
        """The peak resident set a process shows (VmHWM): what was validated."""
        return self.weights + self.repack + self.kv_cache + self.compute + self.overhead

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
        return self.weights + self.kv_cache + self.compute

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
    runtime: str = DEFAULT_RUNTIME,
    device: str = "cpu",
    n_ubatch: int = N_UBATCH,
    gguf_path: str | Path | None = None,
    depth: int | None = None,
) -> Estimate:
    """Expected peak memory of `size` at `quant` with an `n_ctx`-token context in use.

    `device`: "cpu" (weights in RAM), "gpu" (every layer offloaded: weights, KV cache
    and compute buffers in VRAM) or "unified" (Apple silicon: one memory for both).
    With `gguf_path`, the weights are that file's own tensors. `depth`: how many tokens
    the context holds at the peak (default: all `n_ctx`, the memory to plan for).
    """
    shape, quant = _shape(size), check_quant(quant)
    n_ctx = _padded(n_ctx or DEFAULT_NUM_CTX[size])
    _check_choice(runtime, RUNTIMES, "runtime")
    _check_choice(device, DEVICES, "device")
    if gguf_path is None:
        plan, source = _shape_plan(size, quant), "catalog shape"
    else:
        plan, source = _file_plan(gguf_path), f"tensors of {Path(gguf_path).name}"
    weights = sum(tensor_bytes(dims, ggml_type) for dims, _, ggml_type in plan)
    on_cpu = device == "cpu"
    return Estimate(
        size=size,
        quant=quant,
        n_ctx=n_ctx,
        runtime=runtime,
        device=device,
        weights=weights,
        repack=_repack_bytes(plan) if on_cpu else 0,
        kv_cache=kv_cache_bytes(shape, n_ctx, runtime=runtime, n_ubatch=n_ubatch),
        compute=(
            compute_in_use(shape, min(depth or n_ctx, n_ctx), n_ubatch)
            if on_cpu
            else compute_reserved(shape, n_ctx, n_ubatch)
        ),
        overhead=BASELINE_BYTES + VOCAB_BYTES,
        source=source,
    )


def _shape(size: str) -> Shape:
    if size not in SHAPES:
        raise BorealisError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    return SHAPES[size]


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
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
    from borealis_local.bench.synth import read_header
    from borealis_local.runtime.gguf_check import check_gguf

    header = read_header(check_gguf(path).path)
    return [(t.dims, _kind(t.name), t.type) for t in header.tensors]


def _kind(name: str) -> str:
    return name.removesuffix(".weight").rpartition(".")[2]


def _repack_bytes(plan) -> int:
    if platform.machine().lower() not in REPACKING_MACHINES:
        return 0
    return sum(
        tensor_bytes(dims, ggml_type)
        for dims, kind, ggml_type in plan
        if ggml_type.name in REPACKED_TYPES and kind != "token_embd" and len(dims) == 2
    )


def kv_cache_bytes(
    shape: Shape, n_ctx: int, *, runtime: str = DEFAULT_RUNTIME, n_ubatch: int = N_UBATCH
) -> int:
    """f16 K and V for every layer: all `n_ctx` cells where the runtime keeps a
    full-size sliding-window cache (llama-cpp-python), else `Shape.kv_cache_bytes`."""
    if FULL_SWA[runtime]:
        return shape.layers * n_ctx * 2 * shape.kv_heads * shape.head_dim * KV_BYTES
    return shape.kv_cache_bytes(n_ctx, n_ubatch=n_ubatch, bytes_per_value=KV_BYTES)


def compute_reserved(shape: Shape, n_ctx: int, n_ubatch: int = N_UBATCH) -> int:
    """The graph buffer llama.cpp allocates (all of it on a GPU): the worst batch's
    logits, or its attention at full depth when that is larger (long contexts)."""
    logits = n_ubatch * F32 * (shape.vocab + 2 * shape.hidden)
    widths = RESERVED_FFN_WIDTHS * shape.ffn + RESERVED_HIDDEN_WIDTHS * shape.hidden
    return max(logits, _scores_bytes(shape, n_ctx, n_ubatch) + n_ubatch * F32 * widths)


def compute_in_use(shape: Shape, depth: int, n_ubatch: int = N_UBATCH) -> int:
    """What a CPU process touches of that buffer with `depth` tokens in its context (the
    last batch of them attending to all); pages never written stay unallocated, and
    llama-cpp-python asks for one row of logits a batch."""
    tokens = min(depth, n_ubatch)
    widths = IN_USE_FFN_WIDTHS * shape.ffn + IN_USE_HIDDEN_WIDTHS * shape.hidden
    scores = _scores_bytes(shape, _padded(depth), tokens)
    return scores + tokens * F32 * widths + FIRST_DECODE_BYTES


def _scores_bytes(shape: Shape, n_ctx: int, n_ubatch: int) -> int:
    """K·Q of one batch against every cell, one row per head plus the mask (no flash
    attention, llama-cpp-python's default)."""
    return n_ubatch * F32 * n_ctx * (shape.heads + 1)


# -- this machine, and what fits it --------------------------------------------------------

# Context sizes tried, largest first that fits wins (up to the model's own context).
CONTEXT_STEPS = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
# The least context worth recommending: a question with a few retrieved documents.
MIN_USEFUL_CTX = 8192
# Memory left to the system and other programs: a fifth of RAM, at least 1.5 GiB; the
# CUDA context and driver take about half a GiB of a card.
RAM_RESERVE_FRACTION = 0.2
RAM_RESERVE_MIN = 3 * GiB // 2
VRAM_RESERVE = GiB // 2
# macOS lets the GPU wire about three quarters of unified memory by default.
UNIFIED_GPU_FRACTION = 0.75
# Most precise first; BF16 is left to the JSON (Q8_0 is as good for inference).
PREFERRED_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")


@dataclass(frozen=True)
class Machine:
    ram: int
    vram: int = 0
    gpu: str | None = None
    unified: bool = False
    source: str = "given"

    @property
    def usable_ram(self) -> int:
        return max(0, self.ram - max(RAM_RESERVE_MIN, int(self.ram * RAM_RESERVE_FRACTION)))

    @property
    def usable_vram(self) -> int:
        if self.unified:
            return int(self.ram * UNIFIED_GPU_FRACTION)
        return max(0, self.vram - VRAM_RESERVE) if self.vram else 0

    @property
    def device(self) -> str:
        return "unified" if self.unified else ("gpu" if self.vram else "cpu")


def this_machine() -> Machine:
    """RAM from the OS; VRAM of the largest NVIDIA GPU through NVML (pynvml) when it is
    installed; Apple silicon's unified memory."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        raise BorealisError("cannot read this machine's RAM here: give --ram GiB") from None
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return Machine(ram, gpu="Apple silicon (Metal)", unified=True, source="this machine")
    vram, gpu = _nvidia_vram()
    return Machine(ram, vram, gpu, source="this machine")


def _nvidia_vram() -> tuple[int, str | None]:
    try:
        import pynvml
    except ImportError:
        return 0, None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return 0, None
    try:
        cards = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            cards.append((pynvml.nvmlDeviceGetMemoryInfo(handle).total, _text(name)))
    finally:
        pynvml.nvmlShutdown()
    return max(cards, default=(0, None))


def _text(name: str | bytes) -> str:
    return name.decode() if isinstance(name, bytes) else name


@dataclass(frozen=True)
class Fit:
    """The largest context of `CONTEXT_STEPS` with which one size and quant fit."""

    size: str
    quant: str
    estimate: Estimate
    where: str
    """"GPU", "CPU" or "unified"."""

    @property
    def n_ctx(self) -> int:
        return self.estimate.n_ctx

    @property
    def memory(self) -> int:
        """The bytes that must fit where it runs: GPU memory on a GPU, else RAM."""
        return self.estimate.device_bytes if self.where == "GPU" else self.estimate.needed

    @property
    def place(self) -> str:
        """Where it runs, in words: "on the GPU", "in unified memory", "on the CPU"."""
        return "in unified memory" if self.where == "unified" else f"on the {self.where}"

    def to_dict(self) -> dict:
        return {"size": self.size, "quant": self.quant, "n_ctx": self.n_ctx,
                "where": self.where, "estimate": self.estimate.to_dict()}


@dataclass(frozen=True)
class Advice:
    machine: Machine
    runtime: str
    fits: dict[tuple[str, str], Fit | None]
    pick: Fit | None
    """The recommendation, at the catalog's default num_ctx or the largest that fits."""

    def to_dict(self) -> dict:
        machine = asdict(self.machine) | {
            "usable_ram": self.machine.usable_ram,
            "usable_vram": self.machine.usable_vram,
        }
        return {
            "machine": machine,
            "runtime": self.runtime,
            "recommended": self.pick.to_dict() if self.pick else None,
            "fits": [
                {"size": size, "quant": quant, "fits": fit is not None}
                | (fit.to_dict() if fit else {})
                for (size, quant), fit in self.fits.items()
            ],
        }


def largest_fit(size: str, quant: str, machine: Machine, runtime: str) -> Fit | None:
    """The largest context step with which `size` at `quant` fits `machine`, if any."""
    steps = [n for n in CONTEXT_STEPS if n <= SHAPES[size].context_length]
    for n_ctx in reversed(steps):
        fit = _fit(size, quant, n_ctx, machine, runtime)
        if fit:
            return fit
    return None


def _fit(size: str, quant: str, n_ctx: int, machine: Machine, runtime: str) -> Fit | None:
    if machine.device != "cpu":
        on_gpu = estimate(size, quant, n_ctx, runtime=runtime, device=machine.device)
        if on_gpu.device_bytes <= machine.usable_vram and on_gpu.host_bytes <= machine.usable_ram:
            return Fit(size, quant, on_gpu, "unified" if machine.unified else "GPU")
        if machine.unified:
            return None
    on_cpu = estimate(size, quant, n_ctx, runtime=runtime, device="cpu")
    return Fit(size, quant, on_cpu, "CPU") if on_cpu.needed <= machine.usable_ram else None


def recommend(machine: Machine, runtime: str = DEFAULT_RUNTIME) -> Advice:
    """What fits `machine`: per size and quant the largest context, and one pick."""
    _check_choice(runtime, RUNTIMES, "runtime")
    fits = {(s, q): largest_fit(s, q, machine, runtime) for s in SIZES for q in QUANTS}
    return Advice(machine, runtime, fits, _pick(fits, machine, runtime))


def _pick(fits: dict[tuple[str, str], Fit | None], machine: Machine, runtime: str,
          keep: Callable[[Fit], bool] = lambda fit: True) -> Fit | None:
    """On the GPU if anything fits there (CPU inference of a big model is slow), then the
    largest size, in the most precise quant from Q8_0 to Q4_K_M, that runs with its
    default num_ctx, else with at least MIN_USEFUL_CTX (among the fits `keep` keeps)."""
    for where in ("GPU", "unified", "CPU"):
        for size in reversed(SIZES):
            for wanted in (DEFAULT_NUM_CTX[size], min(MIN_USEFUL_CTX, SHAPES[size].context_length)):
                for quant in PREFERRED_QUANTS:
                    if fits[size, quant] is None:
                        continue
                    fit = _fit(size, quant, wanted, machine, runtime)
                    if fit and fit.where == where and keep(fit):
                        return fit
    return None


# -- speed, projected from one measurement ------------------------------------------------

READING_RATE = 10.0
"""Tokens/second at which an answer streams faster than people read it."""


def generation_rate(fit: Fit, bytes_per_second: float) -> float:
    """Tokens/second `fit` generates where one measured model moved `bytes_per_second`
    (its tg rate × its weight bytes). Generation reads every weight once per token, so
    the rate goes as 1 / weight bytes: on the 2-core CPU here tg × size stayed within
    5 % from 270m to 4b (9.8, 10.0, 10.4 GB/s)."""
    return bytes_per_second / fit.estimate.weights


def fast_pick(advice: Advice, bytes_per_second: float,
              min_rate: float = READING_RATE) -> Fit | None:
    """Like the pick, among the fits projected to generate at least `min_rate` on the
    pick's kind of device (a speed measured on one says nothing of the other)."""
    if advice.pick is None:
        return None
    on_cpu = advice.pick.where == "CPU"

    def keep(fit: Fit) -> bool:
        return (fit.where == "CPU") == on_cpu and (
            generation_rate(fit, bytes_per_second) >= min_rate)

    return _pick(advice.fits, advice.machine, advice.runtime, keep=keep)
