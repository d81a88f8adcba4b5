"""The load generator of `borealis bench serve`: requests sent on vLLM's schedule, at
most `concurrency` in flight, each one timed token by token through the Backend.

Schedule (vLLM's `get_request`): with an infinite request rate every request is sent at
once (the concurrency cap then sets the pace); otherwise the gaps between requests are
drawn from a gamma distribution of shape `burstiness` and mean 1/rate (burstiness 1:
a Poisson process; below 1 burstier, above 1 more even, infinite: evenly spaced), and
scaled so the last request goes out at n/rate seconds.

What one request records, as vLLM's request functions do: the start (when it was sent),
the arrival of every chunk that carries text (time to first token, then each gap
between chunks: the inter-token latencies), the end (the last text chunk), and the
usage and timings of the stream's last chunk. A request that raises, times out or gets
no token is failed, with its error; it is never dropped. A runtime that is down or
silent before the first token is asked once more (the registry's RetryPolicy), as
clients do; the time that takes is part of the request's latency.

A runtime that runs the model in this process serves one request at a time: its
requests wait on one lock, and their time to first token includes that wait, as a
server's queue would.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from borealis_local.bench.nvml import Nvml
from borealis_local.bench.serve_workload import ServeRequest
from borealis_local.runtime.registry import RetryPolicy

# The project's retry policy, once, before any text: a pooled connection the server had
# closed fails at once, as any client's first try may. The wait counts in the latency.
RETRY = RetryPolicy(max_retries=1)


def arrival_offsets(n: int, request_rate: float, burstiness: float, rng) -> list[float]:
    """Seconds after the start at which each of `n` requests is sent; `rng` is a numpy
    Generator (seeded: the same schedule every run)."""
    if n == 0 or math.isinf(request_rate):
        return [0.0] * n
    if math.isinf(burstiness):
        gaps = [1.0 / request_rate] * n
    else:
        theta = 1.0 / (request_rate * burstiness)
        gaps = list(rng.gamma(shape=burstiness, scale=theta, size=n))
    offsets, total = [], 0.0
    for gap in gaps:
        total += gap
        offsets.append(total)
    # vLLM's normalisation: the sum of random gaps misses n/rate by a percent or two,
    # which would move the throughput from seed to seed.
    scale = (n / request_rate) / offsets[-1]
    return [offset * scale for offset in offsets]


@dataclass
class RequestRecord:
    """One request's timing and outcome (seconds since its start, perf_counter)."""

    index: int
    start: float = 0.0
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    latency: float | None = None  # the last text chunk's arrival
    chunks: int = 0  # chunks that carried text
    finish_reason: str | None = None
    usage: object | None = None  # the runtime's Usage, when the stream's end carries one
    timings: object | None = None  # the runtime's Timings
    input_len: int = 0  # the workload's estimate, for runtimes that report no usage
    error: str | None = None

    @property
    def success(self) -> bool:
        return self.error is None


@dataclass
class LevelRun:
    """One concurrency level's requests, its wall time, and the GPU energy used in that
    time (None where no meter reads it)."""

    records: list[RequestRecord]
    duration: float
    energy_joules: float | None = None


async def run_level(
    backend,
    requests: Sequence[ServeRequest],
    *,
    concurrency: int,
    offsets: Sequence[float],
    timeout: float,
    serialised: bool,
    warmup: Sequence[ServeRequest] = (),
    energy_meter: Callable[[], float | None] | None = None,
) -> LevelRun:
    """Send `requests` at `offsets`, at most `concurrency` at a time, after the `warmup`
    requests (untimed, at the same concurrency). `energy_meter()` (joules used so far)
    is read as the timed requests start and once they are done."""
    semaphore = asyncio.Semaphore(concurrency)
    lock = asyncio.Lock() if serialised else None

    async def limited(index: int, request: ServeRequest) -> RequestRecord:
        async with semaphore:
            return await one_request(backend, request, index, timeout=timeout, lock=lock)

    await asyncio.gather(*(limited(-1, request) for request in warmup))
    energy_before = energy_meter() if energy_meter else None
    started = time.perf_counter()
    tasks = []
    for index, (request, offset) in enumerate(zip(requests, offsets, strict=True)):
        delay = started + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(limited(index, request)))
    records = list(await asyncio.gather(*tasks))
    duration = time.perf_counter() - started
    energy_after = energy_meter() if energy_meter else None
    energy = None
    if energy_before is not None and energy_after is not None:
        energy = energy_after - energy_before
    return LevelRun(records, duration, energy)


