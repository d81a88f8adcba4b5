"""The memory estimator and `borealis recommend`, checked against llama.cpp itself.

- The tensor types the estimator expects for each size and quant are the ones
  llama.cpp's quantiser chooses: its dry run (no data read, a sparse input file) for
  all 5 sizes x 7 quants, and the stand-in's real Q4_K_M table.
- Buffer sizes as llama.cpp logs them when it loads the stand-in (KV cache for both
  sliding-window policies, weights, repacked weights, the compute reserve with and
  without flash attention).
- The estimate against the peak resident memory (VmHWM) of a child process that loads
  the stand-in with llama-cpp-python as our backend opens it (flash attention as `auto`
  resolves on the CPU, a windowed sliding-window cache) and fills its context: within
  15%; also with flash attention off.
- With images: the stand-in, a full-depth synthetic Gemma 3 projector (the real tower's
  shapes, random weights) and one encoded 896 px image, in a child run by our backend:
  clip.cpp's logged weights and compute buffer are the estimate's to the MiB, and the
  peak (and what the projector adds to the text model's) within 15%.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from borealis_local.bench import estimate as est
from borealis_local.bench import recommend as rec
from borealis_local.bench.tensors import parameter_count, tensor_types
from borealis_local.catalog import DEFAULT_NUM_CTX, QUANTS, SHAPES, SIZES
from borealis_local.errors import BorealisError

GiB = 1 << 30
MiB = 1 << 20

# -- a measured peak ----------------------------------------------------------------------

# Runs in a fresh interpreter, so no other test's memory is in the peak: loads GGUF with
# llama-cpp-python at n_ctx, evaluates n_prompt tokens (<bos> first) in 512-token batches,
# generates n_gen greedily, and prints VmHWM with llama.cpp's log (buffer sizes) on stderr.
# swa_full and flash_attn: "default" leaves llama-cpp-python's own (full-size, off).
_CHILD = r"""
import json, sys
import llama_cpp
path, n_ctx, n_prompt, n_gen, swa_full, flash_attn = sys.argv[1:7]
extra = {} if swa_full == "default" else {"swa_full": swa_full == "1"}
if flash_attn != "default":
    extra["flash_attn"] = flash_attn == "1"
