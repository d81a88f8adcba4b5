"""`borealis bench serve`: latency percentiles and throughput under load, as
`vllm bench serve` measures them, for every runtime the registry knows.

    borealis bench serve MODEL [-c 1,2,4,8,16] [--num-prompts 50] [--request-rate inf]
                         [--burstiness 1.0] [--warmup 1] [--seed 0]
                         [--input-len 128] [--output-len 64] [--range-ratio 0.0]
                         [--workload rag --sources 4 [--same-sources]]
                         [--goodput ttft:MS tpot:MS e2el:MS] [--percentiles 50,90,99]
                         [--start-server [--parallel N] [--server-args "-ngl 99"]]
                         [-o md|json] [--out FILE.jsonl]

`register(commands)` adds it to `bench`'s subcommands. This module parses and prints;
the load is `serve_load`, the numbers `serve_metrics`, the prompts `serve_workload`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from borealis_local.errors import InvalidRequestError

DESCRIPTION = """\
Send requests to MODEL under load and report, with vLLM's definitions and JSON names,
time to first token (TTFT), time per output token (TPOT), inter-token latency (ITL) and
end-to-end latency (E2EL): mean, median, standard deviation and percentiles; request and
token throughput; goodput within service-level objectives; the runtime's prompt-cache
hit rate and own timings where it reports them. Failed and timed-out requests are
counted in `failed`, never dropped.

MODEL is anything `borealis chat` takes: openai:MODEL@URL (llama-server, vLLM, any
OpenAI-compatible server), an Ollama tag, a .gguf path or catalog name (llama.cpp in
this process, which serves one request at a time: the output says so). With
--start-server, a local GGUF is put behind llama-server (--parallel slots, one shared KV
pool, our chat template) for the run, so both can be measured side by side.

