"""llama-bench and `borealis bench` side by side: same model, threads, shapes, settings.

    python benchmarks/compare_llama_bench.py [MODEL] [-t 2] [-p 512] [-n 128] [-r 5]
        [-fa 0] [-ngl N] [-b 2048] [-ub 512] [--rounds 1] [--llama-bench PATH] [--save DIR]

Runs llama-bench (`-o json`) and `borealis bench` (`-o json --chat 0`) as separate
processes, alternating which goes first each round, pools each side's per-rep rates over
the rounds, and prints borealis/llama-bench for pp and tg with the ratio's spread (both
sides' relative standard deviations combined), plus how noisy the machine was: the load
average before and after, and each side's coefficient of variation. The issue's
acceptance: each ratio within 5 % of 1 on a quiet machine.

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

from borealis_local.bench import measure, report
from borealis_local.bench.cli import first_run_model

REPO = Path(__file__).resolve().parent.parent


def llama_bench_binary(given: str | None) -> Path:
    named = given or os.environ.get("LLAMA_BENCH")
    if named:
        return Path(named)
    tools = subprocess.run(["bash", str(REPO / ".ci" / "llama-tools.sh")], check=True,
                           capture_output=True, text=True, timeout=3600).stdout.strip()
    return Path(tools) / "llama-bench"


def shared_options(args: argparse.Namespace) -> list[str]:
    return ["-t", str(args.threads), "-p", str(args.n_prompt), "-n", str(args.n_gen),
            "-r", str(args.reps), "-fa", str(args.flash_attn), "-ngl", str(args.n_gpu_layers),
            "-b", str(args.n_batch), "-ub", str(args.n_ubatch)]


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
        row.update(measure.summary(row["samples_ns"], row["samples_ts"]))
    return list(merged.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a .gguf or catalog name (default: 270m)")
    parser.add_argument("-t", "--threads", type=int, default=measure.default_threads())
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-r", "--reps", type=int, default=5)
    parser.add_argument("-fa", "--flash-attn", type=int, choices=(0, 1), default=0)
    parser.add_argument("-ngl", "--n-gpu-layers", type=int)
    parser.add_argument("-b", "--n-batch", type=int, default=2048)
    parser.add_argument("-ub", "--n-ubatch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each")
    parser.add_argument("--llama-bench", help="the llama-bench binary")
    parser.add_argument("--save", metavar="DIR", help="keep both sides' JSON here")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)

    name, label = (args.model, None) if args.model else first_run_model(pull=False)
    target = measure.resolve_target(name)
    if target.runtime != "llama.cpp":
        sys.exit(f"{name} is not a local GGUF: llama-bench runs GGUF files only")
    if args.n_gpu_layers is None:
        args.n_gpu_layers = -1 if measure.gpu_build() else 0
    binary = llama_bench_binary(args.llama_bench)
    theirs_command = [str(binary), "-m", target.path, *shared_options(args), "-o", "json"]
    ours_command = [sys.executable, "-m", "borealis_local.bench.cli", target.path,
                    *shared_options(args), "--chat", "0", "-o", "json"]

    load_before = os.getloadavg()
    theirs, ours = [], []
    for round_number in range(args.rounds):
        order = [(theirs_command, theirs), (ours_command, ours)]
        for command, rows in order if round_number % 2 == 0 else order[::-1]:
            print(f"round {round_number + 1}: {Path(command[0]).name} …", file=sys.stderr)
            rows += run_json(command, args.timeout)
    load_after = os.getloadavg()

    theirs, ours = pooled(theirs), pooled(ours)
    if args.save:
        directory = Path(args.save)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "llama-bench.json").write_text(report.to_json(theirs))
        (directory / "borealis.json").write_text(report.to_json(ours))
    result = report.compare(theirs, ours)
    print(f"model: {target.path}" + (f" ({label})" if label else ""))
    print(f"threads {args.threads}, fa {args.flash_attn}, ngl {args.n_gpu_layers}, "
          f"{args.rounds} round(s) × {args.reps} reps per side\n")
    print(report.compare_markdown(result, "llama-bench", "borealis"))
    for pair in result[0]:
        a, b = pair["a"], pair["b"]
        verdict = "within 5%" if abs(pair["ratio"] - 1) <= 0.05 else "NOT within 5%"
        print(f"{a['test']}: borealis/llama-bench = {pair['ratio']:.3f} ± "
              f"{pair['ratio_stddev']:.3f} ({verdict}); spread (CV) llama-bench "
              f"{a['stddev_ts'] / a['avg_ts']:.1%}, borealis {b['stddev_ts'] / b['avg_ts']:.1%}")
    print(f"\nload average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, "
          f"after {tuple(round(x, 2) for x in load_after)}, on {os.cpu_count()} CPUs")
    print(json.dumps({"ratios": {p["a"]["test"]: [p["ratio"], p["ratio_stddev"]]
                                 for p in result[0]}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