async def one_request(
    backend,
    request: ServeRequest,
    index: int,
    *,
    timeout: float,
    lock: asyncio.Lock | None = None,
) -> RequestRecord:
    """Stream one request through the Backend and time its chunks. Never raises for
    the request's own failure: the record carries the error."""
    record = RequestRecord(index, input_len=request.input_len)
    record.start = time.perf_counter()
    last = record.start
    try:
        async with lock or contextlib.nullcontext():
            # The timeout bounds the answer, not the wait for the in-process model.
            async with asyncio.timeout(timeout):
                stream = RETRY.astream(lambda: _stream(backend, request))
                async with contextlib.aclosing(stream) as chunks:
                    async for chunk in chunks:
                        now = time.perf_counter()
                        if chunk.text:
                            if record.ttft is None:
                                record.ttft = now - record.start
                            else:
                                record.itl.append(now - last)
                            last = now
                            record.chunks += 1
                        if chunk.finish_reason is not None:
                            record.finish_reason = chunk.finish_reason
                            record.usage, record.timings = chunk.usage, chunk.timings
    except TimeoutError:
        record.error = f"no complete answer within the request timeout ({timeout:g} s)"
    except Exception as error:  # a failed request is a result, not the end of the run
        record.error = f"{type(error).__name__}: {error}"
    else:
        if record.ttft is None:
            record.error = "the answer carried no token (no time to first token)"
        record.latency = last - record.start
    return record


def _stream(backend, request: ServeRequest):
    if request.messages is not None:
        return backend.astream_chat(request.messages, max_tokens=request.max_tokens)
    return backend.astream_complete(request.prompt, max_tokens=request.max_tokens)


# -- a sweep over concurrency levels ----------------------------------------------------


@dataclass(frozen=True)
class ServeConfig:
    """A `bench serve` run: the model, the load, and a server to start for it."""

    model: str
    concurrency: tuple[int, ...] = (1,)
    num_prompts: int = 50  # timed requests per level
    request_rate: float = math.inf
    burstiness: float = 1.0
    warmup: int = 1
    seed: int = 0
    timeout: float = 300.0  # seconds per request (and per read, for a server)
    num_ctx: int | None = None
    start_server: bool = False
    parallel: int | None = None  # the started server's slots (default: the top level)
    llama_server: str | None = None
    server_args: tuple[str, ...] = ()


def run_sweep(config: ServeConfig, requests: Callable[[int], list[ServeRequest]], *,
              progress=print):  # fmt: skip
    """One `LevelRun` per concurrency level, and what the results record of the runtime:
    (runs, {"runtime", "serialised", "started_server"}).

    `requests(start)` gives the workload's requests numbered from `start`: each level
    gets prompts of its own (`config.warmup` of them first, untimed), so no level finds
    the previous level's prompts in the runtime's cache.
    """
    from borealis_local.runtime import registry
    from borealis_local.runtime.kind import Settings

    settings = Settings(timeout=config.timeout, num_ctx=config.num_ctx)
    with contextlib.ExitStack() as stack:
        name, started = config.model, None
        if config.start_server:
            name, started = _started_server(config, stack, progress)
        kind, _ = registry.describe(name)
        _, arguments = registry.arguments_for(name, settings, kind.bench_arguments(config.timeout))
        backend = stack.enter_context(registry.open_backend(name, **arguments))
        # GPU energy per level, where NVML reads it (the device's whole draw: a server
        # on the same GPU included).
        nvml = Nvml.open()
        if nvml is not None:
            stack.callback(nvml.close)
        serialised = kind.in_process
        if serialised:
            progress(
                f"{kind.name} runs the model in this process and serves one request at "
                "a time: requests queue, and their latencies include the wait"
            )

        async def sweep() -> list[LevelRun]:
            runs = []
            for number, level in enumerate(config.concurrency):
                made = requests(number * (config.num_prompts + config.warmup))
                warmup, timed = made[: config.warmup], made[config.warmup :]
                progress(
                    f"concurrency {level}: {len(timed)} requests"
                    + (f", {len(warmup)} warm-up" if warmup else "")
                )
                offsets = arrival_offsets(
                    len(timed), config.request_rate, config.burstiness, _rng(config.seed)
                )
                runs.append(await run_level(
                    backend, timed, concurrency=level, offsets=offsets,
                    timeout=config.timeout, serialised=serialised, warmup=warmup,
                    energy_meter=nvml.energy_joules if nvml is not None else None,
                ))  # fmt: skip
            return runs

        runs = asyncio.run(sweep())
        return runs, {"runtime": kind.name, "serialised": serialised, "started_server": started}


def _started_server(config: ServeConfig, stack: contextlib.ExitStack, progress):
    """Start llama-server for the model's local GGUF; (its openai: name, description)."""
    from pathlib import Path

    from borealis_local.bench.serve_server import LocalServer
    from borealis_local.errors import InvalidRequestError
    from borealis_local.runtime import registry

    kind, recognised = registry.describe(config.model)
    if not kind.in_process:
        raise InvalidRequestError(
            f"--start-server starts llama-server for a local GGUF (a .gguf path or a "
            f"catalog name on this machine); {config.model!r} is already served"
        )
    path = kind.bench_target(recognised).path
    parallel = config.parallel or max(config.concurrency)
    server = LocalServer(
        path,
        parallel=parallel,
        ctx_size=config.num_ctx,
        binary=config.llama_server,
        extra_args=config.server_args,
    )
    progress(f"starting {server.binary.name} --parallel {parallel} for {Path(path).name}")
    stack.enter_context(server)
    return f"openai:{Path(path).stem}@{server.base_url}", server.description()


def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


__all__ = [
    "LevelRun",
    "RequestRecord",
    "ServeConfig",
    "arrival_offsets",
    "one_request",
    "run_level",
    "run_sweep",
]
