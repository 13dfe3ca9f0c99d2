import assert from "node:assert/strict";
import { test } from "node:test";
import { AdmissionQueue } from "../../src/scheduler/admission.js";
import { LmxError } from "../../src/errors/codes.js";

const tick = () => new Promise((r) => setImmediate(r));

test("runs up to a model's capacity, queues the rest in arrival order", async () => {
  const q = new AdmissionQueue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 });
  const a = await q.acquire("m", 2);
  const b = await q.acquire("m", 2);
  const order: string[] = [];
  const c = q.acquire("m", 2).then((l) => (order.push("c"), l));
  const d = q.acquire("m", 2).then((l) => (order.push("d"), l));
  await tick();
  assert.deepEqual(q.snapshot().perModel["m"], { running: 2, waiting: 2 });
  a.release();
  b.release();
  (await c).release();
  (await d).release();
  assert.deepEqual(order, ["c", "d"]);
  assert.equal(q.snapshot().running, 0);
});

test("a busy model does not block another model", async () => {
  const q = new AdmissionQueue({ maxConcurrent: 10, queueSize: 10, queueTimeoutMs: 10_000 });
  await q.acquire("busy", 1);
  const waiting = q.acquire("busy", 1);
  const other = await q.acquire("free", 1);
  assert.ok(other, "admitted while busy's request waits");
  void waiting;
  q.rejectAll(new LmxError("server_shutting_down", "bye"));
  await assert.rejects(waiting, (e: LmxError) => e.code === "server_shutting_down");
});

test("a full queue refuses at once with queue_full and Retry-After", async () => {
  const q = new AdmissionQueue({ maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 10_000 });
  await q.acquire("m", 1);
  const waiting = q.acquire("m", 1);
  await assert.rejects(q.acquire("m", 1), (e: LmxError) => e.code === "queue_full" && e.status === 429 && e.retryAfterSec === 1);
  q.rejectAll(new LmxError("server_shutting_down", "bye"));
  await assert.rejects(waiting);
});

test("waiting too long answers queue_timeout; a cancelled waiter leaves the queue", async () => {
  const q = new AdmissionQueue({ maxConcurrent: 1, queueSize: 5, queueTimeoutMs: 30 });
  const held = await q.acquire("m", 1);
  await assert.rejects(q.acquire("m", 1), (e: LmxError) => e.code === "queue_timeout" && e.status === 503);
  const controller = new AbortController();
  const cancelled = q.acquire("m", 1, controller.signal);
  controller.abort();
  await assert.rejects(cancelled);
  assert.equal(q.snapshot().waiting, 0);
  held.release();
  assert.equal(q.snapshot().running, 0);
});

test("the global limit holds across models and a lease released twice counts once", async () => {
  const q = new AdmissionQueue({ maxConcurrent: 2, queueSize: 5, queueTimeoutMs: 10_000 });
  const a = await q.acquire("x", 5);
  await q.acquire("y", 5);
  const third = q.acquire("z", 5);
  await tick();
  assert.equal(q.snapshot().waiting, 1);
  a.release();
  a.release();
  await third;
  assert.equal(q.snapshot().running, 2);
});
