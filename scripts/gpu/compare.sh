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
    rm -rf $R/nlc/dist && cp -r dist $R/nlc/dist
    cd $R/nlc
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/gpu.txt
    mkdir -p /root/models /root/lmxstate
    [ -f /root/models/rand-1b-f16.gguf ] || node -e '
      import("./dist/src/gguf/llama-model.js").then(async (m) => {
        const r = await m.writeLlamaModel("/root/models/rand-1b-f16.gguf", { shape: m.LLAMA_SHAPES["1b"], weightType: "f16", seed: 1, name: "rand-1b" });
        console.log("model", r);
      });'
    cat > /root/lmx.yaml <<YAML
port: 18181
gpu: cuda
state_dir: /root/lmxstate
demo_model: false
log_level: warn
loader_timeout_sec: 600
discovery: {hf_cache: false, lmstudio: false, ollama: false}
memory: {max_percent: 95}
max_concurrent_requests: 64
models:
  - {id: rand-1b, path: /root/models/rand-1b-f16.gguf, parallel: 32, context_size: 1024, threads: 4, batch_size: 2048, gpu_layers: max}
auto_load: [rand-1b]
YAML
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
