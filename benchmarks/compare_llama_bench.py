"""llama-bench and `borealis bench` side by side: same model, threads, shapes, settings.

    python benchmarks/compare_llama_bench.py [MODEL] [-t 2] [-p 512] [-n 128] [-r 2]
        [-fa auto] [-ngl N] [-b 2048] [-ub 512] [--rounds 16] [--llama-bench PATH] [--save DIR]
        [--defaults]

Runs llama-bench (`-o json`) and `borealis bench` (`-o json --chat 0`) as separate
processes, pp and tg each in runs of their own, alternating which tool goes first each
round, pools each side's per-rep rates over
the rounds, and prints borealis/llama-bench for pp and tg with the ratio's spread (both
sides' relative standard deviations combined), plus how noisy the machine was: the load
average before and after, and each side's coefficient of variation.

A shared machine drifts by more than 5 % within minutes, so with two or more rounds it
also pairs the sides round by round: each round's ratio of mean rates, then their mean,
its standard error and a 95 % interval. The issue's acceptance: each ratio within 5 % of
1; "shown" when the whole interval lies within 5 %.

With --defaults each tool runs on its own defaults (no -t, -fa, -ngl, -b, -ub given:
both take flash attention `auto` and the physical cores), as a user would run them.

MODEL is a .gguf path or a catalog name on this machine (default: borealis-270m, else
the stand-in Gemma 3 270M base). llama-bench comes from --llama-bench, $LLAMA_BENCH, or
`bash .ci/llama-tools.sh`, which builds it (once, about 7 minutes) from the llama.cpp
tree vendored in the llama-cpp-python sdist, so both sides run the same llama.cpp.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from borealis_local.bench import measure, report, run
from borealis_local.bench.cli import first_run_model
from borealis_local.runtime.llama_cpp import flash_attn_type

REPO = Path(__file__).resolve().parent.parent


def llama_bench_binary(given: str | None) -> Path:
    named = given or os.environ.get("LLAMA_BENCH")
    if named:
        return Path(named)
    tools = subprocess.run(["bash", str(REPO / ".ci" / "llama-tools.sh")], check=True,
                           capture_output=True, text=True, timeout=3600).stdout.strip()
    return Path(tools) / "llama-bench"


def shared_options(args: argparse.Namespace, n_prompt: int, n_gen: int) -> list[str]:
    shapes = ["-p", str(n_prompt), "-n", str(n_gen), "-r", str(args.reps)]
    if args.defaults:
        return shapes
    return [*shapes, "-t", str(args.threads), "-fa", str(args.flash_attn),
            "-ngl", str(args.n_gpu_layers), "-b", str(args.n_batch), "-ub", str(args.n_ubatch)]


def run_json(command: list[str], timeout: float) -> list[dict]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        sys.exit(f"{command[0]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return report.parse_rows(result.stdout, source=" ".join(command[:3]))


def pooled(rows: list[dict]) -> list[dict]:
    """One row per test, the rounds' per-rep samples pooled (llama-bench's statistics)."""
    merged: dict[str, dict] = {}
    for row in rows:
        into = merged.setdefault(row["test"], {**row, "samples_ns": [], "samples_ts": []})
        into["samples_ns"] += row["samples_ns"]
        into["samples_ts"] += row["samples_ts"]
    for row in merged.values():
        row.update(run.summary(row["samples_ns"], row["samples_ts"]))
    return list(merged.values())


def paired_rounds(rounds: list[tuple[list[dict], list[dict]]]) -> dict[str, dict]:
    """Per test: each round's borealis/llama-bench ratio of mean rates, and their summary."""
    ratios: dict[str, list[float]] = {}
    for theirs, ours in rounds:
        ours_by_test = {row["test"]: row for row in ours}
        for row in theirs:
            if row["test"] in ours_by_test and row["avg_ts"]:
                ratios.setdefault(row["test"], []).append(
                    ours_by_test[row["test"]]["avg_ts"] / row["avg_ts"])
    result = {}
    for test, values in ratios.items():
        if len(values) < 2:
            continue
        mean, error, half = report.mean_interval(values)
        result[test] = {"rounds": values, "mean": mean, "stderr": error,
                        "ci95": [mean - half, mean + half],
                        "shown_within_5pct": abs(mean - half - 1) <= 0.05
                        and abs(mean + half - 1) <= 0.05}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a .gguf or catalog name (default: 270m)")
    parser.add_argument("-t", "--threads", type=int, default=measure.default_threads())
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-r", "--reps", type=int, default=2)
    parser.add_argument("-fa", "--flash-attn", default="auto",
                        help="auto, on or off (-1, 1, 0), both tools' default auto")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int)
    parser.add_argument("-b", "--n-batch", type=int, default=2048)
    parser.add_argument("-ub", "--n-ubatch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=16, help="alternating runs of each")
    parser.add_argument("--llama-bench", help="the llama-bench binary")
    parser.add_argument("--save", metavar="DIR",
                        help="keep both sides' JSON and the paired ratios here")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--defaults", action="store_true",
                        help="each tool on its own defaults: only -p, -n and -r given")
    args = parser.parse_args(argv)
    flash_attn_type(args.flash_attn, what="-fa")  # a bad value fails here, not in a tool

    name, label = (args.model, None) if args.model else first_run_model(pull=False)
    target = measure.resolve_target(name)
    if not target.in_process:
        sys.exit(f"{name} is not a local GGUF: llama-bench runs GGUF files only")
    if args.n_gpu_layers is None:
        args.n_gpu_layers = -1 if measure.gpu_build() else 0
    binary = llama_bench_binary(args.llama_bench)
    # pp and tg in runs of their own, so each pair of runs is seconds apart, not minutes.
    shapes = [(args.n_prompt, 0), (0, args.n_gen)] if args.n_prompt and args.n_gen \
        else [(args.n_prompt, args.n_gen)]

    load_before = os.getloadavg()
    rounds: list[tuple[list[dict], list[dict]]] = []
    for round_number in range(args.rounds):
        theirs, ours = [], []
        for n_prompt, n_gen in shapes:
            options = shared_options(args, n_prompt, n_gen)
            order = [([str(binary), "-m", target.path, *options, "-o", "json"], theirs),
                     ([sys.executable, "-m", "borealis_local.bench.cli", target.path,
                       *options, "--chat", "0", "-o", "json"], ours)]
            for command, rows in order if round_number % 2 == 0 else order[::-1]:
                print(f"round {round_number + 1}: {Path(command[0]).name} "
                      f"p{n_prompt} n{n_gen} …", file=sys.stderr)
                rows += run_json(command, args.timeout)
        rounds.append((theirs, ours))
    load_after = os.getloadavg()

    paired = paired_rounds(rounds)
    theirs = pooled([row for round_rows in rounds for row in round_rows[0]])
    ours = pooled([row for round_rows in rounds for row in round_rows[1]])
    if args.save:
        directory = Path(args.save)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "llama-bench.json").write_text(report.to_json(theirs))
        (directory / "borealis.json").write_text(report.to_json(ours))
        (directory / "paired.json").write_text(json.dumps(
            {"paired": paired, "load_before": load_before, "load_after": load_after,
             "threads": args.threads, "reps": args.reps, "rounds": args.rounds}, indent=1))
    result = report.compare(theirs, ours)
    print(f"model: {target.path}" + (f" ({label})" if label else ""))
    settings = ("both tools on their defaults" if args.defaults else
                f"threads {args.threads}, fa {args.flash_attn}, ngl {args.n_gpu_layers}")
    print(f"{settings}, {args.rounds} round(s) × {args.reps} reps per side\n")
    print(report.compare_markdown(result, "llama-bench", "borealis"))
    for pair in result[0]:
        a, b = pair["a"], pair["b"]
        verdict = "within 5%" if abs(pair["ratio"] - 1) <= 0.05 else "NOT within 5%"
        print(f"{a['test']}: borealis/llama-bench = {pair['ratio']:.3f} ± "
              f"{pair['ratio_stddev']:.3f} ({verdict}); spread (CV) llama-bench "
              f"{a['stddev_ts'] / a['avg_ts']:.1%}, borealis {b['stddev_ts'] / b['avg_ts']:.1%}")
    for test, pair in paired.items():
        low, high = pair["ci95"]
        verdict = "shown within 5%" if pair["shown_within_5pct"] else "not shown within 5%"
        print(f"{test}, paired by round: {pair['mean']:.3f} ± {pair['stderr']:.3f} (standard "
              f"error), 95% interval {low:.3f}–{high:.3f} over {len(pair['rounds'])} rounds "
              f"({verdict}); rounds: {', '.join(f'{r:.3f}' for r in pair['rounds'])}")
    print(f"\nload average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, "
          f"after {tuple(round(x, 2) for x in load_after)}, on {os.cpu_count()} CPUs")
    print(json.dumps({"ratios": {p["a"]["test"]: [p["ratio"], p["ratio_stddev"]]
                                 for p in result[0]}, "paired": paired}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