llm = llama_cpp.Llama(path, n_ctx=int(n_ctx), n_threads=2, verbose=True, **extra)
tokens = [2] + [300 + (7919 * i) % 260000 for i in range(1, int(n_prompt))]
llm.eval(tokens)
for _ in range(int(n_gen)):
    llm.eval([llm.sample(temp=0.0)])
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print("PEAK " + json.dumps(int(peak) * 1024), file=sys.stderr, flush=True)
"""
_BUFFER = re.compile(r"(\S+) (model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


def measure(path: Path, n_ctx: int, n_prompt: int, n_gen: int = 4, swa_full: str = "0",
            flash_attn: str = "1"):
    """(peak bytes, {buffer: MiB}) of a child that loads `path` and runs a prompt, by
    default as our backend opens it on the CPU (windowed cache, flash attention on)."""
    args = [str(path), str(n_ctx), str(n_prompt), str(n_gen), swa_full, flash_attn]
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak = json.loads(result.stderr.split("PEAK ")[1].splitlines()[0])
    buffers: dict[str, float] = {}
    for name, kind, mib in _BUFFER.findall(result.stderr):
        buffers[f"{name} {kind}"] = buffers.get(f"{name} {kind}", 0.0) + float(mib)
    return peak, buffers


def _require_proc():
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")


# -- the tensors and their types ----------------------------------------------------------


def test_parameter_counts_match_the_sizes_names():
    counts = {size: parameter_count(SHAPES[size]) for size in SIZES}
    assert counts["270m"] == 268_098_176  # the stand-in's own count
    for size, count in counts.items():
        nominal = float(size[:-1]) * (1e6 if size.endswith("m") else 1e9)
        assert 0.7 < count / nominal < 1.1, size


def test_the_stand_ins_tensor_table_is_the_q4_k_m_plan(gemma_gguf):
    from borealis_local.gguf_header import read_header

    actual = [(t.name, t.dims, t.type) for t in read_header(gemma_gguf).tensors]
    planned = [(spec.name, spec.dims, q) for spec, q in tensor_types(SHAPES["270m"], "Q4_K_M")]
    assert actual == planned


def test_every_size_and_quant_gets_the_types_llama_cpp_chooses(tmp_path, llama_cpp):
    """llama.cpp's quantiser in dry-run mode plans each tensor's type and logs it."""
    from borealis_local.bench.synth import FILE_TYPES, architecture_fields, write_random_f16
    from borealis_local.runtime import llama_log

    planned_line = re.compile(r"\]\s+(\S+)\s+- \[.*type =\s+(\w+), size =.*?(?:\((\w+)\))?\s*$")
    llama_log.install()  # llama.cpp's log, kept where the test can read it
    for size in SIZES:
        sparse = tmp_path / f"{size}.gguf"
        write_random_f16(sparse, SHAPES[size], architecture_fields(size), data=False)
        for quant in QUANTS:
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = int(FILE_TYPES[quant])
            params.dry_run = True
            mark = llama_log.mark()
            status = llama_cpp.llama_model_quantize(
                str(sparse).encode(), str(tmp_path / "unused.gguf").encode(), params
            )
            log = llama_log.text_since(mark)
            assert status == 0, log[-2000:]
            found = [planned_line.search(line) for line in log.splitlines()]
            chosen = {m[1]: (m[3] or m[2]).upper() for m in found if m}
            planned = {spec.name: q.name for spec, q in tensor_types(SHAPES[size], quant)}
            assert chosen == planned, (size, quant)
        sparse.unlink()
    assert not (tmp_path / "unused.gguf").exists()


# -- what llama.cpp allocates, and the peaks ----------------------------------------------


@pytest.fixture(scope="module")
def short_prompt_2048(gemma_gguf, llama_cpp):
    """The stand-in at n_ctx 2048, as our backend opens it, with a 16-token prompt."""
    _require_proc()
    return measure(gemma_gguf, 2048, 16)


@pytest.mark.slow
def test_buffers_llama_cpp_logs_are_the_estimates(gemma_gguf, short_prompt_2048):
    shape, n_ctx = SHAPES["270m"], 2048
    _, windowed = short_prompt_2048
    # llama-cpp-python's own defaults: a full-size cache for the sliding-window layers
    # too, flash attention off.
    _, full = measure(gemma_gguf, n_ctx, 8, swa_full="default", flash_attn="default")
    expected = est.estimate("270m", "Q4_K_M", n_ctx, gguf_path=gemma_gguf)
    assert (expected.swa_full, expected.flash_attn) == (False, True)  # our backend's
    assert full["CPU_Mapped model"] * MiB == pytest.approx(expected.weights, abs=0.01 * MiB)
    assert full.get("CPU_REPACK model", 0) * MiB == pytest.approx(expected.repack, abs=0.01 * MiB)
    assert full["CPU KV"] * MiB == est.kv_cache_bytes(shape, n_ctx, swa_full=True)
    # swa_full=false (our backend's default and llama-server's): the windowed sizing.
    assert windowed["CPU KV"] * MiB == expected.kv_cache
    assert windowed["CPU KV"] * MiB == est.kv_cache_bytes(shape, n_ctx, runtime="llama-server")
    assert windowed["CPU KV"] * MiB == shape.kv_cache_bytes(n_ctx)
    # The graph buffer llama.cpp reserves (what a GPU would allocate): at 2k the logits.
    for buffers, flash_attn in ((full, False), (windowed, True)):
        reserved = est.compute_reserved(shape, n_ctx, flash_attn=flash_attn)
        assert buffers["CPU compute"] * MiB == pytest.approx(reserved, rel=0.02)


def test_flash_attention_keeps_long_contexts_compute_reserve_small(gemma_gguf, llama_cpp):
    """Where attention outgrows the logits (the stand-in at 128k cells without flash
    attention; with it only the f16 mask grows, past 256k), the reserve llama.cpp
    computes for a context on the model loaded without weights is the estimate's."""
    from borealis_local.runtime import llama_log

    llama_log.install()
    params = llama_cpp.llama_model_default_params()
    params.no_alloc, params.load_mode = True, llama_cpp.LLAMA_LOAD_MODE_NONE
    model = llama_cpp.llama_model_load_from_file(str(gemma_gguf).encode(), params)
    assert model
    try:
        for n_ctx, flash_attn in ((131072, False), (131072, True), (1 << 20, True)):
            context_params = llama_cpp.llama_context_default_params()
            context_params.n_ctx, context_params.n_batch = n_ctx, 2048
            context_params.n_ubatch, context_params.swa_full = 512, False
            context_params.flash_attn_type = int(flash_attn)
            mark = llama_log.mark()
            context = llama_cpp.llama_init_from_model(model, context_params)
            assert context
            llama_cpp.llama_free(context)
            logged = re.findall(r"CPU compute buffer size =\s+([\d.]+) MiB",
                                llama_log.text_since(mark))
            reserved = est.compute_reserved(SHAPES["270m"], n_ctx, flash_attn=flash_attn)
            assert float(logged[-1]) * MiB == pytest.approx(reserved, rel=0.03), n_ctx
    finally:
        llama_cpp.llama_model_free(model)


