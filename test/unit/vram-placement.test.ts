/**
 * VRAM-aware placement without a GPU: nvidia-smi's answer is text the tests write, the GPU totals are fakes, and
 * the scheduler runs over fake backends whose runners estimate RAM and VRAM as the test says.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import type { LmxError } from "../../src/errors/codes.js";
import { detectGpus, parseGpuQuery, spreadOverGpus, type GpuDevice } from "../../src/scheduler/gpu-devices.js";
import { MemoryBudget } from "../../src/scheduler/memory-budget.js";
import { decidePlacement, type PlacementSnapshot, type Resident } from "../../src/scheduler/placement.js";
import { Scheduler } from "../../src/scheduler/scheduler.js";
import { CompatibilityRegistry } from "../../src/state/compatibility-registry.js";
import { openStateDatabase } from "../../src/state/database.js";
import { FakeBackend, fakeModel, MiB } from "../helpers/fake-backend.js";

const GiB = 1024 * MiB;
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test("nvidia-smi's csv becomes one device per line, in bytes; garbage and blank lines are skipped", async () => {
  const out = "0, 143771, 0\n1, 81559, 1024\n\nNo devices were found\n";
  assert.deepEqual(parseGpuQuery(out), [
    { index: 0, totalBytes: 143771 * MiB, usedBytes: 0 },
    { index: 1, totalBytes: 81559 * MiB, usedBytes: 1024 * MiB },
  ]);
  // no nvidia-smi (a CPU machine): no GPU, no GPU budget
  assert.deepEqual(await detectGpus(async () => null), []);
  assert.equal((await detectGpus(async () => "0, 1000, 10")).length, 1);
});

test("a load's VRAM spreads over the GPUs in proportion to their memory, as llama.cpp splits layers", () => {
  const gpus: GpuDevice[] = [
    { index: 0, totalBytes: 3 * GiB, usedBytes: 0 },
    { index: 1, totalBytes: 1 * GiB, usedBytes: 0 },
  ];
  assert.deepEqual(spreadOverGpus(4 * MiB, gpus), [3 * MiB, 1 * MiB]);
  assert.deepEqual(spreadOverGpus(0, gpus), [0, 0]);
  assert.deepEqual(spreadOverGpus(5, []), []);
});

test("each GPU's budget: gpu_max_percent of its total, less what others used at start; gpu_budget_bytes wins", () => {
  const gpus: GpuDevice[] = [
    { index: 0, totalBytes: 100 * GiB, usedBytes: 0 },
    { index: 1, totalBytes: 100 * GiB, usedBytes: 20 * GiB },
  ];
  const percent = new MemoryBudget({ maxPercent: 90, budgetBytes: GiB, runnerOverheadBytes: 0, gpus, gpuMaxPercent: 90 });
  assert.deepEqual(percent.gpuBudgets, [90 * GiB, 80 * GiB]);
  const fixed = new MemoryBudget({ maxPercent: 90, budgetBytes: GiB, runnerOverheadBytes: 0, gpus, gpuBudgetBytes: 5 * GiB });
  assert.deepEqual(fixed.gpuBudgets, [5 * GiB, 5 * GiB]);
  fixed.reserve("a#1", "a", MiB, "estimate", [4 * GiB, 0]);
  assert.deepEqual(fixed.gpuUsed, [4 * GiB, 0]);
  assert.equal(fixed.fits(MiB, [2 * GiB, 0]), false, "GPU 0 is short");
  assert.equal(fixed.fits(MiB, [0, 2 * GiB]), true, "GPU 1 has room");
  assert.deepEqual(fixed.reservation("a"), { bytes: MiB, vram: [4 * GiB, 0], kind: "estimate" });
  const snap = fixed.snapshot();
  assert.deepEqual(snap.gpus[0], { index: 0, total_bytes: 100 * GiB, used_by_others_at_start_bytes: 0, budget_bytes: 5 * GiB, used_bytes: 4 * GiB });
  // without GPUs: an empty list, nothing else changes
  assert.deepEqual(new MemoryBudget({ maxPercent: 90, budgetBytes: GiB, runnerOverheadBytes: 0 }).snapshot().gpus, []);
});

const resident = (model: string, bytes: number, vram: number, over: Partial<Resident> = {}): Resident => ({
  model,
  bytes,
  vramBytes: [vram],
  pinned: false,
  busy: false,
  lastUsed: 0,
  ...over,
});
const snapshot = (residents: Resident[], gpuBudget = 100): PlacementSnapshot => ({
  budgetBytes: 1000,
  usedBytes: residents.reduce((sum, r) => sum + r.bytes, 0),
  gpus: [{ index: 0, budgetBytes: gpuBudget, usedBytes: residents.reduce((sum, r) => sum + (r.vramBytes?.[0] ?? 0), 0) }],
  maxLoadedModels: null,
  eviction: true,
  residents,
});

test("placement checks the GPU too: fits when both RAM and the GPU have room", () => {
  assert.deepEqual(decidePlacement(snapshot([resident("a", 10, 40)]), { model: "b", needBytes: 10, needVram: [60] }), { kind: "fits", evict: [] });
});

test("more than the GPU's whole budget is refused for good, naming the GPU and its numbers", () => {
  const decision = decidePlacement(snapshot([], 100 * MiB), { model: "b", needBytes: 10, needVram: [150 * MiB] });
  assert.equal(decision.kind, "refused");
  assert.ok(decision.kind === "refused" && decision.never);
  assert.match(decision.kind === "refused" ? decision.reason : "", /150 MiB on GPU 0 .*whole budget is 100 MiB \(memory\.gpu_max_percent/);
});

test("GPU room is made by evicting GPU models only: an idle CPU model, cheaper and older, stays", () => {
  const decision = decidePlacement(
    snapshot([resident("cpu-only", 300, 0, { lastUsed: 0 }), resident("gpu-a", 10, 50, { lastUsed: 5 }), resident("gpu-b", 10, 40, { lastUsed: 9 })]),
    { model: "x", needBytes: 10, needVram: [50] },
  );
  assert.deepEqual(decision, { kind: "fits", evict: ["gpu-a"] });
});

test("RAM room is made by evicting models that hold RAM; a GPU model holding no RAM is not taken", () => {
  const s = snapshot([resident("gpu-only", 0, 90, { lastUsed: 0 }), resident("ram", 600, 0, { lastUsed: 5 })]);
  assert.deepEqual(decidePlacement({ ...s, budgetBytes: 700 }, { model: "x", needBytes: 500, needVram: [0] }), { kind: "fits", evict: ["ram"] });
});

test("a GPU held by a busy model: wait for it (blocker), not refused for good; an idle one elsewhere is not evicted", () => {
  const decision = decidePlacement(snapshot([resident("busy-gpu", 10, 80, { busy: true }), resident("idle-cpu", 10, 0)]), {
    model: "x",
    needBytes: 10,
    needVram: [50],
  });
  assert.equal(decision.kind, "refused");
  if (decision.kind !== "refused") return;
  assert.equal(decision.never, false);
  assert.deepEqual(decision.blockers, ["busy-gpu"]);
  assert.match(decision.reason, /estimated 1 MiB on GPU 0; 1 MiB of that GPU.s 1 MiB budget is free/);
});

function gpuScheduler(backend: FakeBackend, gpuBudgetBytes: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-vram-"));
  dirs.push(dir);
  const memory = new MemoryBudget({
    maxPercent: 90,
    budgetBytes: 10 * GiB,
    runnerOverheadBytes: 0,
    gpus: [{ index: 0, totalBytes: 80 * GiB, usedBytes: 0 }],
    gpuBudgetBytes,
    gpuRunnerOverheadBytes: 100 * MiB,
  });
  const s = new Scheduler([backend], {
    jitLoad: true,
    start: { loaderTimeoutMs: 5_000, healthIntervalMs: 1_000, logLevel: "silent", socketDir: dir },
    log: () => {},
    memory,
    eviction: true,
    maxLoadedModels: null,
    maxConcurrentLoads: 2,
    unloadGraceMs: 1_000,
    registry: new CompatibilityRegistry(
      openStateDatabase(dir, () => {}),
      3,
    ),
    quarantineAfter: 3,
    backendOrder: [backend.name],
    allowUnsupportedRuntime: false,
    queue: { maxConcurrent: 64, queueSize: 256, queueTimeoutMs: 10_000 },
    gpuPresent: true,
    affinity: null,
  });
  return { s, memory };
}

test("scheduler: a model that can never fit the GPU budget is 507 before its runner loads anything", async () => {
  const backend = new FakeBackend("fake", (m) => ({ estimateBytes: 50 * MiB, estimateVramBytes: m.id === "huge" ? 3 * GiB : GiB }));
  const { s, memory } = gpuScheduler(backend, 2 * GiB);
  const settings = { gpu: "auto" as const, gpuLayers: 7 };
  await s.load(fakeModel("small", {}, settings), {});
  // the runner's VRAM is its estimate plus the CUDA context; RAM excludes what went to the GPU
  assert.deepEqual(memory.reservation("small"), { bytes: 50 * MiB, vram: [GiB + 100 * MiB], kind: "actual" });
  assert.deepEqual(s.loaded()[0]?.reservedVramBytes, [GiB + 100 * MiB]);
  await assert.rejects(s.load(fakeModel("huge", {}, settings), {}), (error: LmxError) => {
    assert.equal(error.code, "insufficient_memory");
    assert.equal(error.status, 507);
    assert.match(error.message, /3172 MiB on GPU 0 and that GPU's whole budget is 2048 MiB/);
    assert.deepEqual(error.details?.["estimate_vram_bytes"], [3 * GiB + 100 * MiB]);
    return true;
  });
  assert.equal(backend.runners.length, 1, "no runner of the huge model ever got past its estimate");
  assert.deepEqual(
    s.loaded().map((m) => m.id),
    ["small"],
    "the loaded model stays",
  );
  await s.stopAll(0);
});

test("scheduler: a model that fits the GPU once an idle GPU model goes evicts it", async () => {
  const backend = new FakeBackend("fake", () => ({ estimateBytes: 50 * MiB, estimateVramBytes: GiB }));
  const { s, memory } = gpuScheduler(backend, 2 * GiB);
  const settings = { gpu: "auto" as const, gpuLayers: 7 };
  await s.load(fakeModel("first", {}, settings), {});
  await s.load(fakeModel("second", {}, settings), {});
  assert.deepEqual(
    s.loaded().map((m) => m.id),
    ["second"],
  );
  assert.deepEqual(memory.gpuUsed, [GiB + 100 * MiB]);
  await s.stopAll(0);
});
