# Sourced by the llama.cpp build scripts: sets $flags, the CMake options for this CPU.
#
# Without CMAKE_ARGS we build for the features /proc/cpuinfo lists, never with
# GGML_NATIVE: some CPUs here advertise AMX but trap on it (SIGILL at the first
# matrix product). Set CMAKE_ARGS yourself for CUDA (-DGGML_CUDA=on) or Metal.
cpu_flags() {
  local have flags="-DGGML_NATIVE=OFF" feature option pair
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
llama_cpp_python_version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache_root="${BOREALIS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/borealis-local}"
