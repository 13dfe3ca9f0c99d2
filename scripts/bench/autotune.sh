#!/usr/bin/env bash
# Autotune, measured: searches a model's runner settings on this machine (lmx autotune, streams-8 workload, or
# streams-32 with CONCURRENCY=32), then
# benches the tuned settings against our defaults and against llama-server's own defaults, side by side with
# `lmx bench --compare` (docs/benchmarks.md, "Autotune"). Three servers: ours with the tuned profile, ours with
# profiles off (our defaults), llama-server alone with nothing but the model, its slots and the same context.
#
# Usage: scripts/bench/autotune.sh [BUDGET_SEC]        (default 360)
#   env: MODEL (default /tmp/lmxbench/models/rand-500m-q8_0.gguf), LLAMA_SERVER (default the user-cache build),
#        ID (default rand500m), CONCURRENCY (default 8), ROUNDS (default 2), MAX_TOKENS (default 64), CTX (default 1024),
#        GPU_LAYERS (unset on CPU; e.g. max on a GPU machine), OUT (folder for the JSON reports; default: the work folder)
# Run it alone, under the machine's test lock: flock /tmp/lmx-test.lock scripts/bench/autotune.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
budget="${1:-360}"
model="${MODEL:-/tmp/lmxbench/models/rand-500m-q8_0.gguf}"
binary="${LLAMA_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/opta-lmx/llama-server/bin/llama-server}"
id="${ID:-rand500m}"
concurrency="${CONCURRENCY:-8}"
rounds="${ROUNDS:-2}"
max_tokens="${MAX_TOKENS:-64}"
ctx="${CTX:-1024}"
lmx=(node "$root/dist/src/cli/main.js")
work="$(mktemp -d /tmp/lmx-autotune-XXXXXX)"
out="${OUT:-$work}"
mkdir -p "$out"
tuned=28490
defaults=28491
peer=28492
gpu_line=""
[ -n "${GPU_LAYERS:-}" ] && gpu_line=", gpu_layers: $GPU_LAYERS"
for name in tuned defaults; do
  port=$([ "$name" = tuned ] && echo $tuned || echo $defaults)
  apply=$([ "$name" = tuned ] && echo true || echo false)
  cat > "$work/$name.yaml" <<YAML
host: 127.0.0.1
port: $port
state_dir: $work/$name-state
demo_model: false
discovery: { hf_cache: false, lmstudio: false, ollama: false }
log_level: warn
backends: { llama_server: $binary, cpu_fallback: false }
autotune: { apply_profiles: $apply }
models:
  - { id: $id, path: $model, context_size: $ctx, keep_alive: never$gpu_line }
YAML
done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
"${lmx[@]}" serve --config "$work/tuned.yaml" > "$work/tuned.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$tuned/healthz" >/dev/null && break; sleep 0.2; done

workload=$([ "$concurrency" = 32 ] && echo streams-32 || echo streams-8)
echo "== autotune $id (budget ${budget}s, workload $workload)" >&2
"${lmx[@]}" autotune "$id" --url "http://127.0.0.1:$tuned" --budget "$budget" --workload "$workload" --json > "$out/autotune.json"
"${lmx[@]}" autotune "$id" --url "http://127.0.0.1:$tuned" --show > "$out/profile.json"
node -e '
  const job = require(process.argv[1]);
  const rows = job.candidates.map((c) => `| ${c.n} | ${c.rung} | ${c.label} | ${c.metrics ? c.metrics.tok_s.toFixed(1) : "-"} | ${c.metrics ? Math.round(c.metrics.ttft_ms) : "-"} | ${c.score ?? "-"} | ${c.outcome === "ok" ? (job.result.winner && c.n === job.result.winner.n ? "**best**" : "ok") : c.outcome + ": " + (c.reason || "").slice(0, 80)} |`);
  console.log("| # | rung | candidate | tok/s | TTFT ms | score | outcome |\n|---|---|---|---|---|---|---|\n" + rows.join("\n"));
  console.log("\nprofile settings: " + JSON.stringify(job.result && job.result.settings));
' "$out/autotune.json" | tee "$out/search-table.md"

# the tuned server loads with its profile; the defaults server with ours; llama-server with its own defaults
"${lmx[@]}" serve --config "$work/defaults.yaml" > "$work/defaults.log" 2>&1 &
pids+=($!)
peer_args=(-m "$model" --host 127.0.0.1 --port "$peer" --no-webui -np "$concurrency" -c $((ctx * concurrency)))
[ -n "${GPU_LAYERS:-}" ] && peer_args+=(--gpu-layers all)
"$binary" "${peer_args[@]}" > "$work/peer.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$defaults/healthz" >/dev/null && curl -sf "http://127.0.0.1:$peer/health" >/dev/null && break
  sleep 0.2
done
for port in $tuned $defaults; do
  curl -sf "http://127.0.0.1:$port/admin/models/load" -H 'content-type: application/json' -d "{\"model_id\":\"$id\"}" > "$out/load-$port.json"
done
bench=(bench --model "$id" --concurrency "$concurrency" --prompt-tokens 128 --max-tokens "$max_tokens" --warmup 2 --rounds "$rounds")
echo "== tuned (A) vs our defaults (B)" >&2
"${lmx[@]}" "${bench[@]}" --url "http://127.0.0.1:$tuned" --compare "http://127.0.0.1:$defaults" | tee "$out/tuned-vs-defaults.txt"
echo "== tuned (A) vs llama-server's own defaults (B)" >&2
"${lmx[@]}" "${bench[@]}" --url "http://127.0.0.1:$tuned" --compare "http://127.0.0.1:$peer" | tee "$out/tuned-vs-llama-server.txt"
echo "reports in $out" >&2
