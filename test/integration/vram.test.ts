/**
 * GPU memory on a machine without a GPU: the memory estimate process (what the llama-server engine asks before
 * anything reads weights) splits weights and KV cache by offloaded layers, and a server with a GPU budget
 * configured shows no GPU, budgets RAM as before and serves.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LLAMA_SHAPES, writeLlamaModel } from "../../src/gguf/llama-model.js";
import type { MemoryEstimate, RunnerInitMessage } from "../../src/runner/protocol.js";
import { getJson, startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

const ESTIMATE = fileURLToPath(new URL("../../src/engines/llama-cpp/estimate-main.js", import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-vram-"));
let server: TestServer | null = null;
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const SHAPE = LLAMA_SHAPES.tiny;
const SLOTS = 32;
const CONTEXT = 1024;
// F16 K and V for every layer, every slot's context: what llama.cpp allocates as the KV cache
const KV_BYTES = SHAPE.nLayer * SLOTS * CONTEXT * 2 * SHAPE.nHeadKv * (SHAPE.nEmbd / SHAPE.nHead) * 2;

async function estimate(modelPath: string, gpuOffload: boolean, gpuLayers: "max" | number): Promise<MemoryEstimate> {
  const init: RunnerInitMessage = {
    type: "init",
    engine: { kind: "node-llama-cpp" },
    modelId: "m",
    backend: "llama-server",
    modelPath,
    modelType: "chat",
    settings: {
      contextSize: CONTEXT,
      parallel: SLOTS,
      threads: 1,
      batchSize: 512,
      gpuLayers,
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
    },
    socketPath: path.join(dir, "unused.sock"),
    logLevel: "error",
  };
  const { stdout } = await promisify(execFile)(process.execPath, [ESTIMATE, JSON.stringify({ init, gpuOffload })], { timeout: 60_000 });
  const answer = JSON.parse(stdout.trim().split("\n").pop()!) as { ok: boolean; estimate: MemoryEstimate; message?: string };
  assert.ok(answer.ok, answer.message);
  return answer.estimate;
}

test("the estimate process puts offloaded weights and KV cache on the GPU, in proportion to the layers", { timeout: 120_000 }, async () => {
  const modelPath = path.join(dir, "tiny-f16.gguf");
  await writeLlamaModel(modelPath, { shape: SHAPE, weightType: "f16", seed: 3, name: "tiny" });
  const cpu = await estimate(modelPath, false, "max");
  assert.equal(cpu.vram, 0, "no GPU: nothing on it");
  assert.ok(cpu.contextRam >= KV_BYTES, `the KV cache (${KV_BYTES}) is RAM on a CPU: ${cpu.contextRam}`);

  const all = await estimate(modelPath, true, "max");
  assert.ok(all.contextVram >= KV_BYTES, `every layer on the GPU: the whole KV cache is VRAM (${all.contextVram} >= ${KV_BYTES})`);
  assert.ok(all.contextRam < KV_BYTES, `and none of it is RAM (${all.contextRam})`);
  assert.ok(all.modelVram > all.modelRam, `the weights are on the GPU but the token embeddings (${all.modelVram} vs ${all.modelRam})`);
  assert.ok(all.modelRam > 0, "the token embeddings stay in RAM, as llama.cpp keeps them");
  assert.equal(all.vram, all.modelVram + all.contextVram);
  assert.equal(all.ram, all.modelRam + all.contextRam);

  const half = await estimate(modelPath, true, 1);
  assert.ok(half.contextVram > 0 && half.contextVram < all.contextVram, `1 of 2 layers: part of the KV cache (${half.contextVram})`);
  assert.ok(half.contextRam > all.contextRam, "the rest of it is RAM");
  assert.ok(half.modelVram < all.modelVram && half.modelRam > all.modelRam, "and so are the weights of the layer left on the CPU");
  // a binary without a GPU ignores gpu_layers: nothing goes to a GPU
  assert.equal((await estimate(modelPath, false, 1)).vram, 0);
});

interface Loaded {
  id: string;
  memory: Record<string, number>;
  reserved_bytes: number;
  reserved_vram_bytes: number[];
}

test("a CPU machine with a GPU budget configured: no GPU listed, RAM budgeted as before, the model serves", { timeout: 120_000 }, async () => {
  const model = await testModel("stories260K-chatml.gguf");
  server = await startTestServer({
    models: [{ id: "m", path: model.path, parallel: 2, context_size: 256 }],
    auto_load: ["m"],
    memory: { gpu_max_percent: 50, gpu_budget_bytes: 1024 * 1024 * 1024, gpu_runner_overhead_mb: 300 },
  });
  const status = await getJson<{ memory: { gpus: unknown[]; gpu_runner_overhead_bytes: number; used_bytes: number } }>(`${server.url}/admin/status`);
  assert.equal(status.status, 200);
  assert.deepEqual(status.body.memory.gpus, [], "no nvidia-smi here: no GPU budget");
  assert.equal(status.body.memory.gpu_runner_overhead_bytes, 300 * 1024 * 1024);
  const answer = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 4, temperature: 0 }),
  });
  assert.equal(answer.status, 200);
  const loaded = await getJson<{ data: Loaded[] }>(`${server.url}/admin/models/loaded`);
  const entry = loaded.body.data.find((m) => m.id === "m");
  assert.ok(entry, JSON.stringify(loaded.body));
  assert.deepEqual(entry.reserved_vram_bytes, [], "nothing reserved on a GPU that is not there");
  assert.equal(entry.memory["model_vram"], 0);
  assert.ok(status.body.memory.used_bytes > 0, "RAM is budgeted");
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^# TYPE lmx:gpu_memory_budget_bytes gauge$/m, "the GPU gauges exist");
  assert.doesNotMatch(metrics, /^lmx:gpu_memory_(budget|used)_bytes\{/m, "with no series: there is no GPU");
  assert.match(metrics, /^lmx:memory_used_bytes [1-9]/m);
});
