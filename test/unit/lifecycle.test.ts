import assert from "node:assert/strict";
import { test } from "node:test";
import { IllegalTransitionError, isLegalTransition, ModelLifecycle, type ModelTransition } from "../../src/scheduler/lifecycle.js";

test("a load and an unload move through the table, one event per move, in order", () => {
  const lifecycle = new ModelLifecycle();
  const seen: string[] = [];
  lifecycle.on("transition", (t: ModelTransition) => seen.push(`${t.from}->${t.to}`));
  lifecycle.move("m", "loading", "requested");
  lifecycle.move("m", "ready", "requested", { backend: "fake" });
  lifecycle.move("m", "draining", "requested");
  lifecycle.move("m", "unloaded", "requested");
  assert.deepEqual(seen, ["unloaded->loading", "loading->ready", "ready->draining", "draining->unloaded"]);
});

test("illegal moves throw instead of corrupting the state", () => {
  const lifecycle = new ModelLifecycle();
  assert.throws(() => lifecycle.move("m", "ready", "skipped loading"), IllegalTransitionError);
  assert.equal(lifecycle.phase("m"), "unloaded");
  assert.equal(isLegalTransition("draining", "ready"), false);
  assert.equal(isLegalTransition("ready", "loading"), false, "a reload drains first");
  assert.equal(isLegalTransition("failed", "loading"), true, "a crashed model reloads");
  assert.equal(isLegalTransition("quarantined", "unloaded"), true, "an operator lifts a quarantine");
});
