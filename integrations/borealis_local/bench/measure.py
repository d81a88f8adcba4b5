"""One benchmark configuration, measured as llama-bench measures it, in a process of its own.

What a configuration is: one model on one runtime with fixed settings (threads, GPU
layers, flash attention, KV cache types, batch sizes), and the tests run on it, one
result row each:

- `ppN` / `tgN` (optionally `@ dD`), llama.cpp in-process, exactly llama-bench's method
  (tools/llama-bench/llama-bench.cpp) through llama-cpp-python's C API: the model loaded
  once; per test a context of n_prompt + n_gen + n_depth cells; one untimed warm-up (the
  whole prompt for pp, one token for tg); then `reps` repetitions, each clearing the KV
  cache (`llama_memory_clear`), evaluating `n_depth` untimed tokens, and timing pp =
  n_prompt random tokens decoded in n_batch chunks, tg = n_gen single-token decodes
  with no sampling (`llama_decode` + `llama_synchronize`). Per-rep rate = tokens / time;
  avg_ts is their arithmetic mean and stddev_ts their sample standard deviation.
- `chatN`, the user-facing view through the runtime's Backend (template, tokenizer,
  sampling, streaming): time to first token and end-to-end tokens/second for a chat
  message answered with up to N tokens, each rep a fresh prompt (no cache reuse);
  with `concurrency` > 1 (servers), that many streams at once and their total rate.
- For Ollama and OpenAI-compatible servers, `ppN` and `tgN` are read from the rates the
  server reports (Ollama's durations, llama-server's `timings`; client-side timing
  otherwise), on a raw prompt of about N words.

Memory, per row. Host: the peak resident set (VmHWM, Linux) of the child process that
ran the configuration, reset (`/proc/self/clear_refs`) before each test so a row's
peak is that test's own; the model's mmap'd pages count once they are touched, which
inference does for every weight. Where the peak cannot be reset (macOS) it is
`ru_maxrss`, the process's peak so far (`peak_host_scope` says which). GPU (CUDA):
the process's memory from NVML (pynvml, else `nvidia-smi`) after the test, when ggml's
pools are at their largest; where the container hides process ids, the device's
growth since the child started. Every backend: the buffer sizes llama.cpp logs (model,
KV cache, compute, output; on Metal the only figure).
"""

from __future__ import annotations

import ctypes
import json
import math
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis_local.errors import BackendError, BorealisError, InvalidRequestError

RUNTIMES = ("llama.cpp", "ollama", "openai")
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")

# The llama-bench JSON fields every row carries, in llama-bench's order (FACTS.md).
LLAMA_BENCH_FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename",
    "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads",
    "type_k", "type_v", "n_gpu_layers", "split_mode", "main_gpu", "no_kv_offload",
    "flash_attn", "use_mmap", "embeddings", "n_prompt", "n_gen", "n_depth", "test_time",
    "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
)  # fmt: skip
# What makes two rows the same measurement point (a resumed sweep skips it).
IDENTITY_FIELDS = (
    "runtime", "model", "test", "n_threads", "n_gpu_layers", "flash_attn", "type_k",
    "type_v", "n_batch", "n_ubatch", "concurrency",
)  # fmt: skip

# llama-cpp-python's micro-batch, which the runtime backend (the chat view) keeps.
CHAT_UBATCH = 512
# The user-facing chat view asks this (a real task for Borealis), made unique per rep.
CHAT_MESSAGE = (
    "Skriv ein kort artikkel på nynorsk om nordlyset: kva det er, kvar og når ein kan sjå "
    "det i Noreg, og korleis ein fotograferer det med ein vanleg mobiltelefon."
)
# Words for server prompts of a given length: common words, each about one token.
_FILLER = (
    "og i det som er på en til av for at med ikke har de var jeg om men et også fra "
    "kan vil når år nå så eller bare etter over hva ved seg under mot dag tid land by "
    "vann skog fjell hus bok lys natt sol vind hav vei barn folk arbeid skole språk"
).split()


