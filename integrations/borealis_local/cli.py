"""The `borealis` command: one subcommand per job, tables for people, --json for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from borealis_local import __version__
from borealis_local.catalog import (
    DEFAULT_QUANT,
    MODELS,
    QUANTS,
    SIZES,
    VARIANTS,
    check_quant,
    get_model,
)
from borealis_local.errors import BorealisError

GGUF_MAGIC = b"GGUF"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def cmd_list(args: argparse.Namespace) -> int:
    if args.local:
        return _list_local(args)
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


def _list_local(args: argparse.Namespace) -> int:
    from rich.filesize import decimal
    from rich.table import Table

    from borealis_local import hub

    files = hub.local_files()
    in_ollama, ollama_where = hub.ollama_models()
    if args.json:
        print(json.dumps({
            "files": [local.to_dict() for local in files],
            "ollama": {"where": ollama_where, "models": in_ollama},
        }, indent=2))  # fmt: skip
        return 0
    console = _console()
    if files:
        table = Table(title="Borealis files on this machine", title_justify="left")
        for column in ("model", "size", "state", "where", "path"):
            table.add_column(column, no_wrap=column != "path", overflow="fold")
        for local in files:
            table.add_row(local.name, decimal(local.size), local.state, local.where,
                          str(local.path))
        console.print(table)
    else:
        console.print("No Borealis files on this machine: `borealis pull SIZE` fetches one.")
    if in_ollama is None:
        console.print(ollama_where)
    elif in_ollama:
        names = ", ".join(f"{m['name']} ({decimal(m['size'] or 0)})" for m in in_ollama)
        console.print(f"{ollama_where}: {names}")
    else:
        console.print(f"{ollama_where}: no Borealis models (`borealis pull SIZE --ollama`)")
    return 0


def _checked_gguf_path(raw: str) -> Path:
    """A local GGUF for FROM, resolved and checked: Ollama takes a missing path for a
    model name and tries to pull it, which fails far from the cause."""
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise BorealisError(
            f"no such file: {path} (`borealis pull SIZE` downloads a Borealis GGUF)"
        )
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise BorealisError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    return path


def cmd_modelfile(args: argparse.Namespace) -> int:
    from borealis_local import artefacts

    if args.hub_files is not None:
        if args.size or args.write or args.check:
            raise BorealisError("--hub-files writes every repo's files: give no SIZE, --write "
                                "or --check with it")
        from borealis_local.modelfile import write_hub_files

        written = write_hub_files(args.hub_files)
        print(f"{len(written)} files in {args.hub_files}/ (template and params per repo):")
        for path in written:
            print(f"  wrote {path}")
        return 0
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
    mmproj = _projector_for(model, args)
    sys.stdout.write(
        render_modelfile(
            model, quant=args.quant, from_path=from_path, num_ctx=args.num_ctx,
            system=args.system, mmproj=mmproj,
        )
    )
    return 0


def _projector_for(model, args: argparse.Namespace) -> Path | None:
    """The vision projector for `--from`: `--mmproj PATH`, else the one beside the file
    (looked for before symlinks are resolved: a hub cache snapshot links into blobs/)."""
    from borealis_local.hub.projector import find_projector, projector_problems, read_projector

    if args.mmproj is not None:
        if args.no_mmproj:
            raise BorealisError("give --mmproj PATH or --no-mmproj, not both")
        path = _checked_gguf_path(args.mmproj)
        problems = projector_problems(read_projector(path), model, complete=False)
        if problems:
            raise BorealisError(f"{path} does not fit {model.name}: " + "; ".join(problems))
        return path
    if args.no_mmproj or not args.from_path or model.vision is None:
        return None

    found = find_projector(Path(args.from_path).expanduser())
    return None if found is None else found.resolve()


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
    from borealis_local.ollama_install import create_model

    model = get_model(args.size, args.variant)
    if args.mmproj is not None and args.no_mmproj:
        raise BorealisError("give --mmproj PATH or --no-mmproj, not both")
    steps = create_model(
        model,
        quant=args.quant,
        from_path=args.from_path,
        tag=args.name,
        num_ctx=args.num_ctx,
        mmproj=args.mmproj,
        find_mmproj=not args.no_mmproj,
    )
    return _run_create(steps, args.name or model.ollama_tag)


def _run_create(steps, tag: str) -> int:
    """Show `create_model`'s progress, then how to run the model."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"creating {tag}", total=None)
        for step in steps:
            progress.update(task, description=step.status, completed=step.completed or 0,
                            total=step.total)
    print(f"created {tag} in Ollama: `ollama run {tag}` or `borealis chat {tag}`")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from borealis_local import hub

    model = get_model(args.size, args.variant)
    quant = check_quant(args.quant)
    ask = _ask_license if sys.stdin.isatty() else None
    print(f"{model.name}: {model.license.name} ({model.license.url})", file=sys.stderr)
    try:
        pulled = hub.pull(
            model, quant, local_dir=args.local_dir, accept_license=args.accept_license,
            ask=ask, status=lambda text: print(text, file=sys.stderr),
            mmproj=not args.no_mmproj,
        )  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: the part downloaded is kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    projector = pulled.projector
    if args.json:
        print(json.dumps(pulled.to_dict(), indent=2))
    else:
        for each in (pulled, projector):
            if each is not None:
                how = each.how
                if how == "resumed":
                    how = f"resumed at byte {each.resumed_from:,}"
                print(f"{each.name}: {how}" + (f" ({each.note})" if each.note else ""))
                _print_verification(each.verification)
    if pulled.warning:
        print(f"WARNING: {pulled.warning}", file=sys.stderr)
    for each in (pulled, projector):
        if each is not None:
            _refuse_unverified(each)
    if args.llama_server:
        print("\n# llama-server preset; run llama-server in the borealis-local checkout:")
        print(hub.llama_server_preset(model, quant, pulled.path,
                                      projector.path if projector else None), end="")
    if args.ollama:
        from borealis_local.ollama_install import create_model

        steps = create_model(model, quant=quant, from_path=pulled.path,
                             mmproj=projector.path if projector else None,
                             find_mmproj=not args.no_mmproj)
        return _run_create(steps, model.ollama_tag)
    if not args.json and not args.llama_server:
        print(f"next: `borealis chat {model.name}:{quant}`, or `ollama` with --ollama, "
              "or llama-server with --llama-server")
    return 0


