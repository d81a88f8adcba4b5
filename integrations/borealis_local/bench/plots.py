"""PNG plots of benchmark results: rate against model size (each point marked with its
quant) and peak memory against context length. Needs matplotlib
(`pip install borealis-local[bench]`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from borealis_local.bench.report import Rows, series_name, varying_settings
from borealis_local.bench.row import ResultRow, as_row
from borealis_local.errors import InvalidRequestError


def pyplot():
    """matplotlib's pyplot drawing to files (Agg), or a clear error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidRequestError(
            "plots need matplotlib: pip install matplotlib (or borealis-local[bench])"
        ) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot(rows: Rows, directory: str | Path) -> list[Path]:
    """PNG plots: rate against model size (each point marked with its quant) and peak
    memory against context length. Needs matplotlib (`pip install borealis-local[bench]`)."""
    pyplot()
    rows = [as_row(row) for row in rows]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("rate_vs_size.png", _rate_vs_size),
                       ("memory_vs_context.png", _memory_vs_context)):
        if draw(rows, directory / name):
            written.append(directory / name)
    return written


def _quant(row: ResultRow) -> str:
    if row.quant:
        return str(row.quant)
    parts = str(row.model_type or "").split(" ", 2)
    return parts[2] if len(parts) == 3 else ""


def _rate_vs_size(rows: Sequence[ResultRow], path: Path) -> bool:
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.model_size and r.avg_ts and r.test]
    if not points:
        return False
    settings = varying_settings(points)
    figure, axes = plt.subplots(figsize=(8, 5))

    def name(row: ResultRow) -> str:
        return f"{row.test} {series_name(row, settings)}".strip()

    for test in dict.fromkeys(name(r) for r in points):
        series = sorted((r for r in points if name(r) == test), key=lambda r: r.model_size)
        sizes = [r.model_size / 2**30 for r in series]
        axes.errorbar(sizes, [r.avg_ts for r in series],
                      yerr=[r.stddev_ts or 0 for r in series],
                      marker="o", capsize=3, label=test)
        for size, row in zip(sizes, series, strict=True):
            axes.annotate(_quant(row), (size, row.avg_ts), textcoords="offset points",
                          xytext=(4, 4), fontsize=7)
    axes.set(xscale="log", yscale="log", xlabel="model size (GiB)", ylabel="tokens / second",
             title="Rate against model size and quantisation")
    return _save(figure, axes, path)


def _memory_vs_context(rows: Sequence[ResultRow], path: Path) -> bool:
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.n_ctx and (r.peak_host_bytes or r.gpu_bytes)]
    if not points:
        return False
    settings = varying_settings(points)

    def name(row: ResultRow) -> str:
        return f"{row.model_type or row.model} {series_name(row, settings)}".strip()

    figure, axes = plt.subplots(figsize=(8, 5))
    for model in dict.fromkeys(name(r) for r in points):
        series = sorted((r for r in points if name(r) == model), key=lambda r: r.n_ctx)
        for what, style, memory in (("host peak", "o-", lambda r: r.peak_host_bytes),
                                    ("GPU", "s--", lambda r: r.gpu_bytes)):
            pairs = [(r.n_ctx, memory(r) / 2**30) for r in series if memory(r)]
            if pairs:
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
