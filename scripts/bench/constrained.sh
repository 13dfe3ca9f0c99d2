#!/usr/bin/env bash
# The cost of constrained decoding: `lmx bench --endpoint chat` against one server twice, level by level,
# response_format json_schema (the chat layer's grammar path) vs none (the engine's own chat path). The ratio
# is constrained ÷ plain on the same server, same run. Starts the server, benches, stops.
#
# Usage: scripts/bench/constrained.sh [ENGINE] [ROUNDS]
#   ENGINE: llama-server (default; our gateway, llama-server child engine) | node-llama-cpp (our gateway, in-runner engine)
#           | peer (llama-server alone, its own response_format json_schema vs none: what llama.cpp's grammar costs by itself)
#   ROUNDS: --rounds (default 2)
#   env: MODEL (default /tmp/lmxbench/models/rand-500m-q8_0.gguf), LLAMA_SERVER (default ~/.cache/opta-lmx/llama-server/bin/llama-server),
#        THREADS (default 2), PARALLEL (default 4), CTX (tokens per slot, default 1024), MAX_TOKENS (default 64),
#        REQUESTS (per level, default 4), CONCURRENCY (default 1,4), FORMAT (default json_schema), EXTRA (more bench flags)
#   ignore_eos is NOT sent (--no-ignore-eos): a grammar that completes leaves only end-of-generation allowed, and
#   with ignore_eos llama.cpp then fails the request ("Unexpected empty grammar stack") while node-llama-cpp decodes
#   hidden end tokens to max_tokens. Without it both stop where the grammar (or the model) ends; tok/req shows how
#   far requests got (on random weights the {"story": ...} string is rarely closed, so nearly all reach max_tokens).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
engine="${1:-llama-server}"
rounds="${2:-2}"
model="${MODEL:-/tmp/lmxbench/models/rand-500m-q8_0.gguf}"
binary="${LLAMA_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/opta-lmx/llama-server/bin/llama-server}"
threads="${THREADS:-2}"
parallel="${PARALLEL:-4}"
ctx="${CTX:-1024}"
max_tokens="${MAX_TOKENS:-64}"
requests="${REQUESTS:-4}"
concurrency="${CONCURRENCY:-1,4}"
format="${FORMAT:-json_schema}"
id="rand-500m"
port=28490
work="$(mktemp -d /tmp/lmx-constrained-XXXXXX)"
case "$engine" in
  llama-server) backends="{ llama_server: $binary }" ;;
  node-llama-cpp) backends="{ llama_server: false }" ;;
  peer) backends="" ;;
  *) echo "engine must be llama-server, node-llama-cpp or peer" >&2; exit 2 ;;
esac
if [ "$engine" = peer ]; then
  "$binary" -m "$model" -a "$id" -t "$threads" -np "$parallel" -c $((ctx * parallel)) --host 127.0.0.1 --port "$port" --no-webui > "$work/server.log" 2>&1 &
  health="/health"
else
  cat > "$work/lmx.yaml" <<YAML
host: 127.0.0.1
port: $port
state_dir: $work/state
demo_model: false
discovery: { hf_cache: false, lmstudio: false, ollama: false }
log_level: warn
backends: $backends
models:
  - { id: $id, path: $model, threads: $threads, parallel: $parallel, context_size: $ctx, keep_alive: never }
YAML
  node "$root/dist/src/cli/main.js" serve --config "$work/lmx.yaml" > "$work/server.log" 2>&1 &
  health="/healthz"
fi
pid=$!
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port$health" >/dev/null && break
  sleep 0.2
done
url="http://127.0.0.1:$port"
# the first request loads the model: not part of any measurement
curl -sf "$url/v1/chat/completions" -H 'content-type: application/json' \
  -d "{\"model\":\"$id\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":1}" >/dev/null
echo "# engine $engine, model $model, threads $threads, parallel $parallel, ctx/slot $ctx, max_tokens $max_tokens" >&2
node "$root/dist/src/cli/main.js" bench --url "$url" --compare "$url" --endpoint chat \
  --response-format "$format" --compare-response-format text --model "$id" --rounds "$rounds" \
  --concurrency "$concurrency" --requests "$requests" --prompt-tokens 128 --max-tokens "$max_tokens" --warmup 2 --no-ignore-eos ${EXTRA:-}
