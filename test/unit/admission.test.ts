import assert from "node:assert/strict";
import { test } from "node:test";
import { AdmissionQueue, type AdmissionOptions } from "../../src/scheduler/admission.js";
import { LmxError } from "../../src/errors/codes.js";

const tick = () => new Promise((r) => setImmediate(r));

/** A queue whose per-model capacity the test sets, as the scheduler does from the serving runner. */
function queue(options: Omit<AdmissionOptions, "capacityOf">, capacity: Record<string, number> = {}, fallback = 5) {
  const q = new AdmissionQueue({ ...options, capacityOf: (id) => capacity[id] ?? fallback });
  return { q, capacity };
}

test("runs up to a model's capacity, queues the rest in arrival order", async () => {
  const { q } = queue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 }, { m: 2 });
  const a = await q.acquire("m");
  const b = await q.acquire("m");
  const order: string[] = [];
  const c = q.acquire("m").then((l) => (order.push("c"), l));
  const d = q.acquire("m").then((l) => (order.push("d"), l));
  await tick();
  assert.deepEqual(q.snapshot().per_model["m"], { running: 2, waiting: 2 });
  a.release();
  b.release();
  (await c).release();
  (await d).release();
  assert.deepEqual(order, ["c", "d"]);
  assert.equal(q.snapshot().running, 0);
});

test("capacity is read at every dispatch: a model with no ready runner (0) holds its waiters until it has one", async () => {
  const { q, capacity } = queue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 }, { m: 0 });
  const waiting = [q.acquire("m"), q.acquire("m"), q.acquire("m"), q.acquire("m")];
  await tick();
  assert.deepEqual(q.snapshot().per_model["m"], { running: 0, waiting: 4 });
  // the runner that became ready has 4 sequences (an operator's override): all four run together
  capacity["m"] = 4;
  q.dispatch();
  const slots = await Promise.all(waiting);
  assert.deepEqual(q.snapshot().per_model["m"], { running: 4, waiting: 0 });
  for (const slot of slots) slot.release();
});

test("a smaller runner is never overfilled: capacity 1 admits one at a time", async () => {
  const { q } = queue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 }, { m: 1 });
  const first = await q.acquire("m");
  const second = q.acquire("m");
  await tick();
  assert.deepEqual(q.snapshot().per_model["m"], { running: 1, waiting: 1 });
  first.release();
  (await second).release();
});

test("rejectModel fails only that model's waiters", async () => {
  const { q } = queue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 }, { broken: 0, fine: 0 });
  const broken = q.acquire("broken");
  const fine = q.acquire("fine");
  q.rejectModel("broken", new LmxError("model_file_invalid", "bad file"));
  await assert.rejects(broken, (e: LmxError) => e.code === "model_file_invalid");
  assert.equal(q.snapshot().waiting, 1);
  q.rejectAll(new LmxError("server_shutting_down", "bye"));
  await assert.rejects(fine);
});

test("a busy model does not block another model", async () => {
  const { q } = queue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 }, { busy: 1, free: 1 });
  await q.acquire("busy");
  const waiting = q.acquire("busy");
  const other = await q.acquire("free");
  assert.ok(other, "admitted while busy's request waits");
  q.rejectAll(new LmxError("server_shutting_down", "bye"));
  await assert.rejects(waiting, (e: LmxError) => e.code === "server_shutting_down");
});

test("a full queue refuses at once with queue_full and Retry-After", async () => {
  const { q } = queue({ maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 10_000 }, { m: 1 });
  await q.acquire("m");
  const waiting = q.acquire("m");
  await assert.rejects(q.acquire("m"), (e: LmxError) => e.code === "queue_full" && e.status === 429 && e.retryAfterSec === 1);
  q.rejectAll(new LmxError("server_shutting_down", "bye"));
  await assert.rejects(waiting);
});

test("waiting too long answers queue_timeout; a cancelled waiter leaves the queue", async () => {
  const { q } = queue({ maxConcurrent: 1, queueSize: 5, queueTimeoutMs: 30 }, { m: 1 });
  const held = await q.acquire("m");
  await assert.rejects(q.acquire("m"), (e: LmxError) => e.code === "queue_timeout" && e.status === 503);
  const controller = new AbortController();
  const cancelled = q.acquire("m", controller.signal);
  controller.abort();
  await assert.rejects(cancelled);
  assert.equal(q.snapshot().waiting, 0);
  held.release();
  assert.equal(q.snapshot().running, 0);
});

