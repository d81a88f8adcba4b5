"""What every measured configuration shares: the machine's facts, llama-bench's
statistics, and the row they go into.

A row starts as llama-bench's fields (all None), then gets, in this order, the
machine's facts, the test's identity, the target's facts, the statistics and what the
run measured besides, and last its `config_key`: the order its JSON keeps.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from borealis_local.bench.measure import Config, Test
from borealis_local.bench.probes import HostMemory
from borealis_local.bench.row import ResultRow


def system_facts(backends: str, gpu_names: Iterable[str] = ()) -> ResultRow:
    """The machine and software, in llama-bench's fields plus ours: a row's start."""
    from importlib.metadata import PackageNotFoundError, version

    from borealis_local import __version__

    try:
        runtime_version = f"llama-cpp-python {version('llama-cpp-python')}"
    except PackageNotFoundError:
        runtime_version = None
    return ResultRow.llama_bench_template().updated(
        # llama-cpp-python exposes no llama.cpp commit: its version names the vendored tree.
        build_commit=runtime_version or "unknown",
        build_number=0,
        cpu_info=cpu_name(),
        gpu_info=", ".join(dict.fromkeys(gpu_names)),
        backends=backends,
        borealis_version=__version__,
        runtime_version=runtime_version,
        platform=f"{platform.system()} {platform.machine()}",
        python=platform.python_version(),
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            result = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                    capture_output=True, text=True, timeout=5)
            if result.stdout.strip():
                return result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def summary(samples_ns: list[int], samples_ts: list[float]) -> dict[str, Any]:
    """llama-bench's statistics as row fields: arithmetic means and sample standard
    deviations (n - 1; 0 for a single sample)."""

    def stdev(values):
        return statistics.stdev(values) if len(values) > 1 else 0.0

    return {
        "avg_ns": round(statistics.fmean(samples_ns)),
        "stddev_ns": round(stdev(samples_ns)),
        "avg_ts": statistics.fmean(samples_ts),
        "stddev_ts": stdev(samples_ts),
        "samples_ns": list(samples_ns),
        "samples_ts": list(samples_ts),
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Run:
    """What the llama.cpp and server runs share: rows with the same fields."""

    def __init__(self, config: Config, send: Callable[[ResultRow], None],
                 step: Callable[[str], None]):
        self.config = config
        self.send = send
        self.step = step
        self.host = HostMemory()
        self.baseline = self.host.current()
        self.facts: ResultRow | None = None  # `system_facts`, once the run knows them

    def row(self, test: Test, stats: dict[str, Any], **measured: Any) -> ResultRow:
        """The row of `test`: the facts, its identity and target, `stats` (`summary`'s)
        and the other fields `measured` (ResultRow's names)."""
        config, target = self.config, self.config.target
        start = self.facts if self.facts is not None else ResultRow.llama_bench_template()
        row = start.updated(**config.identity(test).to_dict()).updated(
            model_filename=target.path or target.server_model,
            n_prompt=test.n_prompt,
            n_gen=test.n_gen,
            n_depth=test.n_depth,
            test_time=_now(),
            label=target.label,
            quant=target.quant,
            model_file_bytes=target.file_bytes,
            reps=config.reps,
            pid=os.getpid(),  # each configuration's own process
        ).updated(**stats, **measured)
        return row.updated(config_key=row.identity().key())


__all__ = ["Run", "cpu_name", "summary", "system_facts"]
