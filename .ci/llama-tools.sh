#!/usr/bin/env bash
# Build (once) llama.cpp's llama-server and llama-bench from the llama.cpp tree vendored
# in the llama-cpp-python sdist, so the tools match the Python binding's llama.cpp, and
# print the directory that holds them. Cached per version and flag set, like the wheel.
set -euo pipefail
source "$(dirname "$0")/cpu-flags.sh"
version="$llama_cpp_python_version"
key=$(printf '%s|%s' "$version" "$flags" | sha256sum | cut -c1-16)
dir="$cache_root/tools/llama-cpp-$version-$key"
if [ ! -x "$dir/llama-server" ] || [ ! -x "$dir/llama-bench" ]; then
  echo "building llama-server and llama-bench from llama-cpp-python $version's llama.cpp with '$flags' (about 7 minutes, once)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version" >&2
  tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
  src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
  # shellcheck disable=SC2086  # $flags is a list of options
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF $flags >&2
  cmake --build "$work/build" --target llama-server llama-bench -j "$(nproc)" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  cp "$work/build/bin/llama-server" "$work/build/bin/llama-bench" "$dir.tmp/"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir"