test("the global limit holds across models and a slot released twice counts once", async () => {
  const { q } = queue({ maxConcurrent: 2, queueSize: 5, queueTimeoutMs: 10_000 });
  const a = await q.acquire("x");
  await q.acquire("y");
  const third = q.acquire("z");
  await tick();
  assert.equal(q.snapshot().waiting, 1);
  a.release();
  a.release();
  await third;
  assert.equal(q.snapshot().running, 2);
});

test("depth events follow every change", async () => {
  const { q } = queue({ maxConcurrent: 1, queueSize: 5, queueTimeoutMs: 10_000 }, { m: 1 });
  const depths: string[] = [];
  q.on("depth", (d: { running: number; waiting: number }) => depths.push(`${d.running}/${d.waiting}`));
  const a = await q.acquire("m");
  const b = q.acquire("m");
  await tick();
  a.release();
  (await b).release();
  assert.deepEqual(depths, ["1/0", "1/1", "0/1", "1/0", "0/0"]);
});

test("priority: an interactive request is admitted before waiting normal and batch requests", async () => {
  const { q } = queue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000, agingMs: 60_000 }, { m: 1 });
  const held = await q.acquire("m", undefined, "batch");
  const order: string[] = [];
  const batch = q.acquire("m", undefined, "batch").then((s) => (order.push("batch"), s));
  const normal = q.acquire("m", undefined, "normal").then((s) => (order.push("normal"), s));
  const interactive = q.acquire("m", undefined, "interactive").then((s) => (order.push("interactive"), s));
  await tick();
  held.release();
  (await interactive).release();
  (await normal).release();
  (await batch).release();
  assert.deepEqual(order, ["interactive", "normal", "batch"]);
});

test("priority: ageing bounds a batch request's wait under a constant interactive stream", async () => {
  const agingMs = 40;
  const { q } = queue({ maxConcurrent: 10, queueSize: 100, queueTimeoutMs: 10_000, agingMs }, { m: 1 });
  let slot = await q.acquire("m", undefined, "interactive");
  const batchStarted = Date.now();
  let batchAdmittedAt: number | null = null;
  const batch = q.acquire("m", undefined, "batch").then((s) => {
    batchAdmittedAt = Date.now();
    return s;
  });
  // an interactive request is always waiting; each slot is held briefly, then handed on
  for (let i = 0; i < 200 && batchAdmittedAt === null; i++) {
    const next = q.acquire("m", undefined, "interactive");
    await new Promise((r) => setTimeout(r, 5));
    slot.release();
    slot = await Promise.race([next, batch]);
    if (batchAdmittedAt !== null) void next.then((s) => s.release());
  }
  assert.ok(batchAdmittedAt !== null, "the batch request was admitted");
  // 2 classes to climb (batch → interactive) at one per agingMs, plus the hold of the slot in use then
  assert.ok(batchAdmittedAt! - batchStarted >= 2 * agingMs, "not before it aged to interactive");
  slot.release();
  (await batch).release();
});

test("priority: held-back sequences take only interactive requests; per-class queue limits answer 429", async () => {
  // a runner with 2 sequences, 1 of them for interactive requests only
  const q = new AdmissionQueue({
    maxConcurrent: 10,
    queueSize: 10,
    queueTimeoutMs: 10_000,
    classQueueSize: { batch: 1 },
    capacityOf: (_id, priority) => (priority === "interactive" ? 2 : 1),
  });
  const batch = await q.acquire("m", undefined, "batch");
  const waitingBatch = q.acquire("m", undefined, "batch");
  await tick();
  assert.equal(q.snapshot().per_priority.batch.waiting, 1, "the second batch request waits");
  await assert.rejects(q.acquire("m", undefined, "batch"), (e: LmxError) => e.code === "queue_full" && /priority\.queue_size\.batch/.test(e.message));
  const interactive = await q.acquire("m", undefined, "interactive");
  assert.deepEqual(q.snapshot().per_priority.interactive, { running: 1, waiting: 0 }, "the held-back sequence serves at once");
  interactive.release();
  batch.release();
  (await waitingBatch).release();
});
