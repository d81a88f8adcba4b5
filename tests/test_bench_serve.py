"""`borealis bench serve`: vLLM's serving metrics under load, for every runtime.

Real parts: a real llama-server on loopback with the stand-in Gemma 3 270M (the session
server of tests/llama_server_support.py, and one that `--start-server` starts), and
llama.cpp in-process on the stand-in. The metric definitions are checked on
tests/scripted_server.py, a TEST DOUBLE (an OpenAI-compatible streaming server whose
token timing is scripted, NOT a model server): TTFT, TPOT, ITL and E2EL must come out
as scripted, within a tolerance wide enough for a loaded 2-core machine but far
narrower than any wrong definition's error. No other timing is asserted.
"""

from __future__ import annotations

import json
import math

import llama_server_support as support
import numpy as np
import pytest
from scripted_server import Script, ScriptedServer

from borealis_local.bench import serve_load, serve_metrics, serve_workload
from borealis_local.bench.serve_load import ServeConfig, arrival_offsets
from borealis_local.cli import main

llama_server_binary = support.llama_server_binary
llama_server_process = support.llama_server_process
llama_server = support.llama_server

# Scheduling noise on a loaded 2-core box stays well inside this; a wrong definition
# (TTFT from the wrong start, ITL as TPOT of the whole answer, E2EL without the tokens)
# is off by 50 ms or more.
TOLERANCE_MS = 40


