"""Memory probes for the child process that runs a configuration.

Host: the peak resident set (VmHWM, Linux) of this process, reset
(`/proc/self/clear_refs`) before each test so a row's peak is that test's own; the
model's mmap'd pages count once they are touched, which inference does for every
weight. Where the peak cannot be reset (macOS) it is `ru_maxrss`, the process's peak so
far (`HostScope.PROCESS`). GPU (CUDA): this process's memory from NVML (pynvml, else
`nvidia-smi`), sampled after a test, when ggml's pools are at their largest; where the
container hides process ids, the devices' growth since the probe was made.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from borealis_local.bench.nvml import Nvml
from borealis_local.bench.row import GpuBytesSource, HostScope


class HostMemory:
    """This process's resident memory: current, peak, and resetting the peak (Linux)."""

    STATUS = Path("/proc/self/status")
    CLEAR_REFS = Path("/proc/self/clear_refs")

    def __init__(self):
        self.resettable = self._try_reset()

    def _try_reset(self) -> bool:
        try:
            # "5" resets the peak resident set size (VmHWM) to the current size.
            self.CLEAR_REFS.write_text("5")
        except OSError:
            return False
        return True

    def reset_peak(self) -> None:
        if self.resettable:
            self._try_reset()

    @property
    def scope(self) -> HostScope:
        return HostScope.TEST if self.resettable else HostScope.PROCESS

    def status(self) -> dict[str, int]:
        """VmHWM, VmRSS, RssAnon, RssFile in bytes ({} where /proc does not exist)."""
        try:
            text = self.STATUS.read_text()
        except OSError:
            return {}
        values = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
        return values

    def peak(self) -> int:
        status = self.status()
        if "VmHWM" in status:
            return status["VmHWM"]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB here

    def current(self) -> int | None:
        return self.status().get("VmRSS")

    def row_fields(self, baseline: int | None) -> dict[str, Any]:
        """A test's memory as row fields: the peak, its scope, and what it is made of."""
        status = self.status()
        return {
            "peak_host_bytes": self.peak(),
            "peak_host_scope": self.scope,
            "host_baseline_bytes": baseline,
            "rss_anon_bytes": status.get("RssAnon"),
            "rss_file_bytes": status.get("RssFile"),
        }


class GpuMemory:
    """CUDA memory of this process: NVML (pynvml) or nvidia-smi; where process ids are
    hidden (containers), the devices' growth since this object was made."""

    def __init__(self):
        self.pid = os.getpid()
        self.read = self._reader()
        self.baseline = self._device_used() if self.read else None

    def _reader(self) -> Nvml | _SmiReader | None:
        nvml = Nvml.open()
        if nvml is not None:
            return nvml
        if shutil.which("nvidia-smi"):
            return _SmiReader()
        return None

    def _device_used(self) -> int | None:
        try:
            return self.read.device_used()
        except Exception:
            return None

    def sample(self) -> tuple[int | None, GpuBytesSource | None]:
        if self.read is None:
            return None, None
        try:
            mine = self.read.process_used(self.pid)
        except Exception:
            mine = None
        if mine:
            return mine, f"{self.read.name}-process"
        used = self._device_used()
        if used is not None and self.baseline is not None:
            return max(used - self.baseline, 0), f"{self.read.name}-device-delta"
        return None, None

    def names(self) -> list[str]:
        try:
            return self.read.names() if self.read else []
        except Exception:
            return []


class _SmiReader:
    name = "nvidia-smi"

    def _query(self, *arguments: str) -> list[list[str]]:
        result = subprocess.run(
            ["nvidia-smi", *arguments, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        )
        return [[v.strip() for v in line.split(",")] for line in result.stdout.splitlines() if line]

    def process_used(self, pid: int) -> int:
        rows = self._query("--query-compute-apps=pid,used_memory")
        return sum(int(mib) * 2**20 for p, mib in rows if p == str(pid))

    def device_used(self) -> int:
        return sum(int(mib) * 2**20 for (mib,) in self._query("--query-gpu=memory.used"))

    def names(self) -> list[str]:
        return [name for (name,) in self._query("--query-gpu=name")]


__all__ = ["GpuMemory", "HostMemory"]
