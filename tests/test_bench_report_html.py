"""`borealis bench report`: one self-contained HTML page of bench and bench serve results.

Real parts: a real headless Chromium (Debian's `chromium`, driven over the DevTools
protocol by tests/chromium_support.py) loads the page and reports every request and
console error; the tables are read back from its rendered DOM and compared with the
result files. Inputs: hand-written result files in tests/fixtures (bench-results.jsonl:
`borealis bench` rows; serve-results.jsonl: `bench serve` results with vLLM's names, two
concurrency levels for llama-server and for the in-process backend) and llama-bench's own
JSON as committed under benchmarks/results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import chromium_support
import pytest
from conftest import REPO, require

from borealis_local.bench import cli, html_report
from borealis_local.errors import InvalidRequestError

pytest.importorskip("matplotlib")

FIXTURES = REPO / "tests" / "fixtures"
BENCH_FILE = FIXTURES / "bench-results.jsonl"
SERVE_FILE = FIXTURES / "serve-results.jsonl"
LLAMA_BENCH_FILE = (
    REPO
    / "benchmarks"
    / "results"
    / "2026-11-26-cpu-2core"
    / "parity-16-rounds"
    / "llama-bench.json"
)
# The rendered DOM as data: each table's cells with their data-key, data-value and text,
# the notes after it, the images and whether they decoded, the page's sections.
READ_PAGE = """JSON.stringify({
  sections: [...document.querySelectorAll('section')].map(s => s.id),
  images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth})),
  text: document.body.innerText,
  tables: [...document.querySelectorAll('table')].map(t => {
    const notes = [];
    for (let p = t.closest('div').nextElementSibling; p && p.tagName === 'P';
         p = p.nextElementSibling) notes.push(p.textContent);
    return {
      kind: t.className, model: t.dataset.model ?? null, runtime: t.dataset.runtime ?? null,
      caption: t.caption ? t.caption.textContent : null, notes,
      rows: [...t.tBodies[0].rows].map(r => [...r.cells].map(c => ({
        key: c.dataset.key ?? null, value: c.dataset.value ?? null, text: c.textContent,
        numeric: c.classList.contains('num')})))
    };
  })
})"""


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(argv: list[str], capsys) -> tuple[int, str]:
    """`borealis bench report ARGV` in this process; (exit status, stderr)."""
    status = cli.main(["report", *argv])
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = chromium_support.find_chromium()
    require(binary is not None, "Chromium is not installed (apt-get install chromium)")
    return binary


def open_page(path: Path, chromium: str) -> chromium_support.PageLoad:
    load = chromium_support.load_page(path, READ_PAGE, binary=chromium)
    load.value = json.loads(load.value)
    return load


@pytest.fixture(scope="module")
def both(tmp_path_factory, chromium) -> chromium_support.PageLoad:
    """The report of both fixture files, as Chromium loaded it."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert cli.main(["report", str(BENCH_FILE), str(SERVE_FILE), "-o", str(out)]) == 0
    return open_page(out, chromium)


def fetched(load: chromium_support.PageLoad) -> list[str]:
    """The URLs a page asked for besides its own data: URIs (its inline plots)."""
    return [url for url in load.requests if not url.startswith("data:")]


def cells_by_key(row: list[dict]) -> dict[str, dict]:
    return {cell["key"]: cell for cell in row}


# -- in Chromium -------------------------------------------------------------------------


def test_the_page_loads_with_no_console_errors_and_asks_for_nothing_but_itself(both):
    assert both.errors == []
    assert both.requests[0] == both.url  # the harness sees requests: the page's own is one
    assert fetched(both) == [both.url]
    images = both.value["images"]
    assert len(images) == 4 and all(image["width"] > 0 for image in images)  # all decoded
    assert both.value["sections"] == ["rates", "serving"]


def test_the_rate_table_holds_the_bench_numbers(both):
    rows = jsonl(BENCH_FILE)
    (table,) = [t for t in both.value["tables"] if t["kind"] == "rates"]
    assert len(table["rows"]) == len(rows)
    for cells, row in zip(table["rows"], rows, strict=True):
        by_key = cells_by_key(cells)
        assert by_key["test"]["text"] == row["test"]
        assert by_key["model"]["text"].startswith(row["model_type"])
        rate = by_key["avg_ts"]
        assert json.loads(rate["value"]) == row["avg_ts"]
        mean, spread = map(float, re.fullmatch(r"([\d.]+) ± ([\d.]+)", rate["text"]).groups())
        assert mean == pytest.approx(row["avg_ts"], abs=0.005)
        assert spread == pytest.approx(row["stddev_ts"], abs=0.005)
        for key in ("model_size", "model_n_params", "peak_host_bytes"):
            assert json.loads(by_key[key]["value"]) == row[key]
    assert "* stand-in: Gemma 3 270M base, not Borealis" in both.value["text"]


