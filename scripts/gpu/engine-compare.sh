#!/usr/bin/env bash
# The llama-server engine on the GPU machine (device tool), against llama-server itself, same binary, same model.
# Run from the repo root there, each call within 30 s of the previous (the machine stays warm only that long):
#   bash scripts/gpu/engine-compare.sh setup   # carry .gpu/g1 and .gpu/g3: Node, node_modules, the CPU prebuilt
#   bash scripts/gpu/engine-compare.sh build   # carry .gpu/g2 and dist: `lmx engines build llama-server --cuda`, detached
#   bash scripts/gpu/engine-compare.sh wait    # carry dist: waits up to 9.5 min for the build
#   bash scripts/gpu/engine-compare.sh bench   # carry dist: serves a random 1.1B F16 with both, lmx bench --compare
#                                              # (ROUNDS=N: rounds per level, default 2)
#   bash scripts/gpu/engine-compare.sh isolate # carry dist, after bench: ours vs llama-server with our runner's exact
#                                              # flags, and llama-server default vs the same, at 8 streams
#   bash scripts/gpu/engine-compare.sh flags   # carry dist, after bench: the runner's flags minus one at a time vs default
#   CONCURRENCY=8 bash scripts/gpu/engine-compare.sh autotune # carry dist, after wait: scripts/bench/autotune.sh on
#                                              # the 1.1B (BUDGET seconds of search, default 150; CONCURRENCY 8 or 32)
#   bash scripts/gpu/engine-compare.sh priority # carry dist, after wait: `lmx bench --scenario priority` (32 batch
#                                              # streams, parallel 4) on ours with priority classes, ours FIFO, llama-server
# Here, before: npm run build; bash ../shared/gpu/pack.sh; bash scripts/gpu/pack-cpu-prebuilt.sh
# The CPU prebuilt is what the runner's memory estimate process loads (node-llama-cpp's GGUF insights);
# generation runs in the CUDA llama-server. Nothing built there is kept or committed.
set -euo pipefail
R=/root/nb
LSB=/root/lsb
export PATH=$R/bin:/usr/local/cuda/bin:$PATH
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# shellcheck source=scripts/gpu/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case "${1:-}" in
  setup)
    bash .gpu/g1/setup.sh
    mkdir -p $R/nlc/node_modules/@node-llama-cpp
    tar -xJf .gpu/g3/linux-x64.tar.xz -C $R/nlc/node_modules/@node-llama-cpp
    ls $R/nlc/node_modules/@node-llama-cpp
    ;;
  build)
    rm -rf $R/nlc/dist $R/nlc/scripts && cp -r dist scripts $R/nlc/
    cp .gpu/g2/gitRelease.bundle $R/nlc/node_modules/node-llama-cpp/llama/gitRelease.bundle
    cd $R/nlc
    ( CMAKE_EXTRA="-DCMAKE_CUDA_ARCHITECTURES=90" setsid nohup bash -c "node dist/src/cli/main.js engines build llama-server --cuda --out $LSB > $LSB.log 2>&1; echo \"exit \$?\" >> $LSB.log" < /dev/null > /dev/null 2>&1 & )
    sleep 5; tail -n 3 $LSB.log
    ;;
  wait)
    deadline=$((SECONDS + 570))
    until grep -q '^exit ' $LSB.log 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { echo "build not finished"; tail -n 5 $LSB.log; exit 1; }
      sleep 10
    done
    tail -n 5 $LSB.log
    ;;
  bench)
    stage_dist
    record_gpu
    make_model
    write_lmx_config "backends: {llama_server: $LSB/bin/llama-server}"
    node dist/src/cli/main.js engines --config /root/lmx.yaml | tee $OUT/engines.txt
    node dist/src/cli/main.js serve --config /root/lmx.yaml > /root/lmx.log 2>&1 &
    $LSB/bin/llama-server -m /root/models/rand-1b-f16.gguf -ngl all -np 32 -c 32768 -b 2048 -ub 2048 -t 4 --port 18182 --no-webui > /root/peer.log 2>&1 &
    for i in $(seq 1 180); do curl -sf http://127.0.0.1:18182/health > /dev/null 2>&1 && break; sleep 1; done
    for i in $(seq 1 180); do curl -s http://127.0.0.1:18181/admin/models/loaded | grep -q '"rand-1b"' && break; sleep 1; done
    sleep 2
    B="node dist/src/cli/main.js bench --url http://127.0.0.1:18181 --model rand-1b --compare http://127.0.0.1:18182"
    rounds=${ROUNDS:-2}
    $B --concurrency 1,8,32 --max-tokens 128 --prompt-tokens 128 --warmup 4 --rounds $rounds > $OUT/gpu-throughput.txt 2>&1 || true
    $B --concurrency 1 --requests 8 --max-tokens 16 --prompt-tokens 512 --warmup 2 --rounds $rounds > $OUT/gpu-ttft512.txt 2>&1 || true
    curl -s http://127.0.0.1:18181/admin/models/loaded > $OUT/loaded.json || true
    runner=$(node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).data[0]; console.log(d.pid)' $OUT/loaded.json || echo 0)
    { echo "runner $(ps -o rss= -p $runner) kB"; for c in $(pgrep -P $runner); do echo "its llama-server $(ps -o rss= -p $c) kB"; done;
      echo "peer llama-server $(ps -o rss= -p $(pgrep -f 'port 18182' | head -1)) kB"; nvidia-smi --query-compute-apps=pid,used_memory --format=csv; } > $OUT/memory.txt 2>&1 || true
    grep -iE "cuda|gpu|error|warn" /root/lmx.log | head -30 > $OUT/lmx-log.txt || true
    tail -20 /root/peer.log > $OUT/peer-log.txt || true
    cat $OUT/gpu-throughput.txt $OUT/gpu-ttft512.txt $OUT/memory.txt
    ;;
  isolate)
    # After `bench` (same warm machine): is a gap at 8 streams the relay (gateway + runner) or llama-server's
    # flags? A third server is llama-server started by hand with exactly the flags our runner passes.
    cd $R/nlc
    pgrep -f 'port 18183' > /dev/null || $LSB/bin/llama-server -m /root/models/rand-1b-f16.gguf --ctx-size 32768 --parallel 32 --no-kv-unified \
      --threads 4 --threads-batch 4 --batch-size 2048 --ubatch-size 2048 --flash-attn auto --no-context-shift --cache-ram 0 --fit off \
      --metrics --no-webui --gpu-layers all --port 18183 > /root/peer2.log 2>&1 &
    for i in $(seq 1 180); do curl -sf http://127.0.0.1:18183/health > /dev/null 2>&1 && break; sleep 1; done
    rounds=${ROUNDS:-4}
    node dist/src/cli/main.js bench --url http://127.0.0.1:18181 --model rand-1b --compare http://127.0.0.1:18183 \
      --concurrency 8 --max-tokens 128 --prompt-tokens 128 --warmup 4 --rounds $rounds > $OUT/isolate-ours-vs-sameflags.txt 2>&1 || true
    node dist/src/cli/main.js bench --url http://127.0.0.1:18182 --model rand-1b --compare http://127.0.0.1:18183 \
      --concurrency 8 --max-tokens 128 --prompt-tokens 128 --warmup 4 --rounds $rounds > $OUT/isolate-default-vs-sameflags.txt 2>&1 || true
    { echo "same-flags llama-server:"; curl -s http://127.0.0.1:18183/metrics | grep -E "^llamacpp:(n_busy_slots_per_decode|n_decode_total|tokens_predicted_total)";
      for sock in /tmp/lmx-*/r-*.sock.ls.sock; do echo "our runner's llama-server ($sock):"; curl -s --unix-socket "$sock" http://runner/metrics | grep -E "^llamacpp:(n_busy_slots_per_decode|n_decode_total|tokens_predicted_total)"; done; } > $OUT/isolate-metrics.txt 2>&1 || true
    grep -E "^8 |^conc|ratio|^\[" $OUT/isolate-*.txt
    ;;
  flags)
    # Which of the runner's llama-server flags slows 8 streams? Each variant is llama-server by hand with the
    # runner's flags minus one, benchmarked against the default-flag server (18182, from `bench`) at 8 streams.
    cd $R/nlc
    base="--ctx-size 32768 --parallel 32 --threads 4 --batch-size 2048 --ubatch-size 2048 --no-webui --gpu-layers all"
    declare -A drop=( [all]="" [cache-ram]="--cache-ram 0" [fit]="--fit off" [ctx-shift]="--no-context-shift" [metrics]="--metrics" [kvu]="--no-kv-unified" [tb]="--threads-batch 4" [fa]="--flash-attn auto" )
    ours="--no-kv-unified --threads-batch 4 --flash-attn auto --no-context-shift --cache-ram 0 --fit off --metrics"
    : > $OUT/flags.txt
    port=18190
    for name in all cache-ram fit ctx-shift metrics kvu tb fa; do
      flags="$ours"
      [ -n "${drop[$name]}" ] && flags="${flags/${drop[$name]}/}"
      $LSB/bin/llama-server -m /root/models/rand-1b-f16.gguf $base $flags --port $port > /root/v-$name.log 2>&1 &
      pid=$!
      for i in $(seq 1 120); do curl -sf http://127.0.0.1:$port/health > /dev/null 2>&1 && break; sleep 0.5; done
      node dist/src/cli/main.js bench --url http://127.0.0.1:$port --model rand-1b --compare http://127.0.0.1:18182 \
        --concurrency 8 --max-tokens 128 --prompt-tokens 128 --warmup 4 --rounds ${ROUNDS:-4} > $OUT/flags-$name.txt 2>&1 || true
      echo "without [$name] ($flags): $(grep -A3 '^ratio' $OUT/flags-$name.txt | tail -1) | $(grep -E '^  [0-9.]+ tok/s' $OUT/flags-$name.txt | awk '{print $1}' | tr '\n' ' ')" | tee -a $OUT/flags.txt
      kill $pid; wait $pid 2>/dev/null || true
      port=$((port + 1))
    done
    ;;
  autotune)
    # docs/benchmarks.md "Autotune": search, then tuned vs our defaults vs llama-server's own defaults
    stage_dist
    rm -rf $R/nlc/scripts && cp -r "$OLDPWD/scripts" $R/nlc/scripts
    record_gpu
    make_model
    pkill -f "main.js serve" 2>/dev/null || true
    pkill -f llama-server 2>/dev/null || true
    sleep 1
    c=${CONCURRENCY:-8}
    MODEL=/root/models/rand-1b-f16.gguf LLAMA_SERVER=$LSB/bin/llama-server GPU_LAYERS=max ID=rand-1b CONCURRENCY=$c \
      MAX_TOKENS=128 OUT=$OUT/autotune-$c bash scripts/bench/autotune.sh "${BUDGET:-150}" 2>&1 | tail -40
    ;;
  priority)
    # docs/benchmarks.md "Priority classes": the same workload as scripts/bench/scenarios.sh priority, on the GPU
    stage_dist
    record_gpu
    make_model
    pkill -f "main.js serve" 2>/dev/null || true
    pkill -f llama-server 2>/dev/null || true
    sleep 1
    : > $OUT/priority.txt
    for mode in priority fifo; do
      slots=$([ "$mode" = priority ] && echo 1 || echo 0)
      rm -rf /root/lmxstate-p
      cat > /root/lmx-p.yaml <<YAML
