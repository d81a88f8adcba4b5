"""`borealis bench`: llama-bench's method and fields, child-process memory, sweeps,
resumable output, writers, compare, plots, errors.

Real parts: llama.cpp inference on the stand-in Gemma 3 270M (base model: rates and
memory are measured, never what it says), llama.cpp's own llama-bench for the field
names and model facts, a real llama-server on loopback for the OpenAI-compatible path,
and the Ollama-protocol test double (tests/ollama_double.py, NOT Ollama) for Ollama's
durations and /api/ps. Shapes are tiny (-p 16 -n 4 -r 2) so the suite stays fast.

What the memory assertions rest on (measured on the stand-in, 2 threads, pp16): the
child's resident set before it imports llama.cpp is ~19 MiB; at a test's peak it holds
the weights' mmap'd pages (every weight is read by inference, so they are all resident:
RssFile ~265 MiB for a 235 MiB model) plus what llama.cpp allocated and touched (RssAnon
~100 MiB: the repacked weights, KV cache, the touched part of the compute buffer). So a
row's peak must exceed the model's tensor bytes and stay below baseline + model file +
the logged non-model buffers + a margin for the shared libraries.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import statistics
import subprocess
import sys
import types
from pathlib import Path

import llama_server_support as support
import pytest
from conftest import REPO, require

from borealis_local import errors
from borealis_local.bench import cli, measure, plots, report, sweep
from borealis_local.bench.measure import Config, Target, Test
from borealis_local.bench.row import LLAMA_BENCH_FIELDS, ResultRow, identity_key
from borealis_local.errors import BorealisError, InvalidRequestError, ModelNotFoundError

llama_server_binary = support.llama_server_binary
llama_server_process = support.llama_server_process
llama_server = support.llama_server

TINY = ["-p", "16", "-n", "4", "-r", "2", "-t", "2"]
MiB = 2**20


def bench(argv: list[str], capsys) -> tuple[int, str, str]:
    """`borealis bench ARGV` in this process; (exit status, stdout, stderr)."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def fake_target(name: str, *, label: str | None = None, runtime: str = "llama.cpp") -> Target:
    return Target(name, runtime, path=f"/models/{name}" if runtime == "llama.cpp" else None,
                  server_model=None if runtime == "llama.cpp" else name, label=label)


# -- the real measurement (first run: the stand-in), shared by the tests below --------


@pytest.fixture(scope="module")
def first_run(gemma_gguf, llama_cpp, tmp_path_factory):
    """`borealis bench -p 16 -n 4 -r 2 -t 2 --chat 4 -fa off,auto` with no MODEL and no
    borealis-270m on disk: the stand-in, two configurations, rows kept in a JSONL."""
    out = tmp_path_factory.mktemp("bench") / "results.jsonl"
    argv = [*TINY, "--chat", "4", "-fa", "off,auto", "--no-pull", "--out", str(out), "-o",
            "json"]

    def not_here(model, quant):
        raise ModelNotFoundError(f"{model.name}:{quant} is not on this machine")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("borealis_local.runtime.resolve.find_local_gguf", not_here)
        patch.setenv("XDG_CACHE_HOME", str(gemma_gguf.parent.parent))  # where the stand-in is
        printed = io.StringIO()
        patch.setattr("sys.stdout", printed)
        status = cli.main(argv)
    assert status == 0
    return {"argv": argv, "out": out, "rows": json.loads(printed.getvalue())}


@pytest.fixture(scope="module")
def rows(first_run):
    return first_run["rows"]


def by_test(rows, name: str, fa: int = 0) -> dict:
    return next(r for r in rows if r["test"] == name and r["flash_attn"] == fa)


@pytest.mark.slow
def test_first_run_measures_the_stand_in_labelled_as_such(rows):
    # flash_attn as llama-bench's JSON has it: 0 off, -1 auto.
    assert [(r["test"], r["flash_attn"]) for r in rows] == [
        ("pp16", 0), ("tg4", 0), ("chat4", 0), ("pp16", -1), ("tg4", -1), ("chat4", -1)
    ]
    assert {r["label"] for r in rows} == {cli.STAND_IN_LABEL}
    assert all(r["model_filename"].endswith("gemma-3-270m-q4_k_m.gguf") for r in rows)
    table = report.to_markdown(rows)
    assert f"* {cli.STAND_IN_LABEL}" in table
    assert "gemma3 270M Q4_K - Medium *" in table


