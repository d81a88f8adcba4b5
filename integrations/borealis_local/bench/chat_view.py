"""The user-facing chat view, through the runtime's Backend (template, tokenizer,
sampling, streaming): time to first token and end-to-end tokens/second for a chat
message answered with up to N tokens, each rep a fresh prompt (no cache reuse); with
`concurrency` > 1 (servers), that many streams at once and their total rate.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from borealis_local.bench.measure import Config, Test
from borealis_local.bench.run import summary

# The user-facing chat view asks this (a real task for Borealis), made unique per rep.
CHAT_MESSAGE = (
    "Skriv ein kort artikkel på nynorsk om nordlyset: kva det er, kvar og når ein kan sjå "
    "det i Noreg, og korleis ein fotograferer det med ein vanleg mobiltelefon."
)


def chat_reps(backend, test: Test, config: Config, *,
              seed_resets: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Chat reps through the Backend: ttft and end-to-end rate, `concurrency` streams
    at a time. Every prompt starts differently, so no rep reuses a cached prompt.
    Returns `summary`'s statistics and the chat fields, as row fields."""

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


__all__ = ["CHAT_MESSAGE", "chat_reps"]
