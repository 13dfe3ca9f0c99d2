/** Agent runs' pure parts: request shapes, the store's retention and restart recovery, majority votes, roles. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parseCreateRun } from "../../src/api/agents/schemas.js";
import { RoleCatalog } from "../../src/agents/roles.js";
import { majority } from "../../src/agents/strategies.js";
import type { LmxError } from "../../src/errors/codes.js";
import { AgentRunStore, type RunRecord } from "../../src/state/agent-runs.js";
import { openStateDatabase } from "../../src/state/database.js";

const spec = { strategy: "handoff", prompt: "p", roles: ["planner"] };

test("both request shapes parse to the same spec; params are named under the shape's key", () => {
  const a = parseCreateRun({ request: spec, metadata: { source: "x" } });
  const b = parseCreateRun({ agent: "default", input: spec });
  assert.deepEqual(a.spec, b.spec);
  assert.equal(a.spec.max_parallelism, 4);
  assert.equal(a.spec.model, "auto");
  assert.deepEqual(a.metadata, { source: "x" });
  assert.deepEqual(b.metadata, {});
  const param = (body: unknown) => {
    try {
      parseCreateRun(body);
    } catch (error) {
      return (error as LmxError).param;
    }
    return "accepted";
  };
  assert.equal(param({ request: { ...spec, max_parallelism: 33 } }), "request.max_parallelism");
  assert.equal(param({ input: { ...spec, timeout_sec: 0 } }), "input.timeout_sec");
  assert.equal(param({ agent: "other", input: spec }), "agent");
  assert.equal(param({ prompt: "p" }), "request");
});

test("majority: the most frequent answer, compared loosely; a tie goes to the earliest", () => {
  assert.deepEqual(majority(["Red", "blue", " red "]), { winner: 0, votes: 2 });
  assert.deepEqual(majority(["a", "b", "b", "a"]), { winner: 0, votes: 2 });
  assert.deepEqual(majority(["x", "y  z", "Y Z"]), { winner: 1, votes: 2 });
});

test("roles: built-ins, and config roles added or replacing a built-in", () => {
  const catalog = new RoleCatalog({
    planner: { system_prompt: "Plan briefly.", model: "auto", sampling: { max_tokens: 5 }, skills: [] },
    security: { system_prompt: "Find holes.", model: "m", sampling: {}, skills: ["add"] },
  });
  assert.ok(["researcher", "reviewer", "planner", "coder", "summarizer", "classifier", "judge", "security"].every((n) => catalog.get(n)));
  assert.equal(catalog.get("planner")!.system_prompt, "Plan briefly.");
  assert.equal(catalog.get("planner")!.builtin, false);
  assert.equal(catalog.get("coder")!.builtin, true);
});

function record(id: string, createdAt: number, status: RunRecord["status"]): RunRecord {
  return {
    id,
    status,
    strategy: "handoff",
    prompt: "p",
    roles: ["planner"],
    model: "auto",
    resolvedModel: "m",
    modelReason: "test",
    maxParallelism: 1,
    timeoutSec: 60,
    priority: "normal",
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    options: {},
    metadata: {},
    createdAt,
    startedAt: null,
    finishedAt: null,
    reason: null,
    error: null,
    output: null,
    decision: null,
  };
}

test("the store keeps the newest runs (never an unfinished one) and ends what a dead gateway left running", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-agent-store-"));
  try {
    const state = openStateDatabase(dir, () => {});
    const store = new AgentRunStore(state, 3);
    store.createRun(record("old-running", 1, "running"));
    store.saveStep({
      runId: "old-running",
      index: 0,
      kind: "handoff",
      role: "planner",
      model: "m",
      status: "running",
      input: "p",
      output: null,
      promptTokens: 0,
      completionTokens: 0,
      toolCalls: [],
      error: null,
      traceparent: "t",
      startedAt: 1,
      finishedAt: null,
    });
    for (let i = 2; i <= 6; i++) store.createRun(record(`done-${i}`, i, "completed"));
    store.appendEvent("done-2", "run.completed", {});
    store.prune();
    assert.deepEqual(
      store.list({ limit: 10 }).map((r) => r.id),
      ["done-6", "done-5", "done-4", "old-running"],
    );
    assert.deepEqual(store.events("done-2"), []);
    assert.deepEqual(
      store.list({ limit: 10, since: 5 }).map((r) => r.id),
      ["done-6", "done-5"],
    );
    assert.deepEqual(store.interruptUnfinished(100), ["old-running"]);
    const run = store.getRun("old-running")!;
    assert.deepEqual([run.status, run.reason, run.finishedAt], ["failed", "interrupted", 100]);
    assert.equal(store.steps("old-running")[0]!.status, "failed");
    assert.deepEqual(
      store.events("old-running").map((e) => e.type),
      ["run.failed"],
    );
    assert.deepEqual(store.interruptUnfinished(200), []);
    state.db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
