#!/usr/bin/env bash
# Prepare, on a CPU machine with nvcc (CUDA 13), what benchmarks/gpu/run.sh needs on the
# GPU machine, which reaches no package registry and takes at most 64 MiB per call:
#
#   .gpu-carry/llama_cpp-cuda.tar.xz          llama-cpp-python built with CUDA for sm_90
#                                              (H100, H200): -DGGML_CUDA=on, cached per
#                                              flag set by .ci/llama-wheel.sh (35 minutes
#                                              on 2 cores, once), repacked to fit (below)
#   .gpu-carry/wheels/gguf-…whl, diskcache-…   pure-Python packages the GPU image lacks
#   .gpu-carry/gemma3-vocab.gguf               the Gemma 3 tokenizer without weights (7 MB)
#
# .gpu-carry/ is kept out of git (.git/info/exclude). Then, through the device tool:
#     run(command="bash benchmarks/gpu/run.sh", carry=[".gpu-carry"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/../.."
carry=.gpu-carry
python=${PYTHON:-.venv/bin/python}
mkdir -p "$carry/wheels"
grep -qxF '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude

# 1. llama-cpp-python with CUDA for Hopper. The CPU part avoids GGML_NATIVE (this
#    machine's CPU is not the GPU machine's) and uses AVX2, which every x86-64 server has.
export PATH="/usr/local/cuda/bin:$PATH"
command -v nvcc >/dev/null || { echo "nvcc is not installed: the CUDA build needs it" >&2; exit 1; }
flags="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DGGML_AVX=ON"
flags="$flags -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

# The CPU machines' toolkit has nvcc and the CUDA runtime but neither cuBLAS nor the
# driver library (no GPU, no driver). Link against NVIDIA's cuBLAS wheel for this CUDA
# major, and an empty libcuda.so.1 stand-in that only names the library (the role of
# the toolkit's own stubs): at run time the GPU machine's driver and its PyTorch's cuBLAS
# (nvidia/cu13/lib, which run.sh puts on LD_LIBRARY_PATH) are the ones loaded.
cuda=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
link="${XDG_CACHE_HOME:-$HOME/.cache}/borealis-local/cuda-link"
if ! ls "$cuda"/lib64/libcublas.so* "$cuda"/targets/*/lib/libcublas.so* >/dev/null 2>&1; then
  major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  if [ ! -e "$link/lib/libcublas.so" ]; then
    echo "no cuBLAS in $cuda: fetching nvidia-cublas $major.* (about 450 MB, once)" >&2
    rm -rf "$link.tmp" && mkdir -p "$link.tmp"
    "$python" -m pip download -q --no-deps --only-binary=:all: -d "$link.tmp" "nvidia-cublas>=$major,<$((major + 1))" >&2
    (cd "$link.tmp" && unzip -q nvidia_cublas-*.whl && mv nvidia/cu"$major" ../cuda-link.new)
    rm -rf "$link.tmp" "$link" && mv "$link.new" "$link"
    ln -sf "libcublas.so.$major" "$link/lib/libcublas.so"
    ln -sf "libcublasLt.so.$major" "$link/lib/libcublasLt.so"
  fi
  flags="$flags -DCUDA_cublas_LIBRARY=$link/lib/libcublas.so"
  flags="$flags -DCUDA_cublasLt_LIBRARY=$link/lib/libcublasLt.so -DCMAKE_CUDA_FLAGS=-I$link/include"
fi
if ! ls "$cuda"/lib64/stubs/libcuda.so "$cuda"/targets/*/lib/stubs/libcuda.so >/dev/null 2>&1 \
    && ! ldconfig -p | grep -q 'libcuda\.so\.1 '; then
  # Every driver function by its linked name (cuda.h maps many to _v2 names), so the
  # linker records libcuda.so.1 as needed: an empty stub is dropped by --as-needed, and
  # the driver symbols would then be unresolved when llama_cpp loads.
  stubs="$link/driver-stub"
  if [ ! -e "$stubs/libcuda.so" ]; then
    mkdir -p "$stubs"
    gcc -E -P -I"$cuda/include" "$cuda/include/cuda.h" \
      | grep -oE '\bCUresult\s+cu[A-Za-z0-9_]+\s*\(' | sed -E 's/CUresult\s+//; s/\s*\(//' \
      | sort -u | sed 's/.*/void &(void) {}/' > "$stubs/libcuda.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda.c"
  fi
  flags="$flags -DCUDA_cuda_driver_LIBRARY=$stubs/libcuda.so"
fi
wheel=$(CMAKE_ARGS="$flags" PYTHON="$python" bash .ci/llama-wheel.sh)

# The wheel holds every library three times (zip has no symbolic links) and a second
# tree outside the package: 267 MB, four times what may travel. Carry the llama_cpp
# package alone, each library once with its other names as links, compressed with xz.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && unzip -q "$wheel" 'llama_cpp/*')
lib="$work/llama_cpp/lib"
readelf -d "$lib"/libggml-cuda.so | grep -q 'NEEDED.*libcuda\.so\.1' \
  || { echo "libggml-cuda.so does not name libcuda.so.1: the driver stub did not link" >&2; exit 1; }
for file in "$lib"/*.so*; do
  real=$(ls "$lib"/"$(basename "$file" | sed -E 's/\.so.*/.so/')".* 2>/dev/null | sort | tail -n1)
  [ -n "$real" ] && [ "$file" != "$real" ] && cmp -s "$file" "$real" \
    && ln -sf "$(basename "$real")" "$file"
done
rm -f "$carry"/wheels/llama_cpp_python-*.whl "$carry"/llama_cpp-*.tar.xz
tar -C "$work" -cf - llama_cpp | xz -9 -T0 > "$carry/llama_cpp-cuda.tar.xz"

# 2. The pure-Python packages llama-cpp-python and the synthesiser need there, at the
#    versions installed here.
version() { "$python" -c "from importlib.metadata import version; print(version('$1'))"; }
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 -d "$carry/wheels" \
  "gguf==$(version gguf)" "diskcache==$(version diskcache)"

# 3. The tokenizer, from the stand-in (or any Gemma 3 / Borealis GGUF given as $1).
source_gguf=${1:-$("$python" -c 'from borealis_local.bench.cli import stand_in_model; print(stand_in_model() or "")')}
[ -n "$source_gguf" ] || { echo "no Gemma 3 GGUF for the tokenizer: give one" >&2; exit 1; }
"$python" benchmarks/gpu/vocab_only.py "$source_gguf" "$carry/gemma3-vocab.gguf"

# 4. What travels: the tree (tracked and untracked files) plus .gpu-carry, 64 MiB at most.
tree_kib=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- | tail -n1 | cut -f1)
carry_kib=$(du -sk "$carry" | cut -f1)
echo "tree $((tree_kib / 1024)) MiB + $carry $((carry_kib / 1024)) MiB (limit 64 MiB)"
if [ $((tree_kib + carry_kib)) -gt $((64 * 1024)) ]; then
  echo "too large to travel: build the wheel with fewer targets, or carry less" >&2
  exit 1
fi
echo 'ready: run(command="bash benchmarks/gpu/run.sh", carry=[".gpu-carry"], timeout_s=600)'
