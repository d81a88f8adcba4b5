"""Sweeps: llama-bench's comma lists (and TOML files) expanded into configurations, run
one child process each, with a progress display and resumable JSONL output.

Values are written as llama-bench writes them: `512,1024`, a range `0-4096+1024` or
`128-1024*2`; an option given twice adds its values. Models × quants × every axis are
crossed in llama-bench's order, so a model is loaded as few times as possible. A test
whose row is already in the output file is skipped, so an interrupted sweep continues
where it stopped.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from borealis_local.bench import image_view
from borealis_local.bench.child import run_config
from borealis_local.bench.measure import (
    KV_CACHE_TYPES,
    Config,
    Target,
    Test,
    default_threads,
    gpu_build,
    resolve_target,
)
from borealis_local.bench.row import ResultRow
from borealis_local.errors import InvalidRequestError
from borealis_local.runtime.llama_cpp import FLASH_ATTN_AUTO, flash_attn_type

# llama-bench's value syntax: first[-last[(+|*)step]].
_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?:([+*])(\d+))?)?$")


def parse_int_list(text: str, *, name: str, allow_negative: bool = False) -> list[int]:
    """`512,1024` or `0-4096+1024` or `128-1024*2` → integers, in order."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if allow_negative and re.fullmatch(r"-\d+", part):
            values.append(int(part))
            continue
        match = _RANGE.match(part)
        if not match:
            raise InvalidRequestError(
                f"{name}: {part!r} in {text!r} is not a number or a range: write comma lists "
                "like 512,1024 or ranges like 0-4096+1024 (step) or 128-1024*2 (factor)"
            )
        first, last, op, step = match.groups()
        values.extend(_range(int(first), int(last or first), op or "+", int(step or 1), name))
    return values


def _range(first: int, last: int, op: str, step: int, name: str) -> list[int]:
    if last < first or (op == "+" and step < 1) or (op == "*" and (step < 2 or first < 1)):
        raise InvalidRequestError(f"{name}: the range {first}-{last}{op}{step} never ends")
    values, value = [], first
    while value <= last:
        values.append(value)
        value = value + step if op == "+" else value * step
    return values


def parse_flash_attn_list(text: str, *, name: str = "-fa") -> list[int]:
    """`auto,on,off` (llama-bench's -1,1,0 and its other words too) → llama.cpp's
    flash_attn_type values: -1 auto, 1 on, 0 off."""
    return [flash_attn_type(part, what=name) for part in str(text).split(",")]


def parse_choice_list(text: str, *, name: str, choices: Iterable[str]) -> list[str]:
    choices = tuple(choices)
    values = [part.strip().lower() for part in str(text).split(",")]
    for value in values:
        if value not in choices:
            raise InvalidRequestError(
                f"{name}: {value!r} is not one of {', '.join(choices)}"
            )
    return values


def parse_pairs(text: str, *, name: str = "-pg") -> list[tuple[int, int]]:
    """llama-bench's -pg: `512,128` is one prompt+generation test."""
    numbers = parse_int_list(text, name=name)
    if len(numbers) != 2:
        raise InvalidRequestError(f"{name} takes two numbers, prompt and generation: 512,128")
    return [(numbers[0], numbers[1])]


@dataclass
class Sweep:
    """Every axis as a list; the cross product is the set of configurations."""

    models: list[str]
    n_prompt: list[int] = field(default_factory=lambda: [512])
    n_gen: list[int] = field(default_factory=lambda: [128])
    pg: list[tuple[int, int]] = field(default_factory=list)
    n_depth: list[int] = field(default_factory=lambda: [0])
    chat: list[int] = field(default_factory=lambda: [128])
    reps: int = 5
    threads: list[int] | None = None  # None: the physical cores
    n_gpu_layers: list[int] | None = None  # None: all layers on a GPU build, else 0
    flash_attn: list[int] = field(default_factory=lambda: [FLASH_ATTN_AUTO])  # llama-bench's
    type_k: list[str] = field(default_factory=lambda: ["f16"])
    type_v: list[str] = field(default_factory=lambda: ["f16"])
    n_batch: list[int] = field(default_factory=lambda: [2048])
    n_ubatch: list[int] = field(default_factory=lambda: [512])
    concurrency: list[int] = field(default_factory=lambda: [1])
    warmup: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    output: str | None = None
    image: str | None = None  # the `image` test's picture: a file or "synthetic"
    mmproj: str | None = None  # its projector: a file or "synthetic"
    mmproj_layers: int | None = None  # a synthetic projector's encoder blocks (27)

    def tests(self) -> tuple[Test, ...]:
        """llama-bench's order per depth: pp tests, tg tests, pp+tg pairs; then chat,
        then the image test."""
        tests = []
        for depth in self.n_depth:
            tests += [Test(n_prompt=p, n_depth=depth) for p in self.n_prompt if p]
            tests += [Test(n_gen=n, n_depth=depth) for n in self.n_gen if n]
            tests += [Test(p, n, depth) for p, n in self.pg if p or n]
        tests += [Test(n_gen=n, chat=True) for n in self.chat if n]
        if self.image is not None:
            tests.append(Test(n_gen=image_view.IMAGE_ANSWER_TOKENS, image=True))
        return tuple(dict.fromkeys(tests))