port: 18181
gpu: cuda
state_dir: /root/lmxstate-p
demo_model: false
log_level: warn
loader_timeout_sec: 600
discovery: {hf_cache: false, lmstudio: false, ollama: false}
backends: {llama_server: $LSB/bin/llama-server}
memory: {max_percent: 95}
priority: {interactive_slots: $slots}
models:
  - {id: rand-1b, path: /root/models/rand-1b-f16.gguf, parallel: 4, context_size: 1024, threads: 4, gpu_layers: max}
auto_load: [rand-1b]
YAML
      node dist/src/cli/main.js serve --config /root/lmx-p.yaml > /root/lmx-p.log 2>&1 &
      pid=$!
      for i in $(seq 1 180); do curl -s http://127.0.0.1:18181/admin/models/loaded | grep -q '"rand-1b"' && break; sleep 1; done
      echo "== ours (llama-server engine, CUDA), $mode" | tee -a $OUT/priority.txt
      node dist/src/cli/main.js bench --scenario priority --url http://127.0.0.1:18181 --model rand-1b \
        $([ "$mode" = fifo ] && echo --no-priority-headers) >> $OUT/priority.txt 2>&1 || true
      kill $pid; wait $pid 2>/dev/null || true
    done
    $LSB/bin/llama-server -m /root/models/rand-1b-f16.gguf -ngl all -np 4 -c 4096 -t 4 --port 18182 --no-webui > /root/peer-p.log 2>&1 &
    pid=$!
    for i in $(seq 1 180); do curl -sf http://127.0.0.1:18182/health > /dev/null 2>&1 && break; sleep 1; done
    echo "== llama-server (4 slots, CUDA), FIFO" | tee -a $OUT/priority.txt
    node dist/src/cli/main.js bench --scenario priority --url http://127.0.0.1:18182 --model rand-1b --no-priority-headers >> $OUT/priority.txt 2>&1 || true
    kill $pid; wait $pid 2>/dev/null || true
    cat $OUT/priority.txt
    ;;
  *)
    echo "usage: $0 setup|build|wait|bench|isolate|flags|priority"; exit 2
    ;;
esac
