#!/usr/bin/env bash
# The tok/s cost of splitting one model over two llama.cpp rpc-server workers, each in its own network namespace
# behind a veth pair (docs/benchmarks.md, "llama.cpp RPC"): one `lmx serve` holds the model twice, whole on this
# machine ("local-*") and split over the workers ("split-*"), and `lmx bench --compare` runs them alternately.
# Needs root, iproute2, a built tree (npx tsc) and the RPC build (lmx engines build rpc-server). One machine
# stands in for three, so the split pays the protocol and the kernel's network path, not a real LAN's latency.
#
# Usage (under the machine lock): flock /tmp/lmx-test.lock scripts/bench/rpc-split.sh
#   env: MODEL=path.gguf (default: a generated random-weight 100M-param q8_0 model), PORT (default 18931)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
bin="${LMX_RPC_DIR:-$HOME/.cache/opta-lmx/llama-rpc}/bin"
plain="$HOME/.cache/opta-lmx/llama-server/bin/llama-server"
port="${PORT:-18931}"
work="$(mktemp -d /tmp/lmx-rpc-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in 1 2; do ip netns delete "lmxb$i" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

model="${MODEL:-$work/rand-100m.gguf}"
if [[ ! -f "$model" ]]; then
  node --input-type=module -e "
    const m = await import('$repo/dist/src/gguf/llama-model.js');
    await m.writeLlamaModel('$model', { shape: m.LLAMA_SHAPES['100m'], weightType: 'q8_0', seed: 42, name: 'rand-100m' });"
fi
tiny="$repo/../shared/models/stories260K.gguf"

for i in 1 2; do
  ip netns delete "lmxb$i" 2>/dev/null || true
  ip netns add "lmxb$i"
  ip link add "lmxbh$i" type veth peer name "lmxbi$i"
  ip link set "lmxbi$i" netns "lmxb$i"
  ip addr add "10.233.$i.1/24" dev "lmxbh$i"
  ip link set "lmxbh$i" up
  ip netns exec "lmxb$i" ip addr add "10.233.$i.2/24" dev "lmxbi$i"
  ip netns exec "lmxb$i" ip link set "lmxbi$i" up
  ip netns exec "lmxb$i" ip link set lo up
  ip netns exec "lmxb$i" "$bin/rpc-server" -H "10.233.$i.2" -p 50052 -t 2 >"$work/worker$i.log" 2>&1 &
  pids+=($!)
done
workers='["10.233.1.2:50052", "10.233.2.2:50052"]'
cat >"$work/config.yaml" <<YAML
port: $port
state_dir: $work/state
demo_model: false
discovery: { hf_cache: false, lmstudio: false, ollama: false }
backends: { llama_server: $plain, llama_server_rpc: $bin/llama-server, cpu_fallback: false }
models:
  - { id: local-100m, path: $model, context_size: 512, parallel: 4, threads: 2 }
  - { id: split-100m, path: $model, context_size: 512, parallel: 4, threads: 2, rpc: { workers: $workers } }
  - { id: local-260k, path: $tiny, context_size: 512, parallel: 4, threads: 1 }
  - { id: split-260k, path: $tiny, context_size: 512, parallel: 4, threads: 1, rpc: { workers: $workers } }
YAML
node "$repo/dist/src/cli/main.js" serve -c "$work/config.yaml" --log-level warn >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done

for size in 100m 260k; do
  echo "== $size: split over two rpc-server workers (A) vs whole on this machine (B) =="
  node "$repo/dist/src/cli/main.js" bench --url "http://127.0.0.1:$port" --model "split-$size" \
    --compare "http://127.0.0.1:$port" --compare-model "local-$size" \
    --concurrency 1,4 --requests 8 --prompt-tokens 128 --max-tokens 64 --warmup 1
  # an rpc-server serves one llama-server at a time: free the workers for the next size
  curl -sf -X POST -H 'content-type: application/json' -d "{\"model_id\": \"split-$size\"}" "http://127.0.0.1:$port/admin/models/unload" >/dev/null
done
