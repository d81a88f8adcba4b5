"""The numbers of `borealis bench serve`, with vLLM's definitions and JSON names
(`vllm bench serve`: vllm/benchmarks/serve.py, `calculate_metrics`).

Per completed request: TTFT, the first text chunk's arrival after the request was
sent; ITL, every gap between successive text chunks; E2EL, the last text chunk's
arrival; TPOT = (E2EL − TTFT) / (output tokens − 1), for requests of two or more
output tokens. Output tokens are the runtime's usage where it reports one, else the
text chunks counted (`output_tokens_source` says which). Over the run: mean, median,
standard deviation (numpy's, the population's) and the chosen percentiles (numpy's
linear interpolation) of each, in milliseconds, named `p99_ttft_ms`, `p99.9_itl_ms` as
vLLM names them. Unlike vLLM, a statistic with no value to take (no completed request,
no request of two tokens) is null, not 0.

Goodput (`--goodput ttft:MS tpot:MS e2el:MS`, vLLM's syntax): a completed request is
good when it is within every objective given (a one-token answer has TPOT 0 here, as in
vLLM); `request_goodput` is good requests per second of the run.

Ours: the prompt-cache hit rate (prompt tokens the runtime reused from its cache, of
all prompt tokens; null when the runtime does not time itself, so cannot tell), the
runtime's own prompt and generation times where it reports them (llama-server's
`timings`, Ollama's durations, llama.cpp's), and the distinct errors with their counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from borealis_local.bench.serve_load import RequestRecord
from borealis_local.errors import InvalidRequestError

SLO_METRICS = ("ttft", "tpot", "e2el")
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)


def parse_goodput(pairs: Iterable[str]) -> dict[str, float]:
    """{"ttft": 500.0, ...} from vLLM's KEY:MS pairs."""
    objectives: dict[str, float] = {}
    for pair in pairs:
        name, colon, value = pair.partition(":")
        try:
            number = float(value) if colon else None
        except ValueError:
            number = None
        if name not in SLO_METRICS or number is None or number < 0:
            raise InvalidRequestError(
                f"--goodput {pair!r}: give objectives as KEY:MS with KEY one of "
                f"{', '.join(SLO_METRICS)} and MS a number of milliseconds >= 0, "
                "e.g. --goodput ttft:500 tpot:50"
            )
        objectives[name] = number
    return objectives


def parse_percentiles(text: str) -> list[float]:
    """[50.0, 90.0, 99.0] from "50,90,99"."""
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v <= 100 for v in values):
        raise InvalidRequestError(
            f"--percentiles {text!r}: give a comma list of numbers in (0, 100], e.g. 50,90,99"
        )
    return values


def percentile_name(p: float) -> str:
    """vLLM's spelling of a percentile in a field name: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def counted_by_usage(record: RequestRecord) -> bool:
    """Whether the runtime reported the answer's tokens (a server that sends none, or
    zero for an answer that came, is counted by its chunks, as vLLM counts by text)."""
    return record.usage is not None and record.usage.completion_tokens > 0


def output_tokens(record: RequestRecord) -> int:
    return record.usage.completion_tokens if counted_by_usage(record) else record.chunks


def tpot(record: RequestRecord) -> float | None:
    """Seconds per output token after the first (None for a one-token answer)."""
    n = output_tokens(record)
    return (record.latency - record.ttft) / (n - 1) if n > 1 else None


def summarise(
    records: Sequence[RequestRecord],
    duration: float,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    goodput: Mapping[str, float] | None = None,
    energy_joules: float | None = None,
) -> dict[str, Any]:
    """The run's figures, named as vLLM names them where it has the figure; with the
    GPU energy of the run, joules per generated token (None, never 0, without it)."""
    import numpy as np

    done = [r for r in records if r.success]
    outputs = [output_tokens(r) for r in done]
    inputs = [r.usage.prompt_tokens if r.usage is not None else r.input_len for r in done]
    with_usage = sum(map(counted_by_usage, done))
    result: dict[str, Any] = {
        "duration": duration,
        "completed": len(done),
        "failed": len(records) - len(done),
        "total_input_tokens": sum(inputs),
        "total_output_tokens": sum(outputs),
        "output_tokens_source": (
            None if not done else "usage" if with_usage == len(done)
            else "chunks" if with_usage == 0 else "mixed"
        ),
        "request_throughput": len(done) / duration,
    }  # fmt: skip
    if goodput:
        result["request_goodput"] = sum(_good(r, goodput) for r in done) / duration
    result["output_throughput"] = sum(outputs) / duration
    result["total_token_throughput"] = (sum(inputs) + sum(outputs)) / duration
    result["energy_joules"] = energy_joules
    result["joules_per_output_token"] = (
        energy_joules / sum(outputs) if energy_joules is not None and sum(outputs) else None
    )
    values = {
        "ttft": [r.ttft for r in done],
        "tpot": [t for t in map(tpot, done) if t is not None],
        "itl": [gap for r in done for gap in r.itl],
        "e2el": [r.latency for r in done],
    }
    for metric in LATENCY_METRICS:
        ms = np.array(values[metric], dtype=float) * 1000
        empty = ms.size == 0
        result[f"mean_{metric}_ms"] = None if empty else float(np.mean(ms))
        result[f"median_{metric}_ms"] = None if empty else float(np.median(ms))
        result[f"std_{metric}_ms"] = None if empty else float(np.std(ms))
        for p in percentiles:
            value = None if empty else float(np.percentile(ms, p))
            result[f"p{percentile_name(p)}_{metric}_ms"] = value
    result.update(runtime_figures(done))
    result["errors"] = errors(records)
    return result


def _good(record: RequestRecord, goodput: Mapping[str, float]) -> bool:
    measured = {"ttft": record.ttft, "tpot": tpot(record) or 0.0, "e2el": record.latency}
    return all(measured[name] * 1000 <= slo for name, slo in goodput.items())


def runtime_figures(done: Sequence[RequestRecord]) -> dict[str, Any]:
    """The prompt-cache hit rate and the runtime's own times, where it reports them."""
    timed = [r for r in done if r.timings is not None and r.timings.source != "client"]
    usage = [r.usage for r in done if r.usage is not None]
    prompt = sum(u.prompt_tokens for u in usage)
    cached = sum(u.cached_tokens for u in usage)
    # A runtime that times itself counts its cache hits; for one that does not (a server
    # that sends usage only), 0 cached tokens could mean "not reported".
    known = bool(timed) or cached > 0
    figures: dict[str, Any] = {
        "timings_source": timed[0].timings.source if timed else "client",
        "total_cached_tokens": cached if known else None,
        "prompt_cache_hit_rate": cached / prompt if known and prompt else None,
    }
    for name, attribute in (
        ("prompt", "prompt_ms"),
        ("generation", "generation_ms"),
        ("load", "load_ms"),
    ):
        times = [getattr(r.timings, attribute) for r in timed]
        times = [t for t in times if t is not None]
        figures[f"mean_server_{name}_ms"] = sum(times) / len(times) if times else None
    return figures


def errors(records: Iterable[RequestRecord]) -> list[dict[str, Any]]:
    """The distinct errors, most frequent first, with how many requests had each."""
    counts = Counter(r.error for r in records if r.error is not None)
    return [{"message": message, "count": count} for message, count in counts.most_common()]


__all__ = [
    "DEFAULT_PERCENTILES",
    "LATENCY_METRICS",
    "SLO_METRICS",
    "counted_by_usage",
    "errors",
    "output_tokens",
    "parse_goodput",
    "parse_percentiles",
    "percentile_name",
    "runtime_figures",
    "summarise",
    "tpot",
]