def serve(argv: list[str], capsys) -> tuple[int, str, str]:
    """`borealis bench serve ARGV` through the borealis command; (status, stdout, stderr)."""
    status = main(["bench", "serve", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def serve_json(argv: list[str], capsys) -> list[dict]:
    status, out, err = serve([*argv, "-o", "json"], capsys)
    assert status == 0, err
    return json.loads(out)


def scripted(server: ScriptedServer) -> str:
    return f"openai:scripted@{server.base_url}"


# -- the metrics' definitions, on the scripted double ----------------------------------


def test_ttft_tpot_itl_and_e2el_come_out_as_scripted(capsys):
    script = Script(ttft=0.2, interval=0.05, tokens=10)
    with ScriptedServer(script) as server:
        # The warm-up request (the default) opens the client and its connection pool.
        results = serve_json([scripted(server), "-c", "1,2", "--num-prompts", "4",
                              "--output-len", "10", "--input-len", "16",
                              "--percentiles", "50,90,99,99.9"], capsys)  # fmt: skip
    assert [r["concurrency"] for r in results] == [1, 2]
    expected = {"ttft": 200, "tpot": 50, "itl": 50, "e2el": 200 + 9 * 50}
    for result in results:
        assert result["completed"] == 4 and result["failed"] == 0
        assert result["output_tokens_source"] == "usage"
        assert result["total_output_tokens"] == 40
        for metric, ms in expected.items():
            for stat in ("mean", "median", "p50", "p90", "p99", "p99.9"):
                assert result[f"{stat}_{metric}_ms"] == pytest.approx(ms, abs=TOLERANCE_MS)
            assert 0 <= result[f"std_{metric}_ms"] < TOLERANCE_MS
        assert result["errors"] == [] and result["serialised"] is False
        assert result["max_concurrency"] == result["concurrency"]
        assert result["request_rate"] == "inf" and result["burstiness"] == 1.0
        assert "request_goodput" not in result  # only with --goodput, as in vLLM
        # Nothing to tell a cache hit from: the double sends usage but no timings.
        assert result["prompt_cache_hit_rate"] is None


def test_each_request_is_timed_chunk_by_chunk_from_its_start():
    """Per record: one gap per chunk after the first, and E2EL = TTFT + the gaps."""
    with ScriptedServer(Script(ttft=0.1, interval=0.03, tokens=5)) as server:
        config = ServeConfig(model=scripted(server), concurrency=(3,), num_prompts=3,
                             warmup=0, timeout=30)  # fmt: skip
        (run,), _ = serve_load.run_sweep(
            config, lambda start: serve_workload.synthetic(3, 8, 5, start=start),
            progress=lambda text: None,
        )  # fmt: skip
    assert len(run.records) == 3
    for record in run.records:
        assert record.success and record.chunks == 5 and len(record.itl) == 4
        assert record.latency == pytest.approx(record.ttft + sum(record.itl))
        assert serve_metrics.tpot(record) == pytest.approx(sum(record.itl) / 4)


def test_output_tokens_are_counted_by_chunk_when_the_server_sends_no_usage(capsys):
    with ScriptedServer(Script(ttft=0.05, interval=0.02, tokens=6, usage=False)) as server:
        with pytest.warns(UserWarning, match="no token counts"):
            (result,) = serve_json([scripted(server), "--num-prompts", "3", "--warmup", "0",
                                    "--output-len", "6"], capsys)  # fmt: skip
    assert result["output_tokens_source"] == "chunks"
    assert result["total_output_tokens"] == 18
    # Without usage the prompt lengths are the workload's own (128 filler words each).
    assert result["total_input_tokens"] == 3 * 128


def slow_every_third(index: int) -> Script:
    """Requests 1, 4, … answer late; 2, 5, … generate slowly; 0, 3, … are fast."""
    if index % 3 == 1:
        return Script(ttft=0.5, interval=0.05, tokens=4)
    if index % 3 == 2:
        return Script(ttft=0.1, interval=0.25, tokens=4)
    return Script(ttft=0.1, interval=0.05, tokens=4)


@pytest.mark.parametrize(("objectives", "good"), [
    (["ttft:300"], 4),  # the late ones miss
    (["ttft:300", "tpot:150"], 2),  # only the fast ones are inside both
    (["e2el:400"], 2),  # 0.1 + 3 × 0.05 s; the others take 0.65 and 0.85 s
])  # fmt: skip
def test_goodput_counts_only_requests_inside_every_objective(objectives, good, capsys):
    with ScriptedServer(slow_every_third) as server:
        # The warm-up is request 0: the six timed ones are two of each kind.
        (result,) = serve_json([scripted(server), "-c", "6", "--num-prompts", "6",
                                "--output-len", "4", "--goodput", *objectives],
                               capsys)  # fmt: skip
    assert result["completed"] == 6
    assert result["request_goodput"] * result["duration"] == pytest.approx(good)
    assert result["request_throughput"] * result["duration"] == pytest.approx(6)


# -- the schedule --------------------------------------------------------------------------


def test_an_infinite_rate_sends_everything_at_once():
    assert arrival_offsets(5, math.inf, 1.0, np.random.default_rng(0)) == [0.0] * 5


def test_infinite_burstiness_spaces_requests_evenly():
    offsets = arrival_offsets(4, 2.0, math.inf, np.random.default_rng(0))
    assert offsets == pytest.approx([0.5, 1.0, 1.5, 2.0])


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gaps_are_gamma_with_vllms_shape_and_the_run_lasts_n_over_rate(burstiness):
    """Gamma(shape b, mean 1/rate): the gaps' coefficient of variation is 1/√b (1: a
    Poisson process); the offsets are scaled so the last is exactly n/rate."""
    rate, n = 5.0, 4000
    offsets = arrival_offsets(n, rate, burstiness, np.random.default_rng(7))
    gaps = np.diff([0.0, *offsets])
    assert offsets[-1] == pytest.approx(n / rate)
    assert all(gap >= 0 for gap in gaps)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.1)
    again = arrival_offsets(n, rate, burstiness, np.random.default_rng(7))
    assert again == offsets  # seeded: the same schedule every run
    assert arrival_offsets(n, rate, burstiness, np.random.default_rng(8)) != offsets


def test_requests_go_out_on_the_schedule():
    """--request-rate 4 --burstiness inf: a request every 250 ms, even though the
    concurrency would let all four go at once."""
    with ScriptedServer(Script(ttft=0.01, interval=0.01, tokens=2)) as server:
        config = ServeConfig(model=scripted(server), concurrency=(8,), num_prompts=4,
                             request_rate=4.0, burstiness=math.inf, warmup=0)  # fmt: skip
        (run,), _ = serve_load.run_sweep(
            config, lambda start: serve_workload.synthetic(4, 8, 2, start=start),
            progress=lambda text: None,
        )  # fmt: skip
    starts = sorted(record.start for record in run.records)
    assert all(record.success for record in run.records)
    assert all(gap > 0.24 for gap in np.diff(starts))  # a sleep may end a tick early


# -- failures are counted, never dropped ---------------------------------------------------


def test_a_server_that_dies_mid_run_gives_failed_counts_and_a_clean_report(capsys, tmp_path):
    out = tmp_path / "serve.jsonl"
    with ScriptedServer(Script(ttft=0.05, interval=0.05, tokens=6), die_after=3) as server:
        status, printed, err = serve([scripted(server), "-c", "2", "--num-prompts", "8",
                                      "--warmup", "0", "--output-len", "6", "--timeout",
                                      "30", "--out", str(out)], capsys)  # fmt: skip
    assert status == 0, err
    (result,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert result["completed"] + result["failed"] == 8
    assert result["failed"] >= 8 - 3 and 1 <= result["completed"] <= 3
    assert sum(e["count"] for e in result["errors"]) == result["failed"]
    assert len([line for line in printed.splitlines() if line.startswith("|")]) == 3
    for error in result["errors"]:  # the report lists them under the table
        assert f"c=2: {error['count']} failed: {error['message']}" in printed


def test_a_request_that_takes_too_long_is_failed_with_the_timeout(capsys):
    with ScriptedServer(Script(ttft=3.0, interval=0.05, tokens=2)) as server:
        status, printed, err = serve([scripted(server), "--num-prompts", "2", "--warmup", "0",
                                      "--timeout", "0.5", "-o", "json"], capsys)  # fmt: skip
    assert status == 1  # nothing completed: the command says so
    (result,) = json.loads(printed)
    assert result["completed"] == 0 and result["failed"] == 2
    (error,) = result["errors"]
    assert error["count"] == 2 and ("0.5 s" in error["message"])
    assert result["mean_ttft_ms"] is None and result["p99_e2el_ms"] is None
    assert "no request completed" in err


# -- the command line ----------------------------------------------------------------------


def test_markdown_json_and_appended_jsonl_carry_the_same_results(capsys, tmp_path):
    out = tmp_path / "serve.jsonl"
    with ScriptedServer(Script(ttft=0.05, interval=0.02, tokens=4)) as server:
        argv = [scripted(server), "-c", "1,3", "--num-prompts", "3", "--output-len", "4",
                "--label", "double", "--out", str(out)]  # fmt: skip
        status, table, err = serve(argv, capsys)
        as_json = serve_json(argv, capsys)
    assert status == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4  # two runs of two levels, appended
    assert [r["concurrency"] for r in as_json] == [1, 3]
    assert {r["label"] for r in lines} == {"double"} and lines[2:] == as_json
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 4  # head, rule, one row per level
    assert "TTFT ms median/p99" in rows[0] and set(rows[1]) <= set("|-: ")
    assert [cell.strip() for cell in rows[2].strip("|").split("|")][:3] == ["1", "3", "0"]
    assert "concurrency 1: 3 requests, 1 warm-up" in err


def test_rag_workload_reuses_or_rotates_the_sources():
    same = serve_workload.rag(4, 3, 8, same_sources=True)
    rotating = serve_workload.rag(4, 3, 8)

    def sources(request) -> str:
        content = request.messages[-1]["content"]
        return content[: content.rindex("</kilde>")]

    assert len({sources(r) for r in same}) == 1
    assert len({sources(r) for r in rotating}) == 4
    questions = [r.messages[-1]["content"][-80:] for r in same]
    assert len(set(questions)) == 4  # the question comes last and changes
    assert all(r.max_tokens == 8 and r.prompt is None for r in same)


def test_every_level_of_a_sweep_gets_prompts_of_its_own(capsys):
    """The second level must not find the first level's prompts in the server's cache."""
    with ScriptedServer(Script(ttft=0.01, interval=0.01, tokens=2)) as server:
        serve_json([scripted(server), "-c", "1,2", "--num-prompts", "3", "--warmup", "1",
                    "--output-len", "2", "--input-len", "8"], capsys)  # fmt: skip
        prompts = [request["prompt"] for request in server.received]
    assert len(prompts) == 2 * (3 + 1) and len(set(prompts)) == len(prompts)
    same = serve_workload.rag(2, 2, 4, same_sources=True, start=0)
    later = serve_workload.rag(2, 2, 4, same_sources=True, start=2)
    assert {r.messages[-1]["content"] for r in same}.isdisjoint(
        r.messages[-1]["content"] for r in later
    )


def test_synthetic_lengths_follow_the_range_ratio():
    fixed = serve_workload.synthetic(20, 50, 10)
    assert {len(r.prompt.split()) for r in fixed} == {50}
    assert {r.max_tokens for r in fixed} == {10}
    varied = serve_workload.synthetic(200, 50, 10, range_ratio=0.5, seed=3)
    words = [len(r.prompt.split()) for r in varied]
    assert min(words) >= 25 and max(words) <= 75 and len(set(words)) > 10
    assert len({r.prompt.split()[0] for r in varied}) == 200  # no shared first token


@pytest.mark.parametrize(("argv", "message"), [
    (["openai:m@http://127.0.0.1:9/v1", "--goodput", "ttfb:100"], "KEY:MS"),
    (["openai:m@http://127.0.0.1:9/v1", "-c", "0"], "whole numbers >= 1"),
    (["openai:m@http://127.0.0.1:9/v1", "--request-rate", "0"], "requests per second"),
    (["openai:m@http://127.0.0.1:9/v1", "--percentiles", "50,120"], "(0, 100]"),
    (["openai:m@http://127.0.0.1:9/v1", "--workload", "rag", "--sources", "99"], "12 documents"),
    (["openai:m@http://127.0.0.1:9/v1", "--parallel", "4"], "--start-server"),
    (["openai:m@http://127.0.0.1:9/v1", "--start-server"], "local GGUF"),
])  # fmt: skip
def test_bad_input_fails_with_a_clear_message(argv, message, capsys):
    status, _, err = serve(argv, capsys)
    assert status == 1
    assert message in err and err.startswith("borealis: error:")


def test_a_server_that_is_not_there_fails_every_request_quickly(capsys):
    port = support.free_port()
    status, printed, err = serve([f"openai:m@http://127.0.0.1:{port}/v1", "--num-prompts", "3",
                                  "-o", "json", "--timeout", "30"], capsys)  # fmt: skip
    assert status == 1
    (result,) = json.loads(printed)
    assert result["failed"] == 3 and "no OpenAI-compatible server" in result["errors"][0]["message"]


# -- real runtimes -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_concurrency_sweep_on_a_real_llama_server_reuses_the_shared_sources(llama_server, capsys):
    results = serve_json([f"openai:stand-in@{llama_server}", "-c", "1,2", "--num-prompts",
                          "3", "--workload", "rag", "--sources", "1", "--same-sources",
                          "--output-len", "4"], capsys)  # fmt: skip
    assert [r["concurrency"] for r in results] == [1, 2]
    for result in results:
        assert result["completed"] == 3 and result["failed"] == 0, result["errors"]
        assert result["runtime"] == "openai" and result["output_tokens_source"] == "usage"
        assert 3 <= result["total_output_tokens"] <= 12
        assert result["total_input_tokens"] > 3 * 100  # a source and the RAG prompt
        assert result["timings_source"] == "llama-server"
        assert result["prompt_cache_hit_rate"] is not None
        assert result["mean_server_prompt_ms"] > 0
    # One slot answers every question after the warm-up, and reuses part of the shared
    # sources (Gemma 3's sliding-window layers let llama-server go back only to one of
    # its context checkpoints, so not the whole prefix: about 25 % here).
    assert results[0]["prompt_cache_hit_rate"] > 0


@pytest.mark.slow
def test_start_server_puts_a_local_gguf_behind_llama_server(
    llama_server_binary, gemma_gguf, capsys, monkeypatch
):
    monkeypatch.setenv("BOREALIS_LLAMA_SERVER", str(llama_server_binary))
    results = serve_json([str(gemma_gguf), "--start-server", "-c", "1,2", "--num-prompts", "3",
                          "--input-len", "24", "--output-len", "4", "--num-ctx", "1024",
                          "--server-args", "--threads 2"], capsys)  # fmt: skip
    assert [r["completed"] for r in results] == [3, 3]
    started = results[0]["started_server"]
    assert started["args"][:3] == ["--parallel", "2", "--kv-unified"]
    assert "--threads" in started["args"] and results[0]["runtime"] == "openai"
    assert all(r["serialised"] is False and r["output_tokens_source"] == "usage"
               for r in results)  # fmt: skip


@pytest.mark.slow
def test_the_in_process_backend_is_serialised_and_says_so(gemma_gguf, llama_cpp, capsys):
    argv = [str(gemma_gguf), "-c", "1,2", "--num-prompts", "3", "--input-len", "16",
            "--output-len", "4", "--num-ctx", "512"]  # fmt: skip
    status, table, err = serve(argv, capsys)
    assert status == 0, err
    assert "serialised: llama.cpp in-process serves one request at a time" in table
    results = serve_json(argv, capsys)
    for result in results:
        assert result["serialised"] is True and result["runtime"] == "llama.cpp"
        assert result["completed"] == 3 and result["output_tokens_source"] == "usage"
        assert result["prompt_cache_hit_rate"] is not None
        assert result["timings_source"] == "llama.cpp"


def test_the_result_names_are_vllms(capsys):
    """Every vLLM name this command shares, spelled as `vllm bench serve` saves them."""
    with ScriptedServer(Script(ttft=0.02, interval=0.01, tokens=3)) as server:
        (result,) = serve_json([scripted(server), "--num-prompts", "2", "--output-len", "3",
                                "--percentiles", "25,99.9", "--goodput", "e2el:10000"],
                               capsys)  # fmt: skip
    names = {
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "duration",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
        "max_concurrency",
        "request_rate",
        "burstiness",
        "num_prompts",
    }
    for metric in ("ttft", "tpot", "itl", "e2el"):
        names |= {f"{s}_{metric}_ms" for s in ("mean", "median", "std", "p25", "p99.9")}
    assert names <= set(result)
    assert not any(key.startswith(("p50_", "p99_")) for key in result)
    assert result["p25_e2el_ms"] <= result["p99.9_e2el_ms"]


# --- energy (NVML) ---------------------------------------------------------------------


class FakePynvml:
    """A double of pynvml's functions the energy meter calls: devices whose counters
    (millijoules) the test sets; `supported=False` raises as NVML does on pre-Volta."""

    class NVMLError(Exception):
        pass

    def __init__(self, counters, supported=True):
        self.counters, self.supported = list(counters), supported

    def nvmlDeviceGetCount(self):
        return len(self.counters)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return self.counters[handle]


def test_the_energy_meter_sums_every_device_in_joules_or_says_none():
    from borealis_local.bench.nvml import Nvml

    assert Nvml(FakePynvml([1500, 2500])).energy_joules() == 4.0
    assert Nvml(FakePynvml([1500], supported=False)).energy_joules() is None
    assert Nvml(FakePynvml([])).energy_joules() is None


def test_joules_per_output_token_from_the_levels_energy_and_null_without_it(capsys):
    with ScriptedServer(Script(ttft=0.02, interval=0.01, tokens=5)) as server:
        (result,) = serve_json([scripted(server), "--num-prompts", "2", "--output-len", "5"],
                               capsys)  # fmt: skip
    # No NVML on this machine: null, never 0.
    assert result["energy_joules"] is None and result["joules_per_output_token"] is None
    meter = iter([100.0, 130.0])  # joules before and after the level
    level = serve_load.asyncio.run(
        serve_load.run_level(None, [], concurrency=1, offsets=[], timeout=5,
                             serialised=False, energy_meter=lambda: next(meter))
    )  # fmt: skip
    assert level.energy_joules == 30.0
    # Two answers of 5 chunks each (no usage): 10 tokens for 30 J.
    records = [
        serve_load.RequestRecord(i, ttft=0.1, itl=[0.01] * 4, latency=0.14, chunks=5)
        for i in range(2)
    ]
    figures = serve_metrics.summarise(records, 1.0, energy_joules=level.energy_joules)
    assert figures["energy_joules"] == 30.0
    assert figures["joules_per_output_token"] == pytest.approx(3.0)
