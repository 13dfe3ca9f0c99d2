import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { openStateDatabase } from "../../src/state/database.js";
import { CompatibilityRegistry, type CompatibilityKey } from "../../src/state/compatibility-registry.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "lmx-registry-"));
  dirs.push(d);
  return d;
}
const quiet = () => {};
const key = (over: Partial<CompatibilityKey> = {}): CompatibilityKey => ({
  modelId: "m",
  backend: "llama.cpp",
  backendVersion: "node-llama-cpp 3.22.1",
  runtimeSignature: "llama/Q4_K",
  arch: "x64",
  os: "linux-6.1",
  ...over,
});

test("records attempts and answers list, latest and summary queries", () => {
  const registry = new CompatibilityRegistry(openStateDatabase(tempDir(), quiet), 3);
  registry.record(key(), "failure", { reason: "model_loader_crashed", durationMs: 12 });
  registry.record(key({ backend: "llama.cpp-cpu" }), "success", { durationMs: 40, metadata: { canary: { tokens: 4 } } });
  registry.record(key({ modelId: "other" }), "failure", { reason: "model_load_timeout" });
  assert.equal(registry.count(), 3);
  assert.equal(registry.list({ modelId: "m" }).length, 2);
  assert.equal(registry.list({ outcome: "failure" }).length, 2);
  assert.equal(registry.list({ backend: "llama.cpp-cpu" })[0]?.metadata["canary"] !== undefined, true);
  assert.equal(registry.list({ limit: 1 }).length, 1);
  assert.deepEqual(
    registry.latest("m").map((r) => [r.backend, r.outcome]),
    [
      ["llama.cpp", "failure"],
      ["llama.cpp-cpu", "success"],
    ],
  );
  const summary = registry.summary().find((s) => s.modelId === "m");
  assert.deepEqual([summary?.attempts, summary?.successes, summary?.failures], [2, 1, 1]);
});

test("quarantine after N consecutive failures; a success, an unquarantine or a new backend version clears it", () => {
  const registry = new CompatibilityRegistry(openStateDatabase(tempDir(), quiet), 3);
  registry.record(key(), "failure", { reason: "a" });
  registry.record(key(), "failure", { reason: "b" });
  assert.equal(registry.quarantine(key()).quarantined, false);
  registry.record(key(), "refused", { reason: "insufficient_memory" });
  registry.record(key(), "failure", { reason: "c" });
  const q = registry.quarantine(key());
  assert.equal(q.quarantined, true, "refusals do not break a run of failures");
  assert.deepEqual(q.lastReasons, ["c", "b", "a"]);
  assert.equal(registry.quarantined().length, 1);
  assert.equal(registry.quarantine(key({ backendVersion: "node-llama-cpp 3.23.0" })).quarantined, false, "a new backend version is a new key");
  assert.equal(registry.unquarantine("m"), 1);
  assert.equal(registry.quarantine(key()).quarantined, false);
  registry.record(key(), "failure", { reason: "d" });
  registry.record(key(), "failure", { reason: "e" });
  registry.record(key(), "success", {});
  registry.record(key(), "failure", { reason: "f" });
  assert.equal(registry.quarantine(key()).consecutiveFailures, 1, "a success resets the count");
});

test("the registry survives a writer killed with SIGKILL mid-write", async () => {
  const dir = tempDir();
  const writer = path.join(dir, "writer.mjs");
  const stateModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/state");
  writeFileSync(
    writer,
    `import { openStateDatabase } from ${JSON.stringify(path.join(stateModule, "database.js"))};
     import { CompatibilityRegistry } from ${JSON.stringify(path.join(stateModule, "compatibility-registry.js"))};
     const r = new CompatibilityRegistry(openStateDatabase(${JSON.stringify(dir)}, () => {}), 3);
     const key = { modelId: "m", backend: "b", backendVersion: "v", runtimeSignature: "s", arch: "x", os: "o" };
     process.stdout.write("ready\\n");
     for (;;) r.record(key, "failure", { reason: "x".repeat(200), metadata: { blob: "y".repeat(2000) } });`,
  );
  const child = spawn(process.execPath, [writer], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
  await new Promise((r) => setTimeout(r, 400));
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  const db = new Database(path.join(dir, "lmx.db"));
  assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
  const rows = (db.prepare("SELECT COUNT(*) AS n FROM compatibility_attempts").get() as { n: number }).n;
  db.close();
  assert.ok(rows > 10, `committed records survived (${rows})`);
  const reopened = new CompatibilityRegistry(openStateDatabase(dir, quiet), 3);
  assert.equal(reopened.count(), rows);
});

test("a corrupt state file is moved aside and the server starts empty; an unwritable one falls back to memory", () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, "lmx.db"), "this is not a database ".repeat(100));
  const problems: string[] = [];
  const state = openStateDatabase(dir, (message, fields) => problems.push(`${message} ${JSON.stringify(fields)}`));
  assert.equal(state.file, path.join(dir, "lmx.db"));
  assert.match(state.problems[0]?.error ?? "", /corrupt.*moved to/);
  new CompatibilityRegistry(state, 3).record(key(), "success", {});
  const blocker = path.join(tempDir(), "a-file");
  writeFileSync(blocker, "x");
  const memory = openStateDatabase(path.join(blocker, "state"), quiet);
  assert.equal(memory.file, null);
  assert.ok(memory.problems.some((p) => /in memory only/.test(p.error)));
  const registry = new CompatibilityRegistry(memory, 3);
  registry.record(key(), "failure", { reason: "x" });
  assert.equal(registry.count(), 1, "quarantine still works for this run");
});