def _refuse_unverified(pulled) -> None:
    """A pulled file that is not the hub's, not what the catalog describes, or whose
    signature fails is an error."""
    from borealis_local import hub

    verification = pulled.verification
    if verification.hash_status == "mismatch":
        raise hub.HubError(
            f"the file on disk is not the hub's (above): delete {pulled.path.resolve()} "
            "and pull again"
        )
    if verification.problems:
        raise hub.HubError(
            f"{pulled.path.name} is the hub's file, but it is not what the catalog describes "
            "(above): please report it at the borealis-local issue tracker"
        )
    check = verification.signature_check
    _warn_if_root_changed(check)
    if check is not None and check.status == "failed":
        raise hub.HubError(
            f"{pulled.path.name} matches the hub's hash, but the repo's signature does not "
            f"hold ({check.failed_check} check, above): do not use it until you know why"
        )


def _ask_license(model) -> bool:
    from rich.prompt import Confirm

    from borealis_local.licences import license_prompt

    console = _console(stderr=True)
    console.print(license_prompt(model), markup=False)
    return Confirm.ask("Do you accept this licence?", default=False, console=console)


def cmd_verify(args: argparse.Namespace) -> int:
    from borealis_local import hub

    if (args.target is None) == (args.repo is None):
        raise BorealisError("give one GGUF (PATH or MODEL) or --repo DIR|MODEL")
    projector, vision = None, False
    with _console(stderr=True).status(f"checking {args.target or args.repo}"):
        if args.repo is not None:
            verification = hub.verify_repo(args.repo, trust_root=args.trust_root,
                                           rehash=args.rehash)
        else:
            verification = hub.verify(args.target, sha256=args.sha256, rehash=args.rehash,
                                      trust_root=args.trust_root)
            vision = _sees_images(verification)
            if vision and args.sha256 is None:  # --sha256 asks nothing of the hub
                projector = hub.verify_projector(verification.path, rehash=args.rehash,
                                                 trust_root=args.trust_root)
    verified = verification.verified
    if args.json:
        result = verification.to_dict()
        if args.repo is None and vision:
            result["projector"] = projector.to_dict() if projector else None
        print(json.dumps(result, indent=2))
    elif args.repo is not None:
        _print_repo_verification(verification)
    else:
        _print_verification(verification)
        if projector is not None:
            print(f"  projector  the vision projector of {verification.model.split(':')[0]}:")
            _print_verification(projector, indent="    ")
        elif vision and args.sha256 is None:
            print(f"  projector  none on this machine: images will not work "
                  f"(`{_pull_line(verification)}` fetches it)")
    if args.repo is None and projector is not None:
        verified = verified and projector.verified
        _warn_if_root_changed(projector.signature_check)
    if not args.json:
        print("verified" if verified else "NOT verified")
    _warn_if_root_changed(
        verification.signature if args.repo is not None else verification.signature_check
    )
    return 0 if verified else 1


