/**
 * The perf gate end to end on a real gateway and runner (stories260K): record a baseline, an unchanged run
 * passes, a run with an injected per-token delay (the runner's test-only fault injection) fails with exit 1.
 * Only ratios against the baseline are asserted, never absolute speeds.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { BENCH_EXIT } from "../../src/bench/gate.js";
import { BenchStore } from "../../src/bench/store.js";
import { runBenchCommand, type BenchCommandOptions, type BenchOutput } from "../../src/cli/bench.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-bench-gate-"));
const db = path.join(dir, "lmx.db");
let server: TestServer | null = null;

after(async () => {
  await server?.stop();
  delete process.env["LMX_ENABLE_FAULT_INJECTION"];
  delete process.env["LMX_FAULT_INJECTION"];
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<TestServer> {
  const model = await testModel("stories260K.gguf");
  return startTestServer({ models: [{ id: "stories", path: model.path, parallel: 4, context_size: 512 }], auto_load: ["stories"] });
}

async function bench(url: string, overrides: Partial<BenchCommandOptions>): Promise<{ code: number; doc: BenchOutput; err: string }> {
  let out = "";
  let err = "";
  const options: BenchCommandOptions = {
    url,
    model: "stories",
    scenario: "throughput",
    // enough warm-up that the first measured requests do not pay for V8 and runner warm-up
    warmup: 4,
    rounds: 3,
    promptTokens: 32,
    maxTokens: 128,
    concurrency: [1, 4],
    requests: 8,
    ignoreEos: true,
    systemTokens: 1000,
    turns: 5,
    timeout: 60,
    json: true,
    quiet: true,
    store: false,
    gate: false,
    updateBaseline: false,
    threshold: 15,
    db,
    ...overrides,
  };
  const code = await runBenchCommand(options, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, doc: JSON.parse(out) as BenchOutput, err };
}

test("perf gate: baseline recorded, an unchanged run passes, a 20%+ slower runner fails", async () => {
  server = await start();
  const baseline = await bench(server.url, { updateBaseline: true });
  assert.equal(baseline.code, BENCH_EXIT.ok, baseline.err);
  const target = baseline.doc.targets[0]!;
  assert.equal(target.ignore_eos, true, "our server accepts ignore_eos, so the harness forces the output length with it");
  assert.equal(target.info.backend, "llama.cpp");
  assert.equal(target.info.runner?.["parallel"], 4);
  assert.ok(target.levels.every((l) => l.errors === 0 && l.completion_tokens > 0));

  const unchanged = await bench(server.url, { gate: true });
  assert.equal(unchanged.code, BENCH_EXIT.ok, unchanged.doc.gate?.message);
  assert.equal(unchanged.doc.gate?.status, "pass");
  await server.stop();
  server = null;

  // runners inherit the gateway's environment: a 1 ms sleep per token roughly halves stories260K's speed
  process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
  process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ tokenDelayMs: 1 });
  try {
    server = await start();
    // rounds are not part of the settings key: one round is enough to see a slowdown this large
    const slowed = await bench(server.url, { gate: true, rounds: 1 });
    assert.equal(slowed.doc.gate?.status, "regression", slowed.doc.gate?.message);
    assert.equal(slowed.code, BENCH_EXIT.regression);
    assert.ok((slowed.doc.gate?.change_pct ?? 0) < -20, `the injected delay slowed the run by more than 20%: ${slowed.doc.gate?.message}`);
  } finally {
    delete process.env["LMX_ENABLE_FAULT_INJECTION"];
    delete process.env["LMX_FAULT_INJECTION"];
  }

  const store = BenchStore.open(db);
  try {
    const rows = store.list({ model: "stories" });
    assert.equal(rows.length, 1, "gate runs without --store keep nothing; the baseline run stored one row");
    assert.equal(rows[0]!.baseline, true);
    assert.equal(rows[0]!.backend_version, target.info.backend_version);
  } finally {
    store.close();
  }
});
