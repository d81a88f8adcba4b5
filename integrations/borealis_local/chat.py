"""`borealis chat MODEL`: a streaming terminal chat on any backend."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from borealis_local.runtime.base import Backend, Completion, Timings

EXIT_WORDS = ("/exit", "/quit", "/bye")


def answer(
    backend: Backend, messages: list[dict], out: TextIO, stats: TextIO
) -> Completion:
    """Stream one answer to `out`, then a line of figures to `stats`."""
    parts, last = [], None
    for chunk in backend.stream_chat(messages):
        out.write(chunk.text)
        out.flush()
        parts.append(chunk.text)
        last = chunk
    out.write("\n")
    result = backend.completion_of("".join(parts), last)
    stats.write(describe_speed(result) + "\n")
    stats.flush()
    return result


def describe_speed(result: Completion) -> str:
    """`12 tokens, 48.3 tokens/s, first token after 210 ms`, as far as it is known."""
    usage, timings = result.usage, result.timings
    figures = [f"{usage.completion_tokens} tokens"]
    rate = Timings.rate(usage.completion_tokens, timings.generation_ms)
    if rate:
        figures.append(f"{rate:.1f} tokens/s")
    if timings.ttft_ms is not None:
        figures.append(f"first token after {timings.ttft_ms:.0f} ms")
    if result.finish_reason == "length":
        figures.append("cut at the token limit")
    return "[" + ", ".join(figures) + "]"


def run_chat(
    backend: Backend,
    lines: Iterable[str],
    *,
    system: str | None,
    interactive: bool,
    out: TextIO = sys.stdout,
    stats: TextIO = sys.stderr,
) -> int:
    """Interactive: one conversation that remembers. From a pipe: every line is a
    question of its own, answered once, so a file of questions can be batch-run."""
    prefix = [{"role": "system", "content": system}] if system else []
    history: list[dict] = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if interactive and text in EXIT_WORDS:
            break
        if interactive and text == "/reset":
            history = []
            continue
        question = {"role": "user", "content": text}
        messages = prefix + (history if interactive else []) + [question]
        result = answer(backend, messages, out, stats)
        if interactive:
            history += [question, {"role": "assistant", "content": result.text}]
    return 0


def prompt_lines(prompt: str = "› ") -> Iterable[str]:
    """Lines typed at the terminal, until Ctrl-D."""
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return