# -- what is measured -----------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    """One row: a prompt-processing, generation or chat test, llama-bench's shapes."""

    __test__ = False  # not a pytest test class, despite the name

    n_prompt: int = 0
    n_gen: int = 0
    n_depth: int = 0
    chat: bool = False

    def __post_init__(self):
        for name in ("n_prompt", "n_gen", "n_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidRequestError(f"{name} must be a whole number >= 0, not {value!r}")
        if self.chat and (self.n_gen < 1 or self.n_prompt or self.n_depth):
            raise InvalidRequestError("a chat test takes only n_gen >= 1 (the answer's length)")
        if not (self.n_prompt or self.n_gen):
            raise InvalidRequestError("a test needs n_prompt or n_gen above 0")

    @property
    def name(self) -> str:
        """llama-bench's test label: pp512, tg128, pp512+tg128, tg128 @ d4096; chat128."""
        if self.chat:
            return f"chat{self.n_gen}"
        if self.n_prompt and not self.n_gen:
            label = f"pp{self.n_prompt}"
        elif self.n_gen and not self.n_prompt:
            label = f"tg{self.n_gen}"
        else:
            label = f"pp{self.n_prompt}+tg{self.n_gen}"
        return f"{label} @ d{self.n_depth}" if self.n_depth else label


@dataclass(frozen=True)
class Target:
    """A model as a runtime will open it, resolved (and checked) before any child starts."""

    name: str
    runtime: str
    path: str | None = None  # the GGUF, for llama.cpp
    server_model: str | None = None  # the server's model name (Ollama, OpenAI-compatible)
    base_url: str | None = None
    label: str | None = None  # e.g. "stand-in: Gemma 3 270M base, not Borealis"
    quant: str | None = None
    file_bytes: int | None = None


@dataclass(frozen=True)
class Config:
    """One model on one runtime with fixed settings; its tests run in one child process."""

    target: Target
    tests: tuple[Test, ...]
    reps: int = 5
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    flash_attn: bool = False
    type_k: str = "f16"
    type_v: str = "f16"
    n_batch: int = 2048
    n_ubatch: int = 512
    concurrency: int = 1
    warmup: bool = True
    request_timeout: float = 600.0

    def __post_init__(self):
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequestError(f"{name} must be a whole number >= 1, not {value!r}")

        for name in ("reps", "n_batch", "n_ubatch", "concurrency"):
            positive(name)
        if self.n_threads is not None:
            positive("n_threads")
        for name in ("type_k", "type_v"):
            if getattr(self, name) not in KV_CACHE_TYPES:
                raise InvalidRequestError(
                    f"{name} {getattr(self, name)!r} is not a KV cache type: use one of "
                    + ", ".join(KV_CACHE_TYPES)
                )
        if not self.tests:
            raise InvalidRequestError("nothing to measure: give -p, -n or --chat above 0")
        in_process = self.target.runtime == "llama.cpp"
        if in_process and self.concurrency > 1:
            raise InvalidRequestError(
                "concurrent streams measure a server: llama.cpp in-process answers one at "
                "a time (serve the model with llama-server and bench openai:MODEL@URL)"
            )
        if not in_process and any(t.n_depth for t in self.tests):
            raise InvalidRequestError("-d (depth) is for llama.cpp in-process, not servers")

    def identity(self, test: Test) -> dict[str, Any]:
        """The fields that name this test's row; settings a server owns are None."""
        local = self.target.runtime == "llama.cpp"
        # The chat view runs the runtime's backend: f16 KV cache, llama.cpp's micro-batch.
        chat = local and test.chat
        return {
            "runtime": self.target.runtime,
            "model": self.target.name,
            "test": test.name,
            "n_threads": self.n_threads if local else None,
            "n_gpu_layers": self.n_gpu_layers if local else None,
            "flash_attn": int(self.flash_attn) if local else None,
            "type_k": ("f16" if chat else self.type_k) if local else None,
            "type_v": ("f16" if chat else self.type_v) if local else None,
            "n_batch": self.n_batch if local else None,
            "n_ubatch": (CHAT_UBATCH if chat else self.n_ubatch) if local else None,
            "concurrency": self.concurrency,
        }

    def key(self, test: Test) -> str:
        return identity_key(self.identity(test))


def identity_key(row: dict[str, Any]) -> str:
    """A row's measurement point as one string (rows from the same point share it)."""
    return json.dumps([row.get(name) for name in IDENTITY_FIELDS])


def resolve_target(name: str, *, label: str | None = None) -> Target:
    """The runtime and model a name means (runtime.resolve's rules), checked when it is
    a local GGUF, so a bad name fails here with a clear message, before any child."""
    from borealis_local.runtime.resolve import describe

    kind, arguments = describe(name)
    if kind == "openai":
        return Target(name, "openai", server_model=arguments["model"],
                      base_url=arguments["base_url"], label=label)
    if kind == "ollama":
        return Target(name, "ollama", server_model=arguments["model"], label=label)
    from borealis_local.runtime.gguf_check import check_gguf

    info = check_gguf(arguments["model_path"], architectures=("gemma3",))
    return Target(name, "llama.cpp", path=str(info.path), label=label,
                  quant=info.file_type, file_bytes=info.file_size)


def default_threads() -> int:
    """Physical cores, as llama-bench's default: hyperthread siblings count once."""
    sets = set()
    for sibling in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/thread_siblings"):
        try:
            sets.add(sibling.read_text().strip())
        except OSError:
            continue
    return len(sets) or os.cpu_count() or 1


def gpu_build() -> str | None:
    """The GPU backend of the installed llama.cpp build (CUDA, Metal, …), or None."""
    from borealis_local.runtime.llama_cpp import _gpu_backend

    return _gpu_backend()


# -- the parent's side: a child process per configuration -----------------------------


def run_config(
    config: Config,
    on_row: Callable[[dict[str, Any]], None],
    *,
    timeout: float | None = None,
    on_step: Callable[[str], None] | None = None,
) -> None:
    """Run `config` in a fresh process (spawned, so no memory is shared or inherited),
    handing each row to `on_row` as it is measured. An error in the child is raised
    here as the same borealis error; a crash (signal, out of memory) as BackendError."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(config, sender), daemon=True)
    process.start()
    sender.close()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            message = _receive(receiver, process, deadline, config)
            kind, payload = message
            if kind == "row":
                on_row(payload)
            elif kind == "step" and on_step is not None:
                on_step(payload)
            elif kind == "error":
                raise _rebuilt_error(*payload)
            elif kind == "done":
                break
    finally:
        receiver.close()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


def _receive(receiver, process, deadline: float | None, config: Config):
    while not receiver.poll(0.2):
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            raise BackendError(
                f"benchmarking {config.target.name} took longer than the time allowed; "
                "use smaller -p/-n/-r or a longer timeout"
            )
        if not process.is_alive() and not receiver.poll(0):
            raise _crash(process.exitcode, config)
    try:
        return receiver.recv()
    except EOFError:
        process.join(timeout=10)
        raise _crash(process.exitcode, config) from None


def _crash(exitcode: int | None, config: Config) -> BackendError:
    why = f"exit status {exitcode}"
    if exitcode is not None and exitcode < 0:
        why = f"signal {-exitcode}"
        if -exitcode == 9:
            why += ", most likely the out-of-memory killer: try a smaller model or context"
        elif -exitcode == 4:
            why += " (SIGILL: this llama.cpp build uses an instruction the CPU lacks; "
            why += "rebuild it with the flags in .ci/cpu-flags.sh)"
    return BackendError(f"the benchmark process for {config.target.name} died ({why})")


def _rebuilt_error(class_name: str, message: str) -> BorealisError:
    from borealis_local import errors

    cls = getattr(errors, class_name, None)
    if isinstance(cls, type) and issubclass(cls, BorealisError):
        try:
            return cls(message)
        except TypeError:  # an error class with required keyword arguments
            pass
    return BackendError(message)


# -- the child's side ------------------------------------------------------------------


def _child_main(config: Config, sender) -> None:
    def send_row(row: dict[str, Any]) -> None:
        sender.send(("row", row))

    def step(text: str) -> None:
        sender.send(("step", text))

    try:
        if config.target.runtime == "llama.cpp":
            _LlamaCppRun(config, send_row, step).run()
        else:
            _ServerRun(config, send_row, step).run()
    except BorealisError as error:
        sender.send(("error", (type(error).__name__, str(error))))
    except Exception as error:  # reported, not swallowed: the parent raises it
        sender.send(("error", ("BackendError", f"{type(error).__name__}: {error}")))
    else:
        sender.send(("done", None))
    finally:
        sender.close()


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
    def scope(self) -> str:
        return "test" if self.resettable else "process"

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


class GpuMemory:
    """CUDA memory of this process: NVML (pynvml) or nvidia-smi; where process ids are
    hidden (containers), the devices' growth since this object was made."""

    def __init__(self):
        self.pid = os.getpid()
        self.read = self._reader()
        self.baseline = self._device_used() if self.read else None

    def _reader(self):
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # not installed, or no driver
            pynvml = None
        if pynvml is not None:
            return _NvmlReader(pynvml)
        if shutil.which("nvidia-smi"):
            return _SmiReader()
        return None

    def _device_used(self) -> int | None:
        try:
            return self.read.device_used()
        except Exception:
            return None

    def sample(self) -> tuple[int | None, str | None]:
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


class _NvmlReader:
    name = "nvml"

    def __init__(self, pynvml):
        self.nvml = pynvml

    def _handles(self):
        count = self.nvml.nvmlDeviceGetCount()
        return [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]

    def process_used(self, pid: int) -> int:
        total = 0
        for handle in self._handles():
            for process in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == pid and process.usedGpuMemory:
                    total += process.usedGpuMemory
        return total

    def device_used(self) -> int:
        return sum(self.nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles())

    def names(self) -> list[str]:
        names = [self.nvml.nvmlDeviceGetName(h) for h in self._handles()]
        return [n.decode() if isinstance(n, bytes) else n for n in names]


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


class _LlamaLog:
    """Keeps what llama.cpp logs (instead of printing it) and reads the buffer sizes."""

    _BUFFER = re.compile(r"^\s*\S+:\s+(\S+)\s+(model|KV|compute|output|RS)\s+buffer size\s*=\s*"
                         r"([\d.]+) MiB", re.M)
    _DEVICE = re.compile(r"using device (\S+) \(([^)]*)\)")

    def __init__(self, llama_cpp):
        self.text: list[str] = []

        @llama_cpp.llama_log_callback
        def callback(level, text, user_data):
            self.text.append(text.decode("utf-8", errors="replace"))

        self._callback = callback  # ctypes must keep it alive as long as llama.cpp may call it
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    def mark(self) -> int:
        return len(self.text)

    def buffers(self, since: int = 0) -> dict[str, int]:
        """{"CPU_Mapped model": bytes, "CUDA0 KV": bytes, …} logged since `since`."""
        sizes: dict[str, int] = {}
        for device, kind, mib in self._BUFFER.findall("".join(self.text[since:])):
            name = f"{device} {kind}"
            sizes[name] = sizes.get(name, 0) + round(float(mib) * 2**20)
        return sizes

    def devices(self) -> list[str]:
        return [f"{name}" for _, name in self._DEVICE.findall("".join(self.text))]


def system_facts(backends: str, gpu_names: Iterable[str] = ()) -> dict[str, Any]:
    """The machine and software, named in llama-bench's fields plus ours."""
    from importlib.metadata import PackageNotFoundError, version

    from borealis_local import __version__

    try:
        runtime_version = f"llama-cpp-python {version('llama-cpp-python')}"
    except PackageNotFoundError:
        runtime_version = None
    return {
        # llama-cpp-python exposes no llama.cpp commit: its version names the vendored tree.
        "build_commit": runtime_version or "unknown",
        "build_number": 0,
        "cpu_info": cpu_name(),
        "gpu_info": ", ".join(dict.fromkeys(gpu_names)),
        "backends": backends,
        "borealis_version": __version__,
        "runtime_version": runtime_version,
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }


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
    """llama-bench's statistics: arithmetic means and sample standard deviations
    (n - 1; 0 for a single sample)."""

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


class _Run:
    """What the llama.cpp and server runs share: rows with the same fields."""

    def __init__(self, config: Config, send: Callable[[dict], None], step: Callable[[str], None]):
        self.config = config
        self.send = send
        self.step = step
        self.host = HostMemory()
        self.baseline = self.host.current()
        self.facts: dict[str, Any] = {}

    def row(self, test: Test, stats: dict[str, Any], **extra: Any) -> dict[str, Any]:
        config, target = self.config, self.config.target
        row: dict[str, Any] = {name: None for name in LLAMA_BENCH_FIELDS}
        row.update(self.facts)
        row.update(config.identity(test))
        row.update(
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
        )
        row.update(stats)
        row.update(extra)
        row["config_key"] = identity_key(row)
        return row


class _LlamaCppRun(_Run):
    """llama-bench's method on llama-cpp-python's C API, then the chat view."""

    def __init__(self, config, send, step):
        super().__init__(config, send, step)
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.log = _LlamaLog(llama_cpp)
        llama_cpp.llama_backend_init()
        self.gpu = gpu_build()
        self.gpu_memory = GpuMemory() if self.gpu == "CUDA" else None
        self.random = random.Random(1234)

    def run(self) -> None:
        bench_tests = [t for t in self.config.tests if not t.chat]
        chat_tests = [t for t in self.config.tests if t.chat]
        if bench_tests:
            self._bench(bench_tests)
        for test in chat_tests:
            self._chat(test)

    def _facts(self) -> None:
        names = self.log.devices() or (self.gpu_memory.names() if self.gpu_memory else [])
        self.facts = system_facts(self.gpu or "CPU", names)
        self.facts.update(split_mode="layer", main_gpu=0, no_kv_offload=False,
                          use_mmap=True, embeddings=False)

    # -- llama-bench's tests -----------------------------------------------------------

    def _bench(self, tests: list[Test]) -> None:
        lib, config = self.llama_cpp, self.config
        self.step("loading the model")
        params = lib.llama_model_default_params()
        params.n_gpu_layers = config.n_gpu_layers
        started = time.perf_counter()
        model = lib.llama_model_load_from_file(config.target.path.encode(), params)
        load_ms = (time.perf_counter() - started) * 1000
        if not model:
            raise BackendError(f"llama.cpp could not load {config.target.path}")
        try:
            self._facts()
            model_facts = self._model_facts(model)
            model_buffers = self.log.buffers()
            for test in tests:
                self.step(test.name)
                self.host.reset_peak()
                mark = self.log.mark()
                stats, n_ctx = self._one_test(model, test)
                buffers = {**model_buffers, **self.log.buffers(mark)}
                self.send(self.row(test, stats, **model_facts, **self._memory(),
                                   load_ms=load_ms, n_ctx=n_ctx, buffers=buffers))
        finally:
            lib.llama_model_free(model)

    def _model_facts(self, model) -> dict[str, Any]:
        lib = self.llama_cpp
        description = ctypes.create_string_buffer(256)
        lib.llama_model_desc(model, description, ctypes.sizeof(description))
        return {
            "model_type": description.value.decode(errors="replace"),
            "model_size": lib.llama_model_size(model),
            "model_n_params": lib.llama_model_n_params(model),
        }

    def _context(self, model, n_ctx: int):
        lib, config = self.llama_cpp, self.config
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = config.n_batch
        params.n_ubatch = config.n_ubatch
        params.n_threads = params.n_threads_batch = config.n_threads
        params.type_k = _ggml_type(config.type_k)
        params.type_v = _ggml_type(config.type_v)
        params.offload_kqv = True
        params.flash_attn_type = (
            lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if config.flash_attn
            else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.embeddings = False
        params.swa_full = False
        context = lib.llama_init_from_model(model, params)
        if not context:
            hint = ""
            if config.type_v != "f16" and not config.flash_attn:
                hint = ": a quantised V cache needs flash attention (-fa 1)"
            raise BackendError(
                f"llama.cpp could not create a {n_ctx}-token context with "
                f"type_k={config.type_k}, type_v={config.type_v}{hint}"
            )
        return context

    def _one_test(self, model, test: Test) -> tuple[dict[str, Any], int]:
        lib, config = self.llama_cpp, self.config
        n_ctx = test.n_prompt + test.n_gen + test.n_depth
        context = self._context(model, n_ctx)
        try:
            vocab = lib.llama_model_get_vocab(model)
            memory = lib.llama_get_memory(context)
            if config.warmup:
                if test.n_prompt:
                    self._prompt(context, vocab, test.n_prompt)
                if test.n_gen:
                    self._generate(context, vocab, 1)
            samples_ns = []
            for _ in range(config.reps):
                lib.llama_memory_clear(memory, False)
                if test.n_depth:
                    self._prompt(context, vocab, test.n_depth)
                started = time.perf_counter_ns()
                if test.n_prompt:
                    self._prompt(context, vocab, test.n_prompt)
                if test.n_gen:
                    self._generate(context, vocab, test.n_gen)
                samples_ns.append(time.perf_counter_ns() - started)
            n_tokens = test.n_prompt + test.n_gen
            samples_ts = [1e9 * n_tokens / ns for ns in samples_ns]
            stats = summary(samples_ns, samples_ts)
            if self.gpu_memory is not None:
                stats["gpu_bytes"], stats["gpu_bytes_source"] = self.gpu_memory.sample()
            return stats, n_ctx
        finally:
            lib.llama_free(context)

    def _prompt(self, context, vocab, n_prompt: int) -> None:
        """n_prompt random tokens in n_batch chunks, the first one <bos> (llama-bench)."""
        lib, n_batch = self.llama_cpp, self.config.n_batch
        n_vocab = lib.llama_vocab_n_tokens(vocab)
        add_bos = lib.llama_vocab_get_add_bos(vocab)
        tokens = (lib.llama_token * n_batch)()
        done = 0
        while done < n_prompt:
            n = min(n_prompt - done, n_batch)
            for i in range(n):
                tokens[i] = self.random.randrange(n_vocab)
            if done == 0 and add_bos:
                tokens[0] = lib.llama_vocab_bos(vocab)
            self._decode(context, tokens, n)
            done += n
        lib.llama_synchronize(context)

    def _generate(self, context, vocab, n_gen: int) -> None:
        """n_gen single-token decodes, no sampling: the next token is random (llama-bench)."""
        lib = self.llama_cpp
        n_vocab = lib.llama_vocab_n_tokens(vocab)
        token = (lib.llama_token * 1)()
        token[0] = (lib.llama_vocab_bos(vocab) if lib.llama_vocab_get_add_bos(vocab)
                    else self.random.randrange(n_vocab))
        for _ in range(n_gen):
            self._decode(context, token, 1)
            lib.llama_synchronize(context)
            token[0] = self.random.randrange(n_vocab)

    def _decode(self, context, tokens, n: int) -> None:
        status = self.llama_cpp.llama_decode(context, self.llama_cpp.llama_batch_get_one(tokens, n))
        if status != 0:
            raise BackendError(f"llama_decode failed with status {status}")

    def _memory(self) -> dict[str, Any]:
        status = self.host.status()
        return {
            "peak_host_bytes": self.host.peak(),
            "peak_host_scope": self.host.scope,
            "host_baseline_bytes": self.baseline,
            "rss_anon_bytes": status.get("RssAnon"),
            "rss_file_bytes": status.get("RssFile"),
        }

    # -- the chat view -----------------------------------------------------------------

    def _chat(self, test: Test) -> None:
        from borealis_local.runtime.llama_cpp import LlamaCppBackend

        config = self.config
        self.step(f"{test.name}: loading the model")
        self.host.reset_peak()
        mark = self.log.mark()
        n_ctx = 256 * math.ceil((test.n_gen + 256) / 256)  # the message is < 100 tokens
        backend = LlamaCppBackend(
            config.target.path, name=config.target.name, n_ctx=n_ctx,
            n_gpu_layers=config.n_gpu_layers, flash_attn=config.flash_attn,
            n_threads=config.n_threads, n_batch=config.n_batch,
        )
        try:
            if not self.facts:
                self._facts()
            model_facts = self._model_facts(backend._llm.model)
            self.step(test.name)
            stats, extra = _chat_reps(backend, test, config, seed_resets=True)
            if self.gpu_memory is not None:
                stats["gpu_bytes"], stats["gpu_bytes_source"] = self.gpu_memory.sample()
            self.send(self.row(test, stats, **model_facts, **self._memory(), **extra,
                               n_ctx=n_ctx, buffers=self.log.buffers(mark)))
        finally:
            backend.close()


def _ggml_type(name: str) -> int:
    """ggml's type id for a KV cache type name (gguf knows them all; llama_cpp lacks bf16)."""
    import gguf

    return int(gguf.GGMLQuantizationType[name.upper()])


def _chat_reps(backend, test: Test, config: Config, *, seed_resets: bool):
    """Chat reps through the Backend: ttft and end-to-end rate, `concurrency` streams
    at a time. Every prompt starts differently, so no rep reuses a cached prompt."""
    import asyncio

    def message(rep: int, stream: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"({rep + 1}.{stream + 1}) {CHAT_MESSAGE}"}]

    async def one_rep(rep: int, max_tokens: int):
        calls = [
            backend.achat(message(rep, s), max_tokens=max_tokens,
                          seed=(rep + 2) * 100 + s if seed_resets else None)
            for s in range(config.concurrency)
        ]
        started = time.perf_counter_ns()
        completions = await asyncio.gather(*calls)
        return completions, time.perf_counter_ns() - started

    # The runtime reports the model's load once, with the first answer it gives.
    load_ms = None
    if config.warmup:
        warm, _ = asyncio.run(one_rep(-1, 2))
        load_ms = warm[0].timings.load_ms
    samples_ns, samples_ts, ttft, tokens, prompt_ts, gen_ts = [], [], [], [], [], []
    source = prompt_tokens = None
    for rep in range(config.reps):
        completions, elapsed = asyncio.run(one_rep(rep, test.n_gen))
        if load_ms is None:
            load_ms = completions[0].timings.load_ms
        produced = sum(c.usage.completion_tokens for c in completions)
        samples_ns.append(elapsed)
        samples_ts.append(1e9 * produced / elapsed)
        ttft.append(statistics.fmean(c.timings.ttft_ms or 0.0 for c in completions))
        tokens.append(produced)
        prompt_tokens = completions[0].usage.prompt_tokens
        prompt_ts += [c.prompt_tokens_per_second for c in completions if c.prompt_tokens_per_second]
        gen_ts += [c.generation_tokens_per_second for c in completions
                   if c.generation_tokens_per_second]
        source = completions[0].timings.source
    stats = summary(samples_ns, samples_ts)
    extra = {
        "ttft_ms": statistics.fmean(ttft),
        "stddev_ttft_ms": statistics.stdev(ttft) if len(ttft) > 1 else 0.0,
        "samples_ttft_ms": ttft,
        "completion_tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "prompt_ts": statistics.fmean(prompt_ts) if prompt_ts else None,
        "gen_ts": statistics.fmean(gen_ts) if gen_ts else None,
        "timings_source": source,
        "load_ms": load_ms,
    }
    return stats, extra


class _ServerRun(_Run):
    """Ollama and OpenAI-compatible servers: the server's own rates, and the chat view."""

    def run(self) -> None:
        from borealis_local.runtime.resolve import open_backend

        config = self.config
        self.facts = system_facts("server")
        self.facts.update(model_type=config.target.server_model)
        backend = open_backend(config.target.name, **self._backend_arguments())
        with backend:
            for test in config.tests:
                self.step(test.name)
                if test.chat:
                    stats, extra = _chat_reps(backend, test, config, seed_resets=False)
                else:
                    stats, extra = self._rates(backend, test)
                extra.update(self._server_memory(backend))
                self.send(self.row(test, stats, **extra))

    def _backend_arguments(self) -> dict[str, Any]:
        return {"timeout": self.config.request_timeout}

    def _rates(self, backend, test: Test):
        """pp: a raw prompt of about n_prompt words, one token answered; tg: a short
        prompt, n_gen tokens. Rates from the server's timings where it reports them."""
        config = self.config
        if config.warmup:
            backend.complete(self._words(8, -1), max_tokens=1)
        samples_ns, samples_ts, counts, source = [], [], [], None
        for rep in range(config.reps):
            if test.n_prompt and not test.n_gen:
                done = backend.complete(self._words(test.n_prompt, rep), max_tokens=1)
                tokens = done.usage.prompt_tokens - done.usage.cached_tokens
                ms = done.timings.prompt_ms or done.timings.ttft_ms
            else:
                prompt = self._words(max(test.n_prompt, 8), rep)
                done = backend.complete(prompt, max_tokens=test.n_gen)
                tokens = done.usage.completion_tokens
                ms = done.timings.generation_ms
            if not ms or not tokens:
                raise BackendError(f"the server reported no timing for {test.name}")
            samples_ns.append(round(ms * 1e6))
            samples_ts.append(tokens / (ms / 1000))
            counts.append(tokens)
            source = done.timings.source
        return summary(samples_ns, samples_ts), {"tokens": counts, "timings_source": source}

    def _words(self, n: int, rep: int) -> str:
        rng = random.Random(rep)
        return f"{rep + 2} " + " ".join(rng.choice(_FILLER) for _ in range(n - 1))

    def _server_memory(self, backend) -> dict[str, Any]:
        """Ollama's /api/ps: the loaded model's size and the part in VRAM."""
        if self.config.target.runtime != "ollama":
            return {}
        try:
            for entry in backend._client.ps().models:
                if entry.model == backend.model or entry.name == backend.model:
                    return {"server_model_bytes": entry.size, "server_vram_bytes": entry.size_vram}
        except Exception:  # ps is informative only; the rates stand without it
            return {}
        return {}


__all__ = [
    "CHAT_MESSAGE",
    "Config",
    "GpuMemory",
    "HostMemory",
    "IDENTITY_FIELDS",
    "LLAMA_BENCH_FIELDS",
    "RUNTIMES",
    "Target",
    "Test",
    "default_threads",
    "identity_key",
    "resolve_target",
    "run_config",
    "summary",
]