# The TOML keys (and their CLI option names), so a sweep file reads like a command line.
_LIST_AXES = {
    "n_prompt": ("-p", "int"), "n_gen": ("-n", "int"), "n_depth": ("-d", "int"),
    "chat": ("--chat", "int"), "threads": ("-t", "int"), "n_gpu_layers": ("-ngl", "ngl"),
    "flash_attn": ("-fa", "fa"), "type_k": ("-ctk", "kv"), "type_v": ("-ctv", "kv"),
    "n_batch": ("-b", "int"), "n_ubatch": ("-ub", "int"), "concurrency": ("-c", "int"),
}  # fmt: skip


def parse_axis(key: str, value: Any) -> list:
    """One axis from a TOML value or a CLI string: a number, a list, or llama-bench text."""
    option, value_type = _LIST_AXES[key]
    items = value if isinstance(value, list) else [value]
    parsed: list = []
    for item in items:
        if value_type == "fa" and isinstance(item, bool):
            parsed.append(int(item))
        elif isinstance(item, int) and not isinstance(item, bool) and value_type in ("int", "ngl"):
            if item < 0 and value_type != "ngl":
                raise InvalidRequestError(f"{option}: {item} must be >= 0")
            parsed.append(item)
        elif value_type == "fa" and isinstance(item, (int, str)):
            parsed += parse_flash_attn_list(str(item), name=option)
        elif value_type in ("int", "ngl") and isinstance(item, str):
            parsed += parse_int_list(item, name=option, allow_negative=value_type == "ngl")
        elif value_type == "kv" and isinstance(item, str):
            parsed += parse_choice_list(item, name=option, choices=KV_CACHE_TYPES)
        else:
            raise InvalidRequestError(f"{option} ({key}): {item!r} is not a valid value")
    if not parsed:
        raise InvalidRequestError(f"{option} ({key}): give at least one value")
    return parsed


