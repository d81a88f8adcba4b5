"""Benchmark results out: JSONL/JSON/CSV, a Markdown table like llama-bench's, and
ratios between two result files (PNG plots: `plots`).

Rows are `row.ResultRow`s: llama-bench's JSON fields plus ours, so llama-bench's own
`-o json` / `-o jsonl` output reads here too: `compare` puts a llama-bench run beside
a `borealis bench` run. Every function here also takes rows as the dicts they are
written as.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from borealis_local.bench.measure import Test
from borealis_local.bench.row import FIELD_NAMES, LLAMA_BENCH, ResultRow, as_row
from borealis_local.errors import InvalidRequestError

FORMATS = ("md", "json", "jsonl", "csv")
# Rows as this module takes them: ResultRows, or the dicts they are written as.
Rows = Iterable[ResultRow | Mapping[str, Any]]
# What must agree for two rows to be compared (other settings may differ between runs).
COMPARE_FIELDS = (
    "model_type", "test", "n_threads", "n_gpu_layers", "flash_attn", "type_k", "type_v",
    "n_batch", "n_ubatch", "concurrency",
)  # fmt: skip


# -- reading -----------------------------------------------------------------------------


def read_rows(path: str | Path) -> list[ResultRow]:
    """Rows from a JSONL file (ours, `llama-bench -o jsonl`) or a JSON array
    (`llama-bench -o json`, `borealis bench -o json`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequestError(f"no such results file: {path}") from None
    return parse_rows(text, source=str(path))


def parse_rows(text: str, *, source: str = "the results") -> list[ResultRow]:
    """Rows from JSONL or JSON-array text (see `read_rows`)."""
    path = source
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(stripped)
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            if lines and not text.endswith("\n"):
                lines = _complete(lines)  # a run killed while writing its last row
            rows = [json.loads(line) for line in lines]
    except json.JSONDecodeError as error:
        raise InvalidRequestError(
            f"{path} is not JSON Lines or a JSON array of benchmark rows ({error}): give a "
            "file written by `borealis bench` or `llama-bench -o json`"
        ) from None
    if not all(isinstance(row, dict) for row in rows):
        raise InvalidRequestError(f"{path}: every row must be a JSON object")
    return [normalised(ResultRow.from_dict(row)) for row in rows]


def _complete(lines: list[str]) -> list[str]:
    try:
        json.loads(lines[-1])
    except json.JSONDecodeError:
        return lines[:-1]
    return lines


def normalised(row: ResultRow | Mapping[str, Any]) -> ResultRow:
    """A llama-bench row gets our `test` name, and `model` from its model type (the
    fields it lacks are added last, as setdefault would)."""
    row = as_row(row)
    if "test" not in row and "n_prompt" in row:
        row = row.updated(test=Test(int(row.n_prompt), int(row.n_gen),
                                    int(row.get("n_depth", 0))).name)
    if "model" not in row:
        row = row.updated(model=row.model_type or row.model_filename)
    if "runtime" not in row:
        row = row.updated(runtime=LLAMA_BENCH)
    if "concurrency" not in row:
        row = row.updated(concurrency=1)
    return row


# -- writing -----------------------------------------------------------------------------


def columns(rows: Rows) -> list[str]:
    """llama-bench's fields first, then ours (the schema's order), then anything else
    the rows carry."""
    names = list(FIELD_NAMES)
    for row in rows:
        names += [key for key in row if key not in names]
    return names


def to_jsonl(rows: Rows) -> str:
    return "".join(json.dumps(_plain(row), ensure_ascii=False) + "\n" for row in rows)


def to_json(rows: Rows) -> str:
    """A JSON array of rows (or of other objects: compare's summaries)."""
    return json.dumps([_plain(row) for row in rows], indent=2, ensure_ascii=False) + "\n"


def _plain(row: ResultRow | Mapping[str, Any]) -> Mapping[str, Any]:
    return row.to_dict() if isinstance(row, ResultRow) else row


def to_csv(rows: Rows) -> str:
    """One line per row; lists and dicts (samples, buffers) as JSON in their cell."""
    rows = [as_row(row) for row in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            key: json.dumps(value) if isinstance(value, (list, dict)) else value
            for key, value in row.items()
        })
    return out.getvalue()