@pytest.mark.slow
def test_rows_carry_llama_bench_fields_with_llama_bench_types(rows):
    for row in rows:
        missing = [name for name in LLAMA_BENCH_FIELDS if name not in row]
        assert not missing
        assert isinstance(row["avg_ts"], float) and isinstance(row["stddev_ts"], float)
        assert isinstance(row["avg_ns"], int) and isinstance(row["stddev_ns"], int)
        assert len(row["samples_ns"]) == len(row["samples_ts"]) == 2
        assert all(isinstance(ns, int) and ns > 0 for ns in row["samples_ns"])
        assert row["n_threads"] == 2 and row["type_k"] == row["type_v"] == "f16"
        assert row["backends"] == "CPU" and row["n_gpu_layers"] == 0
        assert row["build_commit"].startswith("llama-cpp-python ")


@pytest.mark.slow
def test_rates_are_llama_bench_statistics_of_the_samples(rows):
    for row in rows:
        if row["test"].startswith("chat"):
            continue
        tokens = row["n_prompt"] + row["n_gen"]
        assert row["samples_ts"] == pytest.approx([1e9 * tokens / ns for ns in row["samples_ns"]])
        assert row["avg_ts"] == pytest.approx(statistics.fmean(row["samples_ts"]))
        assert row["stddev_ts"] == pytest.approx(statistics.stdev(row["samples_ts"]))  # n - 1
        assert row["avg_ns"] == round(statistics.fmean(row["samples_ns"]))
        assert row["n_ctx"] == tokens  # llama-bench's context: n_prompt + n_gen + n_depth


