"""Benchmark results out: JSONL/JSON/CSV, a Markdown table like llama-bench's, ratios
between two result files, and PNG plots.

Rows are dicts with llama-bench's JSON field names plus ours (measure.py lists both),
so llama-bench's own `-o json` / `-o jsonl` output reads here too: `compare` puts a
llama-bench run beside a `borealis bench` run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from borealis_local.bench.measure import LLAMA_BENCH_FIELDS, Test
from borealis_local.errors import InvalidRequestError

FORMATS = ("md", "json", "jsonl", "csv")
OUR_FIELDS = (
    "runtime", "model", "label", "test", "quant", "model_file_bytes", "n_ctx", "reps",
    "concurrency", "load_ms", "peak_host_bytes", "peak_host_scope", "host_baseline_bytes",
    "rss_anon_bytes", "rss_file_bytes", "gpu_bytes", "gpu_bytes_source", "buffers",
    "ttft_ms", "stddev_ttft_ms", "samples_ttft_ms", "completion_tokens", "prompt_tokens",
    "tokens", "prompt_ts", "gen_ts", "timings_source", "server_model_bytes",
    "server_vram_bytes", "borealis_version", "runtime_version", "platform", "python",
    "pid", "config_key",
)  # fmt: skip
# What must agree for two rows to be compared (other settings may differ between runs).
COMPARE_FIELDS = (
    "model_type", "test", "n_threads", "n_gpu_layers", "flash_attn", "type_k", "type_v",
    "n_batch", "n_ubatch", "concurrency",
)  # fmt: skip


# -- reading -----------------------------------------------------------------------------


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows from a JSONL file (ours, `llama-bench -o jsonl`) or a JSON array
    (`llama-bench -o json`, `borealis bench -o json`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequestError(f"no such results file: {path}") from None
    return parse_rows(text, source=str(path))


def parse_rows(text: str, *, source: str = "the results") -> list[dict[str, Any]]:
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
    return [normalised(row) for row in rows]


def _complete(lines: list[str]) -> list[str]:
    try:
        json.loads(lines[-1])
    except json.JSONDecodeError:
        return lines[:-1]
    return lines


def normalised(row: dict[str, Any]) -> dict[str, Any]:
    """A llama-bench row gets our `test` name, and `model` from its model type."""
    row = dict(row)
    if "test" not in row and "n_prompt" in row:
        row["test"] = Test(int(row["n_prompt"]), int(row["n_gen"]), int(row.get("n_depth", 0))).name
    row.setdefault("model", row.get("model_type") or row.get("model_filename"))
    row.setdefault("runtime", "llama-bench")
    row.setdefault("concurrency", 1)
    return row


# -- writing -----------------------------------------------------------------------------


def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """llama-bench's fields first, then ours, then anything else the rows carry."""
    names = list(LLAMA_BENCH_FIELDS) + [f for f in OUR_FIELDS if f not in LLAMA_BENCH_FIELDS]
    for row in rows:
        names += [key for key in row if key not in names]
    return names


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def to_json(rows: Iterable[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """One line per row; lists and dicts (samples, buffers) as JSON in their cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            key: json.dumps(value) if isinstance(value, (list, dict)) else value
            for key, value in row.items()
        })
    return out.getvalue()


def render(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidRequestError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")
    return {"md": to_markdown, "json": to_json, "jsonl": to_jsonl, "csv": to_csv}[fmt](rows)


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """llama-bench's table: model, size, params, backend, the settings that vary or are
    not the default, test, t/s (mean ± sample stddev); then peak memory and, for chat
    rows, time to first token. Labels (a stand-in model) become footnotes."""
    if not rows:
        return "no results\n"
    labels = list(dict.fromkeys(r["label"] for r in rows if r.get("label")))
    fields = ["model", "size", "params", "backend"] + _setting_columns(rows)
    fields += ["test", "t/s", "peak RAM"]
    if any(r.get("gpu_bytes") for r in rows):
        fields.append("GPU mem")
    if any(r.get("ttft_ms") is not None for r in rows):
        fields.append("ttft ms")
    table = [[_cell(row, f, labels) for f in fields] for row in rows]
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
    commits = sorted({str(r.get("build_commit")) for r in rows if r.get("build_commit")})
    if commits:
        text += ("\n" if labels else "") + f"\nbuild: {', '.join(commits)}"
    return text + "\n"


# Settings shown when they vary or are not llama-bench's defaults (as llama-bench does).
_SETTINGS = {
    "n_gpu_layers": ("ngl", None), "n_threads": ("threads", None), "n_batch": ("n_batch", 2048),
    "n_ubatch": ("n_ubatch", 512), "type_k": ("type_k", "f16"), "type_v": ("type_v", "f16"),
    "flash_attn": ("fa", 0), "concurrency": ("streams", 1),
}  # fmt: skip


def varying_settings(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The settings (field names) whose values differ between rows."""
    return [name for name in _SETTINGS if len({str(row.get(name)) for row in rows}) > 1]


def _series(row: dict[str, Any], settings: Sequence[str]) -> str:
    """A plot series' name: what varies besides the plotted axes (fa=1, threads=8)."""
    return " ".join(f"{_SETTINGS[name][0]}={row.get(name)}" for name in settings)


def _setting_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    shown = []
    for name, (title, default) in _SETTINGS.items():
        values = {row.get(name) for row in rows} - {None}
        if name == "n_gpu_layers":
            show = any(row.get("backends") not in (None, "CPU", "server") for row in rows)
        elif name == "n_threads":
            show = bool(values)
        else:
            show = len(values) > 1 or bool(values - {default})
        if show:
            shown.append(title)
    return shown


def _cell(row: dict[str, Any], field: str, labels: list[str]) -> str:
    titles = {title: name for name, (title, _) in _SETTINGS.items()}
    if field == "model":
        name = str(row.get("model_type") or row.get("model") or "?")
        if row.get("label"):
            name += " " + "*" * (labels.index(row["label"]) + 1)
        return name
    if field == "size":
        return _bytes(row.get("model_size"))
    if field == "params":
        n = row.get("model_n_params")
        return "" if not n else f"{n / 1e6:.2f} M" if n < 1e9 else f"{n / 1e9:.2f} B"
    if field == "backend":
        backend = str(row.get("backends") or "")
        runtime = row.get("runtime")
        return backend if runtime in (None, "llama.cpp", "llama-bench") else f"{runtime}"
    if field == "test":
        return str(row.get("test", ""))
    if field == "t/s":
        return f"{row.get('avg_ts', 0):.2f} ± {row.get('stddev_ts', 0):.2f}"
    if field == "peak RAM":
        return _bytes(row.get("peak_host_bytes"))
    if field == "GPU mem":
        return _bytes(row.get("gpu_bytes"))
    if field == "ttft ms":
        ttft = row.get("ttft_ms")
        return "" if ttft is None else f"{ttft:.1f} ± {row.get('stddev_ttft_ms') or 0:.1f}"
    value = row.get(titles[field])
    return "" if value is None else str(value)


def _bytes(value: Any) -> str:
    if not value:
        return ""
    if value < 2**30:
        return f"{value / 2**20:.2f} MiB"
    return f"{value / 2**30:.2f} GiB"


# -- comparing ---------------------------------------------------------------------------


def compare_key(row: dict[str, Any], ignore: Iterable[str] = ()) -> tuple:
    """What must match between two rows. GPU layers do not matter on a CPU-only build."""
    values = []
    for name in COMPARE_FIELDS:
        if name in ignore:
            continue
        value = row.get(name)
        if name == "model_type":
            value = value or row.get("model")
        if name == "n_gpu_layers" and row.get("backends") in (None, "CPU", "server"):
            value = None
        if name == "flash_attn" and value is not None:
            value = int(value)
        values.append(value)
    return tuple(values)


def compare(
    rows_a: Sequence[dict[str, Any]],
    rows_b: Sequence[dict[str, Any]],
    *,
    ignore: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
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
    by_key = {compare_key(row, ignore): row for row in rows_b}
    pairs, only_a, matched = [], [], set()
    for a in rows_a:
        key = compare_key(a, ignore)
        b = by_key.get(key)
        if b is None:
            only_a.append(a)
            continue
        matched.add(key)
        pairs.append(_pair(a, b))
    only_b = [b for key, b in by_key.items() if key not in matched]
    return pairs, only_a, only_b


def _pair(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ratio, spread = rate_ratio(a.get("avg_ts"), a.get("stddev_ts"),
                               b.get("avg_ts"), b.get("stddev_ts"))
    memory = None
    if a.get("peak_host_bytes") and b.get("peak_host_bytes"):
        memory = b["peak_host_bytes"] / a["peak_host_bytes"]
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
        cells = [str(a.get("model_type") or a.get("model")), *(str(a.get(s)) for s in settings),
                 str(a.get("test")), f"{a['avg_ts']:.2f} ± {a['stddev_ts']:.2f}",
                 f"{b['avg_ts']:.2f} ± {b['stddev_ts']:.2f}", ratio, memory]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    for name, rows in ((name_a, only_a), (name_b, only_b)):
        if rows:
            tests = ", ".join(f"{r.get('model')} {r.get('test')}" for r in rows)
            text += f"\nonly in {name}: {tests}"
    return text + ("\n" if only_a or only_b else "")


# -- plots -------------------------------------------------------------------------------


def plot(rows: Sequence[dict[str, Any]], directory: str | Path) -> list[Path]:
    """PNG plots: rate against model size (each point marked with its quant) and peak
    memory against context length. Needs matplotlib (`pip install borealis-local[bench]`)."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidRequestError(
            "plots need matplotlib: pip install matplotlib (or borealis-local[bench])"
        ) from None
    matplotlib.use("Agg")  # files only, no display
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("rate_vs_size.png", _rate_vs_size),
                       ("memory_vs_context.png", _memory_vs_context)):
        if draw(rows, directory / name):
            written.append(directory / name)
    return written


def _quant(row: dict[str, Any]) -> str:
    if row.get("quant"):
        return str(row["quant"])
    parts = str(row.get("model_type") or "").split(" ", 2)
    return parts[2] if len(parts) == 3 else ""


def _rate_vs_size(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.get("model_size") and r.get("avg_ts") and r.get("test")]
    if not points:
        return False
    settings = varying_settings(points)
    figure, axes = plt.subplots(figsize=(8, 5))

    def name(row: dict[str, Any]) -> str:
        return f"{row['test']} {_series(row, settings)}".strip()

    for test in dict.fromkeys(name(r) for r in points):
        series = sorted((r for r in points if name(r) == test), key=lambda r: r["model_size"])
        sizes = [r["model_size"] / 2**30 for r in series]
        axes.errorbar(sizes, [r["avg_ts"] for r in series],
                      yerr=[r.get("stddev_ts") or 0 for r in series],
                      marker="o", capsize=3, label=test)
        for size, row in zip(sizes, series, strict=True):
            axes.annotate(_quant(row), (size, row["avg_ts"]), textcoords="offset points",
                          xytext=(4, 4), fontsize=7)
    axes.set(xscale="log", yscale="log", xlabel="model size (GiB)", ylabel="tokens / second",
             title="Rate against model size and quantisation")
    return _save(figure, axes, path)


def _memory_vs_context(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    import matplotlib.pyplot as plt

    points = [r for r in rows
              if r.get("n_ctx") and (r.get("peak_host_bytes") or r.get("gpu_bytes"))]
    if not points:
        return False
    settings = varying_settings(points)

    def name(row: dict[str, Any]) -> str:
        return f"{row.get('model_type') or row.get('model')} {_series(row, settings)}".strip()

    figure, axes = plt.subplots(figsize=(8, 5))
    for model in dict.fromkeys(name(r) for r in points):
        series = sorted((r for r in points if name(r) == model), key=lambda r: r["n_ctx"])
        for key, style in (("peak_host_bytes", "o-"), ("gpu_bytes", "s--")):
            pairs = [(r["n_ctx"], r[key] / 2**30) for r in series if r.get(key)]
            if pairs:
                what = "host peak" if key == "peak_host_bytes" else "GPU"
                axes.plot(*zip(*pairs, strict=True), style, label=f"{model} ({what})")
    axes.set(xscale="log", xlabel="context (tokens)", ylabel="memory (GiB)",
             title="Memory against context length")
    return _save(figure, axes, path)


def _save(figure, axes, path: Path) -> bool:
    """The plots' common finish: grid, legend, a 120-dpi PNG, the figure closed."""
    import matplotlib.pyplot as plt

    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
