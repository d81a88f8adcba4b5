#!/usr/bin/env bash
# Build (once) and print the path of a llama-cpp-python wheel for this CPU.
#
# pip's own wheel cache does not key on CMAKE_ARGS, so a wheel built with other flags
# could be reused by mistake: we keep our own directory per version, Python and flag
# set. Without CMAKE_ARGS we build for the features /proc/cpuinfo lists, never with
# GGML_NATIVE: some CPUs here advertise AMX but trap on it (SIGILL at the first
# matrix product). Set CMAKE_ARGS yourself for CUDA (-DGGML_CUDA=on) or Metal.
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
python="${PYTHON:-python3}"

cpu_flags() {
  local have flags="-DGGML_NATIVE=OFF" feature option
  have=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx512f:AVX512 \
              avx512_vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    feature=${pair%%:*}; option=${pair##*:}
    [[ "$have" == *" $feature "* ]] && flags="$flags -DGGML_$option=ON"
  done
  echo "$flags"
}

if [ -n "${CMAKE_ARGS:-}" ]; then
  flags="$CMAKE_ARGS"
elif [ -r /proc/cpuinfo ] && [ "$(uname -m)" = x86_64 ]; then
  flags=$(cpu_flags)
else
  flags=""  # other platforms: llama.cpp's defaults (Metal on Apple Silicon)
fi
key=$(printf '%s|%s|%s' "$version" "$flags" "$("$python" -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
dir="${BOREALIS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/borealis-local/wheels}/llama-cpp-python-$version-$key"
wheel=$(ls "$dir"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $version with CMAKE_ARGS='$flags' (5 to 10 minutes, once)" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  CMAKE_ARGS="$flags" "$python" -m pip wheel --no-deps --no-cache-dir -w "$dir.tmp" "llama-cpp-python==$version" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  wheel=$(ls "$dir"/llama_cpp_python-*.whl | head -n1)
fi
echo "$wheel"
