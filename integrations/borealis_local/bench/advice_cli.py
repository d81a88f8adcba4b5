"""`borealis recommend` and `borealis synth`: what fits this machine, and models to check it.

`register(subparsers)` adds both commands to the `borealis` argument parser.
"""

from __future__ import annotations

import argparse
import json
import sys

from borealis_local.catalog import DEFAULT_QUANT, QUANTS, SIZES, VISION
from borealis_local.errors import BorealisError

GB = 1e9


def register(subparsers: argparse._SubParsersAction) -> None:
    from borealis_local.bench.estimate import DEFAULT_RUNTIME, RUNTIMES

    p = subparsers.add_parser(
        "recommend",
        help="which Borealis sizes and quants fit this machine, with what num_ctx",
        description="Estimate from the catalog's shapes (weights, KV cache, compute "
        "buffers, runtime) which sizes and quants fit this machine's RAM and GPU memory "
        "(or the figures given), the largest context each fits with, and one pick.",
    )
    p.add_argument("--ram", type=_gib_argument, metavar="GiB", help="plan for this much RAM")
    p.add_argument(
        "--vram", type=_gib_argument, metavar="GiB", help="plan for a GPU with this much"
    )
    p.add_argument(
        "--unified", action="store_true", help="the GPU shares RAM (Apple silicon)"
    )
    p.add_argument(
        "--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
        help=f"sizes the KV cache as this runtime does (default: {DEFAULT_RUNTIME})",
    )
    p.add_argument(
        "--images", action="store_true",
        help="plan for images too: add the vision projector (mmproj, F16: about 0.85 GB, "
        "and its compute buffer) to 4b, 12b and 27b; 270m and 1b are text-only. Without "
        "it the plan is for text, as the runtimes load the projector only for images",
    )
    p.add_argument("--json", action="store_true", help="every size and quant, as JSON")
    p.set_defaults(func=cmd_recommend)

    p = subparsers.add_parser(
        "synth",
        help="write a random-weight GGUF in a Borealis size's shape (NOT a language model)",
        description="Write a GGUF with exactly SIZE's Gemma 3 architecture, the Gemma 3 "
        "tokenizer copied from --tokenizer-from, and random weights quantised by llama.cpp. "
        "Its speed and memory equal the real model's, so hardware can be planned and "
        "benchmarked without downloading; its output is noise: it is NOT a language model. "
        "With --mmproj, write a Gemma 3 vision projector (mmproj) with random weights instead.",
    )
    p.add_argument("size", metavar="SIZE", nargs="?", help=f"one of {', '.join(SIZES)}")
    p.add_argument("--quant", default=DEFAULT_QUANT, help=f"one of {', '.join(QUANTS)}")
    p.add_argument(
        "--tokenizer-from", metavar="GGUF",
        help="a Gemma 3 GGUF to copy the tokenizer from (any Borealis file or the stand-in)",
    )
    p.add_argument(
        "--mmproj", metavar="PATH",
        help="write a synthetic Gemma 3 vision projector here instead (a folder, or a file "
        "name ending in -synthetic.gguf)",
    )
    p.add_argument(
        "--text-hidden", type=int, metavar="N",
        help="with --mmproj: the text model's hidden size (default: SIZE's; the stand-in: 640)",
    )
    p.add_argument(
        "--layers", type=int, metavar="L",
        help="with --mmproj: vision encoder blocks (default: Gemma 3's 27; fewer encode "
        "faster, and the file says it is reduced)",
    )
    p.add_argument(
        "-o", "--output", metavar="PATH",
        help="a folder, or a file name ending in -synthetic.gguf (default: here)",
    )
    p.add_argument("--threads", type=int, help="quantisation threads (default: all)")
    p.add_argument("--seed", type=int, default=0, help="for the random weights")
    p.set_defaults(func=cmd_synth)


def _gib_argument(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"give a size above 0 GiB, not {text}")
    return int(value * (1 << 30))


# -- recommend --------------------------------------------------------------------------


def cmd_recommend(args: argparse.Namespace) -> int:
    from borealis_local.bench.recommend import recommend

    advice = recommend(_machine(args), args.runtime, images=args.images)
    if args.json:
        print(json.dumps(advice.to_dict(), indent=2))
        return 0
    _print_advice(advice)
    return 0


def _machine(args: argparse.Namespace):
    from borealis_local.bench.recommend import Machine, this_machine

    if args.ram is None and args.vram is None and not args.unified:
        return this_machine()
    here = this_machine() if args.ram is None else None
    ram = args.ram if args.ram is not None else here.ram
    if args.unified and args.vram:
        raise BorealisError("--unified means the GPU shares RAM: give --ram, not --vram")
    return Machine(ram=ram, vram=args.vram or 0, unified=args.unified, source="given")


