#!/usr/bin/env bash
# Build (once) and print the path of a llama-cpp-python wheel for this CPU.
#
# pip's own wheel cache does not key on CMAKE_ARGS, so a wheel built with other flags
# could be reused by mistake: we keep our own directory per version, Python and flag
# set (cpu-flags.sh says which flags).
set -euo pipefail
python="${PYTHON:-python3}"
source "$(dirname "$0")/cpu-flags.sh"
version="$llama_cpp_python_version"

key=$(printf '%s|%s|%s' "$version" "$flags" "$("$python" -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
dir="$cache_root/wheels/llama-cpp-python-$version-$key"
wheel=$(ls "$dir"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $version with CMAKE_ARGS='$flags' (5 to 10 minutes, once)" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  CMAKE_ARGS="$flags" "$python" -m pip wheel --no-deps --no-cache-dir -w "$dir.tmp" "llama-cpp-python==$version" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  wheel=$(ls "$dir"/llama_cpp_python-*.whl | head -n1)
fi
echo "$wheel"
