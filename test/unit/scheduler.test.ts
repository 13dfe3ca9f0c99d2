/** The scheduler with fake backends: leases, capacity, placement, command order and lifecycle, no processes. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { type LmxError } from "../../src/errors/codes.js";
import type { ModelTransition } from "../../src/scheduler/lifecycle.js";
import { MemoryBudget } from "../../src/scheduler/memory-budget.js";
import { Scheduler, type SchedulerOptions } from "../../src/scheduler/scheduler.js";
import { CompatibilityRegistry } from "../../src/state/compatibility-registry.js";
import { openStateDatabase } from "../../src/state/database.js";
import { FakeBackend, fakeModel, MiB } from "../helpers/fake-backend.js";
import type { ModelDescriptor } from "../../src/inventory/types.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function scheduler(backends: FakeBackend[], over: Partial<SchedulerOptions> = {}, budgetMiB = 1000) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-sched-"));
  dirs.push(dir);
  const registry = new CompatibilityRegistry(
    openStateDatabase(dir, () => {}),
    3,
  );
  const s = new Scheduler(backends, {
    jitLoad: true,
    start: { loaderTimeoutMs: 5_000, healthIntervalMs: 1_000, logLevel: "silent", socketDir: dir },
    log: () => {},
    memory: new MemoryBudget({ maxPercent: 90, budgetBytes: budgetMiB * MiB, runnerOverheadBytes: 0 }),
    eviction: true,
    maxLoadedModels: null,
    maxConcurrentLoads: 2,
    unloadGraceMs: 1_000,
    registry,
    quarantineAfter: 3,
    backendOrder: backends.map((b) => b.name),
    allowUnsupportedRuntime: false,
    queue: { maxConcurrent: 64, queueSize: 256, queueTimeoutMs: 10_000 },
    gpuPresent: false,
    ...over,
  });
  const transitions: string[] = [];
  s.on("transition", (t: ModelTransition) => transitions.push(`${t.model}:${t.from}->${t.to}`));
  return { s, transitions, registry };
}

const tick = () => new Promise((r) => setTimeout(r, 1));

test("capacity is the serving runner's: a runner loaded with parallel 4 runs 4 leases although the entry says 1", async () => {
  const backend = new FakeBackend("fake");
  const { s } = scheduler([backend]);
  const model = fakeModel("m", {}, { parallel: 1 });
  await s.load(model, { parallel: 4 });
  const leases = await Promise.all([1, 2, 3, 4].map(() => s.acquire(model)));
  assert.deepEqual(s.queueSnapshot().per_model["m"], { running: 4, waiting: 0 });
  leases.forEach((l) => l.release());
  // and the reverse: an entry saying 4, a runner loaded with 1, never more than 1 at once
  const other = fakeModel("n", {}, { parallel: 4 });
  await s.load(other, { parallel: 1 });
  const first = await s.acquire(other);
  const second = s.acquire(other);
  await tick();
  assert.deepEqual(s.queueSnapshot().per_model["n"], { running: 1, waiting: 1 });
  first.release();
  (await second).release();
  await s.stopAll(0);
});

test("a burst of requests for an unloaded model starts one load; all are served by it", async () => {
  const backend = new FakeBackend("fake", () => ({ loadMs: 20 }));
  const { s, transitions } = scheduler([backend]);
  const model = fakeModel("m", {}, { parallel: 2 });
  const leases = await Promise.all([1, 2].map(() => s.acquire(model)));
  assert.equal(backend.starts, 1);
  leases.forEach((l) => l.release());
  assert.deepEqual(transitions, ["m:unloaded->loading", "m:loading->ready"]);
  await s.stopAll(0);
});

test("a failed load fails every waiter with its error, and the model's state says failed", async () => {
  const backend = new FakeBackend("fake", () => ({ failWith: "model_loader_crashed" }));
  const { s, transitions } = scheduler([backend]);
  const model = fakeModel("m");
  const results = await Promise.allSettled([s.acquire(model), s.acquire(model), s.acquire(model)]);
  for (const r of results) assert.ok(r.status === "rejected" && (r.reason as LmxError).code === "model_loader_crashed");
  assert.equal(s.phase("m"), "failed");
  assert.deepEqual(transitions, ["m:unloaded->loading", "m:loading->failed"]);
  await s.stopAll(0);
});

test("a backend's failure falls through to the next backend; a memory refusal does not", async () => {
  const broken = new FakeBackend("broken", () => ({ failWith: "model_loader_crashed" }));
  const working = new FakeBackend("working");
  const { s } = scheduler([broken, working]);
  const lease = await s.acquire(fakeModel("m"));
  assert.equal(lease.runner.info.backend, "working");
  lease.release();
  const big = new FakeBackend("big", () => ({ estimateBytes: 2000 * MiB }));
  const next = new FakeBackend("next");
  const { s: s2, registry } = scheduler([big, next]);
  await assert.rejects(s2.acquire(fakeModel("huge")), (e: LmxError) => e.code === "insufficient_memory");
  assert.equal(next.starts, 0, "memory is not the backend's fault: no other backend is tried");
  assert.deepEqual(
    registry.list({ modelId: "huge" }).map((r) => r.outcome),
    ["refused"],
  );
  await s.stopAll(0);
  await s2.stopAll(0);
});

test("concurrent load commands with different settings run in order: each answer is true and the last one wins", async () => {
  const backend = new FakeBackend("fake", () => ({ loadMs: 3, stopMs: 3 }));
  const { s } = scheduler([backend]);
  const model = fakeModel("m", {}, { parallel: 1 });
  const wanted = Array.from({ length: 30 }, (_, i) => (i % 4) + 1);
  const answers = await Promise.all(wanted.map((parallel) => s.load(model, { parallel })));
  answers.forEach((answer, i) => assert.equal(answer.runner.info.parallel, wanted[i], `answer ${i} describes the runner it loaded`));
  assert.equal(s.runnerFor("m")?.info.parallel, wanted[wanted.length - 1]);
  // a later load with the same settings as the serving runner is not a reload
  const again = await s.load(model, { parallel: wanted[wanted.length - 1]! });
  assert.equal(again.reloaded, false);
  assert.equal(backend.runners.filter((r) => r.exit === null).length, 1, "exactly one runner alive");
  await s.stopAll(0);
});

test("a reload while the old runner drains: both runners' memory is counted until each is gone", async () => {
  const backend = new FakeBackend("fake", () => ({ stopMs: 60, estimateBytes: 100 * MiB }));
  const { s } = scheduler([backend], {}, 250);
  const m1 = fakeModel("m1");
  const lease = await s.acquire(m1);
  const memory = (s as unknown as { options: { memory: MemoryBudget } }).options.memory;
  const unloading = s.unload("m1", 1_000);
  await tick();
  assert.equal(s.phase("m1"), "draining");
  // requested again while it drains: waits for the drain, then a new runner
  const again = s.acquire(m1);
  lease.release();
  await unloading;
  const second = await again;
  assert.equal(memory.usedBytes, 100 * MiB, "the new runner is reserved");
  second.release();
  // m2 fits beside m1; m3 does not and m1/m2 are idle: one is evicted, never three runners on a budget for two
  await (await s.acquire(fakeModel("m2"))).release();
  await (await s.acquire(fakeModel("m3"))).release();
  const alive = backend.runners.filter((r) => r.exit === null).length;
  assert.equal(alive, 2);
  assert.ok(memory.usedBytes <= 250 * MiB);
  await s.stopAll(0);
});

test("memory is placed before a runner starts: a burst of loads never starts more runners than fit, plus the start limit", async () => {
  const backend = new FakeBackend("fake", () => ({ loadMs: 20, estimateBytes: 30 * MiB }));
  // each model's file is 30 MiB: 4 fit in 120 MiB
  const { s } = scheduler([backend], { eviction: false, maxConcurrentLoads: 2 }, 120);
  const models = Array.from({ length: 20 }, (_, i) => fakeModel(`m${i}`, { sizeBytes: 30 * MiB }));
  const results = await Promise.allSettled(models.map((m) => s.acquire(m)));
  const served = results.filter((r) => r.status === "fulfilled").length;
  const refused = results.filter((r) => r.status === "rejected" && (r.reason as LmxError).code === "insufficient_memory").length;
  assert.equal(served, 4);
  assert.equal(refused, 16);
  assert.equal(backend.starts, 4, "refused loads never started a runner");
  assert.ok(backend.maxStarting <= 2, `at most 2 runners starting at once (saw ${backend.maxStarting})`);
  await s.stopAll(0);
});

test("a model with requests in flight or waiting, or loading, is never evicted", async () => {
  const backend = new FakeBackend("fake", () => ({ loadMs: 30, estimateBytes: 100 * MiB }));
  const { s } = scheduler([backend], {}, 150);
  const a = fakeModel("a");
  const leaseA = await s.acquire(a);
  await assert.rejects(s.acquire(fakeModel("b")), (e: LmxError) => e.code === "insufficient_memory", "a is serving: not evicted");
  assert.equal(s.phase("a"), "ready");
  leaseA.release();
  const leaseB = await s.acquire(fakeModel("b"));
  assert.equal(s.phase("a"), "unloaded", "idle now: evicted for b");
  leaseB.release();
  await s.stopAll(0);
});

test("a crash moves the model to failed and the next request reloads it", async () => {
  const backend = new FakeBackend("fake");
  const { s, transitions } = scheduler([backend]);
  const model = fakeModel("m");
  (await s.acquire(model)).release();
  backend.runners[0]!.crash();
  await tick();
  assert.equal(s.phase("m"), "failed");
  const lease = await s.acquire(model);
  assert.notEqual(lease.runner, backend.runners[0]);
  lease.release();
  assert.deepEqual(transitions, ["m:unloaded->loading", "m:loading->ready", "m:ready->failed", "m:failed->loading", "m:loading->ready"]);
  await s.stopAll(0);
});

test("two loads that each need an eviction both complete, without deadlock", async () => {
  const backend = new FakeBackend("fake", () => ({ loadMs: 10, stopMs: 10, estimateBytes: 100 * MiB }));
  const { s } = scheduler([backend], {}, 200);
  for (const id of ["a", "b"]) (await s.acquire(fakeModel(id))).release();
  const [c, d] = await Promise.all([s.acquire(fakeModel("c")), s.acquire(fakeModel("d"))]);
  assert.equal(s.phase("c"), "ready");
  assert.equal(s.phase("d"), "ready");
  c.release();
  d.release();
  await s.stopAll(0);
});

test("jit_load off: an unloaded model is refused with model_not_loaded, a loaded one serves", async () => {
  const backend = new FakeBackend("fake");
  const { s } = scheduler([backend], { jitLoad: false });
  const model: ModelDescriptor = fakeModel("m");
  await assert.rejects(s.acquire(model), (e: LmxError) => e.code === "model_not_loaded");
  await s.ensureLoaded(model);
  (await s.acquire(model)).release();
  await s.stopAll(0);
});

test("affinity: a load blocked by a busy model waits for it instead of answering 507, and the swap follows", async () => {
  const backend = new FakeBackend("fake", () => ({ estimateBytes: 100 * MiB }));
  const said: string[] = [];
  const { s, transitions } = scheduler(
    [backend],
    { affinity: { maxWaitMs: 5_000, minResidentMs: 0 }, log: (_level, message) => said.push(message) },
    150,
  );
  const a = fakeModel("a");
  const leaseA = await s.acquire(a);
  const waitingB = s.acquire(fakeModel("b"));
  while (!said.includes("asking a busy model to make room")) await tick();
  // a is asked to take nothing new: a second request for it waits for a's next turn
  const secondA = s.acquire(a);
  await tick();
  assert.deepEqual(s.queueSnapshot().per_model["a"], { running: 1, waiting: 1 });
  leaseA.release();
  const leaseB = await waitingB;
  assert.ok(transitions.includes("a:draining->unloaded"), "a swapped out once its request finished");
  assert.equal(s.phase("a"), "loading", "a's waiter asks for its next turn");
  leaseB.release();
  // and a's waiter gets its turn after b's group
  (await secondA).release();
  assert.deepEqual(
    transitions.filter((t) => t.endsWith("->ready")),
    ["a:loading->ready", "b:loading->ready", "a:loading->ready"],
  );
  await s.stopAll(0);
});

test("affinity: requests are served in groups per model, not one swap per request", async () => {
  const backend = new FakeBackend("fake", () => ({ estimateBytes: 100 * MiB, loadMs: 5 }));
  const { s } = scheduler([backend], { affinity: { maxWaitMs: 10_000, minResidentMs: 0 } }, 150);
  const models = [fakeModel("a", {}, { parallel: 2 }), fakeModel("b", {}, { parallel: 2 })];
  // 8 clients alternating between the two models, 5 requests each
  await Promise.all(
    Array.from({ length: 8 }, async (_, client) => {
      for (let i = 0; i < 5; i++) {
        const lease = await s.acquire(models[(client + i) % 2]!);
        await new Promise((r) => setTimeout(r, 2));
        lease.release();
      }
    }),
  );
  // 40 requests; FIFO swapping would load about once per request
  assert.ok(backend.starts <= 10, `loads: ${backend.starts} for 40 requests`);
  await s.stopAll(0);
});

test("affinity: what can never fit (too big, or only pinned models in the way) is still refused at once", async () => {
  const backend = new FakeBackend("fake", () => ({ estimateBytes: 100 * MiB }));
  const { s } = scheduler([backend], { affinity: { maxWaitMs: 60_000, minResidentMs: 0 } }, 150);
  const started = Date.now();
  const pinned = await s.acquire(fakeModel("p", { pinned: true }));
  await assert.rejects(s.acquire(fakeModel("x")), (e: LmxError) => e.code === "insufficient_memory");
  assert.ok(Date.now() - started < 30_000, "no waiting for a pinned model");
  pinned.release();
  await s.stopAll(0);
});

test("affinity: a load that waited past max_wait answers 507 and the busy model serves again", async () => {
  const backend = new FakeBackend("fake", () => ({ estimateBytes: 100 * MiB }));
  const { s } = scheduler([backend], { affinity: { maxWaitMs: 50, minResidentMs: 0 } }, 150);
  const a = fakeModel("a");
  const held = await s.acquire(a);
  await assert.rejects(s.acquire(fakeModel("b")), (e: LmxError) => e.code === "insufficient_memory" && /max_wait/.test(e.message));
  // a is no longer asked to yield: a new request for it is served while the first still runs? (parallel 1: it waits for the first)
  const next = s.acquire(a);
  held.release();
  (await next).release();
  assert.equal(s.phase("a"), "ready");
  await s.stopAll(0);
});
