#!/usr/bin/env bash
# The scheduler's scenarios measured side by side (docs/benchmarks.md, "Scheduling"):
#   scripts/bench/scenarios.sh swap       two tiny models whose budget fits one, 8 alternating clients:
#                                         ours with affinity on, then off (the FIFO behaviour before it)
#   scripts/bench/scenarios.sh priority   32 batch streams on rand-100m (parallel 4) plus interactive arrivals:
#                                         ours with priority classes (interactive_slots 1), ours FIFO, llama-server
# env: SECONDS_PER_RUN (swap, default 60), LLAMA_SERVER, MODELS_DIR (default /tmp/lmxbench/models),
#      MIN_RESIDENT_SEC (swap, default 8, the server's default), ENGINE (priority: llama-server, the default, or node-llama-cpp for ours)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
what="${1:?swap or priority}"
binary="${LLAMA_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/opta-lmx/llama-server/bin/llama-server}"
models_dir="${MODELS_DIR:-/tmp/lmxbench/models}"
story="$root/../shared/models/stories260K.gguf"
work="$(mktemp -d /tmp/lmx-scenario-XXXXXX)"
port=28490
engine_binary=$([ "${ENGINE:-llama-server}" = node-llama-cpp ] && echo false || echo "$binary")
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

serve() { # $1 = config body (YAML after the common part)
  cat > "$work/lmx.yaml" <<YAML
host: 127.0.0.1
port: $port
state_dir: $work/state
demo_model: false
discovery: { hf_cache: false, lmstudio: false, ollama: false }
log_level: warn
backends: { llama_server: $engine_binary }
$1
YAML
  node "$root/dist/src/cli/main.js" serve --config "$work/lmx.yaml" > "$work/ours.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.2; done
  echo "server did not start" >&2; cat "$work/ours.log" >&2; exit 1
}
stop_all() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); rm -rf "$work/state"; }

case "$what" in
  swap)
    for affinity in true false; do
      # each runner is reserved ~50 MiB (120 MiB overhead is the default; 50 here): one fits in 80 MiB, two do not
      serve "affinity: { enabled: $affinity, min_resident_sec: ${MIN_RESIDENT_SEC:-8} }
memory: { budget_bytes: 83886080, runner_overhead_mb: 50 }
models:
  - { id: a, path: $story, threads: 1, parallel: 4, context_size: 256 }
  - { id: b, path: $story, threads: 1, parallel: 4, context_size: 256 }"
      echo "== affinity: $affinity"
      node "$root/dist/src/cli/main.js" bench --scenario swap --url "http://127.0.0.1:$port" --model a,b --clients 8 --seconds "${SECONDS_PER_RUN:-60}"
      stop_all
    done
    ;;
  priority)
    model="$models_dir/rand-100m-q8_0.gguf"
    [ -f "$model" ] || node --input-type=module -e "
      const { writeLlamaModel, LLAMA_SHAPES } = await import('$root/dist/src/gguf/llama-model.js');
      await writeLlamaModel('$model', { shape: LLAMA_SHAPES['100m'], weightType: 'q8_0', seed: 42, name: 'rand-100m', chatTemplate: 'chatml' });"
    for mode in priority fifo; do
      slots=$([ "$mode" = priority ] && echo 1 || echo 0)
      serve "priority: { interactive_slots: $slots }
models:
  - { id: rand-100m, path: $model, threads: 2, parallel: 4, context_size: 512 }"
      curl -sf "http://127.0.0.1:$port/v1/completions" -H 'content-type: application/json' -d '{"model":"rand-100m","prompt":"Hi","max_tokens":1}' >/dev/null
      echo "== ours ($(grep -o 'llama_server: [^ ]*' "$work/lmx.yaml" | sed 's/llama_server: false/node-llama-cpp/;s/llama_server: .*/llama-server/')), $mode"
      node "$root/dist/src/cli/main.js" bench --scenario priority --url "http://127.0.0.1:$port" --model rand-100m $([ "$mode" = fifo ] && echo --no-priority-headers)
      stop_all
    done
    "$binary" -m "$model" -t 2 -np 4 -c 2048 --host 127.0.0.1 --port $((port + 1)) --no-webui > "$work/peer.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((port + 1))/health" >/dev/null && break; sleep 0.2; done
    echo "== llama-server (4 slots), FIFO"
    node "$root/dist/src/cli/main.js" bench --scenario priority --url "http://127.0.0.1:$((port + 1))" --model rand-100m --no-priority-headers
    ;;
  *) echo "swap or priority" >&2; exit 2 ;;
esac
