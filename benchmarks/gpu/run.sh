#!/usr/bin/env bash
# borealis bench on one NVIDIA GPU (H100/H200) with a CUDA build of llama-cpp-python.
#
# Measures shape-faithful synthetic Borealis models (Gemma 3 270m, 1b, 4b, 12b, 27b
# architecture, the real Gemma 3 tokenizer, RANDOM weights: NOT language models; their
# speed and memory equal the real models', see borealis_local/bench/synth.py): pp512,
# tg128, both again at depth 4096, and the chat view (chat128), all layers on the GPU,
# flash attention on; GPU memory from NVML, host peaks, load times, llama.cpp's buffers.
# The stand-in's real weights (253 MB) cannot travel (64 MiB per call), so its size is
# measured as a synthetic 270m too, unless STAND_IN names a GGUF there.
#
# Prepare on a CPU machine first (once): `bash benchmarks/gpu/prepare.sh` puts into
# .gpu-carry/ llama-cpp-python built with CUDA (sm_90) as llama_cpp-cuda.tar.xz, the gguf
# and diskcache wheels the GPU image lacks, and a vocab-only Gemma 3 GGUF (the tokenizer,
# 7 MB). Then:
#     run(command="bash benchmarks/gpu/run.sh", carry=[".gpu-carry"], timeout_s=600)
# Results land in $OUT (or ./gpu-results): gpu.jsonl (a row per test: llama-bench's JSON
# fields plus ours), gpu.md (the table), system.txt, run.log, rate_vs_size.png and
# memory_vs_context.png; serve.jsonl (`borealis bench serve`, one result per concurrency
# level: vLLM's latency percentiles and throughput) for SERVE_SIZE, in-process and, when
# $CARRY/llama-server is a CUDA llama-server (linked against the carried llama_cpp/lib or
# static), behind it with -ngl 99 (--start-server: --parallel = the largest level).
# Images: for IMAGE_SIZE (and the stand-in, when STAND_IN is given) the `image` test,
# `--image synthetic --mmproj synthetic`: a generated 896 px picture through a full-depth
# (27-block) synthetic Gemma 3 projector for the model's width (random weights, labelled
# in the row), on the GPU: encode time, image tokens, the prompt's evaluation with the
# image, the projector's load time and buffers. The projector is written into
# $WORK/cache and deleted once measured.
#
# Settings (environment): SIZES ("270m 1b 4b 12b 27b"), QUANT (Q4_K_M), REPS (3),
# DEPTH ("0,4096"), BUDGET_S (seconds the whole script may take, 540 by default, under
# the device's 600 s per command: a size whose rough cost no longer fits is skipped and
# said so), CARRY (.gpu-carry), WORK (/tmp/borealis-gpu, for the synthetic files; each
# is deleted once measured), PYTHON (python3, the image's Python with PyTorch),
# ALLOW_CPU (set: go on without CUDA, to try the script on a CPU machine); SERVE_SIZE
# (4b; empty: no serving run), SERVE_C (1,4,16), SERVE_PROMPTS (32 per level);
# IMAGE_SIZE (4b, a size that sees images; empty: no image test).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

SIZES=${SIZES:-"270m 1b 4b 12b 27b"}
QUANT=${QUANT:-Q4_K_M}
REPS=${REPS:-3}
DEPTH=${DEPTH:-0,4096}
BUDGET_S=${BUDGET_S:-540}
CARRY=${CARRY:-.gpu-carry}
WORK=${WORK:-/tmp/borealis-gpu}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-results}
SERVE_SIZE=${SERVE_SIZE-4b}
SERVE_C=${SERVE_C:-1,4,16}
SERVE_PROMPTS=${SERVE_PROMPTS:-32}
IMAGE_SIZE=${IMAGE_SIZE-4b}
started=$(date +%s)
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/run.log") 2>&1

