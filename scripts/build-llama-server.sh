#!/usr/bin/env bash
# Builds llama.cpp's own llama-server, from the exact llama.cpp source node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle), so `lmx bench --compare` measures us against the same
# engine version. CPU only, Release, -march=native (what a user building llama.cpp themselves gets), and no
# network access at any step: no curl/OpenSSL, no web UI download, no FetchContent.
#
# Usage: scripts/build-llama-server.sh [OUT_DIR]       (default: $LMX_PEER_DIR or /tmp/lmx-peer)
#   env: JOBS (default: nproc), NATIVE=OFF for a portable build, CMAKE_EXTRA="-D..." for more flags.
# Result: OUT_DIR/bin/llama-server (printed on the last line). Re-running reuses the clone and the build tree.
# OUT_DIR must lie outside the repository: build output is never committed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
out_dir="$(realpath -m "${1:-${LMX_PEER_DIR:-/tmp/lmx-peer}}")"
# checked before anything is created: build output must never land in the repository
case "$out_dir/" in
  "$repo_root/"*)
    echo "build-llama-server: $out_dir is inside the repository; pick a folder outside it (default /tmp/lmx-peer)" >&2
    exit 2
    ;;
esac

mkdir -p "$out_dir"

bundle="$repo_root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
if [[ ! -f "$bundle" ]]; then
  echo "build-llama-server: $bundle is missing; run npm install first" >&2
  exit 2
fi
for tool in git cmake c++; do
  command -v "$tool" >/dev/null || { echo "build-llama-server: '$tool' is not installed" >&2; exit 2; }
done

src="$out_dir/src"
build="$out_dir/build"
jobs="${JOBS:-$(nproc)}"

if [[ -d "$src/.git" ]]; then
  # the bundle changes only when node-llama-cpp is upgraded: follow it
  git -C "$src" fetch --quiet "$bundle" HEAD
  git -C "$src" checkout --quiet --detach FETCH_HEAD
else
  rm -rf "$src"
  git clone --quiet "$bundle" "$src"
fi
commit="$(git -C "$src" rev-parse --short HEAD)"
release="$(node -e 'console.log(require(process.argv[1]).tag)' "$repo_root/node_modules/node-llama-cpp/llama/llama.cpp.info.json" 2>/dev/null || echo unknown)"

# shellcheck disable=SC2086 # CMAKE_EXTRA is a list of flags on purpose
cmake -S "$src" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE="${NATIVE:-ON}" \
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF -DGGML_RPC=OFF \
  -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_LLGUIDANCE=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_SERVER=ON \
  ${CMAKE_EXTRA:-}

cmake --build "$build" --config Release --target llama-server -j "$jobs"

mkdir -p "$out_dir/bin"
cp -f "$build/bin/llama-server" "$out_dir/bin/llama-server"
printf '{"release":"%s","commit":"%s","native":"%s","built":"%s"}\n' \
  "$release" "$commit" "${NATIVE:-ON}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out_dir/bin/llama-server.json"
echo "$out_dir/bin/llama-server"
