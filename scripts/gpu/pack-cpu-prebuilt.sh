#!/usr/bin/env bash
# Packs node-llama-cpp's linux-x64 CPU prebuilt into .gpu/g3 for scripts/gpu/engine-compare.sh (../shared/gpu/pack.sh
# leaves prebuilts out; the llama-server engine's memory estimate process needs a loadable binding).
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
mkdir -p .gpu/g3
tar -C node_modules/@node-llama-cpp -cJf .gpu/g3/linux-x64.tar.xz linux-x64
du -sh .gpu/g3