def load_toml(path: str | Path) -> Sweep:
    """A sweep file: `models`, optional `quants` and `labels`, `reps`, `output`, and any
    axis by its long name (n_prompt, n_gen, n_depth, chat, threads, n_gpu_layers,
    flash_attn, type_k, type_v, n_batch, n_ubatch, concurrency), as a list or
    llama-bench text. benchmarks/sweep-example.toml shows every key."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequestError(f"no such sweep file: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidRequestError(f"{path} is not valid TOML: {error}") from None
    return sweep_from_mapping(data, source=str(path))


def sweep_from_mapping(data: Mapping[str, Any], *, source: str = "the sweep") -> Sweep:
    known = set(_LIST_AXES) | {"models", "quants", "labels", "reps", "output", "pg", "warmup"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidRequestError(
            f"{source}: unknown key(s) {', '.join(unknown)}; the keys are "
            + ", ".join(sorted(known))
        )
    models = data.get("models")
    if not models or not all(isinstance(m, str) for m in models):
        raise InvalidRequestError(f"{source}: `models` must be a list of model names")
    axes = {key: parse_axis(key, value) for key, value in data.items() if key in _LIST_AXES}
    pg = [parse_pairs(",".join(map(str, pair)))[0] for pair in data.get("pg", [])]
    reps = data.get("reps", 5)
    if not isinstance(reps, int) or reps < 1:
        raise InvalidRequestError(f"{source}: reps must be a whole number >= 1")
    return Sweep(
        models=with_quants(models, data.get("quants", [])),
        pg=pg,
        reps=reps,
        labels=dict(data.get("labels", {})),
        output=data.get("output"),
        warmup=bool(data.get("warmup", True)),
        **axes,
    )


def with_quants(models: Iterable[str], quants: Iterable[str]) -> list[str]:
    """Catalog names given without a quant, once per quant (`borealis-1b` × Q4_K_M,
    Q8_0); other names as they are."""
    from borealis_local.catalog import check_quant, parse_name
    from borealis_local.errors import UnknownModelError

    quants = [check_quant(q) for q in quants]
    result = []
    for name in models:
        try:
            model, _ = parse_name(name)
        except UnknownModelError:
            model = None
        if model is not None and quants and ":" not in name:
            result += [f"{name}:{q}" for q in quants]
        else:
            result.append(name)
    return list(dict.fromkeys(result))


def plan(
    sweep: Sweep,
    *,
    done: Iterable[str] = (),
    resolve: Callable[..., Target] = resolve_target,
    progress: Callable[[str], None] | None = None,
) -> list[Config]:
    """The configurations to run, in llama-bench's order, without tests whose rows are
    `done` (their identity keys) or already planned (a server ignores local axes, and
    the chat view ignores the KV cache type and micro-batch). With an image test, its
    picture and projector are checked (and a synthetic projector written) here;
    `progress` hears what takes a while."""
    seen = set(done)
    if sweep.image is not None:
        for name in sweep.models:
            image_view.check_model(name)
    targets = [resolve(name, label=sweep.labels.get(name)) for name in sweep.models]
    tests = sweep.tests()
    if not tests:
        raise InvalidRequestError(
            "nothing to measure: give -p, -n, -pg or --chat above 0, or --image")
    local_defaults = _local_defaults(sweep, targets)
    configs = []
    for target in targets:
        images = {} if sweep.image is None else image_view.prepare(
            target, sweep.image, sweep.mmproj, layers=sweep.mmproj_layers, progress=progress)
        for settings in _settings(sweep, local_defaults):
            config = Config(target, tests, reps=sweep.reps, warmup=sweep.warmup,
                            **settings, **images)
            wanted = []
            for test in tests:
                key = config.key(test)
                if key not in seen:
                    seen.add(key)
                    wanted.append(test)
            if wanted:
                configs.append(replace(config, tests=tuple(wanted)))
    return configs


def _local_defaults(sweep: Sweep, targets: list[Target]) -> dict[str, list]:
    local = any(t.in_process for t in targets)
    threads = sweep.threads or [default_threads()]
    ngl = sweep.n_gpu_layers
    if ngl is None:
        ngl = [-1 if local and gpu_build() else 0]
    return {"n_threads": threads, "n_gpu_layers": ngl}


def _settings(sweep: Sweep, defaults: dict[str, list]) -> Iterable[dict[str, Any]]:
    # llama-bench's loop order (outermost first), so a model reloads least often.
    axes = {
        "n_gpu_layers": defaults["n_gpu_layers"],
        "n_batch": sweep.n_batch,
        "n_ubatch": sweep.n_ubatch,
        "type_k": sweep.type_k,
        "type_v": sweep.type_v,
        "flash_attn": sweep.flash_attn,
        "n_threads": defaults["n_threads"],
        "concurrency": sweep.concurrency,
    }
    for values in itertools.product(*axes.values()):
        yield dict(zip(axes, values, strict=True))


# -- resumable output --------------------------------------------------------------------


def done_keys(path: str | Path | None) -> set[str]:
    """The measurement points already in a results file (none when it does not exist)."""
    from borealis_local.bench.report import read_rows

    if path is None or not Path(path).exists():
        return set()
    return {row.identity().key() for row in read_rows(path)}


def drop_partial_line(path: str | Path) -> None:
    """Cut a last line left unfinished (a run killed while writing it), so that the rows
    appended next start on a line of their own."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def run(
    configs: list[Config],
    *,
    output: str | Path | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> list[ResultRow]:
    """Run every configuration (a child process each), appending each row to `output`
    (JSONL) the moment it is measured. Returns the new rows."""
    rows: list[ResultRow] = []
    out = None
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        drop_partial_line(output)
        out = Path(output).open("a", encoding="utf-8")
    total = sum(len(c.tests) for c in configs)
    display = _Progress(total) if progress else None
    try:
        for config in configs:

            def keep(row: ResultRow) -> None:
                rows.append(row)
                if out is not None:
                    out.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
                    out.flush()
                if on_row is not None:
                    on_row(row)
                if display is not None:
                    display.advance()

            def step(text: str, name: str = config.target.name) -> None:
                if display is not None:
                    display.describe(f"{name}: {text}")

            run_config(config, keep, on_step=step, timeout=timeout)
    finally:
        if display is not None:
            display.close()
        if out is not None:
            out.close()
    return rows


class _Progress:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
            disable=not console.is_terminal,
        )
        self.progress.start()
        self.task = self.progress.add_task("benchmarking", total=total)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()

