"""NVIDIA GPUs through NVML (pynvml): the one probe for the bench's GPU memory and for
`borealis recommend`'s VRAM. pynvml is optional: without it, or without a driver,
`Nvml.open()` is None and callers fall back (nvidia-smi, or no GPU).
"""

from __future__ import annotations

from typing import Any


class Nvml:
    """An initialised NVML: device names, memory in use and in total, a process's use,
    energy used."""

    name = "nvml"  # as row sources name it ("nvml-process")

    def __init__(self, pynvml: Any):
        self.nvml = pynvml

    @classmethod
    def open(cls) -> Nvml | None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # not installed, or no driver
            return None
        return cls(pynvml)

    def close(self) -> None:
        self.nvml.nvmlShutdown()

    def __enter__(self) -> Nvml:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _handles(self) -> list:
        count = self.nvml.nvmlDeviceGetCount()
        return [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]

    def process_used(self, pid: int) -> int:
        """Bytes process `pid` holds on all devices (0 where ids are hidden)."""
        total = 0
        for handle in self._handles():
            for process in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == pid and process.usedGpuMemory:
                    total += process.usedGpuMemory
        return total

    def device_used(self) -> int:
        return sum(self.nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles())

    def energy_joules(self) -> float | None:
        """Energy all devices have used since the driver loaded (NVML's counter, Volta
        and newer), in joules; None where a device does not report it (never 0)."""
        try:
            millijoules = [
                self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles()
            ]
        except self.nvml.NVMLError:
            return None
        return sum(millijoules) / 1000 if millijoules else None

    def names(self) -> list[str]:
        return [_text(self.nvml.nvmlDeviceGetName(h)) for h in self._handles()]

    def cards(self) -> list[tuple[int, str]]:
        """(total bytes, name) of each device."""
        return [(self.nvml.nvmlDeviceGetMemoryInfo(h).total, _text(self.nvml.nvmlDeviceGetName(h)))
                for h in self._handles()]


def _text(name: str | bytes) -> str:
    return name.decode() if isinstance(name, bytes) else name


__all__ = ["Nvml"]