say() { printf '[%4ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }
left() { echo $(( BUDGET_S - ($(date +%s) - started) )); }

# Rough seconds to synthesise and measure each size on 16 cores and an H100 (the F16
# scratch file, quantising, loading, the tests); a size is skipped when it cannot fit.
declare -A COST=([270m]=40 [1b]=60 [4b]=120 [12b]=240 [27b]=420)
# The serving run on top (4b: in-process, serialised, about 50 s; the server's, 20 s).
SERVE_COST=90
# The image test on top: writing the 0.85 GB synthetic projector (about 20 s), loading
# it, a warm-up and REPS images.
IMAGE_COST=45

# -- 1. the carried wheels, and a CUDA llama.cpp --------------------------------------
shopt -s nullglob
wheels=("$CARRY"/wheels/*.whl)
if [ ${#wheels[@]} -eq 0 ] || [ ! -f "$CARRY/llama_cpp-cuda.tar.xz" ]; then
  say "no wheels or llama_cpp-cuda.tar.xz in $CARRY: run benchmarks/gpu/prepare.sh on a CPU machine and carry $CARRY"
  exit 2
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "${wheels[@]}" || { say "installing the carried wheels failed"; exit 2; }
# llama-cpp-python, repacked by prepare.sh (its wheel is too large to travel).
rm -rf /tmp/site/llama_cpp
tar -C /tmp/site -xJf "$CARRY/llama_cpp-cuda.tar.xz" || { say "unpacking llama_cpp failed"; exit 2; }
export PYTHONPATH="/tmp/site:$PWD/integrations${PYTHONPATH:+:$PYTHONPATH}"
# The CUDA runtime and cuBLAS the wheel links against: the toolkit's, or PyTorch's copies.
cuda_libs=(/usr/local/cuda/lib64 /usr/local/nvidia/lib64 "$("$PYTHON" -c 'import site; print(site.getsitepackages()[0])')"/nvidia/*/lib)
# /tmp/site/llama_cpp/lib too: a carried llama-server linked against the wheel's libraries.
export LD_LIBRARY_PATH="/tmp/site/llama_cpp/lib:$(IFS=:; echo "${cuda_libs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1

# ALLOW_CPU=1 runs the whole script on a CPU build: a dry run of the script itself.
if [ -z "${ALLOW_CPU:-}" ] && ! "$PYTHON" -c 'from borealis_local.bench.measure import gpu_build; import sys; sys.exit(gpu_build() != "CUDA")'; then
  say "llama-cpp-python here is not a CUDA build (or cannot load its CUDA libraries):"
  "$PYTHON" -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode())' || true
  exit 3
fi

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) × $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}'); disk: $(df -h "$WORK" | awk 'NR==2 {print $4 " free"}')"
  "$PYTHON" - <<'PY'
import platform, llama_cpp
print("python", platform.python_version(), "| llama-cpp-python", llama_cpp.__version__)
print(llama_cpp.llama_print_system_info().decode())
PY
} > "$OUT/system.txt" 2>&1
cat "$OUT/system.txt"

# -- 2. models: made here, measured, deleted -------------------------------------------
vocab="$CARRY/gemma3-vocab.gguf"
[ -f "$vocab" ] || { say "no $vocab: run benchmarks/gpu/prepare.sh"; exit 2; }

synthesise() {  # size -> prints the synthetic GGUF's path
  "$PYTHON" - "$1" "$QUANT" "$vocab" "$WORK" <<'PY'
import os, sys
from borealis_local.bench.synth import synthesize
size, quant, vocab, work = sys.argv[1:]
print(synthesize(size, quant, tokenizer_from=vocab, output=work, threads=os.cpu_count(),
                 progress=lambda text: print(text, file=sys.stderr)))
PY
}

measure() {  # gguf label
  "$PYTHON" -m borealis_local.bench.cli "$1" -p 512 -n 128 -d "$DEPTH" --chat 128 \
    -r "$REPS" -ngl 99 -fa 1 --label "$2" --out "$OUT/gpu.jsonl" -o md
}

