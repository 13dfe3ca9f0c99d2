#!/usr/bin/env bash
# Ours (llama-server engine) vs llama-server alone on one small model, side by side with `lmx bench --compare`:
# the per-request overhead of our stack is most visible on a tiny model. Starts both servers, benches, stops.
#
# Usage: scripts/bench/compare-small.sh [CHILD_PATH] [ROUNDS]
#   CHILD_PATH: direct (default) or runner (backends.child_path); ROUNDS: --rounds (default 3)
#   env: MODEL (default ../shared/models/stories260K.gguf), LLAMA_SERVER (default ~/.cache/opta-lmx/llama-server/bin/llama-server)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
child_path="${1:-direct}"
rounds="${2:-3}"
model="${MODEL:-$root/../shared/models/stories260K.gguf}"
binary="${LLAMA_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/opta-lmx/llama-server/bin/llama-server}"
work="$(mktemp -d /tmp/lmx-compare-XXXXXX)"
ours=28480
peer=28481
cat > "$work/lmx.yaml" <<YAML
host: 127.0.0.1
port: $ours
state_dir: $work/state
demo_model: false
discovery: { hf_cache: false, lmstudio: false, ollama: false }
log_level: warn
backends: { llama_server: $binary, child_path: $child_path }
models:
  - { id: stories260K, path: $model, threads: 1, parallel: 8, context_size: 512, keep_alive: never }
YAML
node "$root/dist/src/cli/main.js" serve --config "$work/lmx.yaml" > "$work/ours.log" 2>&1 &
ours_pid=$!
"$binary" -m "$model" -t 1 -np 8 -c 4096 --host 127.0.0.1 --port "$peer" --no-webui > "$work/peer.log" 2>&1 &
peer_pid=$!
trap 'kill $ours_pid $peer_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ours/healthz" >/dev/null && curl -sf "http://127.0.0.1:$peer/health" >/dev/null && break
  sleep 0.2
done
# the first request loads the model: not part of any measurement
curl -sf "http://127.0.0.1:$ours/v1/completions" -H 'content-type: application/json' -d '{"model":"stories260K","prompt":"Hi","max_tokens":1}' >/dev/null
node "$root/dist/src/cli/main.js" bench --url "http://127.0.0.1:$ours" --compare "http://127.0.0.1:$peer" --rounds "$rounds" \
  --model stories260K --concurrency 1,8 --prompt-tokens 128 --max-tokens 64 --warmup 3 --no-ignore-eos
