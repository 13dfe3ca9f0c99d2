import assert from "node:assert/strict";
import { test } from "node:test";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { pickSlot, sharedPrefixLength, type Slot } from "../../src/engines/llama-cpp/slots.js";
import { autoThreads, resolveRunnerSettings } from "../../src/inventory/settings.js";

function slot(index: number, cached: number[], busy = false, lastUsed = 0): Slot {
  const sequence = { contextTokens: cached as Token[] } as unknown as LlamaContextSequence;
  return { index, sequence, busy, lastUsed };
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
