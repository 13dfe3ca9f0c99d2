#!/usr/bin/env bash
# Ours (llama-server engine) vs llama-server alone on one model (stories260K by default), side by side with `lmx bench --compare`:
# the per-request overhead of our stack is most visible on a tiny model. Starts both servers, benches, stops.
#
# Usage: scripts/bench/compare-small.sh [CHILD_PATH] [ROUNDS]
#   CHILD_PATH: direct (default) or runner (backends.child_path); ROUNDS: --rounds (default 3)
#   env: MODEL (default ../shared/models/stories260K.gguf), LLAMA_SERVER (default ~/.cache/opta-lmx/llama-server/bin/llama-server),
#        THREADS (default 1), CTX (tokens per slot, default 512), MAX_TOKENS (default 64), ID (default stories260K)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
child_path="${1:-direct}"
rounds="${2:-3}"
model="${MODEL:-$root/../shared/models/stories260K.gguf}"
binary="${LLAMA_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/opta-lmx/llama-server/bin/llama-server}"
threads="${THREADS:-1}"
ctx="${CTX:-512}"
max_tokens="${MAX_TOKENS:-64}"
id="${ID:-stories260K}"
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
  - { id: $id, path: $model, threads: $threads, parallel: 8, context_size: $ctx, keep_alive: never }
YAML
node "$root/dist/src/cli/main.js" serve --config "$work/lmx.yaml" > "$work/ours.log" 2>&1 &
ours_pid=$!
"$binary" -m "$model" -t "$threads" -np 8 -c $((ctx * 8)) --host 127.0.0.1 --port "$peer" --no-webui > "$work/peer.log" 2>&1 &
peer_pid=$!
trap 'kill $ours_pid $peer_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ours/healthz" >/dev/null && curl -sf "http://127.0.0.1:$peer/health" >/dev/null && break
  sleep 0.2
done
# the first request loads the model: not part of any measurement
curl -sf "http://127.0.0.1:$ours/v1/completions" -H 'content-type: application/json' -d "{\"model\":\"$id\",\"prompt\":\"Hi\",\"max_tokens\":1}" >/dev/null
node "$root/dist/src/cli/main.js" bench --url "http://127.0.0.1:$ours" --compare "http://127.0.0.1:$peer" --rounds "$rounds" \
  --model "$id" --concurrency 1,8 --prompt-tokens 128 --max-tokens "$max_tokens" --warmup 3 ${EXTRA:-}