@pytest.mark.slow
@pytest.mark.parametrize(("n_ctx", "flash_attn"), [(1024, True), (2048, True), (2048, False)])
def test_estimate_is_within_15_percent_of_a_full_contexts_peak(
    gemma_gguf, llama_cpp, n_ctx, flash_attn
):
    """What recommend plans for: a child fills the context, then generates 4 tokens."""
    _require_proc()
    peak, _ = measure(gemma_gguf, n_ctx, n_ctx - 8, flash_attn=str(int(flash_attn)))
    expected = est.estimate("270m", "Q4_K_M", n_ctx, gguf_path=gemma_gguf,
                            flash_attn=flash_attn).total
    assert 0.85 < expected / peak < 1.15, (expected / MiB, peak / MiB)


@pytest.mark.slow
def test_estimate_at_a_depth_is_within_15_percent_of_a_short_prompts_peak(
    gemma_gguf, short_prompt_2048
):
    peak, _ = short_prompt_2048
    expected = est.estimate("270m", "Q4_K_M", 2048, gguf_path=gemma_gguf, depth=16 + 4).total
    assert 0.85 < expected / peak < 1.15, (expected / MiB, peak / MiB)
    # Planning for a full context asks for more than a short prompt takes.
    assert est.estimate("270m", "Q4_K_M", 2048).total > expected


# -- a measured peak with an image ----------------------------------------------------------

# Runs in a fresh interpreter: our backend opens the stand-in with a projector (as it
# opens any model: flash attention as `auto` resolves, a windowed cache), answers a short
# text question, then one with an image (loading the projector and encoding the image),
# and prints VmHWM after each, the prompts' tokens and the projector's load log.
_IMAGE_CHILD = r"""
import json, sys
from borealis_local.bench.image_view import synthetic_image
from borealis_local.runtime.llama_cpp import LlamaCppBackend
path, mmproj, n_ctx = sys.argv[1:4]
def peak():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) * 1024
backend = LlamaCppBackend(path, mmproj=mmproj, n_ctx=int(n_ctx), n_threads=2)
text = backend.chat([{"role": "user", "content": "Kva er dette?"}], max_tokens=4)
text_peak = peak()
image = backend.chat([{"role": "user", "content": [
    {"type": "text", "text": "Kva er dette?"},
    {"type": "image", "image": synthetic_image()},
]}], max_tokens=4)
result = {"text_peak": text_peak, "peak": peak(), "prompt_tokens": image.usage.prompt_tokens,
          "encode_ms": image.timings.image_encode_ms,
          "log": backend.load_projector().load_log}
print("RESULT " + json.dumps(result), file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def full_projector(gemma_gguf):
    """A full-depth (27-block) synthetic Gemma 3 projector for the stand-in's width,
    written once into borealis-local's cache folder (where the stand-in is, and where
    `borealis bench --image synthetic` puts it)."""
    from borealis_local.bench.image_view import synthetic_projector

    return synthetic_projector(SHAPES["270m"].hidden)


@pytest.mark.slow
def test_estimate_with_images_is_within_15_percent_of_a_measured_peak(
    gemma_gguf, llama_cpp, full_projector
):
    """The stand-in with a full-depth synthetic projector (the real tower's weights and
    buffers, random values) encodes one 896 px image: the whole process's peak, and what
    the projector and the image add to the text model's, against the estimate."""
    from borealis_local.bench.llama_bench import buffer_sizes, logged_projector_weights
    from borealis_local.catalog import GEMMA3_VISION

    _require_proc()
    n_ctx = 1024
    result = subprocess.run(
        [sys.executable, "-c", _IMAGE_CHILD, str(gemma_gguf), str(full_projector),
         str(n_ctx)], capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stderr.split("RESULT ")[1].splitlines()[0])
    assert measured["prompt_tokens"] > GEMMA3_VISION.tokens_per_image
    assert measured["encode_ms"] > 0
    # The projector's own figures, as clip.cpp logged them at load.
    weights = est.projector_weight_bytes(GEMMA3_VISION, SHAPES["270m"].hidden)
    assert abs(logged_projector_weights(measured["log"]) - weights) < 0.01 * MiB
    assert buffer_sizes(measured["log"])["CPU compute"] == pytest.approx(
        est.projector_compute_bytes(GEMMA3_VISION, flash_attn=True), abs=0.01 * MiB)
    # The whole peak.
    text = est.estimate("270m", "Q4_K_M", n_ctx, gguf_path=gemma_gguf, depth=16)
    images = est.estimate("270m", "Q4_K_M", n_ctx, gguf_path=gemma_gguf,
                          depth=measured["prompt_tokens"] + 4, images=True,
                          tower=GEMMA3_VISION)
    assert 0.85 < images.total / measured["peak"] < 1.15, (
        images.total / MiB, measured["peak"] / MiB)
    # What the projector and one image add to the text model's peak.
    added, expected = measured["peak"] - measured["text_peak"], images.total - text.total
    assert 0.85 < expected / added < 1.15, (expected / MiB, added / MiB)
    # Without `tower` the stand-in (a text-only size) plans no projector.
    assert est.estimate("270m", "Q4_K_M", n_ctx, images=True).projector == 0


