"""Ollama and OpenAI-compatible servers: `ppN` and `tgN` from the rates the server
reports (Ollama's durations, llama-server's `timings`; client-side timing otherwise)
on a raw prompt of about N words, the chat view, and the memory the server reports
for the model (its kind's `server_memory`).
"""

from __future__ import annotations

import random

from borealis_local.bench.chat_view import chat_reps
from borealis_local.bench.measure import Test
from borealis_local.bench.run import Run, summary, system_facts
from borealis_local.bench.serve_workload import FILLER
from borealis_local.errors import BackendError


class ServerRun(Run):
    """A server's own rates, and the chat view, through the runtime's Backend."""

    def run(self) -> None:
        from borealis_local.runtime import registry

        config = self.config
        self.facts = system_facts("server").updated(model_type=config.target.server_model)
        kind = registry.kind_named(config.target.runtime)
        arguments = kind.bench_arguments(config.request_timeout)
        backend = registry.open_backend(config.target.name, **arguments)
        with backend:
            for test in config.tests:
                self.step(test.name)
                if test.chat:
                    stats, extra = chat_reps(backend, test, config, seed_resets=False)
                else:
                    stats, extra = self._rates(backend, test)
                extra.update(kind.server_memory(backend))
                self.send(self.row(test, stats, **extra))

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
        return f"{rep + 2} " + " ".join(rng.choice(FILLER) for _ in range(n - 1))


__all__ = ["ServerRun"]
