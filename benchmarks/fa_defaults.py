"""`borealis bench` on its defaults against the best of a flash-attention × threads sweep.

    python benchmarks/fa_defaults.py [MODEL] [--rounds 4] [-r 2] [-p 512] [-n 128]
        [--threads 1,2] [--save FILE.json]

The defaults (flash attention `auto`, threads = physical cores) should be within 5 % of
the best configuration of `-fa on,off × -t 1,2`, so a user who runs plain `borealis
bench` sees what the machine can do. Per round every configuration runs once (each in a
child process of its own, as `borealis bench` runs it; the order rotates each round, so
the machine's drift falls on all alike). The best configuration is the one with the
highest rate over all rounds; per round the ratio defaults/best is taken, and the
ratios' mean, standard error and 95 % interval are printed. "Shown within 5 %" when the
whole interval lies above 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from borealis_local.bench import measure, sweep
from borealis_local.bench.cli import first_run_model
from borealis_local.bench.report import mean_interval

DEFAULTS = "defaults"


def configurations(model: str, args) -> dict[str, list]:
    """name → the planned configurations of one `borealis bench` run."""
    tests = {"n_prompt": [args.n_prompt], "n_gen": [args.n_gen], "chat": [0], "reps": args.reps}
    plans = {DEFAULTS: sweep.plan(sweep.Sweep(models=[model], **tests))}
    for flash_attn in (1, 0):
        for threads in args.threads:
            name = f"fa {'on' if flash_attn else 'off'}, {threads} thread(s)"
            plans[name] = sweep.plan(
                sweep.Sweep(models=[model], flash_attn=[flash_attn], threads=[threads], **tests)
            )
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a .gguf (default: 270m or the stand-in)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("-r", "--reps", type=int, default=2)
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("--threads", default="1,2", help="the sweep's thread counts")
    parser.add_argument("--save", metavar="FILE.json")
    args = parser.parse_args(argv)
    args.threads = sweep.parse_int_list(args.threads, name="--threads")
    model = args.model or first_run_model(pull=False)[0]
    plans = configurations(model, args)
    default = plans[DEFAULTS][0]
    names = list(plans)

    load_before = os.getloadavg()
    # rates[name][test] = one mean rate per round
    rates: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            print(f"round {round_number + 1}: {name} …", file=sys.stderr, flush=True)
            for row in sweep.run(plans[name], progress=False):
                rates[name].setdefault(row.test, []).append(row.avg_ts)
        print(
            json.dumps({n: {t: v[-1] for t, v in r.items()} for n, r in rates.items()}),
            file=sys.stderr,
            flush=True,
        )  # kept if cut short
    load_after = os.getloadavg()

    print(
        f"model: {model}; defaults: fa auto, {default.n_threads} thread(s) (physical "
        f"cores: {measure.default_threads()}); {args.rounds} rounds x {args.reps} reps\n"
    )
    tests = list(rates[DEFAULTS])
    print("| configuration | " + " | ".join(f"{t} t/s (median)" for t in tests) + " |")
    print("|---|" + "---|" * len(tests))
    for name in names:
        print(
            f"| {name} | "
            + " | ".join(f"{statistics.median(rates[name][t]):.2f}" for t in tests)
            + " |"
        )
    summary = {}
    for test in tests:
        best = max(
            (n for n in names if n != DEFAULTS), key=lambda n: statistics.fmean(rates[n][test])
        )
        ratios = [d / b for d, b in zip(rates[DEFAULTS][test], rates[best][test], strict=True)]
        mean, error, half = mean_interval(ratios) if len(ratios) > 1 else (ratios[0], 0, 0)
        shown = mean - half >= 0.95
        summary[test] = {
            "best": best,
            "rounds": ratios,
            "mean": mean,
            "stderr": error,
            "ci95": [mean - half, mean + half],
            "shown_within_5pct": shown,
        }
        print(
            f"\n{test}: best of the sweep {best}; defaults/best paired by round "
            f"{mean:.3f} ± {error:.3f}, 95% interval {mean - half:.3f}–{mean + half:.3f} "
            f"({'shown within 5%' if shown else 'not shown within 5%'}); rounds "
            + ", ".join(f"{r:.3f}" for r in ratios)
        )
    print(
        f"\nload average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, "
        f"after {tuple(round(x, 2) for x in load_after)}, on {os.cpu_count()} CPUs"
    )
    if args.save:
        with open(args.save, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "rates": rates,
                    "summary": summary,
                    "load_before": load_before,
                    "load_after": load_after,
                    "rounds": args.rounds,
                    "reps": args.reps,
                },
                out,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