# -- estimates ----------------------------------------------------------------------------


def test_a_files_own_tensors_give_the_same_weights_as_its_shape(gemma_gguf):
    from_file = est.estimate("270m", "Q4_K_M", 4096, gguf_path=gemma_gguf)
    from_shape = est.estimate("270m", "Q4_K_M", 4096)
    assert from_file.weights == from_shape.weights
    assert from_file.source == f"tensors of {gemma_gguf.name}"
    assert from_shape.source == "catalog shape"


def test_published_file_sizes_follow_from_the_shapes():
    # borealis-4b-Q4_K_M.gguf is 2,489,894,560 bytes (FACTS.md): its tensors plus a few
    # MB of metadata (the vocabulary); 262,208 embedding rows fit it to 17 KB, 262,144
    # leave 151 KB unexplained (see the report: the multimodal sizes' vocabulary).
    weights = est.estimate("4b", "Q4_K_M", 4096).weights
    assert 0 < 2_489_894_560 - weights < 8 * MiB


def test_the_kv_cache_follows_swa_full():
    shape = SHAPES["4b"]
    full = est.kv_cache_bytes(shape, 16384, swa_full=True)
    windowed = est.kv_cache_bytes(shape, 16384)  # our backend's default, as Ollama's
    assert full == 34 * 16384 * 2 * 4 * 256 * 2  # every layer, every cell, f16 K and V
    assert windowed == shape.kv_cache_bytes(16384) < full / 3
    assert windowed == est.kv_cache_bytes(shape, 16384, runtime="ollama")
    assert est.estimate("4b", "Q4_K_M", 16384).kv_cache == windowed
    assert est.estimate("4b", "Q4_K_M", 16384, swa_full=True).kv_cache == full


def test_flash_attention_shrinks_the_attention_in_use_at_long_contexts():
    on = est.estimate("4b", "Q4_K_M", 32768)  # auto resolves on on the CPU
    off = est.estimate("4b", "Q4_K_M", 32768, flash_attn=False)
    assert on.flash_attn and not off.flash_attn
    # K·Q of one 512-token batch, f32, 8 heads and the mask, against 32k cells: 576 MiB;
    # flash attention keeps only the f16 mask, 32 MiB.
    assert off.compute - on.compute == 512 * 32768 * (4 * 9 - 2)
    assert est.estimate("4b", "Q4_K_M", 32768, runtime="ollama").flash_attn is False


def test_estimates_add_up_and_grow_with_the_context():
    small = est.estimate("1b", "Q4_K_M", 2048)
    large = est.estimate("1b", "Q4_K_M", 32768)
    assert small.total == (
        small.weights + small.repack + small.kv_cache + small.compute + small.overhead
    )
    assert small.needed == small.total - small.repack
    assert large.total > small.total and large.weights == small.weights
    assert est.estimate("1b", "Q8_0", 2048).weights > small.weights
    assert est.estimate("1b", "Q4_K_M").n_ctx == DEFAULT_NUM_CTX["1b"]
    assert est.estimate("1b", "Q4_K_M", 1000).n_ctx == 1024  # padded as llama.cpp does


