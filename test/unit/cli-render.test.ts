/** What the CLI prints: the merged model table, the default model, status, probe and progress lines. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AvailableModel, LoadedModel } from "../../src/cli/api-types.js";
import { describeLocations, mergeModels, renderModels } from "../../src/cli/commands/models.js";
import { renderProbe } from "../../src/cli/commands/probe.js";
import { renderStatus } from "../../src/cli/commands/status.js";
import { settingsFrom } from "../../src/cli/commands/load.js";
import { pickChatModel } from "../../src/cli/default-model.js";
import { colorEnabled, formatBytes, formatDuration, styleFor } from "../../src/cli/format.js";
import { progressBar, progressLine } from "../../src/cli/progress.js";

const plain = styleFor(false);

const available: AvailableModel[] = [
  { id: "embed", type: "embedding", format: "gguf", size_bytes: 100 * 1024 * 1024, quantization: "Q8_0", status: "available" },
  { id: "qwen", type: "chat", format: "gguf", size_bytes: 4.5 * 1024 ** 3, quantization: "Q4_K_M", status: "available" },
  { id: "org/half-GGUF", type: "chat", format: "gguf", size_bytes: 0, status: "unavailable", missing: ["model-00002-of-00002.gguf"] },
  { id: "org/mlx", type: "chat", format: "mlx-safetensors", size_bytes: 1024, status: "unavailable" },
];
const loaded: LoadedModel[] = [
  { id: "qwen", backend: "llama.cpp", reserved_bytes: 5 * 1024 ** 3 },
  { id: "gone", backend: "llama.cpp", reserved_bytes: 1024 },
];

test("on-disk and loaded models merge into one table: loaded first, problems explained below", () => {
  const rows = mergeModels(available, loaded);
  assert.deepEqual(
    rows.map((r) => [r.id, r.status, r.backend]),
    [
      ["qwen", "loaded", "llama.cpp"],
      ["gone", "loaded", "llama.cpp"],
      ["embed", "available", null],
      ["org/half-GGUF", "incomplete", null],
      ["org/mlx", "unsupported", null],
    ],
  );
  const text = renderModels(rows, plain);
  const lines = text.split("\n");
  assert.match(lines[0]!, /^ID\s+TYPE\s+FORMAT\s+SIZE\s+QUANT\s+STATUS\s+BACKEND\s+MEMORY$/);
  assert.match(lines[1]!, /^qwen\s+chat\s+gguf\s+4\.50 GiB\s+Q4_K_M\s+loaded\s+llama\.cpp\s+5\.00 GiB$/);
  assert.match(text, /org\/half-GGUF: missing model-00002-of-00002\.gguf: `lmx pull org\/half-GGUF` completes it/);
  assert.match(text, /org\/mlx: no backend here opens mlx-safetensors/);
  const statusColumn = lines[0]!.indexOf("STATUS");
  for (const line of lines.slice(1, 6)) assert.match(line.slice(statusColumn), /^(loaded|available|incomplete|unsupported) /, "columns line up");
});

test("the default chat model: loaded first, else the first available; never embeddings", () => {
  assert.deepEqual(
    pickChatModel([
      { id: "e", type: "embedding", status: "loaded" },
      { id: "a", type: "chat", status: "available" },
      { id: "b", type: "chat", status: "loaded" },
    ]),
    {
      id: "b",
      reason: "the first loaded chat model",
    },
  );
  assert.equal(
    pickChatModel([
      { id: "e", type: "embedding", status: "loaded" },
      { id: "a", type: "chat", status: "available" },
    ])?.id,
    "a",
  );
  assert.equal(pickChatModel([{ id: "c", type: "completion", status: "loaded" }]), null);
});

test("status shows readiness, memory budget, loaded models, degraded storage and quarantine", () => {
  const text = renderStatus(
    {
      version: "0.1.0",
      uptime_sec: 3700,
      ready: true,
      queue: { running: 1, waiting: 2 },
      memory: { total_bytes: 16 * 1024 ** 3, available_bytes: 8 * 1024 ** 3, budget_bytes: 14.4 * 1024 ** 3, used_bytes: 5 * 1024 ** 3 },
      models_available: 3,
      models_loaded: [
        {
          id: "qwen",
          backend: "llama.cpp",
          context_size: 4096,
          parallel: 4,
          reserved_bytes: 5 * 1024 ** 3,
          pid: 42,
          requests_served: 7,
          idle_sec: 5,
        },
      ],
      quarantined: [{ model_id: "bad", backend: "llama.cpp", last_reasons: ["model_loader_crashed"] }],
      storage: { file: null, degraded: true, problems: [{ component: "registry", error: "SQLITE_FULL", at: "now" }] },
      disk: [{ path: "/state", free_bytes: 1024 ** 3, total_bytes: 2 * 1024 ** 3 }],
      downloads: [],
    },
    "http://127.0.0.1:1234",
    plain,
  );
  assert.match(text, /^server\s+http:\/\/127\.0\.0\.1:1234 · v0\.1\.0 · up 1h01m · ready$/m);
  assert.match(text, /^memory\s+5\.00 GiB used of a 14\.4 GiB budget \(90% of 16\.0 GiB RAM\) · 8\.00 GiB free on the machine$/m);
  assert.match(text, /^queue\s+1 running · 2 waiting$/m);
  assert.match(text, /^loaded\s+qwen {2}llama\.cpp {2}ctx 4096×4 {2}5\.00 GiB {2}pid 42 {2}7 requests {2}idle 5s$/m);
  assert.match(text, /^quarantined\s+bad on llama\.cpp \(model_loader_crashed\)$/m);
  assert.match(text, /^storage\s+DEGRADED \(in memory\): 1 problem\(s\)$/m);
  assert.match(text, /registry: SQLITE_FULL/);
  assert.doesNotMatch(text, /^gpu /m, "no GPU line without GPUs");
});

test("status shows each budgeted GPU", () => {
  const GiB = 1024 ** 3;
  const text = renderStatus(
    {
      memory: {
        total_bytes: 16 * GiB,
        available_bytes: 8 * GiB,
        budget_bytes: 14 * GiB,
        used_bytes: GiB,
        gpus: [{ index: 0, total_bytes: 140 * GiB, budget_bytes: 126 * GiB, used_bytes: 3.5 * GiB }],
      },
    },
    "http://127.0.0.1:1234",
    plain,
  );
  assert.match(text, /^gpu 0\s+3\.50 GiB used of a 126 GiB budget \(of 140 GiB\)$/m);
});

test("probe table and recommendation", () => {
  const text = renderProbe(
    {
      model_id: "qwen",
      recommended_backend: null,
      results: [
        {
          backend: "llama.cpp",
          backend_version: "3.22.1",
          outcome: "failure",
          reason: "model_loader_crashed",
          message: "SIGABRT",
          load_ms: null,
          canary_tokens_per_sec: null,
        },
      ],
    },
    plain,
  );
  assert.match(text, /llama\.cpp\s+3\.22\.1\s+failure\s+-\s+-\s+model_loader_crashed: SIGABRT/);
  assert.match(text, /no backend here can serve this model/);
});

test("progress: a bar for terminals, plain lines for logs", () => {
  const snapshot = {
    id: "1",
    repo: "org/x",
    status: "running",
    bytes_total: 200 * 1024 * 1024,
    bytes_done: 50 * 1024 * 1024,
    bytes_per_sec: 10 * 1024 * 1024,
    eta_sec: 15,
  };
  assert.equal(progressBar(snapshot, 20), "[#####---------------]  25%  50.0 MiB / 200 MiB  10.0 MiB/s  ETA 15s");
  assert.equal(progressLine(snapshot), "org/x: 25% (50.0 MiB of 200 MiB) 10.0 MiB/s  ETA 15s");
  assert.equal(progressLine({ ...snapshot, status: "queued" }), "org/x: queued");
});

test("formats, flags and colour rules", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(null), "-");
  assert.equal(formatDuration(59), "59s");
  assert.equal(formatDuration(3 * 86400 + 3600), "3d01h");
  assert.deepEqual(settingsFrom({ ctx: 8192, parallel: 2, threads: "auto", gpuLayers: "max", flashAttention: false }), {
    context_size: 8192,
    parallel: 2,
    threads: "auto",
    gpu_layers: "max",
    flash_attention: false,
  });
  assert.deepEqual(settingsFrom({}), {});
  assert.equal(colorEnabled({ isTTY: false }, {}), false);
  assert.equal(colorEnabled({ isTTY: true }, {}), true);
  assert.equal(colorEnabled({ isTTY: true }, { NO_COLOR: "1" }), false);
  assert.equal(colorEnabled({ isTTY: true }, { TERM: "dumb" }), false);
  assert.equal(describeLocations([{ source: "model_dir", path: "/m", exists: false }]), "  model_dir  /m  (does not exist)\n");
});
