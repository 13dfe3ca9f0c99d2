#!/usr/bin/env bash
# Builds llama.cpp's own llama-server, from the exact llama.cpp source node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle), so `lmx bench --compare` measures us against the same
# engine version. CPU only, Release, -march=native (what a user building llama.cpp themselves gets), and no
# network access at any step: no curl/OpenSSL, no web UI download, no FetchContent.
#
# Usage: scripts/build-llama-server.sh [OUT_DIR]       (default: $LMX_PEER_DIR or /tmp/lmx-peer)
#   env: JOBS (default: nproc), NATIVE=OFF for a portable build, CMAKE_EXTRA="-D..." for more flags,
#        BUILD_LOG=FILE to send cmake's and the compiler's output there instead of stdout,
#        FORCE=1 to rebuild even when OUT_DIR already holds a build of this llama.cpp with these flags,
#        RPC=ON to build with GGML_RPC: llama-server then accepts --rpc, and rpc-server (the worker) is built too.
#        An RPC build belongs in its own OUT_DIR (lmx engines build rpc-server uses ~/.cache/opta-lmx/llama-rpc):
#        flipping the flag in one build tree would rebuild most of ggml each time.
# Result: OUT_DIR/bin/llama-server (printed on the last line), and OUT_DIR/bin/rpc-server with RPC=ON. Re-running reuses the clone and the build tree.
# OUT_DIR must lie outside the repository: build output is never committed.
#
# One build per OUT_DIR at a time: two builds in one tree truncate each other's objects. The script holds an
# exclusive lock on OUT_DIR/.build.lock from start to end; a second run waits for it, then finds the first
# run's binary current and reuses it instead of rebuilding.
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

# A kernel lock (flock(2)), not a marker file: it is released however the holder ends, even by SIGKILL, so
# there is no stale lock to detect. fd 9 is inherited by cmake, make and the compilers on purpose: if this
# script is killed while they still run, the lock stays held until the last of them exits, and no second
# build starts in a tree they are still writing. flock(1) is util-linux (every Linux); perl's flock is the
# same system call where flock(1) is missing (macOS).
lock="$out_dir/.build.lock"
owner="$out_dir/.build.owner"
exec 9>>"$lock"
take_lock() { # $1: "-n" to try without waiting
  if command -v flock >/dev/null; then
    flock ${1:-} 9
  else
    perl -MFcntl=:flock -e 'open(my $fd, ">&=", 9) or die "fd 9: $!\n"; flock($fd, LOCK_EX | ($ARGV[0] ? LOCK_NB : 0)) or exit 1' "${1:+1}"
  fi
}
if ! take_lock -n; then
  echo "build-llama-server: waiting for another build of $out_dir to finish (pid $(cat "$owner" 2>/dev/null || echo '?'))" >&2
  take_lock
fi
echo "$$" > "$owner"

rpc="${RPC:-OFF}"
[[ "$rpc" == ON || "$rpc" == OFF ]] || { echo "build-llama-server: RPC must be ON or OFF, not '$rpc'" >&2; exit 2; }
flags="native=${NATIVE:-ON} extra=${CMAKE_EXTRA:-} rpc=$rpc"
wanted=""
command -v git >/dev/null && wanted="$(git bundle list-heads "$bundle" 2>/dev/null | head -n 1 | cut -c1-7)" || true
if [[ -z "${FORCE:-}" && -n "$wanted" && -x "$out_dir/bin/llama-server" && -f "$out_dir/bin/llama-server.json" ]]; then
  built="$(node -e 'const m = require(process.argv[1]); console.log(`${m.commit} native=${m.native} extra=${m.cmake_extra ?? ""} rpc=${m.rpc ?? "OFF"}`)' "$out_dir/bin/llama-server.json" 2>/dev/null || true)"
  if [[ "$built" == "$wanted $flags" && ( "$rpc" == OFF || -x "$out_dir/bin/rpc-server" ) ]]; then
    echo "build-llama-server: $out_dir/bin/llama-server is already built from llama.cpp $wanted with these flags; reusing it (FORCE=1, or lmx engines build --force, rebuilds)" >&2
    echo "$out_dir/bin/llama-server"
    exit 0
  fi
fi

# cmake's default generator drives make (Debian's cmake only recommends it); CMAKE_GENERATOR=Ninja needs ninja
generator_tool=make
[[ "${CMAKE_GENERATOR:-}" == Ninja* ]] && generator_tool=ninja
for tool in git cmake "$generator_tool" c++; do
  command -v "$tool" >/dev/null || { echo "build-llama-server: '$tool' is not installed (needed: git, cmake, $generator_tool, a C++ compiler)" >&2; exit 2; }
done
if [[ -n "${BUILD_LOG:-}" ]]; then
  # the compiler's warnings run to thousands of lines: a caller that shows progress reads them from the log
  exec 3>&1 >"$BUILD_LOG" 2>&1
else
  exec 3>&1
fi

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
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF -DGGML_RPC="$rpc" \
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

targets=(llama-server)
rpc_target=rpc-server
if [[ "$rpc" == ON ]]; then
  # llama.cpp renamed the worker's target to ggml-rpc-server (its own CMakeLists says which); installed as rpc-server
  rpc_target="$(sed -n 's/^set(TARGET \([A-Za-z0-9_-]*\)).*/\1/p' "$src/tools/rpc/CMakeLists.txt" 2>/dev/null | head -n 1)"
  rpc_target="${rpc_target:-rpc-server}"
  targets+=("$rpc_target")
fi
cmake --build "$build" --config Release --target "${targets[@]}" -j "$jobs"

mkdir -p "$out_dir/bin"
if [[ "$rpc" == ON ]]; then
  cp -f "$build/bin/$rpc_target" "$out_dir/bin/.rpc-server.tmp"
  mv -f "$out_dir/bin/.rpc-server.tmp" "$out_dir/bin/rpc-server"
fi
# copied under a temporary name and renamed: a reader (a server starting) never sees a half-written binary
cp -f "$build/bin/llama-server" "$out_dir/bin/.llama-server.tmp"
mv -f "$out_dir/bin/.llama-server.tmp" "$out_dir/bin/llama-server"
node -e 'const [release, commit, native, extra, rpc, file] = process.argv.slice(1);
  require("fs").writeFileSync(file, JSON.stringify({ release, commit, native, cmake_extra: extra, rpc, built: new Date().toISOString().slice(0, 19) + "Z" }) + "\n")' \
  "$release" "$commit" "${NATIVE:-ON}" "${CMAKE_EXTRA:-}" "$rpc" "$out_dir/bin/llama-server.json"
echo "$out_dir/bin/llama-server" >&3