def test_offloading_puts_weights_kv_and_the_reserved_graph_on_the_gpu():
    gpu = est.estimate("4b", "Q4_K_M", 8192, device="gpu")
    assert gpu.device_bytes == gpu.weights + gpu.kv_cache + gpu.compute
    assert gpu.compute == est.compute_reserved(SHAPES["4b"], 8192) >= 512 * MiB
    assert gpu.host_bytes == gpu.overhead and gpu.repack == 0
    assert est.estimate("4b", "Q4_K_M", 8192).device_bytes == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: est.estimate("3b"), "unknown size '3b'"),
        (lambda: est.estimate("1b", "Q4_0"), "unknown quantisation"),
        (lambda: est.estimate("1b", runtime="vllm"), "unknown runtime 'vllm'"),
        (lambda: est.estimate("1b", device="tpu"), "unknown device 'tpu'"),
        (lambda: est.estimate("1b", n_ctx=-5), "num_ctx must be at least 1"),
    ],
)
def test_bad_input_says_what_to_choose(call, message):
    with pytest.raises(BorealisError, match=message):
        call()


# -- recommend ----------------------------------------------------------------------------


def test_a_16_gib_laptop_gets_a_model_that_fits_with_room():
    machine = rec.Machine(ram=16 * GiB)
    advice = rec.recommend(machine)
    pick = advice.pick
    assert pick is not None and pick.where == "CPU"
    assert pick.estimate.needed <= machine.usable_ram < 16 * GiB
    assert pick.n_ctx >= rec.MIN_USEFUL_CTX
    # Nothing larger fits with a useful context at a quant of Q4_K_M or better.
    larger = SIZES[SIZES.index(pick.size) + 1 :]
    for size in larger:
        for quant in rec.PREFERRED_QUANTS:
            fit = advice.fits[size, quant]
            assert fit is None or fit.n_ctx < rec.MIN_USEFUL_CTX


def test_every_fit_is_the_largest_context_that_fits():
    machine = rec.Machine(ram=8 * GiB)
    for (size, quant), fit in rec.recommend(machine).fits.items():
        if fit is None:
            assert rec.largest_fit(size, quant, machine, est.DEFAULT_RUNTIME) is None
            continue
        assert fit.estimate.needed <= machine.usable_ram
        bigger = [n for n in rec.CONTEXT_STEPS if fit.n_ctx < n <= SHAPES[size].context_length]
        if bigger:
            assert est.estimate(size, quant, bigger[0]).needed > machine.usable_ram


def test_a_gpu_is_preferred_when_the_model_fits_it():
    advice = rec.recommend(rec.Machine(ram=32 * GiB, vram=24 * GiB, gpu="test card"))
    assert advice.pick.where == "GPU"
    assert advice.pick.estimate.device_bytes <= 23.5 * GiB


def test_unified_memory_counts_everything_against_ram():
    advice = rec.recommend(rec.Machine(ram=16 * GiB, unified=True))
    pick = advice.pick
    assert pick.where == "unified"
    assert pick.estimate.device_bytes <= 0.75 * 16 * GiB


def test_recommend_plans_as_the_backend_opens_the_model():
    """Flash attention as `auto` resolves and the windowed sliding-window cache: the
    4b's KV at 16k is 0.5 GiB, not 2.1, so more fits a machine than before."""
    machine = rec.Machine(ram=16 * GiB)
    pick = rec.recommend(machine).pick
    assert (pick.estimate.flash_attn, pick.estimate.swa_full) == (True, False)
    assert pick.estimate.kv_cache == SHAPES[pick.size].kv_cache_bytes(pick.n_ctx)
    ollama = rec.recommend(machine, "ollama").pick
    assert ollama.estimate.flash_attn is False  # planned without it: the larger buffer
    full = est.estimate("4b", "Q4_K_M", 16384, swa_full=True, flash_attn=False)
    ours = est.estimate("4b", "Q4_K_M", 16384)
    assert full.needed - ours.needed > (2.1 - 0.5) * GiB