# What a serve table shows of a result: counts, duration, throughputs, each latency's
# mean, std and percentiles (vLLM's median is its p50: shown once), the cache hit rate.
SERVE_COLUMNS = re.compile(
    r"concurrency|completed|failed|duration|request_throughput|request_goodput"
    r"|output_throughput|total_token_throughput|prompt_cache_hit_rate"
    r"|(mean|std|p[\d.]+)_(ttft|tpot|itl|e2el)_ms"
)


def test_each_series_has_a_serve_table_with_a_row_per_concurrency_level(both):
    results = jsonl(SERVE_FILE)
    tables = [t for t in both.value["tables"] if t["kind"] == "serve"]
    series = list(dict.fromkeys((r["model"], r["runtime"]) for r in results))
    assert [(t["model"], t["runtime"]) for t in tables] == series
    for table in tables:
        levels = sorted(
            (
                r
                for r in results
                if (r["model"], r["runtime"]) == (table["model"], table["runtime"])
            ),
            key=lambda r: r["concurrency"],
        )
        assert table["caption"] == f"{table['model']} on {table['runtime']}, synthetic workload"
        assert len(table["rows"]) == len(levels) == 2
        for cells, level in zip(table["rows"], levels, strict=True):
            by_key = cells_by_key(cells)
            given = {k for k, v in level.items() if v is not None and SERVE_COLUMNS.fullmatch(k)}
            assert {key for key, cell in by_key.items() if cell["value"] is not None} == given
            for key, cell in by_key.items():
                if cell["value"] is None:  # a column another level fills
                    assert level.get(key) is None and cell["text"] == ""
                    continue
                assert cell["numeric"] and json.loads(cell["value"]) == level[key]
                number = float(cell["text"].removesuffix(" %"))
                if key == "prompt_cache_hit_rate":
                    assert number == pytest.approx(level[key] * 100, abs=0.05)
                else:
                    assert number == pytest.approx(level[key], abs=0.005)
        serialised = [note for note in table["notes"] if "one request at a time" in note]
        assert len(serialised) == levels[0]["serialised"]  # only the in-process backend's
        failures = [note for note in table["notes"] if note.startswith("Failed")]
        expected = [
            f"Failed at concurrency {level['concurrency']}: 1 × {level['errors'][0]['message']}"
            for level in levels
            if level["errors"]
        ]
        assert failures == expected


def test_text_from_the_files_is_shown_as_text_never_as_markup(tmp_path, chromium):
    hostile = dict(
        jsonl(SERVE_FILE)[0], model='<img src="x" onerror="alert(1)">', runtime="a&b</table>"
    )
    source = tmp_path / "hostile.jsonl"
    source.write_text(json.dumps(hostile) + "\n")
    out = tmp_path / "hostile.html"
    assert cli.main(["report", str(source), "-o", str(out)]) == 0
    load = open_page(out, chromium)
    assert load.errors == [] and fetched(load) == [load.url]  # no img src="x" fetched
    (table,) = load.value["tables"]
    assert table["caption"] == f"{hostile['model']} on {hostile['runtime']}, synthetic workload"
    assert table["model"] == hostile["model"] and table["runtime"] == hostile["runtime"]
    assert [image["alt"] for image in load.value["images"]] == [
        "latency percentiles vs concurrency",
        "throughput vs concurrency",
    ]
    assert load.value["sections"] == ["serving"]  # no bench rows, no rates section


def test_the_harness_sees_console_errors_and_requests(tmp_path, chromium):
    """The checks above can fail: a page that logs an error and loads an image from
    outside is caught, and the report's Content-Security-Policy would refuse such an
    image with an error of its own."""
    page = tmp_path / "noisy.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
        '<script>console.error("boom")</script></body></html>'
    )
    load = chromium_support.load_page(page, "document.title", binary=chromium)
    assert "boom" in load.errors
    assert "http://127.0.0.1:9/x.png" in load.requests
    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{html_report.CONTENT_SECURITY_POLICY}"></head><body>'
        '<img src="http://127.0.0.1:9/x.png"></body></html>'
    )
    load = chromium_support.load_page(guarded, "document.title", binary=chromium)
    assert any("Content Security Policy" in error for error in load.errors)


# -- the page, without a browser -----------------------------------------------------------