def render(rows: Rows, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidRequestError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")
    return {"md": to_markdown, "json": to_json, "jsonl": to_jsonl, "csv": to_csv}[fmt](rows)


def table_cells(rows: Sequence[ResultRow]) -> tuple[list[str], list[list[str]], list[str]]:
    """The rate table's columns, its cells (a list per row, as text) and the labels its
    footnotes number (`*`, `**`, ...): what `to_markdown` and the HTML report show."""
    labels = list(dict.fromkeys(
        label for r in rows for label in (r.label, r.mmproj_label) if label))
    fields = ["model", "size", "params", "backend"] + _setting_columns(rows)
    fields += ["test", "t/s", "peak RAM"]
    if any(r.gpu_bytes for r in rows):
        fields.append("GPU mem")
    if any(r.ttft_ms is not None for r in rows):
        fields.append("ttft ms")
    if any(r.image_encode_ms is not None for r in rows):
        fields += list(_IMAGE_COLUMNS)
    return fields, [[_cell(row, f, labels) for f in fields] for row in rows], labels


def to_markdown(rows: Rows) -> str:
    """llama-bench's table: model, size, params, backend, the settings that vary or are
    not the default, test, t/s (mean ± sample stddev); then peak memory and, for chat
    rows, time to first token; for image rows (t/s: the prompt's evaluation with the
    image) the image's tokens and encode time (median), the projector's memory (weights
    and compute buffers) and load time. Labels (a stand-in model, a synthetic projector)
    become footnotes."""
    rows = [as_row(row) for row in rows]
    if not rows:
        return "no results\n"
    fields, table, labels = table_cells(rows)
    widths = [max(len(f), *(len(line[i]) for line in table)) for i, f in enumerate(fields)]
    right = {i for i, f in enumerate(fields) if f not in ("model", "backend", "test")}

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                  enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(
        "-" * (w - 1) + (":" if i in right else "-") for i, w in enumerate(widths)
    ) + " |"
    text = "\n".join([line(fields), rule, *(line(cells) for cells in table)]) + "\n"
    for number, label in enumerate(labels, 1):
        text += f"\n{'*' * number} {label}"
    commits = sorted({str(r.build_commit) for r in rows if r.build_commit})
    if commits:
        text += ("\n" if labels else "") + f"\nbuild: {', '.join(commits)}"
    return text + "\n"


# Settings shown when they vary or are not llama-bench's defaults (as llama-bench does).
_SETTINGS = {
    "n_gpu_layers": ("ngl", None), "n_threads": ("threads", None), "n_batch": ("n_batch", 2048),
    "n_ubatch": ("n_ubatch", 512), "type_k": ("type_k", "f16"), "type_v": ("type_v", "f16"),
    "flash_attn": ("fa", -1), "concurrency": ("streams", 1),
}  # fmt: skip


def varying_settings(rows: Sequence[ResultRow]) -> list[str]:
    """The settings (field names) whose values differ between rows."""
    return [name for name in _SETTINGS if len({str(getattr(row, name)) for row in rows}) > 1]


def series_name(row: ResultRow, settings: Sequence[str]) -> str:
    """A plot series' name: what varies besides the plotted axes (fa=1, threads=8)."""
    return " ".join(f"{_SETTINGS[name][0]}={getattr(row, name)}" for name in settings)


def _setting_columns(rows: Sequence[ResultRow]) -> list[str]:
    shown = []
    for name, (title, default) in _SETTINGS.items():
        values = {getattr(row, name) for row in rows} - {None}
        if name == "n_gpu_layers":
            show = any(row.gpu_build for row in rows)
        elif name == "n_threads":
            show = bool(values)
        else:
            show = len(values) > 1 or bool(values - {default})
        if show:
            shown.append(title)
    return shown


# The image test's columns: its own figures, and the projector's.
_IMAGE_COLUMNS = ("img tokens", "encode ms", "mmproj mem", "mmproj load ms")


def _stars(label: str | None, labels: list[str]) -> str:
    return "" if not label else " " + "*" * (labels.index(label) + 1)


def _cell(row: ResultRow, field: str, labels: list[str]) -> str:
    titles = {title: name for name, (title, _) in _SETTINGS.items()}
    if field in _IMAGE_COLUMNS:
        return _image_cell(row, field)
    if field == "model":
        return str(row.model_type or row.model or "?") + _stars(row.label, labels)
    if field == "size":
        return _bytes(row.model_size)
    if field == "params":
        n = row.model_n_params
        return "" if not n else f"{n / 1e6:.2f} M" if n < 1e9 else f"{n / 1e9:.2f} B"
    if field == "backend":
        return str(row.backends or "") if _ran_llama_cpp(row) else f"{row.runtime}"
    if field == "test":
        return str(row.get("test", "")) + _stars(row.mmproj_label, labels)
    if field == "t/s":
        return f"{row.get('avg_ts', 0):.2f} ± {row.get('stddev_ts', 0):.2f}"
    if field == "peak RAM":
        return _bytes(row.peak_host_bytes)
    if field == "GPU mem":
        return _bytes(row.gpu_bytes)
    if field == "ttft ms":
        ttft = row.ttft_ms
        return "" if ttft is None else f"{ttft:.1f} ± {row.stddev_ttft_ms or 0:.1f}"
    value = getattr(row, titles[field])
    return "" if value is None else str(value)


def _image_cell(row: ResultRow, field: str) -> str:
    if row.image_encode_ms is None:
        return ""
    if field == "img tokens":
        return "" if row.image_tokens is None else str(row.image_tokens)
    if field == "encode ms":
        return f"{row.image_encode_ms:.1f}"
    if field == "mmproj mem":
        return _bytes((row.mmproj_weight_bytes or row.mmproj_file_bytes or 0)
                      + (row.mmproj_compute_bytes or 0))
    return "" if row.mmproj_load_ms is None else f"{row.mmproj_load_ms:.0f}"


def _ran_llama_cpp(row: ResultRow) -> bool:
    """Whether llama.cpp ran the model in the measuring process (ours in-process, or
    llama-bench's own row), so its backends name the device."""
    from borealis_local.runtime.registry import runs_in_process

    return row.runtime in (None, LLAMA_BENCH) or runs_in_process(row.runtime)


def _bytes(value: Any) -> str:
    if not value:
        return ""
    if value < 2**30:
        return f"{value / 2**20:.2f} MiB"
    return f"{value / 2**30:.2f} GiB"


# -- comparing ---------------------------------------------------------------------------


def compare_key(row: ResultRow | Mapping[str, Any], ignore: Iterable[str] = ()) -> tuple:
    """What must match between two rows. GPU layers do not matter on a CPU-only build."""
    row = as_row(row)
    values = []
    for name in COMPARE_FIELDS:
        if name in ignore:
            continue
        value = getattr(row, name)
        if name == "model_type":
            value = value or row.model
        if name == "n_gpu_layers" and not row.gpu_build:
            value = None
        if name == "flash_attn" and value is not None:
            value = int(value)
        values.append(value)
    return tuple(values)


def compare(
    rows_a: Rows,
    rows_b: Rows,
    *,
    ignore: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], list[ResultRow], list[ResultRow]]:
    """Pairs of matching rows with B/A ratios; and the rows found only in A, only in B.

    The ratio's spread combines both sides' relative standard deviations
    (ratio × √((sa/a)² + (sb/b)²)), the usual first-order propagation.
    """
    ignore = tuple(ignore)
    unknown = sorted(set(ignore) - set(COMPARE_FIELDS))
    if unknown:
        raise InvalidRequestError(
            f"cannot ignore {', '.join(unknown)}: rows are matched on "
            + ", ".join(COMPARE_FIELDS)
        )
    by_key = {compare_key(row, ignore): row for row in map(as_row, rows_b)}
    pairs, only_a, matched = [], [], set()
    for a in map(as_row, rows_a):
        key = compare_key(a, ignore)
        b = by_key.get(key)
        if b is None:
            only_a.append(a)
            continue
        matched.add(key)
        pairs.append(_pair(a, b))
    only_b = [b for key, b in by_key.items() if key not in matched]
    return pairs, only_a, only_b


