/**
 * `lmx bench --response-format` / `--compare-response-format`: the field each target is sent, the usage errors,
 * the report and stored rows that say which format ran, and the gate that never compares constrained with plain.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { BENCH_EXIT } from "../../src/bench/gate.js";
import { renderReport } from "../../src/bench/render.js";
import { BENCH_JSON_SCHEMA } from "../../src/bench/response-format.js";
import { BenchStore } from "../../src/bench/store.js";
import { runBenchCommand, targetsFrom, workloadFrom, type BenchCommandOptions, type BenchOutput } from "../../src/cli/bench.js";
import { startFakeOpenAi, type FakeOpenAi } from "../helpers/fake-openai.js";

let fake: FakeOpenAi;

before(async () => {
  fake = await startFakeOpenAi({ ttftMs: 5, itlMs: 2 });
});

after(async () => {
  await fake?.close();
});

function cliOptions(overrides: Partial<BenchCommandOptions>): BenchCommandOptions {
  return {
    url: fake.url,
    scenario: "throughput",
    endpoint: "chat",
    warmup: 0,
    rounds: 1,
    promptTokens: 32,
    maxTokens: 5,
    concurrency: [2],
    requests: 4,
    ignoreEos: true,
    systemTokens: 1000,
    turns: 5,
    timeout: 30,
    json: true,
    quiet: true,
    store: false,
    gate: false,
    updateBaseline: false,
    threshold: 15,
    ...overrides,
  };
}

async function run(overrides: Partial<BenchCommandOptions>): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runBenchCommand(cliOptions(overrides), { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

test("options: text by default, each target its own format, usage errors off the chat throughput path", async () => {
  const plain = cliOptions({});
  const targets = targetsFrom(cliOptions({ compare: fake.url, responseFormat: "json_schema" }), workloadFrom(plain));
  assert.deepEqual(
    targets.map((t) => t.responseFormat),
    ["json_schema", "text"],
  );
  assert.deepEqual(
    targetsFrom(plain, workloadFrom(plain)).map((t) => t.responseFormat),
    ["text"],
  );

  const usage = async (overrides: Partial<BenchCommandOptions>, message: RegExp) => {
    const result = await run(overrides);
    assert.equal(result.code, BENCH_EXIT.usage, JSON.stringify(overrides));
    assert.match(result.err, message);
  };
  await usage({ responseFormat: "yaml" }, /--response-format must be one of text, json_object, json_schema/);
  await usage({ endpoint: "completions", responseFormat: "json_object" }, /--response-format json_object needs --endpoint chat/);
  await usage({ endpoint: undefined, responseFormat: "json_schema" }, /needs --endpoint chat/);
  await usage({ scenario: "multiturn", responseFormat: "json_schema" }, /throughput scenario/);
  await usage({ compareResponseFormat: "json_schema" }, /--compare-response-format needs --compare/);
  await usage({ compare: fake.url, endpoint: "completions", compareResponseFormat: "json_object" }, /--compare-response-format json_object needs/);
  // text on the completions endpoint is what every run did before the option existed
  assert.equal((await run({ endpoint: "completions", responseFormat: "text", concurrency: [1], requests: 1 })).code, BENCH_EXIT.ok);
});

test("the same server twice: constrained requests carry the schema, plain ones nothing; report, table and rows say which", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-bench-rf-"));
  const db = path.join(dir, "lmx.db");
  try {
    const from = fake.bodies.length;
    const result = await run({ compare: fake.url, responseFormat: "json_schema", compareResponseFormat: "text", store: true, db });
    assert.equal(result.code, BENCH_EXIT.ok, result.err);
    const doc = JSON.parse(result.out) as BenchOutput;
    assert.deepEqual(
      doc.targets.map((t) => t.response_format),
      ["json_schema", "text"],
    );
    const streamed = fake.bodies.slice(from).filter((b) => b["stream"] === true);
    assert.equal(streamed.length, 8, "4 requests per target");
    const constrained = streamed.filter((b) => b["response_format"] !== undefined);
    assert.equal(constrained.length, 4, "only target A's requests carry response_format");
    for (const body of constrained) {
      assert.deepEqual(body["response_format"], { type: "json_schema", json_schema: { name: "story", schema: BENCH_JSON_SCHEMA } });
      assert.ok(Array.isArray(body["messages"]));
    }
    // the fake answers max_tokens tokens: the mean per request is visible, so early stops would be too
    for (const target of doc.targets) assert.equal(target.levels[0]!.completion_tokens_mean, 5);
    assert.ok(doc.comparison?.[0]?.output_tok_s !== null);

    const table = renderReport(doc);
    assert.match(table, /response_format json_schema/);
    assert.match(table, /response_format text/);
    assert.match(table, /ratio A\/B \(unknown, json_schema \/ unknown, text\)/);
    assert.match(table, /tok\/req/);

    const store = BenchStore.open(db);
    try {
      const rows = store.list().filter((r) => doc.stored_ids.includes(r.id));
      assert.deepEqual(rows.map((r) => r.response_format).sort(), ["json_schema", "text"]);
      const [a, b] = [rows.find((r) => r.response_format === "json_schema")!, rows.find((r) => r.response_format === "text")!];
      assert.notEqual(a.settings, b.settings, "constrained and plain runs never share a settings key");
      assert.equal(JSON.parse(a.settings).response_format, "json_schema");
      assert.equal("response_format" in JSON.parse(b.settings), false, "a plain run keeps the key it had before the option");
    } finally {
      store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--gate: a plain baseline is no baseline for a constrained run, and the other way round", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-bench-rf-gate-"));
  const db = path.join(dir, "lmx.db");
  try {
    assert.equal((await run({ updateBaseline: true, db })).code, BENCH_EXIT.ok);
    assert.equal((await run({ gate: true, db })).code, BENCH_EXIT.ok, "plain against the plain baseline");
    const constrained = await run({ gate: true, db, responseFormat: "json_schema" });
    assert.equal(constrained.code, BENCH_EXIT.noBaseline, constrained.err);
    assert.equal((await run({ updateBaseline: true, db, responseFormat: "json_object" })).code, BENCH_EXIT.ok);
    assert.equal((await run({ gate: true, db, responseFormat: "json_object" })).code, BENCH_EXIT.ok);
    assert.equal((await run({ gate: true, db, responseFormat: "json_schema" })).code, BENCH_EXIT.noBaseline, "json_object is not json_schema");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a database written before the response_format column opens, and its rows read as text", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-bench-rf-old-"));
  const file = path.join(dir, "lmx.db");
  try {
    const old = new Database(file);
    old.exec(`
      CREATE TABLE bench_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL,
        backend_version TEXT, settings TEXT NOT NULL, git_commit TEXT, source TEXT NOT NULL,
        baseline INTEGER NOT NULL DEFAULT 0, avg_tok_s REAL, report TEXT NOT NULL
      );
      INSERT INTO bench_results (created_at, model, backend, settings, source, baseline, avg_tok_s, report)
        VALUES ('2025-01-01T00:00:00Z', 'm', 'llama.cpp', '{"x":1}', 'cli', 1, 42, '{}');
    `);
    old.close();
    const store = BenchStore.open(file);
    try {
      const baseline = store.baseline("m", '{"x":1}');
      assert.equal(baseline?.avg_tok_s, 42);
      assert.equal(baseline?.response_format, "text");
      const added = store.record({
        model: "m",
        backend: "llama.cpp",
        backend_version: null,
        settings: '{"x":2}',
        git_commit: null,
        source: "cli",
        baseline: false,
        avg_tok_s: 1,
        response_format: "json_schema",
        report: {},
      });
      assert.equal(store.get(added.id)?.response_format, "json_schema");
    } finally {
      store.close();
    }
    // opening again must not try to add the column twice
    BenchStore.open(file).close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
