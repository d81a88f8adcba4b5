"""`borealis bench report`: one self-contained HTML page of benchmark results.

The page holds the tables and the plots of any mix of result files: `borealis bench`
rows (llama-bench's own `-o json` too: `report.read_rows` reads the same) and
`borealis bench serve` results (one object per concurrency level, named as vLLM's
`vllm bench serve --save-result`). Nothing is fetched when it is viewed: the CSS is
inline, the plots are PNGs in data: URIs, there is no script, and a
Content-Security-Policy tells the browser to load nothing else. Needs matplotlib for
the plots (`pip install borealis-local[bench]`).

Every number in a table is a `<td class="num">` whose `data-key` names the field it
shows and whose `data-value` holds the value as the file had it, so a script (or a
test) can read the figures back from the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from borealis_local.bench import plots, report
from borealis_local.bench.row import ResultRow
from borealis_local.errors import InvalidRequestError

# What tells a `borealis bench serve` result from a `borealis bench` row.
SERVE_KEYS = ("completed", "mean_ttft_ms")
# The latencies a serve result has, in vLLM's names: mean_ttft_ms, p99_ttft_ms, …
LATENCIES = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2el": "E2EL"}
PLOTTED_LATENCIES = ("ttft", "tpot", "e2el")
THROUGHPUTS = {
    "request_throughput": "requests/s",
    "request_goodput": "goodput (requests/s)",
    "output_throughput": "output tokens/s",
    "total_token_throughput": "total tokens/s",
}
COUNTS = {"completed": "completed", "failed": "failed"}
# Fields that must be numbers (or null) for the tables and plots to mean anything.
_ROW_NUMBERS = (
    "avg_ts",
    "stddev_ts",
    "model_size",
    "model_n_params",
    "n_ctx",
    "peak_host_bytes",
    "gpu_bytes",
    "ttft_ms",
    "stddev_ttft_ms",
)
_SERVE_NUMBERS = (
    "concurrency",
    "max_concurrency",
    "duration",
    "prompt_cache_hit_rate",
    *COUNTS,
    *THROUGHPUTS,
)
_LATENCY_KEY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")
# The raw field behind each numeric column of the rate table (report.to_markdown's).
_RATE_FIELDS = {
    "size": "model_size",
    "params": "model_n_params",
    "t/s": "avg_ts",
    "peak RAM": "peak_host_bytes",
    "GPU mem": "gpu_bytes",
    "ttft ms": "ttft_ms",
}
_SERIALISED_NOTE = (
    "This runtime serves one request at a time (the in-process backend): at higher "
    "concurrency requests wait their turn, they do not run together."
)
# The page may load nothing but itself, its inline style and its data: images.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
.scroll { overflow-x: auto; }
.note { color: #555; font-size: 0.9rem; }
img { max-width: 100%; height: auto; }
figure { margin: 1rem 0; }
"""


@dataclass
class Results:
    """What result files hold: `borealis bench` rows and `bench serve` results."""

    rows: list[ResultRow] = field(default_factory=list)
    serve: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def extend(self, other: Results) -> None:
        self.rows += other.rows
        self.serve += other.serve
        self.sources += other.sources


# -- reading -----------------------------------------------------------------------------