def test_too_little_memory_recommends_nothing():
    advice = rec.recommend(rec.Machine(ram=1 * GiB))
    assert advice.pick is None
    assert all(fit is None for fit in advice.fits.values())


def test_speed_projection_goes_as_one_over_the_weights_read():
    advice = rec.recommend(rec.Machine(ram=24 * GiB))
    small, large = advice.fits["270m", "Q4_K_M"], advice.fits["4b", "Q4_K_M"]
    bandwidth = 10e9
    assert rec.generation_rate(small, bandwidth) == pytest.approx(
        bandwidth / small.estimate.weights)
    assert (rec.generation_rate(small, bandwidth) / rec.generation_rate(large, bandwidth)
            == pytest.approx(large.estimate.weights / small.estimate.weights))


def test_the_fast_pick_is_the_largest_fit_at_reading_rate():
    advice = rec.recommend(rec.Machine(ram=24 * GiB))
    bandwidth = 10e9  # about this 2-core machine's
    pick, fast = advice.pick, rec.fast_pick(advice, bandwidth)
    assert rec.generation_rate(pick, bandwidth) < rec.READING_RATE
    assert rec.generation_rate(fast, bandwidth) >= rec.READING_RATE
    assert SIZES.index(fast.size) < SIZES.index(pick.size)
    # No larger size, at any quant the pick considers, reaches reading rate.
    for size in SIZES[SIZES.index(fast.size) + 1:]:
        for quant in rec.PREFERRED_QUANTS:
            fit = advice.fits[size, quant]
            assert fit is None or rec.generation_rate(fit, bandwidth) < rec.READING_RATE
    assert rec.fast_pick(advice, 1e15) == pick
    assert rec.fast_pick(advice, 1e6) is None


def test_the_fast_pick_stays_on_the_picks_device():
    """A GPU's measured speed must not be projected onto a model that fits only the CPU."""
    advice = rec.recommend(rec.Machine(ram=64 * GiB, vram=8 * GiB, gpu="test card"))
    pick = advice.pick
    assert pick.where == "GPU"
    assert any(fit and fit.where == "CPU" for fit in advice.fits.values())
    bandwidth = 5 * pick.estimate.weights  # the pick generates 5 tokens/s
    fast = rec.fast_pick(advice, bandwidth, min_rate=10)
    assert fast.where == "GPU" and rec.generation_rate(fast, bandwidth) >= 10
    assert SIZES.index(fast.size) < SIZES.index(pick.size)
    fastest_on_gpu = max(rec.generation_rate(fit, bandwidth)
                         for fit in advice.fits.values() if fit and fit.where == "GPU")
    assert rec.fast_pick(advice, bandwidth, min_rate=fastest_on_gpu * 1.01) is None


def test_this_machine_has_ram():
    machine = rec.this_machine()
    assert machine.ram > 1 * GiB and machine.source == "this machine"


# -- the command --------------------------------------------------------------------------


def _borealis() -> argparse.ArgumentParser:
    from borealis_local.bench.advice_cli import register

    parser = argparse.ArgumentParser(prog="borealis")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _borealis().parse_args(argv)
    return args.func(args)


def test_recommend_json_lists_every_size_and_quant(capsys):
    assert _run(["recommend", "--ram", "16", "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["machine"]["ram"] == 16 * GiB and advice["machine"]["source"] == "given"
    assert len(advice["fits"]) == len(SIZES) * len(QUANTS)
    pick = advice["recommended"]
    assert pick["size"] in SIZES and pick["estimate"]["needed"] <= advice["machine"]["usable_ram"]
    assert {"weights", "kv_cache", "compute", "overhead", "total"} <= set(pick["estimate"])


def test_recommend_prints_a_table_and_a_pick(capsys):
    assert _run(["recommend", "--ram", "8", "--runtime", "ollama"]) == 0
    out = capsys.readouterr().out
    assert "What fits 8.0 GiB RAM" in out and "ollama" in out
    assert "Recommended: borealis-" in out
    assert all(size in out for size in SIZES)


def test_recommend_rejects_a_size_below_zero(capsys):
    with pytest.raises(SystemExit):
        _borealis().parse_args(["recommend", "--ram", "-4"])
    assert "give a size above 0 GiB" in capsys.readouterr().err


def test_unified_memory_takes_no_vram():
    with pytest.raises(BorealisError, match="--unified means the GPU shares RAM"):
        _run(["recommend", "--ram", "32", "--vram", "8", "--unified"])
