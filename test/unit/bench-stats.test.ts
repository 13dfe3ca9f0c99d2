/** The harness's pure parts: percentiles, level summaries, medians over rounds, the store and the gate's arithmetic. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { distribution, median, percentile, ratio } from "../../src/bench/stats.js";
import { medianLevel, summarizeLevel } from "../../src/bench/driver.js";
import type { RequestSample } from "../../src/bench/client.js";
import { BENCH_EXIT, evaluateGate, exitCodeFor } from "../../src/bench/gate.js";
import { BenchStore, canonicalJson } from "../../src/bench/store.js";
import { textOfLength, uniquePrompt } from "../../src/bench/prompt.js";

test("percentiles interpolate linearly between ranks (numpy's default)", () => {
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile(xs, 100), 10);
  assert.equal(percentile(xs, 50), 5.5);
  assert.ok(Math.abs(percentile(xs, 95)! - 9.55) < 1e-9);
  assert.ok(Math.abs(percentile(xs, 99)! - 9.91) < 1e-9);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), null, "no samples is no data, not 0");
  assert.equal(median([3, 1, 2]), 2, "order of the input does not matter");
  assert.throws(() => percentile(xs, 101), RangeError);
  assert.deepEqual(distribution([]), { p50: null, p95: null, p99: null, mean: null });
  assert.equal(ratio(2, 4), 0.5);
  assert.equal(ratio(2, 0), null);
  assert.equal(ratio(null, 4), null);
});

function sample(partial: Partial<RequestSample>): RequestSample {
  return {
    ok: true,
    status: 200,
    error: null,
    ttftMs: 50,
    e2eMs: 140,
    itlMs: [10, 10, 10],
    contentChunks: 10,
    completionTokens: 10,
    promptTokens: 100,
    cachedTokens: 0,
    finishReason: "length",
    timings: null,
    text: "",
    ...partial,
  };
}

test("a level summary: aggregate tok/s over wall time, latencies from successful requests only, errors counted", () => {
  const samples = [
    sample({ ttftMs: 40, e2eMs: 130 }),
    sample({ ttftMs: 60, e2eMs: 150, timings: { predicted_n: 10, predicted_ms: 90, prompt_ms: 20, draft_n: 10, draft_n_accepted: 7 } }),
    sample({ ok: false, status: 500, error: "500: boom", ttftMs: null, itlMs: [], completionTokens: null, contentChunks: 0 }),
  ];
  const level = summarizeLevel(2, samples, 500);
  assert.equal(level.requests, 3);
  assert.equal(level.errors, 1);
  assert.deepEqual(level.error_samples, ["500: boom"]);
  assert.equal(level.completion_tokens, 20);
  assert.equal(level.output_tok_s, 40, "20 tokens in 0.5 s");
  assert.equal(level.ttft_ms.p50, 50);
  assert.equal(level.itl_ms.p50, 10);
  assert.equal(level.tpot_ms_mean, 10, "(e2e − ttft) / (tokens − 1)");
  assert.equal(level.spec_accept_rate, 0.7);
  assert.ok(Math.abs(level.server_predicted_tok_s_p50! - 111.11) < 0.01);
  assert.deepEqual(level.finish_reasons, { length: 2 });
  const noSpec = summarizeLevel(1, [sample({})], 100);
  assert.equal(noSpec.spec_accept_rate, null, "no speculative decoding reported: null, not 0");
  assert.equal(
    summarizeLevel(1, [sample({ completionTokens: null, contentChunks: 7 })], 1000).completion_tokens,
    7,
    "without usage the received chunks count",
  );
});

test("rounds: counts add up, rates are medians", () => {
  const r = (tokS: number, errors: number) => ({ ...summarizeLevel(4, [sample({})], 1000), output_tok_s: tokS, errors });
  const merged = medianLevel([r(100, 0), r(300, 1), r(200, 0)]);
  assert.equal(merged.output_tok_s, 200);
  assert.equal(merged.errors, 1);
  assert.equal(merged.requests, 3);
});

test("prompts: cut from the fixed text at word boundaries, unique per request from the first token", () => {
  const text = textOfLength(5000);
  assert.ok(text.length <= 5000 && text.length > 4900);
  assert.ok(!text.endsWith(" "));
  assert.notEqual(uniquePrompt(1, "abc", 100)[0], uniquePrompt(2, "abc", 100)[0], "the first character differs");
});

test("the gate: within the threshold passes, beyond fails, no baseline and failed requests have their own exit codes", () => {
  const baseline = {
    id: 7,
    created_at: "2025-01-01T00:00:00Z",
    model: "m",
    backend: "b",
    backend_version: null,
    settings: "{}",
    git_commit: "abc",
    source: "cli",
    baseline: true,
    avg_tok_s: 100,
    response_format: "text",
    report: "{}",
  };
  const pass = evaluateGate(90, 0, baseline, 15);
  assert.equal(pass.status, "pass");
  assert.equal(exitCodeFor(pass), BENCH_EXIT.ok);
  assert.ok(Math.abs(pass.change_pct! + 10) < 1e-9);
  const fail = evaluateGate(84, 0, baseline, 15);
  assert.equal(fail.status, "regression");
  assert.equal(exitCodeFor(fail), BENCH_EXIT.regression);
  assert.match(fail.message, /FAILED/);
  assert.equal(exitCodeFor(evaluateGate(90, 0, null)), BENCH_EXIT.noBaseline);
  assert.equal(exitCodeFor(evaluateGate(120, 2, baseline)), BENCH_EXIT.failed);
  assert.equal(evaluateGate(200, 0, baseline).status, "pass", "faster is never a failure");
});

test("the store: canonical settings, newest baseline per model and settings, WAL", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }), '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}');
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-bench-store-"));
  try {
    const store = BenchStore.open(path.join(dir, "lmx.db"));
    const row = (avg: number, baseline: boolean, settings = '{"x":1}', model = "m") =>
      store.record({
        model,
        backend: "llama.cpp",
        backend_version: "v",
        settings,
        git_commit: "c",
        source: "cli",
        baseline,
        avg_tok_s: avg,
        report: { avg },
      });
    assert.equal(store.baseline("m", '{"x":1}'), null);
    row(100, true);
    const newest = row(120, true);
    row(50, false);
    row(10, true, '{"x":2}');
    row(10, true, '{"x":1}', "other");
    assert.equal(store.baseline("m", '{"x":1}')?.id, newest.id, "the newest baseline, never a plain result");
    assert.equal(store.baseline("m", '{"x":1}')?.avg_tok_s, 120);
    assert.equal(store.list({ model: "m" }).length, 4);
    assert.deepEqual(JSON.parse(store.get(newest.id)!.report), { avg: 120 });
    store.close();
    const reopened = BenchStore.open(path.join(dir, "lmx.db"));
    assert.equal(reopened.baseline("m", '{"x":1}')?.id, newest.id, "results survive a reopen");
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
