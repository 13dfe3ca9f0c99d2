/**
 * The pure parts of autotune: the precedence of setting layers and the source reported for each, the search's
 * thread candidates (never above the real cores, however many the config asks for), score v1 and its tie-break,
 * presets, and the perf gate's tuned baseline.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { evaluateGate, tunedBaseline } from "../../src/bench/gate.js";
import { resolveLoadSettings, pickBySource, SETTING_NAMES } from "../../src/tuning/precedence.js";
import { allPresets, presetNamed } from "../../src/tuning/presets.js";
import { compareCandidates, scoreV1, type CandidateMetrics } from "../../src/tuning/score.js";
import { planGrid } from "../../src/tuning/search.js";
import { clampThreads, threadCandidates, tunablesFor } from "../../src/tuning/tunables.js";
import { cgroupCpuLimit, realCoreCount } from "../../src/util/cores.js";
import { resolveWorkload, workloadKey } from "../../src/tuning/workloads.js";
import { LmxError } from "../../src/errors/codes.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const BIG = 500 * 1024 * 1024;

test("precedence: load > tuned profile > preset > model entry > defaults > built-in, each with its source", () => {
  const layers = {
    defaults: { parallel: 1, threads: 1, batch_size: 64, flash_attention: false, context_size: 128 },
    model: { parallel: 2, threads: 2, batch_size: 128, context_size: 256 },
    preset: { name: "p", settings: { parallel: 3, threads: 3, batch_size: 256 } },
    tuned: { id: 7, settings: { parallel: 4, threads: 4 } },
    explicit: { parallel: 5 },
  };
  const all = resolveLoadSettings(layers, "cpu", BIG);
  assert.equal(all.settings.parallel, 5);
  assert.equal(all.sources.parallel, "load");
  assert.equal(all.settings.threads, 4);
  assert.equal(all.sources.threads, "profile:7");
  assert.equal(all.settings.batchSize, 256);
  assert.equal(all.sources.batch_size, "preset:p");
  assert.equal(all.settings.contextSize, 256);
  assert.equal(all.sources.context_size, "model");
  assert.equal(all.settings.flashAttention, false);
  assert.equal(all.sources.flash_attention, "defaults");
  assert.equal(all.settings.cacheTypeK, "f16");
  assert.equal(all.sources.cache_type_k, "built-in");
  assert.deepEqual(Object.keys(all.sources).sort(), [...SETTING_NAMES].sort());

  // take each layer away from the top: the next one down wins, and says so
  const noLoad = resolveLoadSettings({ ...layers, explicit: {} }, "cpu", BIG);
  assert.deepEqual([noLoad.settings.parallel, noLoad.sources.parallel], [4, "profile:7"]);
  const noTuned = resolveLoadSettings({ ...layers, explicit: {}, tuned: null }, "cpu", BIG);
  assert.deepEqual([noTuned.settings.parallel, noTuned.sources.parallel], [3, "preset:p"]);
  const noPreset = resolveLoadSettings({ ...layers, explicit: {}, tuned: null, preset: null }, "cpu", BIG);
  assert.deepEqual([noPreset.settings.parallel, noPreset.sources.parallel], [2, "model"]);
  const noModel = resolveLoadSettings({ defaults: layers.defaults }, "cpu", BIG);
  assert.deepEqual([noModel.settings.parallel, noModel.sources.parallel], [1, "defaults"]);
  const nothing = resolveLoadSettings({}, "cpu", BIG);
  assert.deepEqual([nothing.settings.parallel, nothing.sources.parallel], [4, "built-in"]);
  // null is a choice (the model's own context), not an absence
  const nullContext = resolveLoadSettings({ explicit: { context_size: null }, model: { context_size: 256 } }, "cpu", BIG);
  assert.deepEqual([nullContext.settings.contextSize, nullContext.sources.context_size], [null, "load"]);
});

test("a load overrides exactly the settings its own layers chose", () => {
  const resolved = resolveLoadSettings(
    { explicit: { threads: 1 }, preset: { name: "batch", settings: { parallel: 8, batch_size: 1024 } }, model: { context_size: 256 } },
    "cpu",
    BIG,
  );
  const picked = pickBySource(resolved, (s) => s === "load" || s.startsWith("preset:"));
  assert.deepEqual(picked.overrides, { threads: 1, parallel: 8, batchSize: 1024 });
  assert.deepEqual(picked.sources, { threads: "load", parallel: "preset:batch", batch_size: "preset:batch" });
});

test("the new settings reach the resolved runner settings", () => {
  const r = resolveLoadSettings(
    { explicit: { threads_batch: 2, ubatch_size: 128, cache_type_k: "q8_0", cache_type_v: "q4_0", prompt_cache_mb: 64 } },
    "cpu",
    BIG,
  ).settings;
  assert.deepEqual([r.threadsBatch, r.ubatchSize, r.cacheTypeK, r.cacheTypeV, r.promptCacheMb], [2, 128, "q8_0", "q4_0", 64]);
  const auto = resolveLoadSettings({ explicit: { threads_batch: "auto", ubatch_size: "auto" } }, "cpu", BIG).settings;
  assert.deepEqual([auto.threadsBatch, auto.ubatchSize], [null, null]);
});

test("presets: the four built-ins, a config preset replaces one by name, an unknown name is a 400 naming the param", () => {
  assert.deepEqual(
    allPresets({}).map((p) => p.name),
    ["fast-chat", "long-context", "batch", "low-memory"],
  );
  const replaced = allPresets({ batch: { parallel: 32 } }).find((p) => p.name === "batch")!;
  assert.deepEqual(replaced.settings, { parallel: 32 });
  assert.equal(replaced.builtIn, false);
  assert.throws(
    () => presetNamed({}, "nope"),
    (e: unknown) => e instanceof LmxError && e.code === "invalid_value" && e.param === "preset",
  );
});

test("threads: candidates never exceed the real core count, whatever the base asks for", () => {
  for (const cores of [1, 2, 3, 4, 16, 64]) {
    const values = threadCandidates(cores);
    assert.ok(values.length > 0);
    assert.ok(
      values.every((t) => t >= 1 && t <= cores),
      `${cores}: ${values.join(",")}`,
    );
    assert.ok(values.includes(cores));
  }
  assert.deepEqual(threadCandidates(2), [1, 2]);
  assert.deepEqual(clampThreads({ threads: 8, threads_batch: 16, parallel: 4 }, 2), { threads: 2, threads_batch: 2, parallel: 4 });

  // a config that asks for 8 threads on 2 cores: the search's own starting point is held to 2, and so is every candidate
  const base = resolveLoadSettings({ model: { threads: 8, threads_batch: 8 } }, "cpu", BIG).settings;
  const grid = planGrid({
    tunables: tunablesFor("llama-server"),
    context: { cores: 2, gpu: false, concurrency: 8, base },
    extra: [{ threads: 32 }],
  });
  assert.ok(grid.length > 3);
  for (const c of grid) {
    const threads = c.settings.threads ?? base.threads;
    const threadsBatch = c.settings.threads_batch ?? base.threadsBatch ?? threads;
    assert.ok(typeof threads === "number" && threads <= 2, `${c.label}: threads ${String(threads)}`);
    assert.ok(typeof threadsBatch === "number" && threadsBatch <= 2, `${c.label}: threads_batch ${String(threadsBatch)}`);
  }
  assert.equal(grid[0]!.label, "current settings");
  assert.equal(grid[0]!.settings.threads, 2);
  // no GPU here: GPU layers are not a candidate (a CPU run of each would only measure noise)
  assert.ok(!grid.some((c) => "gpu_layers" in c.settings));
});

test("the real core count honours a cgroup CPU quota", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-cgroup-"));
  const file = path.join(dir, "cpu.max");
  writeFileSync(file, "150000 100000\n");
  assert.equal(cgroupCpuLimit(file), 2);
  writeFileSync(file, "max 100000\n");
  assert.equal(cgroupCpuLimit(file), null);
  assert.equal(cgroupCpuLimit(path.join(dir, "missing")), null);
  assert.ok(realCoreCount() >= 1);
});

test("score v1 and its tie-break: lower total time, then lower queue wait", () => {
  const m = (tok_s: number, ttft_ms: number, error_rate: number, total_ms = 1000, queue_ms = 0): CandidateMetrics => ({
    tok_s,
    ttft_ms,
    error_rate,
    total_ms,
    queue_ms,
    requests: 8,
  });
  assert.equal(scoreV1(m(100, 200, 0)), 97);
  assert.equal(scoreV1(m(100, 0, 0.5)), 75);
  const a = { score: 50, metrics: m(50, 0, 0, 900, 10) };
  const b = { score: 50, metrics: m(50, 0, 0, 1000, 0) };
  const c = { score: 50, metrics: m(50, 0, 0, 900, 5) };
  const d = { score: 60, metrics: m(60, 0, 0, 5000, 500) };
  assert.deepEqual(
    [a, b, c, d].sort(compareCandidates).map((x) => x.metrics.total_ms * 1000 + x.metrics.queue_ms),
    [5_000_500, 900_005, 900_010, 1_000_000],
  );
});

test("the perf gate compares with the tuned profile in use when it was measured on the same workload", () => {
  const workload = resolveWorkload("streams-8");
  const profile = { id: 12, createdAt: "2026-12-01T00:00:00Z", metrics: { tok_s: 100 }, workload: { key: workload.key } };
  const baseline = tunedBaseline(profile, workloadKey(workload.workload));
  assert.ok(baseline);
  const slower = evaluateGate(80, 0, baseline, 15);
  assert.equal(slower.status, "regression");
  assert.equal(slower.baseline_kind, "tuned_profile");
  assert.match(slower.message, /tuned profile #12/);
  assert.equal(evaluateGate(95, 0, baseline, 15).status, "pass");
  assert.equal(tunedBaseline(profile, workloadKey(resolveWorkload("chat").workload)), null, "another workload does not compare");
  assert.equal(tunedBaseline(null, workload.key), null);
});

test("lmx autotune's table marks the winner, says why others failed or were skipped, and what was applied", async () => {
  const { renderResult } = await import("../../src/cli/commands/autotune.js");
  const { styleFor } = await import("../../src/cli/format.js");
  const metrics = (tok_s: number) => ({ tok_s, ttft_ms: 100, error_rate: 0, total_ms: 1000 });
  const rows = [
    { n: 1, rung: 0, label: "current settings", outcome: "ok" as const, reason: null, metrics: metrics(40), score: 38.5 },
    {
      n: 2,
      rung: 0,
      label: "cache_type_v=q4_0 flash_attention=false",
      outcome: "failed" as const,
      reason: "llama-server exited with code 1",
      metrics: null,
      score: null,
    },
    { n: 3, rung: 1, label: "parallel=8", outcome: "ok" as const, reason: null, metrics: metrics(50), score: 48.5 },
  ];
  const text = renderResult(
    {
      id: "j",
      model_id: "m",
      backend: "llama-server",
      status: "completed",
      workload: "streams-8",
      progress: null,
      candidates: rows,
      result: {
        profile_id: 4,
        applied: true,
        winner: rows[2]!,
        baseline: rows[0]!,
        settings: { parallel: 8 },
        score_gain_pct: 26,
        tok_s_gain_pct: 25,
        stopped_early: false,
      },
      error: null,
    },
    styleFor(false),
  );
  assert.match(text, /parallel=8 .* best/);
  assert.match(text, /failed: llama-server exited with code 1/);
  assert.match(text, /best: parallel=8 \(\+25% tok\/s/);
  assert.match(text, /profile #4: parallel=8/);
  assert.match(text, /applied: used from the model's next load/);
});
