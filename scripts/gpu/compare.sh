#!/usr/bin/env bash
# Runs on the GPU machine (device tool), after ../shared/gpu/setup.sh unpacked Node and node_modules into /root/nb.
#   bash scripts/gpu/compare.sh build   # (carry .gpu/g2 and dist) starts both CUDA builds, detached
#   bash scripts/gpu/compare.sh wait    # waits (up to 9.5 min) for both builds
#   bash scripts/gpu/compare.sh bench   # (carry dist) benchmarks both stacks
# The machine stays warm only ~30 s between calls: chain the calls without pauses.
# Builds node-llama-cpp's CUDA backend and llama.cpp's llama-server from the same source bundle that ships in
# node-llama-cpp, generates a random-weight 1.1B F16 llama with our own GGUF writer (no weights travel), serves it
# with both, and runs `lmx bench --compare` at concurrency 1, 8 and 32. Nothing built here is kept or committed.
set -euo pipefail
R=/root/nb
PEER=/root/peer
export PATH=$R/bin:/usr/local/cuda/bin:$PATH
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# shellcheck source=scripts/gpu/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case "${1:-}" in
  build)
    rm -rf $R/nlc/dist && cp -r dist $R/nlc/dist
    bash .gpu/g2/build.sh
    mkdir -p $PEER
    [ -d $PEER/src/.git ] || git clone -q .gpu/g2/gitRelease.bundle $PEER/src
    ( cd $PEER/src && setsid nohup bash -c "cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release > $PEER/build.log 2>&1 && cmake --build build --target llama-server -j 16 >> $PEER/build.log 2>&1; echo done >> $PEER/build.log" < /dev/null > /dev/null 2>&1 & )
    echo "both builds started"
    ;;
  wait)
    deadline=$((SECONDS + 570))
    until ! pgrep -f 'source build --gpu cud[a]' > /dev/null && grep -q '^done' $PEER/build.log 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { echo "builds not finished"; tail -n 5 $R/build.log $PEER/build.log; exit 1; }
      sleep 10
    done
    tail -n 3 $R/build.log; tail -n 3 $PEER/build.log
    ;;
  bench)
    stage_dist
    record_gpu
    make_model
    write_lmx_config "backends: {llama_server: false}"
    node dist/src/cli/main.js serve --config /root/lmx.yaml > /root/lmx.log 2>&1 &
    $PEER/src/build/bin/llama-server -m /root/models/rand-1b-f16.gguf -ngl 99 -np 32 -c 32768 -b 2048 -t 4 --port 18182 > /root/peer.log 2>&1 &
    for port in 18181 18182; do
      for i in $(seq 1 120); do curl -sf http://127.0.0.1:$port/health > /dev/null 2>&1 || curl -sf http://127.0.0.1:$port/readyz > /dev/null 2>&1 && break; sleep 1; done
    done
    sleep 2
    node dist/src/cli/main.js bench --url http://127.0.0.1:18181 --model rand-1b --compare http://127.0.0.1:18182 \
      --concurrency 1,8,32 --max-tokens 128 --prompt-tokens 128 --warmup 4 --rounds 1 --json --quiet > $OUT/gpu-throughput.json || true
    node dist/src/cli/main.js bench --url http://127.0.0.1:18181 --model rand-1b --compare http://127.0.0.1:18182 \
      --concurrency 1,8,32 --max-tokens 128 --prompt-tokens 128 --warmup 2 --rounds 1 > $OUT/gpu-throughput.txt 2>&1 || true
    node dist/src/cli/main.js bench --url http://127.0.0.1:18181 --model rand-1b --compare http://127.0.0.1:18182 \
      --concurrency 1 --requests 8 --max-tokens 16 --prompt-tokens 512 --warmup 2 > $OUT/gpu-ttft512.txt 2>&1 || true
    grep -iE "cuda|gpu|error" /root/lmx.log | head -20 > $OUT/lmx-log.txt || true
    tail -20 /root/peer.log > $OUT/peer-log.txt || true
    cat $OUT/gpu-throughput.txt
    ;;
  *)
    echo "usage: $0 build|bench"; exit 2
    ;;
esac
