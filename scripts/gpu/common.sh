# shellcheck shell=bash
# What both GPU comparison scripts (compare.sh: node-llama-cpp engine; engine-compare.sh: llama-server engine) do
# the same way on the device: stage dist next to the unpacked node_modules, record the GPU, generate the random
# 1.1B F16 model there (no weights travel), and write the server config. Sourced; expects R and OUT to be set.

# copies this checkout's dist into $R/nlc (where node_modules is) and changes into it
stage_dist() {
  rm -rf "$R/nlc/dist" && cp -r dist "$R/nlc/dist"
  cd "$R/nlc"
}

record_gpu() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
}

make_model() {
  mkdir -p /root/models /root/lmxstate
  [ -f /root/models/rand-1b-f16.gguf ] || node -e '
    import("./dist/src/gguf/llama-model.js").then(async (m) => {
      const r = await m.writeLlamaModel("/root/models/rand-1b-f16.gguf", { shape: m.LLAMA_SHAPES["1b"], weightType: "f16", seed: 1, name: "rand-1b" });
      console.log("model", r);
    });'
}

# writes /root/lmx.yaml; $1 is the backends line (which engine serves)
write_lmx_config() {
  cat > /root/lmx.yaml <<YAML
port: 18181
gpu: cuda
state_dir: /root/lmxstate
demo_model: false
log_level: warn
loader_timeout_sec: 600
discovery: {hf_cache: false, lmstudio: false, ollama: false}
$1
memory: {max_percent: 95}
max_concurrent_requests: 64
models:
  - {id: rand-1b, path: /root/models/rand-1b-f16.gguf, parallel: 32, context_size: 1024, threads: 4, batch_size: 2048, gpu_layers: max}
auto_load: [rand-1b]
YAML
}