def read_results(paths: Iterable[str | Path]) -> Results:
    """The results of every file, in order; a clear error for a file or line that is
    not a benchmark result."""
    results = Results()
    for path in map(Path, paths):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidRequestError(f"no such results file: {path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidRequestError(f"cannot read {path} as a results file: {error}") from None
        results.extend(parse_results(text, source=str(path)))
    if not results.sources:
        raise InvalidRequestError(
            "report takes result files: borealis bench report RESULTS.jsonl… -o report.html"
        )
    if not results.rows and not results.serve:
        raise InvalidRequestError(
            f"no results in {', '.join(results.sources)}: give files written by "
            "`borealis bench --out` or `borealis bench serve --out`"
        )
    return results


def parse_results(text: str, *, source: str = "the results") -> Results:
    """Results from JSONL or a JSON array, each object told apart by its keys."""
    results = Results(sources=[source])
    for where, item in _objects(text, source):
        if not isinstance(item, dict):
            raise InvalidRequestError(f"{where}: a result must be a JSON object, not {item!r:.40}")
        if all(key in item for key in SERVE_KEYS):
            results.serve.append(_checked_serve(item, where))
        elif "avg_ts" in item and ("test" in item or "n_prompt" in item):
            _check_numbers(item, _ROW_NUMBERS, where)
            results.rows.append(report.normalised(ResultRow.from_dict(item)))
        else:
            raise InvalidRequestError(
                f"{where}: neither a `borealis bench` row (avg_ts, test) nor a "
                f"`borealis bench serve` result ({', '.join(SERVE_KEYS)}): give files "
                "written by `borealis bench`, `borealis bench serve` or `llama-bench -o json`"
            )
    return results


def _objects(text: str, source: str) -> list[tuple[str, Any]]:
    """(where, value) for each JSON value: "FILE, line N" in JSONL, "FILE, item N" in
    a JSON array. An unfinished last line (a run killed while writing) is left out,
    as report.parse_rows does."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidRequestError(f"{source} is not a JSON array ({error})") from None
        if not isinstance(items, list):
            raise InvalidRequestError(f"{source} is not a JSON array of results")
        return [(f"{source}, item {number}", item) for number, item in enumerate(items, 1)]
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    found = []
    for index, (number, line) in enumerate(lines):
        try:
            found.append((f"{source}, line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            if index == len(lines) - 1 and not text.endswith("\n"):
                break  # the unfinished last line
            raise InvalidRequestError(
                f"{source}, line {number} is not JSON ({error}): give JSON Lines or a JSON "
                "array written by `borealis bench` or `borealis bench serve`"
            ) from None
    return found


def _checked_serve(item: dict[str, Any], where: str) -> dict[str, Any]:
    latencies = [key for key in item if _LATENCY_KEY.match(key)]
    _check_numbers(item, (*_SERVE_NUMBERS, *latencies), where)
    level = _level(item)
    if level is None or level <= 0:
        raise InvalidRequestError(
            f"{where}: a `bench serve` result needs its concurrency level, 1 or more "
            f"(concurrency or max_concurrency; it has {json.dumps(level)})"
        )
    return item


def _check_numbers(item: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    for key in keys:
        value = item.get(key)
        if value is not None and not _is_number(value):
            raise InvalidRequestError(f"{where}: {key} is {json.dumps(value)}, not a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _level(item: Mapping[str, Any]) -> float | None:
    """A serve result's concurrency level: ours, else vLLM's max_concurrency."""
    for key in ("concurrency", "max_concurrency"):
        if item.get(key) is not None:
            return item[key]
    return None


# -- the page ----------------------------------------------------------------------------


def write_report(results: Results, output: str | Path) -> Path:
    """Write the page to `output` (its folder is made when missing)."""
    path = Path(output)
    page = render_html(results)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise InvalidRequestError(f"cannot write the report to {path}: {error}") from None
    return path


def render_html(results: Results) -> str:
    """The whole page: a section for bench rows, one for serve results, each only when
    the results hold some."""
    title = "Benchmark report"
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(f"<code>{_text(s)}</code>" for s in results.sources)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="note">From {sources}; written {written}.</p>',
    ]
    if results.rows:
        parts.append(_rates_section(results.rows))
    if results.serve:
        parts.append(_serving_section(results.serve))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _rates_section(rows: Sequence[ResultRow]) -> str:
    parts = ['<section id="rates"><h2>Rates and memory</h2>', _rate_table(rows)]
    for name, png in _bench_plots(rows):
        parts.append(_figure(png, name))
    parts.append("</section>")
    return "\n".join(parts)


def _rate_table(rows: Sequence[ResultRow]) -> str:
    """The table `borealis bench` prints (report.table_cells: its columns and cells)."""
    columns, table, labels = report.table_cells(rows)
    lines = [
        '<div class="scroll"><table class="rates">',
        "<thead><tr>" + "".join(f"<th>{_text(c)}</th>" for c in columns) + "</tr></thead>",
        "<tbody>",
    ]
    for row, texts in zip(rows, table, strict=True):
        cells = []
        for column, text in zip(columns, texts, strict=True):
            key = _RATE_FIELDS.get(column)
            if key is None:
                cells.append(f'<td data-key="{_text(column)}">{_text(text)}</td>')
            else:
                cells.append(_number_cell(key, row.get(key), text))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    for number, label in enumerate(labels, 1):
        lines.append(f'<p class="note">{"*" * number} {_text(label)}</p>')
    commits = sorted({str(r.build_commit) for r in rows if r.build_commit})
    if commits:
        lines.append(f'<p class="note">build: {_text(", ".join(commits))}</p>')
    return "\n".join(lines)


def _bench_plots(rows: Sequence[ResultRow]) -> list[tuple[str, bytes]]:
    """plots.plot's PNGs (rate vs size and quant, memory vs context), read back."""
    with tempfile.TemporaryDirectory(prefix="borealis-report-") as folder:
        pngs = plots.plot(rows, folder)
        return [(path.stem.replace("_", " "), path.read_bytes()) for path in pngs]


def _serving_section(results: Sequence[Mapping[str, Any]]) -> str:
    parts = ['<section id="serving"><h2>Serving under load</h2>']
    groups: dict[Series, list[Mapping[str, Any]]] = {}
    for result in results:
        groups.setdefault(_series(result), []).append(result)
    groups = {series: sorted(levels, key=_level) for series, levels in groups.items()}
    for series, levels in groups.items():
        parts.append(_serve_table(series, levels))
    parts.append(_figure(_latency_plot(groups), "latency percentiles vs concurrency"))
    parts.append(_figure(_throughput_plot(groups), "throughput vs concurrency"))
    parts.append("</section>")
    return "\n".join(parts)


class Series(NamedTuple):
    """What one serve table and one line per plot show: a model on a runtime, under one
    workload (when the results name it)."""

    model: str
    runtime: str
    workload: str | None

    @property
    def name(self) -> str:
        workload = f", {self.workload} workload" if self.workload else ""
        return f"{self.model} on {self.runtime}{workload}"


def _series(result: Mapping[str, Any]) -> Series:
    """vLLM's own files name the model model_id and the runtime backend."""
    model = result.get("model") or result.get("model_id") or "?"
    runtime = result.get("runtime") or result.get("backend") or "?"
    workload = result.get("workload")
    return Series(str(model), str(runtime), None if workload is None else str(workload))


def _percentiles(levels: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """The percentiles ("p50", "p99.9") the results hold for a latency, in order."""
    found = {
        match.group(1)
        for level in levels
        for key, value in level.items()
        if value is not None
        and (match := _LATENCY_KEY.match(key))
        and match.group(2) == metric
        and match.group(1).startswith("p")
    }
    return sorted(found, key=lambda stat: float(stat[1:]))


def _serve_table(series: Series, levels: Sequence[Mapping[str, Any]]) -> str:
    """A row per concurrency level: counts, throughputs, then each latency's mean, std
    and the percentiles the results hold (the median where they hold none); the
    prompt-cache hit rate; then why requests failed, where the results say."""
    present = {key for level in levels for key, value in level.items() if value is not None}
    plain = [
        (key, title)
        for key, title in {**COUNTS, "duration": "duration (s)", **THROUGHPUTS}.items()
        if key in present
    ]
    groups = []
    for metric, name in LATENCIES.items():
        percentiles = _percentiles(levels, metric)
        middle = [] if percentiles else ["median"]  # vLLM's median is its p50
        stats = [s for s in ("mean", *middle, "std") if f"{s}_{metric}_ms" in present]
        if stats + percentiles:
            groups.append((metric, name, stats + percentiles))
    hit_rate = "prompt_cache_hit_rate" in present
    top = ['<th rowspan="2">concurrency</th>']
    top += [f'<th rowspan="2">{_text(title)}</th>' for _, title in plain]
    top += [f'<th colspan="{len(stats)}">{name} (ms)</th>' for _, name, stats in groups]
    if hit_rate:
        top.append('<th rowspan="2">prompt cache hits</th>')
    sub = [f"<th>{stat}</th>" for _, _, stats in groups for stat in stats]
    lines = [
        '<div class="scroll"><table class="serve" '
        f'data-model="{_text(series.model)}" data-runtime="{_text(series.runtime)}">',
        f"<caption>{_text(series.name)}</caption>",
        "<thead><tr>" + "".join(top) + "</tr><tr>" + "".join(sub) + "</tr></thead>",
        "<tbody>",
    ]
    for level in levels:
        key = "concurrency" if level.get("concurrency") is not None else "max_concurrency"
        cells = [_number_cell(key, level[key], _format(level[key], integer=True))]
        cells += [_number_cell(k, level.get(k), _format(level.get(k), k)) for k, _ in plain]
        for metric, _, stats in groups:
            for stat in stats:
                k = f"{stat}_{metric}_ms"
                cells.append(_number_cell(k, level.get(k), _format(level.get(k))))
        if hit_rate:
            rate = level.get("prompt_cache_hit_rate")
            text = "" if rate is None else f"{rate * 100:.1f} %"
            cells.append(_number_cell("prompt_cache_hit_rate", rate, text))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    if any(level.get("serialised") for level in levels):
        lines.append(f'<p class="note">{_SERIALISED_NOTE}</p>')
    for level in levels:
        errors = level.get("errors")
        failures = [_failure(error) for error in errors] if isinstance(errors, list) else []
        if failures:
            lines.append(
                f'<p class="note failures">Failed at concurrency {_level(level):g}: '
                f"{_text('; '.join(failures))}</p>"
            )
    return "\n".join(lines)


def _failure(error: Any) -> str:
    """One of `bench serve`'s distinct errors ({"message", "count"}) as text."""
    if isinstance(error, Mapping) and "message" in error:
        count = error.get("count")
        return f"{count} × {error['message']}" if count else str(error["message"])
    return str(error)


def _number_cell(key: str, value: Any, text: str) -> str:
    data = "" if value is None else f' data-value="{_text(json.dumps(value))}"'
    return f'<td class="num" data-key="{_text(key)}"{data}>{_text(text)}</td>'


def _format(value: Any, key: str = "", *, integer: bool = False) -> str:
    """Counts as integers, requests/s with three decimals (a CPU serves about one a
    second), everything else with two."""
    if value is None:
        return ""
    if (integer or key in COUNTS) and float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}" if key in ("request_throughput", "request_goodput") else f"{value:.2f}"


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _figure(png: bytes | None, caption: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{_text(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_text(caption)}</figcaption></figure>"
    )


# -- the serving plots -------------------------------------------------------------------

# Serve results by series, each list in order of concurrency.
Groups = Mapping[Series, Sequence[Mapping[str, Any]]]
_STYLES = ("-", "--", ":", "-.")


def _latency_plot(groups: Groups) -> bytes | None:
    """TTFT, TPOT and E2EL side by side, each percentile a line style, each
    model/runtime a colour (the mean where a result has no percentiles)."""
    plt = plots.pyplot()
    figure, panels = plt.subplots(
        1, len(PLOTTED_LATENCIES), figsize=(13, 4.5), squeeze=False, layout="constrained"
    )
    drawn = False
    for axes, metric in zip(panels[0], PLOTTED_LATENCIES, strict=True):
        for colour, (series, levels) in enumerate(groups.items()):
            stats = _percentiles(levels, metric) or ["mean"]
            for style, stat in enumerate(stats):
                drawn |= _line(
                    axes,
                    levels,
                    f"{stat}_{metric}_ms",
                    f"C{colour}",
                    _STYLES[style % len(_STYLES)],
                    f"{series.name}: {stat}",
                )
        axes.set(xlabel="concurrency", ylabel="ms", title=LATENCIES[metric])
    return _png(figure, panels[0], "Latency against concurrency") if drawn else _closed(figure)


def _throughput_plot(groups: Groups) -> bytes | None:
    """Requests/s (and goodput) and tokens/s (output and total) against concurrency."""
    plt = plots.pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(11, 4.5), squeeze=False, layout="constrained")
    drawn = False
    for axes, keys, unit in (
        (panels[0][0], ("request_throughput", "request_goodput"), "requests/s"),
        (panels[0][1], ("output_throughput", "total_token_throughput"), "tokens/s"),
    ):
        for colour, (series, levels) in enumerate(groups.items()):
            for style, key in zip(_STYLES, keys, strict=False):
                drawn |= _line(
                    axes,
                    levels,
                    key,
                    f"C{colour}",
                    style,
                    f"{series.name}: {THROUGHPUTS[key]}",
                )
        axes.set(xlabel="concurrency", ylabel=unit)
    return _png(figure, panels[0], "Throughput against concurrency") if drawn else _closed(figure)


def _line(
    axes, levels: Sequence[Mapping[str, Any]], key: str, colour: str, style: str, label: str
) -> bool:
    """One series of `key` against the concurrency level; False when no level has it."""
    pairs = [
        (_level(level), level[key])
        for level in levels
        if level.get(key) is not None and math.isfinite(level[key])
    ]
    if not pairs:
        return False
    axes.plot(*zip(*pairs, strict=True), marker="o", color=colour, linestyle=style, label=label)
    return True


def _png(figure, panels, title: str) -> bytes:
    """The serving plots' finish: concurrency on a log-2 axis in plain numbers, a
    grid, one legend below the panels (model names can be long paths), a 120-dpi PNG;
    the figure closed."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    legend = {}
    for axes in panels:
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        axes.grid(True, which="both", alpha=0.3)
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(legend.values(), legend.keys(), loc="outside lower center", fontsize=8)
    figure.suptitle(title)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=120)
    plt.close(figure)
    return out.getvalue()


def _closed(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)
    return None