def _print_advice(advice) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    # BF16 stays in --json: Q8_0 is as good for inference at half the memory.
    quants = [quant for quant in QUANTS if quant != "BF16"]
    table = Table(title=_title(advice.machine, advice.runtime), title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("size", no_wrap=True)
    for quant in quants:
        table.add_column(quant, no_wrap=True, justify="right")
    for size in SIZES:
        table.add_row(size, *(_cell(advice.fits[size, quant]) for quant in quants))
    console.print(table)
    gpu = " (* on the GPU)" if advice.machine.device == "gpu" else ""
    images = ", images included for 4b, 12b and 27b" if advice.images else ""
    console.print(
        f"Each cell: the largest num_ctx that fits{gpu}, and the GiB it needs with that "
        f"context full{images}; — does not fit."
    )
    _print_pick(console, advice)


def _print_pick(console, advice) -> None:
    pick = advice.pick
    if pick is None:
        console.print("[bold]Nothing fits[/bold] with a useful context: even 270m needs "
                      "more memory than this machine can spare.")
        return
    e = pick.estimate
    console.print(
        f"[bold]Recommended: borealis-{pick.size}:{pick.quant}[/bold] with num_ctx "
        f"{pick.n_ctx}: about {_in_gib(pick.memory)} "
        f"GiB {pick.place} (weights {_in_gib(e.weights)}, KV cache {_in_gib(e.kv_cache)}, "
        f"compute {_in_gib(e.compute)}, runtime {_in_gib(e.overhead)}"
        + (f", vision projector {_in_gib(e.projector)} + compute "
           f"{_in_gib(e.projector_compute)}" if e.projector else "")
        + ")."
    )
    if not advice.images and pick.size in VISION:
        console.print(f"borealis-{pick.size} also sees images: `borealis recommend --images` "
                      "plans room for its vision projector.")
    from borealis_local.bench.estimate import FULL_SWA

    if FULL_SWA[advice.runtime]:  # llama-cpp-python's: say what the others need
        console.print(
            "llama-cpp-python keeps a full-size cache for the sliding-window layers; "
            "llama-server and Ollama need less for long contexts (--runtime)."
        )


def _title(machine, runtime: str) -> str:
    ram = f"{_in_gib(machine.ram)} GiB RAM ({_in_gib(machine.usable_ram)} usable)"
    if machine.unified:
        gpu = "unified memory"
    elif machine.vram:
        gpu = f"{machine.gpu or 'a GPU'} with {_in_gib(machine.vram)} GiB"
    else:
        gpu = "no GPU"
    return f"What fits {ram}, {gpu}: {runtime} ({machine.source})"


def _cell(fit) -> str:
    if fit is None:
        return "—"
    return f"{fit.n_ctx // 1024}k {_in_gib(fit.memory)}" + ("*" if fit.where == "GPU" else "")


def _in_gib(n: int) -> str:
    return f"{n / (1 << 30):.1f}"


# -- synth ------------------------------------------------------------------------------


def cmd_synth(args: argparse.Namespace) -> int:
    from borealis_local.bench.synth import synthesize

    def say(message: str) -> None:
        print(f"synth: {message}", file=sys.stderr, flush=True)

    if args.mmproj is not None:
        return _synth_projector(args, say)
    if args.text_hidden is not None or args.layers is not None:
        raise BorealisError("--text-hidden and --layers shape a projector: add --mmproj PATH")
    if args.size is None or args.tokenizer_from is None:
        raise BorealisError("give SIZE and --tokenizer-from GGUF (or --mmproj for a projector)")
    path = synthesize(
        args.size, args.quant, args.tokenizer_from, args.output,
        threads=args.threads, seed=args.seed, progress=say,
    )
    print(
        f"wrote {path} ({path.stat().st_size / GB:.2f} GB): borealis-{args.size.lower()}'s "
        f"shape at {args.quant.upper()} with RANDOM weights. It is NOT a language model (its "
        "output is noise): use it for `borealis bench` and memory planning only."
    )
    return 0


def _synth_projector(args: argparse.Namespace, say) -> int:
    from borealis_local.bench.synth import synthesize_projector
    from borealis_local.catalog import GEMMA3_VISION, get_model

    if (args.size is None) == (args.text_hidden is None):
        raise BorealisError(
            "with --mmproj, give SIZE (its text hidden size is used) or --text-hidden N, "
            "not both"
        )
    hidden = args.text_hidden if args.size is None else get_model(args.size).shape.hidden
    layers = GEMMA3_VISION.layers if args.layers is None else args.layers
    path = synthesize_projector(args.mmproj, hidden, layers=layers, seed=args.seed, progress=say)
    depth = ""
    if layers != GEMMA3_VISION.layers:
        depth = f", REDUCED to {layers} of {GEMMA3_VISION.layers} encoder blocks"
    print(
        f"wrote {path} ({path.stat().st_size / GB:.2f} GB): a Gemma 3 vision projector for "
        f"text hidden size {hidden} with RANDOM weights{depth}. It is NOT a model (its image "
        "embeddings are noise): use it for tests and planning only."
    )
    return 0