def _sees_images(verification) -> bool:
    """Whether a verified file is a catalog model that takes a vision projector."""
    from borealis_local.catalog import parse_name

    return verification.model is not None and parse_name(verification.model)[0].vision is not None


def _pull_line(verification) -> str:
    from borealis_local.catalog import parse_name

    model, quant = parse_name(verification.model)
    return model.pull_command(quant)


def _warn_if_root_changed(check) -> None:
    if check is not None and check.failed_check == "root":
        print("WARNING: the signing root is not the one trusted before: this repo was signed "
              "by another chain. Do not use it until you know why.", file=sys.stderr)


def _print_repo_verification(v) -> None:
    print(f"  repo       {v.directory}")
    print(f"  signature  {v.signature.summary}")
    print(f"  files      {len(v.matched)} listed and equal")
    for name, listed, actual in v.changed:
        print(f"    CHANGED  {name}: the manifest says {listed}, the file is {actual}")
    for name in v.missing:
        print(f"    MISSING  {name} (listed in the manifest, not here)")
    for name in v.extra:
        print(f"    EXTRA    {name} (here, not in the manifest)")


def _print_verification(v, indent: str = "  ") -> None:
    """The verification as lines a person reads (and grep finds)."""
    def line(text: str) -> None:
        print(indent + text)

    line(f"file       {v.path} ({v.size:,} bytes)")
    if v.projector_of:
        line(f"role       the vision projector (mmproj) of {v.projector_of}")
    read = "" if v.rehashed else " (recorded when last read; the file has not changed)"
    if v.hash_status == "match":
        line(f"sha256     ok {v.sha256}{read}")
        line(f"           matches {v.expected_source}")
    elif v.hash_status == "mismatch":
        line("sha256     MISMATCH")
        line(f"  expected {v.expected_sha256} ({v.expected_source})")
        line(f"  actual   {v.sha256}")
    else:
        line(f"sha256     {v.sha256}, not verified: {v.expected_source}")
    line(f"header     {'ok ' + v.header if v.header and not v.problems else 'PROBLEM'}")
    for problem in v.problems:
        line(f"  {problem}")
    line(f"signature  {v.signature}")


