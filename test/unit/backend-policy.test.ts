import assert from "node:assert/strict";
import { test } from "node:test";
import { LmxError } from "../../src/errors/codes.js";
import { attemptOutcome, fallsThrough, orderCandidates, runtimeSignature } from "../../src/scheduler/backend-policy.js";
import { FakeBackend, fakeModel } from "../helpers/fake-backend.js";

const fast = new FakeBackend("fast");
const slow = new FakeBackend("slow");
const model = fakeModel("m");

test("candidates follow the configured order; unknown backends go last", () => {
  const other = new FakeBackend("other");
  assert.deepEqual(
    orderCandidates([other, slow, fast], model, ["fast", "slow"], [], false).map((b) => b.name),
    ["fast", "slow", "other"],
  );
});

test("a backend whose last load failed goes last; a crash after a good load does not demote it", () => {
  const failedLoad = [{ backend: "fast", outcome: "failure", reason: "model_loader_crashed" }];
  assert.deepEqual(
    orderCandidates([fast, slow], model, ["fast", "slow"], failedLoad, false).map((b) => b.name),
    ["slow", "fast"],
  );
  const crashed = [{ backend: "fast", outcome: "failure", reason: "model_crashed" }];
  assert.deepEqual(
    orderCandidates([fast, slow], model, ["fast", "slow"], crashed, false).map((b) => b.name),
    ["fast", "slow"],
  );
  // allow_unsupported_runtime: the configured order, whatever happened before
  assert.deepEqual(
    orderCandidates([fast, slow], model, ["fast", "slow"], failedLoad, true).map((b) => b.name),
    ["fast", "slow"],
  );
});

test("backends that cannot open the format are not candidates", () => {
  assert.deepEqual(orderCandidates([fast], fakeModel("mlx", { format: "mlx-safetensors" }), ["fast"], [], false), []);
});

test("outcomes come from the error table's fault column", () => {
  // the backend's fault: recorded as a failure and the next backend may do better
  assert.equal(attemptOutcome(new LmxError("model_loader_crashed", "x")), "failure");
  assert.equal(fallsThrough(new LmxError("model_load_timeout", "x")), true);
  // the file's fault: a failure (counts toward quarantine), but no other backend will do better
  assert.equal(attemptOutcome(new LmxError("model_file_invalid", "x")), "failure");
  assert.equal(fallsThrough(new LmxError("model_file_invalid", "x")), false);
  // resources and shutdown say nothing about the backend: refused, never quarantined, no fallthrough
  for (const code of ["insufficient_memory", "server_shutting_down"] as const) {
    assert.equal(attemptOutcome(new LmxError(code, "x")), "refused");
    assert.equal(fallsThrough(new LmxError(code, "x")), false);
  }
});

test("runtime signature: architecture and quantization family", () => {
  assert.equal(runtimeSignature(fakeModel("q", { quantization: "Q4_K_M", architecture: "qwen2" })), "qwen2/Q4_K");
  assert.equal(runtimeSignature(fakeModel("u", { quantization: null, architecture: null })), "unknown/unknown");
});