serve() {  # gguf label: latency under load, in-process, then behind llama-server if carried
  local common=(-c "$SERVE_C" --num-prompts "$SERVE_PROMPTS" --input-len 256 --output-len 64
                --num-ctx 8192 --warmup 2 --timeout 120 --label "$2" --out "$OUT/serve.jsonl")
  "$PYTHON" -m borealis_local.bench.cli serve "$1" "${common[@]}" || say "bench serve in-process failed"
  if [ -x "$CARRY/llama-server" ]; then
    "$PYTHON" -m borealis_local.bench.cli serve "$1" --start-server \
      --llama-server "$CARRY/llama-server" --server-args "-ngl 99" "${common[@]}" \
      || say "bench serve behind llama-server failed"
  else
    say "no $CARRY/llama-server (a CUDA build): the serving run is in-process only"
  fi
}

image() {  # gguf label: the image test, a synthetic picture through a synthetic projector
  if [ "$(left)" -lt "$IMAGE_COST" ]; then
    say "skipping the image test: about ${IMAGE_COST}s needed, $(left)s left of BUDGET_S=$BUDGET_S"
    return 0
  fi
  say "the image test on $1 (a full-depth synthetic projector)"
  XDG_CACHE_HOME="$WORK/cache" "$PYTHON" -m borealis_local.bench.cli "$1" \
    --image synthetic --mmproj synthetic -p 0 -n 0 --chat 0 -r "$REPS" -ngl 99 -fa 1 \
    --label "$2" --out "$OUT/gpu.jsonl" -o md || say "the image test failed"
  rm -rf "$WORK/cache"
}

if [ -n "${STAND_IN:-}" ] && [ -f "$STAND_IN" ]; then
  say "measuring the stand-in $STAND_IN"
  measure "$STAND_IN" "stand-in: Gemma 3 270M base, not Borealis" || say "the stand-in failed"
  image "$STAND_IN" "stand-in: Gemma 3 270M base, not Borealis"
fi

for size in $SIZES; do
  need=${COST[$size]:-300}
  if [ "$(left)" -lt "$need" ]; then
    say "skipping $size: about ${need}s needed, $(left)s left of BUDGET_S=$BUDGET_S (run again with SIZES=$size)"
    continue
  fi
  say "synthesising $size $QUANT"
  if ! model=$(synthesise "$size"); then
    say "could not synthesise $size (see above; 27b needs about 70 GB free for its F16 scratch copy)"
    continue
  fi
  model=$(echo "$model" | tail -n1)
  say "measuring $model ($(du -h "$model" | cut -f1))"
  label="synthetic $size: Gemma 3 shape, random weights, NOT a language model"
  measure "$model" "$label" || say "measuring $size failed"
  [ "$size" = "$IMAGE_SIZE" ] && image "$model" "$label"
  if [ "$size" = "$SERVE_SIZE" ]; then
    if [ "$(left)" -ge "$SERVE_COST" ]; then
      say "serving $size: -c $SERVE_C, $SERVE_PROMPTS prompts a level"
      serve "$model" "$label"
    else
      say "skipping the serving run: about ${SERVE_COST}s needed, $(left)s left of BUDGET_S=$BUDGET_S (run again with SIZES=$size)"
    fi
  fi
  rm -f "$model"
done

# -- 3. one table, plots ---------------------------------------------------------------
if [ -s "$OUT/gpu.jsonl" ]; then
  "$PYTHON" - "$OUT/gpu.jsonl" > "$OUT/gpu.md" <<'PY'
import sys
from borealis_local.bench.report import read_rows, to_markdown
print(to_markdown(read_rows(sys.argv[1])))
PY
  cat "$OUT/gpu.md"
  "$PYTHON" -m borealis_local.bench.cli plot "$OUT/gpu.jsonl" --plot "$OUT" || say "no plots"
fi
say "done; results in $OUT"