@pytest.mark.slow
def test_fields_and_model_facts_match_a_real_llama_bench(rows, gemma_gguf):
    binary, why = support.find_llama_server()
    require(binary is not None, why)
    result = subprocess.run(
        [str(binary.parent / "llama-bench"), "-m", str(gemma_gguf), *TINY, "-fa", "0",
         "-ngl", "0", "-o", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    theirs = report.parse_rows(result.stdout, source="llama-bench")
    ours = by_test(rows, "pp16")
    reference = next(r for r in theirs if r["n_prompt"] == 16)
    for name in LLAMA_BENCH_FIELDS:
        if name in reference:
            assert type(ours[name]) is type(reference[name]) or {
                type(ours[name]), type(reference[name])} <= {int, bool}, name
    for name in ("model_type", "model_size", "model_n_params", "n_prompt", "n_gen",
                 "n_threads", "n_batch", "n_ubatch", "type_k", "cpu_info"):
        assert ours[name] == reference[name], name
    pairs, only_theirs, _ = report.compare(theirs, [r for r in rows if r["flash_attn"] == 0])
    assert {p["a"]["test"] for p in pairs} == {"pp16", "tg4"} and not only_theirs


@pytest.mark.slow
def test_defaults_match_llama_benchs_defaults_row_for_row(rows, gemma_gguf):
    """Both tools on their defaults (flash attention auto): llama-bench writes
    "flash_attn": -1, so do we, and compare pairs them."""
    binary, why = support.find_llama_server()
    require(binary is not None, why)
    result = subprocess.run(
        [str(binary.parent / "llama-bench"), "-m", str(gemma_gguf), *TINY, "-ngl", "0",
         "-o", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    theirs = report.parse_rows(result.stdout, source="llama-bench")
    assert {r["flash_attn"] for r in theirs} == {-1}
    ours = [r for r in rows if r["flash_attn"] == -1]
    pairs, only_theirs, _ = report.compare(theirs, ours)
    assert {p["a"]["test"] for p in pairs} == {"pp16", "tg4"} and not only_theirs
    assert sweep.Sweep(models=["m"]).flash_attn == [-1]  # what plain `borealis bench` runs


@pytest.mark.slow
def test_each_configuration_ran_in_a_fresh_process_of_its_own(rows):
    pids = {r["flash_attn"]: {x["pid"] for x in rows if x["flash_attn"] == r["flash_attn"]}
            for r in rows}
    assert all(len(p) == 1 for p in pids.values())
    assert pids[0] != pids[-1] and os.getpid() not in pids[0] | pids[-1]
    # A fresh interpreter before llama.cpp: nothing of an earlier model in it.
    assert all(r["host_baseline_bytes"] < 100 * MiB for r in rows)


@pytest.mark.slow
def test_peak_memory_is_the_tests_own_and_plausible(rows):
    for row in rows:
        assert row["peak_host_scope"] == "test"
        assert row["peak_host_bytes"] > row["host_baseline_bytes"] + row["model_size"]
        others = sum(v for k, v in row["buffers"].items() if not k.endswith(" model"))
        ceiling = row["host_baseline_bytes"] + row["model_file_bytes"] + others + 256 * MiB
        assert row["peak_host_bytes"] < ceiling
        assert row["rss_file_bytes"] >= row["model_size"]  # every weight was read
        assert row["buffers"]["CPU_Mapped model"] > 0.9 * row["model_size"]
        assert row["load_ms"] > 0


@pytest.mark.slow
def test_chat_view_runs_through_the_template_and_sampling(rows):
    chat = by_test(rows, "chat4")
    assert chat["timings_source"] == "llama.cpp"
    assert all(1 <= n <= 4 for n in chat["completion_tokens"])
    assert chat["prompt_tokens"] > 20  # the template's turns around the message
    assert 0 < chat["ttft_ms"] * 1e6 < max(chat["samples_ns"])
    assert chat["avg_ts"] == pytest.approx(statistics.fmean(chat["samples_ts"]))
    assert (chat["type_k"], chat["n_ubatch"]) == ("f16", measure.CHAT_UBATCH)


@pytest.mark.slow
def test_resumed_run_skips_what_the_output_holds(first_run, capsys, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a configuration ran again")

    monkeypatch.setattr(sweep, "run_config", must_not_run)
    model = first_run["rows"][0]["model"]  # the stand-in's path, as the first run named it
    status, out, err = bench([model, *first_run["argv"]], capsys)
    assert status == 0, err
    assert "6 test(s) already in" in err
    assert [r["config_key"] for r in json.loads(out)] == [
        r["config_key"] for r in first_run["rows"]]
    assert len(report.read_rows(first_run["out"])) == 6  # nothing appended


# -- servers ---------------------------------------------------------------------------


@pytest.mark.slow
def test_openai_server_rates_from_llama_server_timings_and_concurrent_streams(
    llama_server, capsys
):
    status, out, err = bench([f"openai:borealis-270m@{llama_server}", "-p", "32", "-n", "4",
                              "-r", "2", "--chat", "4", "-c", "2", "--no-warmup", "-o", "json"],
                             capsys)
    assert status == 0, err
    rows = {r["test"]: r for r in json.loads(out)}
    assert set(rows) == {"pp32", "tg4", "chat4"}
    assert {r["runtime"] for r in rows.values()} == {"openai"}
    assert rows["pp32"]["timings_source"] == "llama-server"
    assert all(n >= 16 for n in rows["pp32"]["tokens"])  # prompt tokens the server evaluated
    assert all(1 <= n <= 4 for n in rows["tg4"]["tokens"])
    chat = rows["chat4"]
    assert chat["concurrency"] == 2 and all(2 <= n <= 8 for n in chat["completion_tokens"])
    assert all(r["n_threads"] is None and r.get("peak_host_bytes") is None for r in rows.values())


@pytest.fixture(scope="module")
def ollama_double(go_renderer, llama_cpp, gemma_gguf, tmp_path_factory):
    from ollama_double import OllamaDouble

    from borealis_local.catalog import get_model
    from borealis_local.ollama_install import create_model

    with OllamaDouble(go_renderer, home=tmp_path_factory.mktemp("ollama-double")) as double:
        list(create_model(get_model("270m"), from_path=gemma_gguf, host=double.url,
                          timeout=60))
        yield double


@pytest.mark.slow
def test_ollama_rates_from_its_durations_and_memory_from_api_ps(ollama_double, capsys,
                                                                monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama_double.url)  # the child inherits it
    status, out, err = bench(["ollama:borealis:270m", "-p", "24", "-n", "4", "-r", "2",
                              "--chat", "0", "--no-warmup", "-o", "json"], capsys)
    assert status == 0, err
    rows = {r["test"]: r for r in json.loads(out)}
    assert set(rows) == {"pp24", "tg4"}
    assert {r["timings_source"] for r in rows.values()} == {"ollama"}
    assert rows["tg4"]["server_model_bytes"] > 200 * MiB
    assert rows["tg4"]["server_vram_bytes"] == 0  # the double runs on the CPU


def test_a_server_that_is_not_running_fails_in_the_child_with_our_error(capsys, monkeypatch):
    port = support.free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")
    status, _, err = bench(["ollama:borealis:270m", "-r", "1", "--timeout", "60"], capsys)
    assert status == 1
    assert "Ollama is not running" in err or "ollama serve" in err


class _FakeNvml(types.ModuleType):
    """pynvml's calls the probes make, for two cards, one running this process."""

    def __init__(self, pid: int):
        super().__init__("pynvml")
        self.pid, self.calls = pid, []
        self.nvmlInit = lambda: self.calls.append("init")
        self.nvmlShutdown = lambda: self.calls.append("shutdown")
        self.nvmlDeviceGetCount = lambda: 2
        self.nvmlDeviceGetHandleByIndex = lambda index: index
        self.nvmlDeviceGetName = lambda handle: [b"Small card", "Big card"][handle]
        self.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(
            total=[8, 80][handle] * 2**30, used=[1, 3][handle] * 2**30)
        self.nvmlDeviceGetComputeRunningProcesses = lambda handle: [
            types.SimpleNamespace(pid=self.pid, usedGpuMemory=512 * MiB)] if handle else []


def test_one_nvml_probe_serves_the_bench_and_recommend(monkeypatch):
    from borealis_local.bench import probes, recommend

    nvml = _FakeNvml(os.getpid())
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpu = probes.GpuMemory()
    assert gpu.sample() == (512 * MiB, "nvml-process")
    assert gpu.names() == ["Small card", "Big card"]
    nvml.pid = -1  # process ids hidden (a container): the devices' growth instead
    assert gpu.sample() == (0, "nvml-device-delta")
    assert recommend._nvidia_vram() == (80 * 2**30, "Big card")
    assert nvml.calls == ["init", "init", "shutdown"]  # recommend's probe closes NVML


# -- comma lists, sweeps and planning ---------------------------------------------------


@pytest.mark.parametrize(("text", "values"), [
    ("512", [512]),
    ("16,32", [16, 32]),
    ("0-4096+1024", [0, 1024, 2048, 3072, 4096]),
    ("128-1024*2", [128, 256, 512, 1024]),
    ("1-3,8", [1, 2, 3, 8]),
])
def test_int_lists_read_like_llama_bench(text, values):
    assert sweep.parse_int_list(text, name="-p") == values


@pytest.mark.parametrize("text", ["16,x", "", "16,,32", "8-1", "1-8*1", "1.5", "-3"])
def test_bad_int_lists_are_refused_with_the_syntax(text):
    with pytest.raises(InvalidRequestError, match="not a number or a range|never ends"):
        sweep.parse_int_list(text, name="-p")


def test_flash_attention_and_choice_lists():
    # llama-bench's spellings: auto|on|off, -1|1|0 (and its other words), into its values.
    assert sweep.parse_axis("flash_attn", "auto,on,off,-1,1,0,enabled") == [
        -1, 1, 0, -1, 1, 0, 1]
    assert sweep.parse_axis("flash_attn", [0, 1, True, "auto"]) == [0, 1, 1, -1]  # TOML
    for bad in ("2", "yes", [2], -2):
        with pytest.raises(InvalidRequestError, match="-fa.* is not one of auto, on, off"):
            sweep.parse_axis("flash_attn", bad)
    with pytest.raises(InvalidRequestError, match="flash_attn must be -1"):
        Config(fake_target("a.gguf"), (Test(n_prompt=16),), flash_attn=2)
    assert Config(fake_target("a.gguf"), (Test(n_prompt=16),)).flash_attn == -1
    assert Config(fake_target("a.gguf"), (Test(n_prompt=16),), flash_attn=True).flash_attn == 1
    assert sweep.parse_axis("type_k", "f16,q8_0") == ["f16", "q8_0"]
    with pytest.raises(InvalidRequestError, match="not one of"):
        sweep.parse_axis("type_k", "q9")
    assert sweep.parse_axis("n_gpu_layers", "-1") == [-1]


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(cli.with_default_subcommand(["bench", *argv]))


def test_comma_lists_and_repeated_options_make_a_sweep_in_llama_bench_order():
    args = parsed("a.gguf,b.gguf", "-p", "16,32", "-p", "64", "-n", "4", "-fa", "0,1",
                  "-t", "1,2", "--chat", "0", "-r", "3")
    configs = sweep.plan(cli.sweep_from_args(args), resolve=fake_target)
    settings = [(c.target.name, c.flash_attn, c.n_threads) for c in configs]
    assert settings == [
        (m, fa, t) for m in ("a.gguf", "b.gguf") for fa in (0, 1) for t in (1, 2)
    ]
    (default,) = sweep.plan(cli.sweep_from_args(parsed("a.gguf")), resolve=fake_target)
    assert default.flash_attn == -1  # auto, llama-bench's default
    assert [t.name for t in configs[0].tests] == ["pp16", "pp32", "pp64", "tg4"]
    assert {c.reps for c in configs} == {3}


def test_depth_and_prompt_generation_pairs():
    args = parsed("a.gguf", "-p", "16", "-n", "4", "-d", "0,8", "-pg", "16,4", "--chat", "4")
    (config,) = sweep.plan(cli.sweep_from_args(args), resolve=fake_target)
    assert [t.name for t in config.tests] == [
        "pp16", "tg4", "pp16+tg4", "pp16 @ d8", "tg4 @ d8", "pp16+tg4 @ d8", "chat4"]


def test_plan_skips_done_tests_and_tests_a_setting_does_not_change():
    spec = sweep.Sweep(models=["a.gguf", "openai:m@http://127.0.0.1:1/v1"], n_prompt=[16],
                       n_gen=[4], chat=[4], threads=[1, 2], type_k=["f16", "q8_0"])
    full = sweep.plan(spec, resolve=lambda name, label=None: measure.resolve_target(name)
                      if name.startswith("openai:") else fake_target(name))
    local = [c for c in full if c.target.runtime == "llama.cpp"]
    server = [c for c in full if c.target.runtime == "openai"]
    assert len(local) == 4 and len(server) == 1  # threads and KV types mean nothing to a server
    chats = [(c.n_threads, c.type_k) for c in local for t in c.tests if t.chat]
    assert chats == [(1, "f16"), (2, "f16")]  # the chat view keeps an f16 cache
    done = {local[0].key(Test(n_prompt=16))}
    again = sweep.plan(spec, done=done, resolve=lambda name, label=None: fake_target(
        name, runtime="openai" if name.startswith("openai:") else "llama.cpp"))
    assert [t.name for t in again[0].tests] == ["tg4", "chat4"]


def test_done_keys_come_from_the_output_file(tmp_path):
    config = Config(fake_target("a.gguf"), (Test(n_prompt=16),), n_threads=2, n_gpu_layers=0)
    row = {**config.identity(Test(n_prompt=16)).to_dict(), "avg_ts": 1.0}
    path = tmp_path / "out.jsonl"
    path.write_text(report.to_jsonl([row]))
    assert sweep.done_keys(path) == {config.key(Test(n_prompt=16))}
    assert sweep.done_keys(tmp_path / "missing.jsonl") == set()


def test_a_row_cut_off_by_a_kill_is_dropped_before_appending(tmp_path):
    path = tmp_path / "out.jsonl"
    whole = report.to_jsonl([synthetic("pp512", 500.0, 5.0)])
    path.write_text(whole + '{"build_commit": "llama-cpp')
    assert len(report.read_rows(path)) == 1
    sweep.drop_partial_line(path)
    assert path.read_text() == whole


def test_configuration_errors_say_what_to_do():
    local, server = fake_target("a.gguf"), fake_target("m", runtime="ollama")
    with pytest.raises(InvalidRequestError, match="llama-server"):
        Config(local, (Test(n_gen=4, chat=True),), concurrency=2)
    with pytest.raises(InvalidRequestError, match="depth"):
        Config(server, (Test(n_prompt=16, n_depth=8),))
    with pytest.raises(InvalidRequestError, match="KV cache type"):
        Config(local, (Test(n_prompt=16),), type_v="q9_0")
    with pytest.raises(InvalidRequestError, match="n_prompt or n_gen"):
        Test()


def test_sweep_toml_reads_like_the_command_line(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('models = ["borealis-1b", "./x.gguf"]\nquants = ["Q4_K_M", "Q8_0"]\n'
                    'n_prompt = "128-512*2"\nflash_attn = [0, 1]\nreps = 2\n'
                    'output = "out.jsonl"\n')
    spec = sweep.load_toml(path)
    assert spec.models == ["borealis-1b:Q4_K_M", "borealis-1b:Q8_0", "./x.gguf"]
    assert spec.n_prompt == [128, 256, 512] and spec.flash_attn == [0, 1]
    assert (spec.reps, spec.output) == (2, "out.jsonl")
    path.write_text('models = ["a.gguf"]\nthread = [2]\n')
    with pytest.raises(InvalidRequestError, match="unknown key"):
        sweep.load_toml(path)


def test_the_example_sweep_in_benchmarks_plans():
    examples = sorted((REPO / "benchmarks").glob("*.toml"))
    assert examples
    for example in examples:
        configs = sweep.plan(sweep.load_toml(example), resolve=fake_target)
        assert configs and all(c.tests for c in configs)


# -- writers, compare, plots ------------------------------------------------------------


def synthetic(test: str, avg: float, sd: float, **fields) -> dict:
    n_prompt, n_gen = (int(test[2:]), 0) if test.startswith("pp") else (0, int(test[2:]))
    samples = [avg - sd, avg + sd]
    row = {name: None for name in LLAMA_BENCH_FIELDS}
    row.update(model_type="gemma3 270M Q4_K - Medium", model_size=246587904,
               model_n_params=268098176, backends="CPU", n_threads=2, n_gpu_layers=0,
               flash_attn=-1, type_k="f16", type_v="f16", n_batch=2048, n_ubatch=512,
               n_prompt=n_prompt, n_gen=n_gen, n_depth=0, test=test, avg_ts=avg,
               stddev_ts=sd, samples_ts=samples, samples_ns=[1, 2], runtime="llama.cpp",
               model="m", concurrency=1, n_ctx=n_prompt + n_gen, peak_host_bytes=400 * MiB,
               quant="Q4_K_M")
    row.update(fields)
    return row


def test_a_row_read_back_writes_what_it_was_read_from():
    """Unknown keys are kept where they were, missing fields read as None and stay
    unwritten: a llama-bench row, or one from an older borealis, round-trips exactly."""
    written = {"build_commit": "b1", "cpu_mask": "0x0", "n_prompt": 16, "n_gen": 0,
               "avg_ts": 5.0, "test": "pp16", "peak_host_scope": "test"}
    row = ResultRow.from_dict(written)
    assert row.avg_ts == 5.0 and row.peak_host_scope == "test" and row.ttft_ms is None
    assert row.extra == {"cpu_mask": "0x0"} and "ttft_ms" not in row
    assert row.to_dict() == written and list(row.to_dict()) == list(written)
    assert row == written and pickle.loads(pickle.dumps(row)) == row
    again = report.parse_rows(report.to_jsonl([written]))[0]
    assert list(again) == [*written, "model", "runtime", "concurrency"]  # normalised()
    assert again.runtime == "llama-bench" and again.test == "pp16"


def test_a_measured_row_has_llama_benchs_fields_first_and_only_what_was_measured():
    from borealis_local.bench import run

    config = Config(fake_target("m", runtime="openai"), (Test(n_prompt=16),), reps=2)
    measured = run.Run(config, lambda row: None, lambda text: None).row(
        Test(n_prompt=16), run.summary([10, 20], [2.0, 1.0]), tokens=[16, 16],
        timings_source="client")
    assert list(measured) == [
        *LLAMA_BENCH_FIELDS, "runtime", "model", "test", "concurrency", "label", "quant",
        "model_file_bytes", "reps", "pid", "tokens", "timings_source", "config_key"]
    assert measured.peak_host_bytes is None and "peak_host_bytes" not in measured
    assert measured.config_key == config.key(Test(n_prompt=16)) == identity_key(
        measured.to_dict())
    assert (measured.avg_ns, measured.stddev_ts, measured.n_threads) == (15, 0.5 ** 0.5, None)
    assert json.loads(report.to_jsonl([measured])) == measured.to_dict()


def test_markdown_table_reads_like_llama_bench():
    text = report.to_markdown([synthetic("pp512", 500.0, 5.0), synthetic("tg128", 50.0, 0.5)])
    lines = text.splitlines()
    assert lines[0].startswith("| model") and "| test" in lines[0] and "t/s" in lines[0]
    assert "| gemma3 270M Q4_K - Medium |" in lines[2]
    assert "235.16 MiB" in lines[2] and "268.10 M" in lines[2]
    assert "500.00 ± 5.00" in lines[2] and "pp512" in lines[2] and "tg128" in lines[3]
    assert " fa " not in lines[0]  # shown only when it varies or is not the default


def test_csv_and_json_writers_round_trip(tmp_path):
    rows = [synthetic("pp512", 500.0, 5.0, buffers={"CPU KV": 1}), synthetic("tg128", 50.0, 0.5)]
    table = list(csv.DictReader(io.StringIO(report.render(rows, "csv"))))
    assert list(table[0])[: len(LLAMA_BENCH_FIELDS)] == list(LLAMA_BENCH_FIELDS)
    assert float(table[0]["avg_ts"]) == 500.0 and json.loads(table[0]["samples_ts"]) == [495, 505]
    assert json.loads(table[0]["buffers"]) == {"CPU KV": 1}
    for fmt in ("json", "jsonl"):
        path = tmp_path / f"rows.{fmt}"
        path.write_text(report.render(rows, fmt))
        assert report.read_rows(path) == rows
    with pytest.raises(InvalidRequestError, match="md, json, jsonl, csv"):
        report.render(rows, "xml")


def test_compare_gives_ratios_with_their_spread():
    a = [synthetic("pp512", 500.0, 10.0), synthetic("tg128", 50.0, 1.0)]
    b = [synthetic("pp512", 550.0, 11.0), synthetic("tg128", 40.0, 0.0, peak_host_bytes=200 * MiB),
         synthetic("tg256", 40.0, 0.0)]
    pairs, only_a, only_b = report.compare(a, b)
    ratios = {p["a"]["test"]: p for p in pairs}
    assert ratios["pp512"]["ratio"] == pytest.approx(1.1)
    assert ratios["pp512"]["ratio_stddev"] == pytest.approx(1.1 * (0.02**2 + 0.02**2) ** 0.5)
    assert ratios["tg128"]["ratio"] == pytest.approx(0.8)
    assert ratios["tg128"]["memory_ratio"] == pytest.approx(0.5)
    assert not only_a and [r["test"] for r in only_b] == ["tg256"]
    text = report.compare_markdown((pairs, only_a, only_b), "x", "y")
    assert "1.100 ± 0.031" in text and "only in y: m tg256" in text


def test_compare_matches_llama_bench_rows_and_can_ignore_fields():
    theirs = {k: v for k, v in synthetic("pp512", 500.0, 5.0).items()
              if k in LLAMA_BENCH_FIELDS}  # no `test`, `model`: llama-bench's own JSON
    theirs["n_gpu_layers"] = -1  # meaningless on a CPU build
    ours = synthetic("pp512", 490.0, 5.0, n_threads=4)
    pairs, _, _ = report.compare([report.normalised(theirs)], [ours])
    assert not pairs  # threads differ
    pairs, _, _ = report.compare([report.normalised(theirs)], [ours], ignore=["n_threads"])
    assert pairs[0]["ratio"] == pytest.approx(0.98)
    with pytest.raises(InvalidRequestError, match="matched on"):
        report.compare([], [], ignore=["colour"])


def test_compare_command(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(report.to_jsonl([synthetic("pp512", 500.0, 5.0)]))
    b.write_text(report.to_json([synthetic("pp512", 250.0, 5.0)]))
    status, out, _ = bench(["compare", str(a), str(b)], capsys)
    assert status == 0 and "| 0.500 ± " in out
    status, out, _ = bench(["compare", str(a), str(b), "-o", "json"], capsys)
    assert json.loads(out)[0]["ratio"] == pytest.approx(0.5)
    status, _, err = bench(["compare", str(a)], capsys)
    assert status == 1 and "two result files" in err


def test_plots_are_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [synthetic("pp512", 500.0, 5.0), synthetic("tg128", 50.0, 1.0),
            synthetic("pp512", 90.0, 1.0, model_size=2489894560, quant="Q4_K_M", n_ctx=4096,
                      model_type="gemma3 4B Q4_K - Medium", peak_host_bytes=3 * 2**30)]
    written = plots.plot(rows, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["memory_vs_context.png", "rate_vs_size.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


# -- errors and the first run -----------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["x.gguf", "-o", "xml"], "not an output format"),
    (["x.gguf", "-p", "16,x"], "not a number or a range"),
    (["x.gguf", "-fa", "2"], "-fa '2' is not one of auto, on, off"),
    (["x.gguf", "-r", "0"], "-r must be 1 or more"),
    (["./no-such-model.gguf"], "no such model file"),
    (["--sweep", "no-such-sweep.toml"], "no such sweep file"),
])
def test_bad_input_fails_with_a_clear_message(argv, message, capsys):
    status, _, err = bench(argv, capsys)
    assert status == 1
    assert message in err


def test_a_catalog_model_that_is_not_here_says_how_to_get_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BOREALIS_MODELS", str(tmp_path))
    monkeypatch.setattr("borealis_local.runtime.resolve.find_local_gguf",
                        lambda m, q: (_ for _ in ()).throw(ModelNotFoundError(
                            f"{m.name}:{q} is not on this machine: download it with `hf "
                            f"download {m.gguf_repo} {m.gguf_filename(q)}`")))
    status, _, err = bench(["borealis-27b:Q2_K"], capsys)
    assert status == 1 and "hf download" in err


def test_first_run_prefers_borealis_and_labels_the_stand_in(monkeypatch, gemma_gguf):
    def only(*names):
        def find(model, quant):
            if model.name not in names:
                raise ModelNotFoundError(f"{model.name} is not on this machine")
            return gemma_gguf
        return find

    find = "borealis_local.runtime.resolve.find_local_gguf"
    monkeypatch.setattr(find, only("borealis-270m", "borealis-open-270m"))
    assert cli.first_run_model(pull=False) == ("borealis-270m:Q4_K_M", None)
    monkeypatch.setattr(find, only("borealis-open-270m"))
    assert cli.first_run_model(pull=False) == ("borealis-open-270m:Q4_K_M", None)

    monkeypatch.setattr(find, only())
    monkeypatch.setenv("XDG_CACHE_HOME", str(gemma_gguf.parent.parent))
    name, label = cli.first_run_model(pull=False)
    assert Path(name) == gemma_gguf and label == cli.STAND_IN_LABEL


def test_first_run_downloads_the_open_270m_and_falls_back_when_it_cannot(
        monkeypatch, gemma_gguf, capsys):
    """The open variant needs no licence step or login, so a first run can fetch it."""
    hub = pytest.importorskip("borealis_local.hub")
    monkeypatch.setattr("borealis_local.runtime.resolve.find_local_gguf",
                        lambda m, q: (_ for _ in ()).throw(ModelNotFoundError("not here")))
    pulled = []

    def pull(model, quant, **options):
        pulled.append((model.name, quant, options.get("accept_license", False)))

    monkeypatch.setattr(hub, "pull", pull)
    assert cli.first_run_model() == ("borealis-open-270m:Q4_K_M", None)
    assert pulled == [("borealis-open-270m", "Q4_K_M", False)]

    def offline(model, quant, **options):
        raise hub.HubError("cannot reach the hub at https://huggingface.co")

    monkeypatch.setattr(hub, "pull", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(gemma_gguf.parent.parent))
    name, label = cli.first_run_model()
    assert Path(name) == gemma_gguf and label == cli.STAND_IN_LABEL
    assert "cannot reach the hub" in capsys.readouterr().err


def test_mean_interval_is_students_t_over_the_values():
    values = [0.98, 1.00, 1.02]
    mean, error, half = report.mean_interval(values)
    assert mean == pytest.approx(1.0)
    assert error == pytest.approx(statistics.stdev(values) / 3**0.5)
    assert half == pytest.approx(4.303 * error)  # t(0.975, 2 degrees of freedom)
    assert report.mean_interval([1.0] * 40)[2] == 0
    with pytest.raises(InvalidRequestError, match="two or more"):
        report.mean_interval([1.0])


def _tg_row(**fields):
    return {"runtime": "llama.cpp", "test": "tg128", "n_prompt": 0, "n_gen": 128,
            "n_depth": 0, "avg_ts": 40.0, "model_size": 250_000_000, "backends": "CPU",
            "n_gpu_layers": 0} | fields


def test_measured_bandwidth_comes_from_a_plain_generation_row():
    rows = [_tg_row(test="pp512", n_prompt=512, n_gen=0), _tg_row(n_depth=4096, avg_ts=1.0),
            _tg_row(runtime="ollama", avg_ts=2.0), _tg_row()]
    assert cli.measured_bandwidth(rows) == (40.0 * 250_000_000, False)
    assert cli.measured_bandwidth([_tg_row(backends="CUDA", n_gpu_layers=-1)])[1] is True
    assert cli.measured_bandwidth(rows[:3]) is None


def test_first_run_advice_projects_the_picks_speed(monkeypatch):
    from borealis_local.bench import recommend

    machine = recommend.Machine(ram=24 * 1024 * MiB)
    monkeypatch.setattr(recommend, "this_machine", lambda: machine)
    advice = recommend.recommend(machine)
    bandwidth = 40.0 * 250_000_000
    pick, fast = advice.pick, recommend.fast_pick(advice, bandwidth)
    text = cli.recommend_advice([_tg_row()])
    assert f"borealis-{pick.size}:{pick.quant} with num_ctx {pick.n_ctx}" in text
    assert f"about {recommend.generation_rate(pick, bandwidth):.1f} tokens/s" in text
    assert f"borealis-{fast.size}:{fast.quant}" in text and "faster than reading" in text
    # A speed measured on a GPU says nothing about a model that would run on the CPU.
    on_gpu = cli.recommend_advice([_tg_row(backends="CUDA", n_gpu_layers=-1)])
    assert "tokens/s" not in on_gpu and f"borealis-{pick.size}:{pick.quant}" in on_gpu


def test_recommend_advice_never_breaks_the_first_run():
    advice = cli.recommend_advice()
    assert advice is None or isinstance(advice, str)


@pytest.mark.parametrize("error", [
    errors.ServerUnavailableError("start it"),
    errors.ContextOverflowError("too long", prompt_tokens=900, n_ctx=512),
    errors.ChecksumMismatchError("flipped", expected="aa", actual="bb"),
    errors.StructuredOutputError("cut", text='{"a": ', max_tokens=8),
    errors.ModelfileError("bad", line=3),
])
def test_errors_from_the_child_arrive_whole(error):
    # The child process pickles the error itself: class, message and fields survive.
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error) and isinstance(again, BorealisError)