Each concurrency level of -c 1,2,4 is one result. Workloads: synthetic raw prompts of
about --input-len tokens asking for --output-len (--range-ratio R: each length uniform
in [N(1-R), N(1+R)], as vLLM's random dataset), or --workload rag: --sources K documents
of the example corpus and a question last, through the RAG prompt; --same-sources keeps
the documents for every question (prefix reuse), else they rotate.
"""
OUTPUTS = ("md", "json")


def register(commands) -> argparse.ArgumentParser:
    """Add `serve` to `bench`'s subcommands (its add_subparsers() object)."""
    p = commands.add_parser(
        "serve", help="latency percentiles and throughput under load (vLLM's metrics)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="the model to load (see above)")
    load = p.add_argument_group("load")
    load.add_argument(
        "-c",
        "--max-concurrency",
        dest="concurrency",
        default="1",
        metavar="N[,N…]",
        help="requests in flight at most; a list sweeps (1)",
    )
    load.add_argument(
        "--num-prompts",
        type=int,
        default=50,
        metavar="N",
        help="timed requests per concurrency level (50)",
    )
    load.add_argument(
        "--request-rate",
        default="inf",
        metavar="R",
        help="requests per second, or inf: all at once (inf)",
    )
    load.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        metavar="B",
        help="gamma shape of the arrival gaps: 1 Poisson, <1 burstier (1.0)",
    )
    load.add_argument(
        "--warmup", type=int, default=1, metavar="N", help="untimed requests before each level (1)"
    )
    load.add_argument("--seed", type=int, default=0, help="for prompts and schedule (0)")
    load.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds a request may take once served (300)",
    )
    work = p.add_argument_group("workload")
    work.add_argument(
        "--workload",
        choices=("synthetic", "rag"),
        default="synthetic",
        help="synthetic prompts or RAG chats (synthetic)",
    )
    work.add_argument(
        "--input-len",
        type=int,
        default=128,
        metavar="N",
        help="synthetic prompt tokens, about (128)",
    )
    work.add_argument(
        "--output-len",
        type=int,
        default=64,
        metavar="N",
        help="answer tokens asked for, at most (64)",
    )
    work.add_argument(
        "--range-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="synthetic lengths uniform in [N(1-R), N(1+R)] (0.0)",
    )
    work.add_argument(
        "--sources", type=int, default=4, metavar="K", help="rag: corpus documents per request (4)"
    )
    work.add_argument(
        "--same-sources", action="store_true", help="rag: the same documents for every question"
    )
    out = p.add_argument_group("results")
    out.add_argument(
        "--goodput",
        nargs="+",
        metavar="KEY:MS",
        help="service-level objectives, e.g. ttft:500 tpot:50 e2el:5000",
    )
    out.add_argument(
        "--percentiles",
        default="50,90,99",
        metavar="P[,P…]",
        help="percentiles to report (50,90,99)",
    )
    out.add_argument(
        "-o",
        "--output",
        dest="format",
        default="md",
        choices=OUTPUTS,
        help="md: a table; json: a list of result objects (md)",
    )
    out.add_argument("--out", metavar="FILE.jsonl", help="append the results here")
    out.add_argument("--label", metavar="TEXT", help="a note kept with every result")
    server = p.add_argument_group("a server of its own")
    server.add_argument(
        "--start-server",
        action="store_true",
        help="put a local GGUF behind llama-server for the run",
    )
    server.add_argument("--parallel", type=int, metavar="N", help="its slots (the largest -c)")
    server.add_argument(
        "--num-ctx",
        type=int,
        metavar="N",
        help="context window (in-process, or the started server's)",
    )
    server.add_argument(
        "--llama-server", metavar="PATH", help="the binary ($BOREALIS_LLAMA_SERVER, else PATH)"
    )
    server.add_argument(
        "--server-args",
        default="",
        metavar="ARGS",
        help='more llama-server options, e.g. "-ngl 99 -t 8"',
    )
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    from borealis_local.bench import serve_load, serve_metrics

    config = config_from_args(args)
    percentiles = serve_metrics.parse_percentiles(args.percentiles)
    goodput = serve_metrics.parse_goodput(args.goodput or [])
    requests = workload_from_args(args)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    runs, runtime = serve_load.run_sweep(config, requests, progress=say)
    results = []
    for level, run in zip(config.concurrency, runs, strict=True):
        result = describe(args, config, level, runtime)
        result.update(
            serve_metrics.summarise(
                run.records, run.duration, percentiles=percentiles, goodput=goodput,
                energy_joules=run.energy_joules,
            )
        )
        results.append(result)
    if args.out:
        with Path(args.out).open("a", encoding="utf-8") as file:
            file.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if args.format == "json":
        sys.stdout.write(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    else:
        print_table(results, percentiles)
    if not any(r["completed"] for r in results):
        say("no request completed: see the errors above")
        return 1
    return 0


def config_from_args(args: argparse.Namespace):
    from borealis_local.bench.serve_load import ServeConfig

    levels = _int_list(args.concurrency, "-c")
    rate = _rate(args.request_rate)
    if args.burstiness <= 0:
        raise InvalidRequestError("--burstiness must be > 0 (1: a Poisson process)")
    if args.num_prompts < 1 or args.warmup < 0 or args.timeout <= 0:
        raise InvalidRequestError(
            "--num-prompts must be 1 or more, --warmup 0 or more, --timeout > 0"
        )
    if not args.start_server and (args.parallel or args.server_args or args.llama_server):
        raise InvalidRequestError(
            "--parallel, --server-args and --llama-server are for "
            "--start-server: add it, or leave them out"
        )
    return ServeConfig(
        model=args.model, concurrency=tuple(levels), num_prompts=args.num_prompts,
        request_rate=rate,
        burstiness=args.burstiness, warmup=args.warmup, seed=args.seed,
        timeout=args.timeout, num_ctx=args.num_ctx, start_server=args.start_server,
        parallel=args.parallel, llama_server=args.llama_server,
        server_args=tuple(shlex.split(args.server_args)),
    )  # fmt: skip


def workload_from_args(args: argparse.Namespace):
    """The workload as `run_sweep` takes it: requests numbered from a start, the timed
    ones and the warm-up before them."""
    from functools import partial

    from borealis_local.bench import serve_workload

    n = args.num_prompts + args.warmup
    if args.workload == "rag":
        make = partial(serve_workload.rag, n, args.sources, args.output_len,
                       same_sources=args.same_sources)  # fmt: skip
    else:
        make = partial(serve_workload.synthetic, n, args.input_len, args.output_len,
                       range_ratio=args.range_ratio, seed=args.seed)  # fmt: skip
    make(start=0)  # bad lengths or sources fail here, before a server starts
    return lambda start: make(start=start)


def describe(args, config, level: int, runtime: dict[str, Any]) -> dict[str, Any]:
    """A result's settings: what was measured, and how."""
    rate = config.request_rate
    result: dict[str, Any] = {
        "model": args.model, "runtime": runtime["runtime"], "workload": args.workload,
        "concurrency": level, "max_concurrency": level, "num_prompts": args.num_prompts,
        # vLLM writes an infinite rate as "inf" (JSON has no infinity).
        "request_rate": "inf" if math.isinf(rate) else rate,
        "burstiness": "inf" if math.isinf(config.burstiness) else config.burstiness,
        "warmup": config.warmup, "seed": config.seed,
        "serialised": runtime["serialised"], "output_len": args.output_len,
    }  # fmt: skip
    if args.workload == "rag":
        result.update(sources=args.sources, same_sources=args.same_sources)
    else:
        result.update(input_len=args.input_len, range_ratio=args.range_ratio)
    if runtime["started_server"]:
        result["started_server"] = runtime["started_server"]
    if args.label:
        result["label"] = args.label
    return result


def print_table(results: Sequence[dict[str, Any]], percentiles: Sequence[float]) -> None:
    """A Markdown table, one row per concurrency level; then notes and errors."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from borealis_local.bench.serve_metrics import percentile_name

    top = f"p{percentile_name(max(percentiles))}"
    first = results[0]
    print(
        f"{first['model']} ({first['runtime']}), {_workload(first)}, "
        f"request rate {first['request_rate']}\n"
    )
    goodput = "request_goodput" in first
    table = Table(box=box.MARKDOWN, pad_edge=False)
    heads = [
        "c",
        "completed",
        "failed",
        "req/s",
        "out tok/s",
        f"TTFT ms median/{top}",
        f"TPOT ms median/{top}",
        f"ITL ms median/{top}",
        f"E2EL ms median/{top}",
        *(["goodput req/s"] if goodput else []),
        "cache hit",
    ]
    for head in heads:
        table.add_column(head, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            str(r["concurrency"]), str(r["completed"]), str(r["failed"]),
            _number(r["request_throughput"]), _number(r["output_throughput"]),
            *(f"{_number(r[f'median_{m}_ms'])} / {_number(r[f'{top}_{m}_ms'])}"
              for m in ("ttft", "tpot", "itl", "e2el")),
            *([_number(r["request_goodput"])] if goodput else []),
            "—" if r["prompt_cache_hit_rate"] is None else f"{r['prompt_cache_hit_rate']:.0%}",
        )  # fmt: skip
    console = Console(file=io.StringIO(), width=250, highlight=False)
    console.print(table)
    # rich draws the Markdown box's empty top and bottom edges as lines of spaces.
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]
    print("\n".join(line for line in lines if line))
    notes = []
    if first["serialised"]:
        notes.append(
            f"serialised: {first['runtime']} in-process serves one request at a time; "
            "latencies include the wait for the model"
        )
    sources = {r["output_tokens_source"] for r in results} - {None}
    notes.append(f"output tokens from: {', '.join(sorted(sources)) or 'no completed request'}")
    if "started_server" in first:
        server = first["started_server"]
        notes.append(f"server started: {Path(server['binary']).name} {' '.join(server['args'])}")
    for r in results:
        for error in r["errors"]:
            notes.append(f"c={r['concurrency']}: {error['count']} failed: {error['message']}")
    print("\n" + "\n".join(notes))


def _workload(result: dict[str, Any]) -> str:
    if result["workload"] == "rag":
        same = ", the same for every question" if result["same_sources"] else ""
        return f"RAG: {result['sources']} sources{same}, up to {result['output_len']} tokens"
    spread = f" ±{result['range_ratio']:.0%}" if result["range_ratio"] else ""
    return (
        f"synthetic: {result['input_len']}{spread} prompt tokens, up to "
        f"{result['output_len']} answer tokens"
    )


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise InvalidRequestError(f"{option} {text!r}: give whole numbers >= 1, e.g. 1,2,4")
    return values


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not rate > 0:
        raise InvalidRequestError(
            f"--request-rate {text!r}: give requests per second (> 0), or inf for all at once"
        )
    return rate


__all__ = ["DESCRIPTION", "cmd_serve", "register"]