def cmd_chat(args: argparse.Namespace) -> int:
    from borealis_local.chat import prompt_lines, run_chat
    from borealis_local.runtime.base import Options
    from borealis_local.runtime.registry import open_backend

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
    shared = SharedOptions()

    p = commands.add_parser("list", help="the Borealis sizes, variants, quants and files")
    p.add_argument("--json", action="store_true", help="everything the catalog knows, as JSON")
    p.add_argument(
        "--local", action="store_true",
        help="what is on this machine: files (verified or not) and models in Ollama",
    )  # fmt: skip
    p.set_defaults(func=cmd_list)

    p = commands.add_parser(
        "modelfile",
        parents=[shared.optional_size, shared.weights],
        help="print an Ollama Modelfile, or regenerate every committed file",
        description="Print the Modelfile for one model, or with --write regenerate "
        "modelfiles/ (Modelfiles, chat templates, llama-server presets).",
    )
    p.add_argument(
        "--from", dest="from_path", metavar="PATH.gguf", help="a local GGUF instead of the hub"
    )
    shared.add_projector(p)
    shared.add_num_ctx(p)
    p.add_argument("--system", metavar="TEXT", help="add a SYSTEM prompt (Borealis needs none)")
    p.add_argument("--write", action="store_true", help="regenerate every file in --dir")
    p.add_argument("--check", action="store_true", help="fail if a file in --dir is stale")
    p.add_argument("--hub-files", type=Path, metavar="DIR",
                   help="write each hub repo's Ollama files (template, params) into "
                   "DIR/NbAiLab/<repo>/, for the repo owner or a mirror")
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
        parents=[shared.size, shared.weights],
        help="create a Borealis model in Ollama, with the right template and licence",
        description="Create SIZE in Ollama through its API: the Borealis template, stop "
        "token, sampling, num_ctx and licence from the catalog; weights from the hub "
        "(Ollama pulls them) or a local GGUF (--from, uploaded first).",
    )
    p.add_argument("--from", dest="from_path", metavar="PATH.gguf", help="a local GGUF")
    shared.add_projector(p)
    p.add_argument("--name", metavar="TAG", help="the Ollama tag (default: borealis:SIZE)")
    shared.add_num_ctx(p)
    p.set_defaults(func=cmd_create)

    p = commands.add_parser(
        "pull",
        parents=[shared.size, shared.weights],
        help="download a Borealis GGUF from the hub, verify it, optionally install it",
        description="Download SIZE from the Hugging Face hub into its cache (HF_HOME; "
        "HF_TOKEN or `hf auth login` for the gated full models), resuming a broken "
        "download, then verify it. A full model's licence (NB-License) is shown and "
        "accepted once. Offline (HF_HUB_OFFLINE=1) the file already downloaded is used.",
    )
    p.add_argument("--local-dir", metavar="DIR", help="put the file in DIR, not the cache")
    p.add_argument("--no-mmproj", action="store_true",
                   help="leave the vision projector of 4b, 12b and 27b (images need it)")
    p.add_argument("--accept-license", action="store_true",
                   help="accept the licence without being asked (for scripts)")
    p.add_argument("--ollama", action="store_true",
                   help="then create the model in Ollama from the file (borealis create)")
    p.add_argument("--llama-server", action="store_true",
                   help="then print its llama-server preset section for the file")
    p.add_argument("--json", action="store_true", help="the result as JSON")
    p.set_defaults(func=cmd_pull)

    p = commands.add_parser(
        "verify",
        help="check a GGUF's SHA-256, header and signature",
        description="Check a local GGUF (a path or a catalog name such as borealis-4b:Q8_0): "
        "its SHA-256 against the hub's LFS metadata (or --sha256), its header against the "
        "catalog, and the repo's signature (the National Library's signed SHA256SUMS and "
        "certificate chain; the root is pinned on first use). With --repo, a whole "
        "downloaded repo against its signed manifest. Exit status 1 unless verified.",
    )
    p.add_argument("target", metavar="PATH|MODEL", nargs="?")
    p.add_argument("--repo", metavar="DIR|MODEL",
                   help="verify a whole downloaded repo against its signed manifest")
    p.add_argument("--trust-root", metavar="SHA256",
                   help="the signing root's SHA-256 fingerprint to trust (default: the "
                   "first root seen, pinned)")
    p.add_argument("--sha256", metavar="HEX", help="compare with this hash, not the hub's")
    p.add_argument("--rehash", action="store_true",
                   help="read the whole file again, even if it was verified unchanged")
    p.add_argument("--json", action="store_true", help="the result as JSON")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser(
        "chat",
        parents=[shared.verbose],
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
    # The benchmark suite keeps its commands next to its code.
    from borealis_local.bench.advice_cli import register as register_advice
    from borealis_local.bench.cli import register as register_bench
    from borealis_local.retrieval.cli import register as register_eval

    register_bench(commands)
    register_advice(commands)
    register_eval(commands)
    return parser


class SharedOptions:
    """Options several commands take, defined once (argparse parents)."""

    def __init__(self) -> None:
        size_help = f"one of {', '.join(SIZES)}"
        self.size = argparse.ArgumentParser(add_help=False)
        self.size.add_argument("size", metavar="SIZE", help=size_help)
        self.optional_size = argparse.ArgumentParser(add_help=False)
        self.optional_size.add_argument("size", nargs="?", metavar="SIZE", help=size_help)
        self.weights = argparse.ArgumentParser(add_help=False)
        self.weights.add_argument("--variant", choices=VARIANTS, default="full",
                                  help="default: full")
        self.weights.add_argument("--quant", default=DEFAULT_QUANT,
                                  help=f"one of {', '.join(QUANTS)}")
        self.verbose = argparse.ArgumentParser(add_help=False)
        self.verbose.add_argument("-v", "--verbose", action="store_true",
                                  help="show llama.cpp's own log lines (kept quiet otherwise)")

    @staticmethod
    def add_projector(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--mmproj", metavar="PATH.gguf",
            help="the vision projector to add (default: the mmproj GGUF beside --from)",
        )  # fmt: skip
        parser.add_argument("--no-mmproj", action="store_true",
                            help="add no vision projector: the model serves text only")

    @staticmethod
    def add_num_ctx(parser: argparse.ArgumentParser) -> None:
        # Added, not a parent: it follows each command's own options in --help.
        parser.add_argument("--num-ctx", type=int, help="context window (default: per size)")


def main(argv: list[str] | None = None) -> int:
    from borealis_local.bench.cli import with_default_subcommand

    given = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(with_default_subcommand(given))
    from borealis_local import command

    return command.run(args)


if __name__ == "__main__":
    sys.exit(main())
