"""`borealis recommend`: which Borealis sizes and quants fit a machine, with what
context, and one pick; and the speed one measurement projects for them.

A size and quant fit where the memory `estimate` expects at a context step fits what
the machine has to spare: on the GPU (VRAM, or the part of unified memory the GPU may
wire) with the process in RAM, else on the CPU in RAM. The estimate opens the model as
the runtime does by default: flash attention as `auto` resolves, the sliding-window
layers' cache as `swa_full` sizes it (`estimate.FLASH_ATTN`, `estimate.FULL_SWA`).
With `images=True` the image-text sizes (4b, 12b, 27b) also make room for their vision
projector; by default the plan is for text, as the runtimes load the projector only
when asked to (our backend at the first image, llama-server with `--mmproj`).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from borealis_local.bench.estimate import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    Device,
    Estimate,
    Runtime,
    check_choice,
    estimate,
)
from borealis_local.bench.nvml import Nvml
from borealis_local.catalog import DEFAULT_NUM_CTX, QUANTS, SHAPES, SIZES
from borealis_local.errors import BorealisError

GiB = 1 << 30
# Where a fit runs: "GPU", "CPU" or "unified" (Apple silicon).
Where = Literal["GPU", "CPU", "unified"]

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
    def device(self) -> Device:
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
    """The largest NVIDIA GPU's memory and name, (0, None) without NVML."""
    nvml = Nvml.open()
    if nvml is None:
        return 0, None
    with nvml:
        return max(nvml.cards(), default=(0, None))


@dataclass(frozen=True)
class Fit:
    """The largest context of `CONTEXT_STEPS` with which one size and quant fit."""

    size: str
    quant: str
    estimate: Estimate
    where: Where
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
    runtime: Runtime
    fits: dict[tuple[str, str], Fit | None]
    pick: Fit | None
    """The recommendation, at the catalog's default num_ctx or the largest that fits."""
    images: bool = False
    """Whether the image-text sizes were planned with their vision projector."""

    def to_dict(self) -> dict:
        machine = asdict(self.machine) | {
            "usable_ram": self.machine.usable_ram,
            "usable_vram": self.machine.usable_vram,
        }
        return {
            "machine": machine,
            "runtime": self.runtime,
            "images": self.images,
            "recommended": self.pick.to_dict() if self.pick else None,
            "fits": [
                {"size": size, "quant": quant, "fits": fit is not None}
                | (fit.to_dict() if fit else {})
                for (size, quant), fit in self.fits.items()
            ],
        }


def largest_fit(size: str, quant: str, machine: Machine, runtime: Runtime, *,
                images: bool = False) -> Fit | None:
    """The largest context step with which `size` at `quant` fits `machine`, if any
    (`images`: with room for the vision projector, where the size has one)."""
    steps = [n for n in CONTEXT_STEPS if n <= SHAPES[size].context_length]
    for n_ctx in reversed(steps):
        fit = _fit(size, quant, n_ctx, machine, runtime, images)
        if fit:
            return fit
    return None


def _fit(size: str, quant: str, n_ctx: int, machine: Machine, runtime: Runtime,
         images: bool) -> Fit | None:
    if machine.device != "cpu":
        on_gpu = estimate(size, quant, n_ctx, runtime=runtime, device=machine.device,
                          images=images)
        if on_gpu.device_bytes <= machine.usable_vram and on_gpu.host_bytes <= machine.usable_ram:
            return Fit(size, quant, on_gpu, "unified" if machine.unified else "GPU")
        if machine.unified:
            return None
    on_cpu = estimate(size, quant, n_ctx, runtime=runtime, device="cpu", images=images)
    return Fit(size, quant, on_cpu, "CPU") if on_cpu.needed <= machine.usable_ram else None


def recommend(machine: Machine, runtime: Runtime = DEFAULT_RUNTIME, *,
              images: bool = False) -> Advice:
    """What fits `machine`: per size and quant the largest context, and one pick.
    `images`: the image-text sizes with room for their vision projector."""
    check_choice(runtime, RUNTIMES, "runtime")
    fits = {(s, q): largest_fit(s, q, machine, runtime, images=images)
            for s in SIZES for q in QUANTS}
    return Advice(machine, runtime, fits, _pick(fits, machine, runtime, images), images)


def _pick(fits: dict[tuple[str, str], Fit | None], machine: Machine, runtime: Runtime,
          images: bool, keep: Callable[[Fit], bool] = lambda fit: True) -> Fit | None:
    """On the GPU if anything fits there (CPU inference of a big model is slow), then the
    largest size, in the most precise quant from Q8_0 to Q4_K_M, that runs with its
    default num_ctx, else with at least MIN_USEFUL_CTX (among the fits `keep` keeps)."""
    for where in ("GPU", "unified", "CPU"):
        for size in reversed(SIZES):
            for wanted in (DEFAULT_NUM_CTX[size], min(MIN_USEFUL_CTX, SHAPES[size].context_length)):
                for quant in PREFERRED_QUANTS:
                    if fits[size, quant] is None:
                        continue
                    fit = _fit(size, quant, wanted, machine, runtime, images)
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

    return _pick(advice.fits, advice.machine, advice.runtime, advice.images, keep=keep)


__all__ = [
    "READING_RATE",
    "Advice",
    "Fit",
    "Machine",
    "fast_pick",
    "generation_rate",
    "largest_fit",
    "recommend",
    "this_machine",
]
