#!/usr/bin/env bash
# VRAM accounting and GPU admission on the GPU machine (device tool), with the llama-server engine (CUDA).
# Run from the repo root there, each call soon after the previous (the machine stays warm only a short while):
#   bash scripts/gpu/vram-check.sh setup   # carry .gpu/g1 and .gpu/g3 (= engine-compare.sh setup)
#   bash scripts/gpu/vram-check.sh build   # carry .gpu/g2 and dist   (= engine-compare.sh build, detached)
#   bash scripts/gpu/vram-check.sh wait    # carry dist               (= engine-compare.sh wait, up to 9.5 min)
#   bash scripts/gpu/vram-check.sh check   # carry dist; ≤ 8 min: writes $OUT/vram.txt (+ loaded-*.json, logs)
# Here, before: npx tsc -p tsconfig.json; bash ../shared/gpu/pack.sh; bash scripts/gpu/pack-cpu-prebuilt.sh
# `check`:
#   1. serves the random 1.1B F16 model (make_model) at 32 slots × 1024 context, every layer on the GPU, through
#      our gateway (memory.gpu_max_percent 90); prints our VRAM figure from /admin/models/loaded (the estimate,
#      and the reservation = estimate + gpu_runner_overhead_mb) beside nvidia-smi's per-process used_memory, and
#      their ratios; llama-server's own buffer sizes (its log) for calibration.
#   2. restarts the gateway with memory.gpu_budget_bytes just above that model's reservation and asks to load the
#      same file under another id with 4× the context (it cannot fit the GPU budget): records the status and
#      body, and every llama-server pid seen meanwhile (a second one must never start).
#   3. asks for the same file under a third id with the first one's settings (fits only alone): the idle first
#      model is evicted, and at most one llama-server runs at any time.
set -euo pipefail
HERE="$(dirname "${BASH_SOURCE[0]}")"
case "${1:-}" in
  setup | build | wait) exec bash "$HERE/engine-compare.sh" "$1" ;;
  check) ;;
  *)
    echo "usage: $0 setup|build|wait|check"
    exit 2
    ;;
esac
R=/root/nb
LSB=/root/lsb
export PATH=$R/bin:/usr/local/cuda/bin:$PATH
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# shellcheck source=scripts/gpu/common.sh
source "$HERE/common.sh"
URL=http://127.0.0.1:18181
MIB=1048576

stage_dist
record_gpu
make_model

# $1: extra memory settings (yaml flow entries, may be empty)
write_config() {
  cat > /root/lmx-vram.yaml <<YAML
port: 18181
gpu: cuda
state_dir: /root/lmxstate
demo_model: false
log_level: debug
loader_timeout_sec: 600
discovery: {hf_cache: false, lmstudio: false, ollama: false}
backends: {llama_server: $LSB/bin/llama-server}
affinity: {enabled: false}
memory: {max_percent: 95, gpu_max_percent: 90$1}
models:
  - {id: rand-1b, path: /root/models/rand-1b-f16.gguf, parallel: 32, context_size: 1024, threads: 4, batch_size: 2048, gpu_layers: max}
  - {id: rand-1b-big, path: /root/models/rand-1b-f16.gguf, parallel: 32, context_size: 4096, threads: 4, batch_size: 2048, gpu_layers: max}
  - {id: rand-1b-twin, path: /root/models/rand-1b-f16.gguf, parallel: 32, context_size: 1024, threads: 4, batch_size: 2048, gpu_layers: max}
auto_load: [rand-1b]
YAML
}

GW=0
start_gateway() {
  node dist/src/cli/main.js serve --config /root/lmx-vram.yaml > "/root/lmx-vram-$1.log" 2>&1 &
  GW=$!
  for _ in $(seq 1 240); do curl -s $URL/admin/models/loaded | grep -q '"rand-1b"' && return 0; sleep 1; done
  echo "rand-1b did not load"; tail -20 "/root/lmx-vram-$1.log"; return 1
}
stop_gateway() {
  kill "$GW" 2> /dev/null || true
  wait "$GW" 2> /dev/null || true
  for _ in $(seq 1 60); do pgrep -x llama-server > /dev/null || return 0; sleep 0.5; done
}
# a number field of one entry of /admin/models/loaded, rounded to bytes
loaded_field() { node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).data.find((m)=>m.id===process.argv[2]); console.log(Math.round(Number(eval("d."+process.argv[3]))))' "$1" "$2" "$3"; }

