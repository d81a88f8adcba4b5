"""The `borealis` command: one subcommand per job, tables for people, --json for scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from borealis_local import __version__
from borealis_local.catalog import DEFAULT_QUANT, MODELS, QUANTS, SIZES, VARIANTS, get_model
from borealis_local.errors import BorealisError

GGUF_MAGIC = b"GGUF"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def cmd_list(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([model.to_dict() for model in MODELS], indent=2, ensure_ascii=False))
        return 0
    from rich.table import Table

    # One row per size and a column per variant keeps the table within 80 columns.
    table = Table(title="Borealis models", title_justify="left")
    for column in ("size", "context", "input", "full", "open"):
        table.add_column(column, no_wrap=True)
    for size in SIZES:
        full, open_ = get_model(size, "full"), get_model(size, "open")
        context = f"{full.context_length // 1024}k"
        table.add_row(size, context, full.modality, full.name, open_.name)
    console = _console()
    console.print(table)
    for variant in VARIANTS:
        model = get_model(SIZES[2], variant)
        gated = ", gated on the hub" if model.gated else ""
        family = model.ollama_tag.split(":")[0]
        console.print(
            f"{variant}: {model.license.name}{gated} ({model.license.url}); "
            f"GGUF repo {model.gguf_repo} and so on; Ollama tag {family}:SIZE"
        )
    quants = ", ".join(f"[bold]{q}[/bold]" if q == DEFAULT_QUANT else q for q in QUANTS)
    console.print(f"Quantisations in every GGUF repo: {quants} (default {DEFAULT_QUANT}).")
    console.print(
        f"Files are named MODEL-QUANT.gguf ({MODELS[2].gguf_filename()}); --json lists all."
    )
    return 0


def _checked_gguf_path(raw: str) -> Path:
    """A local GGUF for FROM, resolved and checked: Ollama takes a missing path for a
    model name and tries to pull it, which fails far from the cause."""
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise BorealisError(
            f"no such file: {path} (`borealis list --json` names every hub repo and file)"
        )
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise BorealisError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    return path


def cmd_modelfile(args: argparse.Namespace) -> int:
    from borealis_local import artefacts

    if args.write or args.check:
        if args.size:
            raise BorealisError("--write/--check regenerate every file: give no SIZE")
        if args.check:
            stale = artefacts.stale_artefacts(args.dir)
            for path in stale:
                print(f"{path}: differs from the generator", file=sys.stderr)
            if stale:
                print("run `borealis modelfile --write` to regenerate", file=sys.stderr)
            return 1 if stale else 0
        changed = artefacts.write_artefacts(args.dir)
        total = len(artefacts.generated_artefacts())
        print(f"{total} files in {args.dir}/, {len(changed)} changed")
        for path in changed:
            print(f"  wrote {path}")
        return 0
    if not args.size:
        raise BorealisError("give a SIZE (one of " + ", ".join(SIZES) + ") or --write")
    from borealis_local.modelfile import render_modelfile

    model = get_model(args.size, args.variant)
    from_path = _checked_gguf_path(args.from_path) if args.from_path else None
    sys.stdout.write(
        render_modelfile(
            model, quant=args.quant, from_path=from_path, num_ctx=args.num_ctx, system=args.system
        )
    )
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from borealis_local.lint import lint_files

    problems = lint_files(args.files)
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    failed = errors or (args.strict and warnings)
    summary = f"{len(args.files)} file(s): {errors} error(s), {warnings} warning(s)"
    print(summary, file=sys.stderr)
    return 1 if failed else 0


def cmd_create(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from borealis_local.runtime.ollama import create_model

    model = get_model(args.size, args.variant)
    steps = create_model(
        model,
        quant=args.quant,
        from_path=args.from_path,
        tag=args.name,
        num_ctx=args.num_ctx,
    )
    tag = args.name or model.ollama_tag
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"creating {tag}", total=None)
        for step in steps:
            progress.update(task, description=step.status, completed=step.completed or 0,
                            total=step.total)
    print(f"created {tag} in Ollama: `ollama run {tag}` or `borealis chat {tag}`")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from borealis_local.chat import prompt_lines, run_chat
    from borealis_local.runtime.base import Options
    from borealis_local.runtime.resolve import open_backend

    options = Options(
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        num_ctx=args.num_ctx,
    ).validated()
    interactive = sys.stdin.isatty()
    with open_backend(args.model, options=options) as backend:
        if interactive:
            print(
                f"{args.model} on {backend.kind}. /reset forgets, /exit or Ctrl-D ends.",
                file=sys.stderr,
            )
        lines = prompt_lines() if interactive else sys.stdin
        return run_chat(backend, lines, system=args.system, interactive=interactive)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borealis",
        description="Run the National Library of Norway's Borealis models locally.",
    )
    parser.add_argument("--version", action="version", version=f"borealis-local {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="the Borealis sizes, variants, quants and files")
    p.add_argument("--json", action="store_true", help="everything the catalog knows, as JSON")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser(
        "modelfile",
        help="print an Ollama Modelfile, or regenerate every committed file",
        description="Print the Modelfile for one model, or with --write regenerate "
        "modelfiles/ (Modelfiles, chat templates, llama-server presets).",
    )
    p.add_argument("size", nargs="?", metavar="SIZE", help=f"one of {', '.join(SIZES)}")
    p.add_argument("--variant", choices=VARIANTS, default="full", help="default: full")
    p.add_argument("--quant", default=DEFAULT_QUANT, help=f"one of {', '.join(QUANTS)}")
    p.add_argument(
        "--from", dest="from_path", metavar="PATH.gguf", help="a local GGUF instead of the hub"
    )
    p.add_argument("--num-ctx", type=int, help="context window (default: per size)")
    p.add_argument("--system", metavar="TEXT", help="add a SYSTEM prompt (Borealis needs none)")
    p.add_argument("--write", action="store_true", help="regenerate every file in --dir")
    p.add_argument("--check", action="store_true", help="fail if a file in --dir is stale")
    p.add_argument(
        "--dir", type=Path, default=Path("modelfiles"), help="default: ./modelfiles"
    )
    p.set_defaults(func=cmd_modelfile)

    p = commands.add_parser(
        "lint",
        help="check Modelfiles as Ollama parses them, plus Borealis pitfalls",
        description="Parse Modelfiles with Ollama's grammar and report FILE:LINE problems. "
        "Exit status 1 on errors (or on warnings with --strict).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(func=cmd_lint)

    p = commands.add_parser(
        "create",
        help="create a Borealis model in Ollama, with the right template and licence",
        description="Create SIZE in Ollama through its API: the Borealis template, stop "
        "token, sampling, num_ctx and licence from the catalog; weights from the hub "
        "(Ollama pulls them) or a local GGUF (--from, uploaded first).",
    )
    p.add_argument("size", metavar="SIZE", help=f"one of {', '.join(SIZES)}")
    p.add_argument("--variant", choices=VARIANTS, default="full", help="default: full")
    p.add_argument("--quant", default=DEFAULT_QUANT, help=f"one of {', '.join(QUANTS)}")
    p.add_argument("--from", dest="from_path", metavar="PATH.gguf", help="a local GGUF")
    p.add_argument("--name", metavar="TAG", help="the Ollama tag (default: borealis:SIZE)")
    p.add_argument("--num-ctx", type=int, help="context window (default: per size)")
    p.set_defaults(func=cmd_create)

    p = commands.add_parser(
        "chat",
        help="chat with a model in the terminal, on any runtime",
        description="Stream answers from MODEL: a catalog name (borealis-open-4b:Q8_0, "
        "the GGUF on this machine), a .gguf path, an Ollama tag (borealis:4b) or "
        "openai:MODEL@BASE_URL. From a pipe, each input line is answered on its own.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--system", metavar="TEXT", help="a system prompt (Borealis needs none)")
    p.add_argument("--temperature", type=float, help="default: 1.0 (Gemma 3's)")
    p.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    p.add_argument("--seed", type=int, help="for reproducible sampling")
    p.add_argument("--num-ctx", type=int, help="context window in tokens")
    p.set_defaults(func=cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BorealisError as error:
        print(f"borealis: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`borealis list | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