def test_llama_benchs_own_json_reads_and_makes_a_rates_section_only():
    rows = json.loads(LLAMA_BENCH_FILE.read_text())
    results = html_report.read_results([LLAMA_BENCH_FILE])
    assert len(results.rows) == len(rows) and results.serve == []
    page = html_report.render_html(results)
    assert 'id="rates"' in page and 'id="serving"' not in page
    assert page.count("<tr><td") == len(rows)
    for row in rows:
        assert f'data-key="avg_ts" data-value="{json.dumps(row["avg_ts"])}"' in page


def test_the_page_links_to_nothing_outside_itself():
    page = html_report.render_html(html_report.read_results([BENCH_FILE, SERVE_FILE]))
    assert re.findall(r"""(?:src|href)\s*=\s*(?!["']?data:)""", page) == []
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert 'http-equiv="Content-Security-Policy"' in page
    assert page.count('src="data:image/png;base64,') == 4


def test_vllms_own_saved_result_reads_with_its_names():
    """`vllm bench serve --save-result` names the model model_id, the runtime backend,
    and the level max_concurrency."""
    ours = jsonl(SERVE_FILE)[1]
    vllm = {
        k: v for k, v in ours.items() if k not in ("concurrency", "runtime", "model", "workload")
    }
    vllm.update(model_id="NbAiLab/borealis-4b", backend="vllm", request_rate=None)
    results = html_report.parse_results(json.dumps(vllm) + "\n", source="vllm.json")
    page = html_report.render_html(results)
    assert f'data-key="max_concurrency" data-value="{vllm["max_concurrency"]}"' in page
    assert "<caption>NbAiLab/borealis-4b on vllm</caption>" in page


def test_an_unfinished_last_line_is_left_out_as_bench_does():
    text = SERVE_FILE.read_text()
    results = html_report.parse_results(text + text[:50], source="killed.jsonl")
    assert len(results.serve) == len(jsonl(SERVE_FILE))


def test_the_report_command_writes_the_page(tmp_path, capsys):
    out = tmp_path / "deep" / "report.html"
    status, err = report([str(SERVE_FILE), "-o", str(out)], capsys)
    assert status == 0 and f"wrote {out}" in err
    assert out.read_text().startswith("<!DOCTYPE html>")


# -- bad input -----------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "text", "message"), [
    ("neither.jsonl", '{"avg_ts": 1.0, "test": "pp16"}\n{"model": "m", "rate": 3}\n',
     "neither.jsonl, line 2: neither a `borealis bench` row"),
    ("array.json", '[{"completed": 3}]', "array.json, item 1: neither"),
    ("broken.jsonl", '{"avg_ts": 1.0, "test": "pp16"}\nnot json\n{}\n',
     "broken.jsonl, line 2 is not JSON"),
    ("list.jsonl", "[1, 2]\n", "list.jsonl, item 1: a result must be a JSON object"),
    ("word.jsonl", '{"completed": 3, "mean_ttft_ms": "fast", "concurrency": 1}\n',
     'word.jsonl, line 1: mean_ttft_ms is "fast", not a number'),
    ("rate.jsonl", '{"avg_ts": "quick", "test": "pp16"}\n', 'avg_ts is "quick", not a number'),
    ("level.jsonl", '{"completed": 3, "mean_ttft_ms": 5.0, "max_concurrency": null}\n',
     "level.jsonl, line 1: a `bench serve` result needs its concurrency level, 1 or more"),
    ("zero.jsonl", '{"completed": 3, "mean_ttft_ms": 5.0, "concurrency": 0}\n',
     "zero.jsonl, line 1: a `bench serve` result needs its concurrency level"),
    ("empty.jsonl", "\n", "no results in"),
])  # fmt: skip
def test_a_file_that_is_not_results_is_a_clear_error(tmp_path, capsys, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        html_report.read_results([path])
    status, err = report([str(path), "-o", str(tmp_path / "out.html")], capsys)
    assert status == 1 and message in err
    assert not (tmp_path / "out.html").exists()


def test_missing_files_and_no_files_are_clear_errors(tmp_path, capsys):
    status, err = report([str(tmp_path / "gone.jsonl")], capsys)
    assert status == 1 and "no such results file" in err and "gone.jsonl" in err
    status, err = report([], capsys)
    assert status == 1 and "report takes result files" in err
    status, err = report([str(tmp_path)], capsys)
    assert status == 1 and f"cannot read {tmp_path} as a results file" in err
    (tmp_path / "latin1.jsonl").write_bytes(b'{"model": "bor\xe9alis"}\n')
    status, err = report([str(tmp_path / "latin1.jsonl")], capsys)
    assert status == 1 and "latin1.jsonl as a results file" in err


def test_an_output_path_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    status, err = report([str(SERVE_FILE), "-o", str(tmp_path)], capsys)
    assert status == 1 and f"cannot write the report to {tmp_path}" in err
