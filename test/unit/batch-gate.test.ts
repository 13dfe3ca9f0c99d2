import assert from "node:assert/strict";
import { test } from "node:test";
import type { BatchItem, Token } from "node-llama-cpp";
import { BatchGate, fairShare } from "../../src/engines/llama-cpp/batch-gate.js";

function item(tokens: number, evaluationPriority: BatchItem["evaluationPriority"] = 5): BatchItem {
  return { tokens: Array.from({ length: tokens }, (_, i) => i as Token), logits: [], evaluationPriority };
}

test("the gate holds a batch until every generating sequence queued, then releases it", () => {
  const gate = new BatchGate(3);
  gate.generating = 4;
  const three = [item(1), item(1), item(1)];
  assert.deepEqual(gate.strategy({ items: three, size: 512 }), []);
  const four = [...three, item(1)];
  assert.equal(gate.strategy({ items: four, size: 512 }).length, 4);
});

test("the gate never waits more than maxWaits turns for a sequence that does not come", () => {
  const gate = new BatchGate(3);
  gate.generating = 2;
  const one = [item(1)];
  assert.deepEqual(gate.strategy({ items: one, size: 512 }), []);
  assert.deepEqual(gate.strategy({ items: one, size: 512 }), []);
  assert.deepEqual(gate.strategy({ items: one, size: 512 }), []);
  assert.equal(gate.strategy({ items: one, size: 512 }).length, 1, "released after 3 waits");
  assert.deepEqual(gate.strategy({ items: one, size: 512 }), [], "the wait budget resets per batch");
});

test("fair share: a long prompt cannot starve single-token sequences, and leftovers are used", () => {
  const prompt = item(1000);
  const a = item(1);
  const b = item(1);
  const result = fairShare([prompt, a, b], 512);
  const amounts = new Map(result.map((r) => [r.item, r.processAmount]));
  assert.equal(amounts.get(a), 1);
  assert.equal(amounts.get(b), 1);
  assert.equal(amounts.get(prompt), 510, "the prompt takes the rest of the batch");
  assert.equal(
    result.reduce((s, r) => s + r.processAmount, 0),
    512,
  );
});

test("fair share gives leftovers to higher priority first", () => {
  const low = item(600, 1);
  const high = item(600, 5);
  const result = fairShare([low, high], 512);
  const amounts = new Map(result.map((r) => [r.item, r.processAmount]));
  assert.equal(amounts.get(low), 256);
  assert.equal(amounts.get(high), 256);
  const uneven = fairShare([low, high], 513);
  const unevenAmounts = new Map(uneven.map((r) => [r.item, r.processAmount]));
  assert.equal(unevenAmounts.get(high), 257);
});
