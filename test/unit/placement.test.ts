import assert from "node:assert/strict";
import { test } from "node:test";
import { decidePlacement, type PlacementSnapshot, type Resident } from "../../src/scheduler/placement.js";

const resident = (model: string, bytes: number, over: Partial<Resident> = {}): Resident => ({
  model,
  bytes,
  pinned: false,
  busy: false,
  lastUsed: 0,
  ...over,
});
const snapshot = (residents: Resident[], over: Partial<PlacementSnapshot> = {}): PlacementSnapshot => ({
  budgetBytes: 100,
  usedBytes: residents.reduce((sum, r) => sum + r.bytes, 0),
  maxLoadedModels: null,
  eviction: true,
  residents,
  ...over,
});

test("fits as things are: nothing evicted", () => {
  assert.deepEqual(decidePlacement(snapshot([resident("a", 40)]), { model: "b", needBytes: 60 }), { kind: "fits", evict: [] });
});

test("evicts idle models least recently used first, only as many as needed", () => {
  const decision = decidePlacement(
    snapshot([resident("old", 30, { lastUsed: 1 }), resident("older", 30, { lastUsed: 0 }), resident("new", 30, { lastUsed: 5 })]),
    {
      model: "x",
      needBytes: 50,
    },
  );
  assert.deepEqual(decision, { kind: "fits", evict: ["older", "old"] });
});

test("never evicts a busy or pinned model; refuses with the numbers when nothing idle is left", () => {
  const decision = decidePlacement(snapshot([resident("busy", 50, { busy: true }), resident("pinned", 40, { pinned: true })]), {
    model: "x",
    needBytes: 30,
  });
  assert.equal(decision.kind, "refused");
  assert.ok(
    decision.kind === "refused" && !decision.never && /30 MiB|1 MiB/.test(decision.reason) && /no idle, unpinned model/.test(decision.reason),
  );
});

test("more than the whole budget is refused as never fitting, without evicting anyone", () => {
  const decision = decidePlacement(snapshot([resident("a", 10)]), { model: "x", needBytes: 101 });
  assert.equal(decision.kind, "refused");
  assert.ok(decision.kind === "refused" && decision.never);
});

test("max_loaded_models counts loaded and loading models and evicts to make a place", () => {
  const residents = [resident("a", 1, { lastUsed: 2 }), resident("b", 1, { lastUsed: 1 })];
  assert.deepEqual(decidePlacement(snapshot(residents, { maxLoadedModels: 2 }), { model: "c", needBytes: 1 }), { kind: "fits", evict: ["b"] });
  const busy = [resident("a", 1, { busy: true }), resident("b", 1, { busy: true })];
  const refused = decidePlacement(snapshot(busy, { maxLoadedModels: 2 }), { model: "c", needBytes: 1 });
  assert.ok(refused.kind === "refused" && /max_loaded_models \(2\)/.test(refused.reason));
});

test("with eviction off nothing is evicted and the refusal says so", () => {
  const decision = decidePlacement(snapshot([resident("a", 80)], { eviction: false }), { model: "x", needBytes: 30 });
  assert.ok(decision.kind === "refused" && /eviction is off/.test(decision.reason));
});

test("idle models are evicted cheapest to bring back first (load time × recent demand), then least recently used", () => {
  const residents = [
    resident("big-and-busy-lately", 50, { lastUsed: 0, cost: 30_000 * 40 }),
    resident("small-and-forgotten", 50, { lastUsed: 5, cost: 200 * 0.1 }),
  ];
  assert.deepEqual(decidePlacement(snapshot(residents), { model: "x", needBytes: 40 }), { kind: "fits", evict: ["small-and-forgotten"] });
});
