import assert from "node:assert/strict";
import { test } from "node:test";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { LmxError } from "../../src/errors/codes.js";
import { pickSlot, sharedPrefixLength, SlotPool, type Slot, type SlotLease } from "../../src/engines/llama-cpp/slots.js";
import { autoThreads, resolveRunnerSettings } from "../../src/inventory/settings.js";

function slot(index: number, cached: number[], busy = false, lastUsed = 0): Slot {
  const sequence = { contextTokens: cached as Token[] } as unknown as LlamaContextSequence;
  const s: Slot = { index, sequence, owner: null, lastUsed };
  if (busy) s.owner = { slot: s, reusable: 0, released: false };
  return s;
}
const t = (xs: number[]) => xs as Token[];

test("a request goes to the idle slot sharing the longest prefix", () => {
  const slots = [slot(0, [1, 2, 3]), slot(1, [1, 2, 3, 4, 5, 6]), slot(2, [1, 2, 3, 4, 5, 6, 7], true)];
  const choice = pickSlot(slots, t([1, 2, 3, 4, 5, 9]));
  assert.equal(choice?.slot.index, 1);
  assert.equal(choice?.reusable, 5);
});

test("at least one prompt token is always evaluated, even on a full cache hit", () => {
  const choice = pickSlot([slot(0, [1, 2, 3, 4])], t([1, 2, 3, 4]));
  assert.equal(choice?.reusable, 3);
});

test("with no shared prefix the least recently used idle slot is taken; none idle → null", () => {
  const choice = pickSlot([slot(0, [9], false, 50), slot(1, [8], false, 10)], t([1, 2]));
  assert.equal(choice?.slot.index, 1);
  assert.equal(pickSlot([slot(0, [], true)], t([1])), null);
  assert.equal(sharedPrefixLength(t([1, 2]), t([1, 2, 3])), 2);
});

test("a freed slot goes to exactly one waiter, in arrival order; the next freed slot to the next waiter", async () => {
  const pool = new SlotPool([slot(0, [1, 2]), slot(1, [1, 2])], 60_000);
  const never = new AbortController().signal;
  const a = await pool.acquire(t([1, 2, 3]), never);
  const b = await pool.acquire(t([1, 2, 3]), never);
  const granted: Array<[string, SlotLease]> = [];
  const c = pool.acquire(t([1, 2, 3]), never).then((l) => granted.push(["c", l]));
  const d = pool.acquire(t([1, 2, 3]), never).then((l) => granted.push(["d", l]));
  assert.equal(pool.waiting, 2);
  // one release, two waiters: before the fix both waiters were handed this slot and decoded into one KV cache
  pool.release(a);
  await c;
  assert.deepEqual(
    granted.map(([who, l]) => [who, l.slot.index]),
    [["c", a.slot.index]],
  );
  assert.equal(pool.waiting, 1);
  pool.release(a); // a second release of the same lease changes nothing
  assert.equal(pool.waiting, 1);
  assert.equal(a.slot.owner, granted[0]![1]);
  pool.release(b);
  await d;
  assert.deepEqual(
    granted.map(([who, l]) => [who, l.slot.index]),
    [
      ["c", a.slot.index],
      ["d", b.slot.index],
    ],
  );
  assert.equal(pool.busy, 2);
});

test("a waiter whose client leaves stops waiting; one that waits too long gets runner_busy with a Retry-After", async () => {
  const pool = new SlotPool([slot(0, [])], 50);
  const held = await pool.acquire(t([1]), new AbortController().signal);
  const controller = new AbortController();
  const leaving = pool.acquire(t([1]), controller.signal);
  controller.abort(new Error("client left"));
  await assert.rejects(leaving, /client left/);
  assert.equal(pool.waiting, 0);
  await assert.rejects(pool.acquire(t([1]), new AbortController().signal), (error: unknown) => {
    assert.ok(error instanceof LmxError);
    assert.equal(error.code, "runner_busy");
    assert.equal(error.retryAfterSec, 1);
    return true;
  });
  pool.release(held);
  assert.equal(pool.busy, 0);
});

test("settings: per-model over defaults over built-ins; small models get one thread", () => {
  const s = resolveRunnerSettings({ parallel: 2 }, { parallel: 8, batch_size: 256, threads: 3 }, "cpu", 10);
  assert.equal(s.parallel, 2);
  assert.equal(s.batchSize, 256);
  assert.equal(s.threads, 3);
  assert.equal(resolveRunnerSettings({}, {}, "auto", 1_000_000).threads, 1);
  assert.equal(autoThreads(1_000_000, 16), 1);
  assert.equal(autoThreads(500_000_000, 16), 16);
  assert.equal(resolveRunnerSettings({}, {}, "auto", 0).parallel, 4);
});