def _pair(a: ResultRow, b: ResultRow) -> dict[str, Any]:
    """A matched pair: the rows ("a", "b"), the rate ratio B/A with its spread, and the
    peak memory ratio."""
    ratio, spread = rate_ratio(a.avg_ts, a.stddev_ts, b.avg_ts, b.stddev_ts)
    memory = None
    if a.peak_host_bytes and b.peak_host_bytes:
        memory = b.peak_host_bytes / a.peak_host_bytes
    return {"a": a, "b": b, "ratio": ratio, "ratio_stddev": spread, "memory_ratio": memory}


# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; the normal's after.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, standard error and the 95 % interval's half-width (Student's t) of values
    such as per-round ratios, for "is this within x % of 1?" on a noisy machine."""
    if len(values) < 2:
        raise InvalidRequestError("an interval needs two or more values")
    mean = sum(values) / len(values)
    error = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))
    degrees = len(values) - 1
    return mean, error, (_T95[degrees - 1] if degrees <= len(_T95) else 1.96) * error


def rate_ratio(a: float | None, sa: float | None, b: float | None, sb: float | None):
    if not a or not b:
        return None, None
    ratio = b / a
    return ratio, ratio * math.hypot((sa or 0) / a, (sb or 0) / b)


def compare_markdown(result, name_a: str = "A", name_b: str = "B") -> str:
    """The matched tests side by side: rates, B/A with its spread, peak memory B/A."""
    pairs, only_a, only_b = result
    settings = varying_settings([p["a"] for p in pairs])
    titles = [_SETTINGS[name][0] for name in settings]
    head = ["model", *titles, "test", f"{name_a} t/s", f"{name_b} t/s", f"{name_b}/{name_a}",
            f"peak RAM {name_b}/{name_a}"]
    lines = ["| " + " | ".join(head) + " |",
             "| " + " | ".join("---" if i < len(titles) + 2 else "---:" for i in range(len(head)))
             + " |"]
    for pair in pairs:
        a, b = pair["a"], pair["b"]
        ratio = "" if pair["ratio"] is None else f"{pair['ratio']:.3f} ± {pair['ratio_stddev']:.3f}"
        memory = "" if pair["memory_ratio"] is None else f"{pair['memory_ratio']:.3f}"
        cells = [str(a.model_type or a.model), *(str(getattr(a, s)) for s in settings),
                 str(a.test), f"{a.avg_ts:.2f} ± {a.stddev_ts:.2f}",
                 f"{b.avg_ts:.2f} ± {b.stddev_ts:.2f}", ratio, memory]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    for name, rows in ((name_a, only_a), (name_b, only_b)):
        if rows:
            tests = ", ".join(f"{r.model} {r.test}" for r in rows)
            text += f"\nonly in {name}: {tests}"
    return text + ("\n" if only_a or only_b else "")
