import assert from "node:assert/strict";
import { test } from "node:test";
import { llamaServerArgs } from "../../src/engines/llama-server/args.js";
import { parsePrometheus } from "../../src/engines/llama-server/prometheus.js";
import type { ResolvedRunnerSettings } from "../../src/runner/protocol.js";

const settings: ResolvedRunnerSettings = {
  contextSize: 1024,
  parallel: 8,
  threads: 2,
  batchSize: 512,
  gpuLayers: "auto",
  flashAttention: "auto",
  gpu: "auto",
  draftModel: null,
  draftMax: null,
  threadsBatch: null,
  ubatchSize: null,
  cacheTypeK: "f16",
  cacheTypeV: "f16",
  promptCacheMb: 0,
  rpcWorkers: [],
};

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
}

test("context is per sequence: llama-server gets the total over its slots, split evenly", () => {
  const args = llamaServerArgs({ modelPath: "/m.gguf", alias: "m", socketPath: "/tmp/s.sock", settings, contextSize: 1024 });
  assert.equal(flag(args, "--ctx-size"), "8192");
  assert.equal(flag(args, "--parallel"), "8");
  assert.ok(args.includes("--no-kv-unified"));
  assert.equal(flag(args, "--host"), "/tmp/s.sock");
  assert.equal(flag(args, "--alias"), "m");
});

test("threads, batch and memory-relevant defaults are explicit", () => {
  const args = llamaServerArgs({ modelPath: "/m.gguf", alias: "m", socketPath: "/s.sock", settings, contextSize: 512 });
  assert.equal(flag(args, "--threads"), "2");
  assert.equal(flag(args, "--threads-batch"), "2");
  assert.equal(flag(args, "--batch-size"), "512");
  assert.equal(flag(args, "--ubatch-size"), "512");
  assert.equal(flag(args, "--cache-ram"), "0");
  assert.equal(flag(args, "--fit"), "off");
  assert.ok(args.includes("--no-context-shift"));
  assert.equal(flag(args, "--flash-attn"), "auto");
  assert.equal(flag(args, "--gpu-layers"), undefined, "auto leaves llama-server's own placement");
});

test("GPU settings map to --gpu-layers / --device", () => {
  const base = { modelPath: "/m.gguf", alias: "m", socketPath: "/s.sock", contextSize: 512 };
  const cpu = llamaServerArgs({ ...base, settings: { ...settings, gpu: "cpu" } });
  assert.equal(flag(cpu, "--gpu-layers"), "0");
  assert.equal(flag(cpu, "--device"), "none");
  assert.equal(flag(llamaServerArgs({ ...base, settings: { ...settings, gpuLayers: "max" } }), "--gpu-layers"), "all");
  assert.equal(flag(llamaServerArgs({ ...base, settings: { ...settings, gpuLayers: 12 } }), "--gpu-layers"), "12");
  assert.equal(flag(llamaServerArgs({ ...base, settings: { ...settings, flashAttention: false } }), "--flash-attn"), "off");
  assert.equal(flag(llamaServerArgs({ ...base, settings: { ...settings, flashAttention: true } }), "--flash-attn"), "on");
});

test("a draft model turns on speculative decoding (draft-simple), with the model's threads; none → no draft flags", () => {
  const base = { modelPath: "/m.gguf", alias: "m", socketPath: "/s.sock", contextSize: 512 };
  assert.equal(llamaServerArgs({ ...base, settings }).includes("--model-draft"), false);
  const args = llamaServerArgs({ ...base, settings: { ...settings, draftModel: "/d.gguf", draftMax: 8 } });
  assert.equal(flag(args, "--model-draft"), "/d.gguf");
  assert.equal(flag(args, "--spec-type"), "draft-simple");
  assert.equal(flag(args, "--threads-draft"), "2");
  assert.equal(flag(args, "--spec-draft-n-max"), "8");
  const cpu = llamaServerArgs({ ...base, settings: { ...settings, gpu: "cpu", draftModel: "/d.gguf" } });
  assert.equal(flag(cpu, "--device-draft"), "none");
  assert.equal(flag(cpu, "--spec-draft-n-max"), undefined);
});

test("reads llama-server's /metrics page", () => {
  const page = [
    "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.",
    "# TYPE llamacpp:prompt_tokens_total counter",
    "llamacpp:prompt_tokens_total 127",
    "llamacpp:n_decode_total 40",
    "llamacpp:n_busy_slots_per_decode 3.5",
    "garbage",
    "",
  ].join("\n");
  const values = parsePrometheus(page);
  assert.equal(values.get("llamacpp:prompt_tokens_total"), 127);
  assert.equal(values.get("llamacpp:n_decode_total"), 40);
  assert.equal(values.get("llamacpp:n_busy_slots_per_decode"), 3.5);
  assert.equal(values.has("garbage"), false);
});
