"""`swa_full` on and off: the KV cache llama.cpp allocates, and prefix reuse on a RAG prompt.

    python benchmarks/swa_full.py [MODEL] [--rounds 4] [-t 2] [--n-ctx 4096] [--long 640]
        [--save FILE.json]

Gemma 3's sliding-window layers (5 of every 6) need only their window of the cache;
`swa_full=True` gives them `n_ctx` cells anyway (llama.cpp's context default, which
llama-cpp-python's `Llama()` keeps unless told), `swa_full=False` `n_swa + n_ubatch`.
Per round, each setting in a fresh backend (the order alternating): the KV buffer sizes
llama.cpp logs, then on the same ~1800-token RAG prompt (the example corpus's sources, a
question last, greedy): a cold question (the whole prompt evaluated), a second question
on the same sources (warm: only the new question evaluated), a long answer of `--long`
tokens, and a question after it, when a windowed cache may no longer hold the window
before the shared prefix (the backend then evaluates the prompt whole: cached 0).
Prints per setting the KV MiB, the median TTFTs and cached tokens, and per round the
ratio windowed/full of the warm TTFT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from borealis_local.bench.cli import first_run_model
from borealis_local.bench.llama_bench import buffer_sizes
from borealis_local.bench.report import mean_interval
from borealis_local.corpus import load_corpus
from borealis_local.prompts import format_sources, get_prompts
from borealis_local.runtime import llama_log
from borealis_local.runtime.llama_cpp import LlamaCppBackend

QUESTIONS = (
    "Hva er dugnad?",
    "Hvor ligger Nasjonalbiblioteket?",
    "Fortell alt kildene sier, i detalj.",
    "Hva er allemannsretten?",
)
TARGET_TOKENS = 1800


def rag_messages(backend: LlamaCppBackend, question: str) -> list[dict]:
    """The bokmål RAG prompt over as many corpus documents as keep it near 1800 tokens."""
    documents, prompts = load_corpus(), get_prompts("nb")

    def message(count: int) -> list[dict]:
        chosen = documents[:count]
        sources = format_sources([d.text for d in chosen], titles=[d.title for d in chosen])
        return [
            {
                "role": "user",
                "content": prompts.rag_answer.format(sources=sources, question=question),
            }
        ]

    count = len(documents)
    while count > 1 and backend.count_tokens(message(count)) > TARGET_TOKENS + 100:
        count -= 1
    return message(count)


def one_setting(model: str, swa_full: bool, args) -> dict:
    mark = llama_log.mark()
    backend = LlamaCppBackend(model, n_ctx=args.n_ctx, n_threads=args.threads, swa_full=swa_full)
    try:
        kv = sum(
            v for k, v in buffer_sizes(llama_log.text_since(mark)).items() if k.endswith(" KV")
        )
        result = {"swa_full": swa_full, "kv_bytes": kv, "flash_attn": backend.flash_attn}
        for step, question, n in (
            ("cold", QUESTIONS[0], 16),
            ("warm", QUESTIONS[1], 16),
            ("long", QUESTIONS[2], args.long),
            ("after_long", QUESTIONS[3], 16),
        ):
            answer = backend.chat(rag_messages(backend, question), max_tokens=n, temperature=0)
            result[step] = {
                "ttft_ms": answer.timings.ttft_ms,
                "prompt_tokens": answer.usage.prompt_tokens,
                "cached_tokens": answer.usage.cached_tokens,
                "completion_tokens": answer.usage.completion_tokens,
            }
        return result
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a .gguf (default: 270m or the stand-in)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--long", type=int, default=640, help="the long answer's tokens")
    parser.add_argument("--save", metavar="FILE.json")
    args = parser.parse_args(argv)
    model = args.model or first_run_model(pull=False)[0]
    llama_log.install()

    results: list[dict] = []
    for round_number in range(args.rounds):
        order = (False, True) if round_number % 2 == 0 else (True, False)
        for swa_full in order:
            print(f"round {round_number + 1}: swa_full={swa_full} …", file=sys.stderr)
            results.append(one_setting(model, swa_full, args))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # kept if cut short

    print(
        f"model: {model}, n_ctx {args.n_ctx}, {args.threads} threads, "
        f"{args.rounds} rounds, long answer {args.long} tokens\n"
    )
    print(
        "| swa_full | KV MiB | prompt | cold TTFT ms | warm TTFT ms (cached) "
        "| long answer | after it TTFT ms (cached) |"
    )
    print("|---|---|---|---|---|---|---|")
    for swa_full in (False, True):
        mine = [r for r in results if r["swa_full"] == swa_full]

        def median(step: str, field: str = "ttft_ms", rows=mine) -> float:
            return statistics.median(r[step][field] for r in rows)

        print(
            f"| {swa_full} | {mine[0]['kv_bytes'] / 2**20:.1f} | "
            f"{mine[0]['cold']['prompt_tokens']} | {median('cold'):.0f} | "
            f"{median('warm'):.0f} ({median('warm', 'cached_tokens'):.0f}) | "
            f"{median('long', 'completion_tokens'):.0f} tokens | "
            f"{median('after_long'):.0f} ({median('after_long', 'cached_tokens'):.0f}) |"
        )
    for step in ("warm", "after_long"):
        ratios = []
        for round_number in range(args.rounds):
            pair = {r["swa_full"]: r for r in results[2 * round_number : 2 * round_number + 2]}
            ratios.append(pair[False][step]["ttft_ms"] / pair[True][step]["ttft_ms"])
        if len(ratios) > 1:
            mean, error, half = mean_interval(ratios)
            print(
                f"{step} TTFT windowed/full, paired by round: {mean:.3f} ± {error:.3f}, 95% "
                f"interval {mean - half:.3f}–{mean + half:.3f}; rounds "
                + ", ".join(f"{r:.3f}" for r in ratios)
            )
    if args.save:
        with open(args.save, "w", encoding="utf-8") as out:
            json.dump({"results": results, "args": vars(args)}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