# ---- 1. our VRAM figure against nvidia-smi ----
write_config ""
start_gateway 1
sleep 3 # llama-server's pools settle after the canary
curl -s $URL/admin/models/loaded > "$OUT/loaded-1.json"
curl -s $URL/admin/status > "$OUT/status-1.json"
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits > "$OUT/compute-apps-1.csv"
real_mib=$(awk -F, '{s+=$2} END {print s+0}' "$OUT/compute-apps-1.csv")
model_vram=$(loaded_field "$OUT/loaded-1.json" rand-1b memory.model_vram)
context_vram=$(loaded_field "$OUT/loaded-1.json" rand-1b memory.context_vram)
model_ram=$(loaded_field "$OUT/loaded-1.json" rand-1b memory.model_ram)
context_ram=$(loaded_field "$OUT/loaded-1.json" rand-1b memory.context_ram)
reserved=$(loaded_field "$OUT/loaded-1.json" rand-1b "reserved_vram_bytes[0]")
runner=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).data.find((m)=>m.id==="rand-1b").pid)' "$OUT/loaded-1.json")
ps -o args= -p "$(pgrep -x llama-server | head -1)" > "$OUT/llama-server-args.txt" || true
rss="runner $(ps -o rss= -p "$runner") kB, its llama-server $(ps -o rss= -p "$(pgrep -x llama-server | head -1)") kB"
stop_gateway
# llama-server's own buffer sizes (it prints them at verbosity 4 only): the runner's flags, by hand, briefly
$LSB/bin/llama-server -m /root/models/rand-1b-f16.gguf --ctx-size 32768 --parallel 32 --no-kv-unified --threads 4 \
  --threads-batch 4 --batch-size 2048 --ubatch-size 2048 --flash-attn auto --no-context-shift --cache-ram 0 --fit off \
  --no-webui --gpu-layers all --port 18185 -lv 4 > /root/hand.log 2>&1 &
HAND=$!
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:18185/health > /dev/null 2>&1 && break; sleep 1; done
hand_mib=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F, '{s+=$2} END {print s+0}')
kill $HAND 2> /dev/null || true
wait $HAND 2> /dev/null || true
grep -E "buffer size|memory breakdown|CUDA0 \(|Host" /root/hand.log > "$OUT/llama-server-buffers.txt" || true
{
  echo "== 1. rand-1b F16, 32 slots x 1024, all layers on the GPU (llama-server engine) =="
  echo "ours (estimate):      model_vram $((model_vram / MIB)) MiB + context_vram $((context_vram / MIB)) MiB = $(((model_vram + context_vram) / MIB)) MiB"
  echo "ours (reserved VRAM): $((reserved / MIB)) MiB (estimate + memory.gpu_runner_overhead_mb)"
  echo "ours (RAM):           model_ram $((model_ram / MIB)) MiB + context_ram $((context_ram / MIB)) MiB"
  echo "RSS (ps):             $rss"
  echo "nvidia-smi:           $real_mib MiB ($(tr '\n' ' ' < "$OUT/compute-apps-1.csv"))"
  awk -v r="$reserved" -v e="$((model_vram + context_vram))" -v n="$real_mib" -v m=$MIB 'BEGIN {
    if (n == 0) { print "nvidia-smi lists no compute process: no ratio"; exit }
    printf "ratio reserved/nvidia-smi: %.3f   estimate/nvidia-smi: %.3f   nvidia-smi - estimate: %d MiB (the overhead that would match)\n", r/m/n, e/m/n, n - e/m }'
  echo "llama-server by hand, same flags: nvidia-smi $hand_mib MiB; its own buffers (-lv 4):"
  sed 's/^/  /' "$OUT/llama-server-buffers.txt"
} | tee "$OUT/vram.txt"

# ---- 2. a model that cannot fit the GPU budget: refused before any llama-server starts ----
budget=$((reserved + 256 * MIB))
write_config ", gpu_budget_bytes: $budget"
start_gateway 2
first_pid=$(pgrep -x llama-server | tr '\n' ' ')
( while :; do pgrep -x llama-server || true; sleep 0.05; done ) > "$OUT/llama-server-pids.txt" &
SAMPLER=$!
code=$(curl -s -o "$OUT/refused.json" -w '%{http_code}' -X POST $URL/admin/models/load -H 'content-type: application/json' -d '{"model_id":"rand-1b-big"}')
sleep 1
kill $SAMPLER
pids=$(sort -u "$OUT/llama-server-pids.txt" | tr '\n' ' ')
{
  echo
  echo "== 2. gpu_budget_bytes $((budget / MIB)) MiB; load rand-1b-big (4x the context) =="
  echo "status $code"
  cat "$OUT/refused.json"
  echo
  echo "llama-server pids before: $first_pid; seen while refusing: $pids"
  [ "$(sort -u "$OUT/llama-server-pids.txt" | wc -l)" -le 1 ] && echo "second llama-server started: no" || echo "second llama-server started: YES"
} | tee -a "$OUT/vram.txt"

# ---- 3. a model that fits once the idle first one goes: evicts it ----
( while :; do echo "$(pgrep -x llama-server | wc -l)"; sleep 0.05; done ) > "$OUT/llama-server-counts.txt" &
SAMPLER=$!
code=$(curl -s -o "$OUT/twin.json" -w '%{http_code}' -X POST $URL/admin/models/load -H 'content-type: application/json' -d '{"model_id":"rand-1b-twin"}')
kill $SAMPLER
curl -s $URL/admin/models/loaded > "$OUT/loaded-3.json"
{
  echo
  echo "== 3. load rand-1b-twin (fits only alone) =="
  echo "status $code; loaded now: $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).data.map((m)=>m.id).join(","))' "$OUT/loaded-3.json")"
  echo "most llama-servers at once: $(sort -n "$OUT/llama-server-counts.txt" | tail -1)"
  curl -s $URL/admin/status | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>console.log("gpus:", JSON.stringify(JSON.parse(s).memory.gpus)))'
} | tee -a "$OUT/vram.txt"
stop_gateway
grep -iE '"level":(40|50)|insufficient|evict' /root/lmx-vram-2.log | head -20 > "$OUT/lmx-log.txt" || true
