/**
 * The harness against a fake OpenAI server with known timings: what it reports must be what the fake did
 * (TTFT 50 ms, a token every 10 ms), errors must be counted, concurrency respected, ignore_eos detected.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { runBenchmark } from "../../src/bench/driver.js";
import { DEFAULT_WORKLOAD, type Workload } from "../../src/bench/types.js";
import { runBenchCommand, workloadFrom, type BenchCommandOptions, type BenchOutput } from "../../src/cli/bench.js";
import { BENCH_EXIT } from "../../src/bench/gate.js";
import { startFakeOpenAi, type FakeOpenAi } from "../helpers/fake-openai.js";

const TTFT = 50;
const ITL = 10;
const TOKENS = 20;

let fake: FakeOpenAi;

before(async () => {
  fake = await startFakeOpenAi({ ttftMs: TTFT, itlMs: ITL, timings: true });
});

after(async () => {
  await fake?.close();
});

function workload(overrides: Partial<Workload> = {}): Workload {
  return { ...DEFAULT_WORKLOAD, maxTokens: TOKENS, promptTokens: 64, warmup: 0, concurrency: [1], requests: 4, ...overrides };
}

const near = (actual: number | null, expected: number, tolerance: number, what: string) => {
  assert.ok(actual !== null && Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);
};

test("TTFT, inter-token latency, end-to-end latency and tok/s match the fake's known timings", async () => {
  const report = await runBenchmark(
    [{ label: "A", url: fake.url, model: "fake-model", apiKey: null, adminKey: null }],
    workload({ concurrency: [1, 4], requests: 8 }),
  );
  const [one, four] = report.targets[0]!.levels;
  assert.ok(one && four);
  for (const level of [one, four]) {
    assert.equal(level.errors, 0);
    assert.equal(level.requests, 8);
    assert.equal(level.completion_tokens, 8 * TOKENS);
    near(level.ttft_ms.p50, TTFT, 15, `TTFT p50 at concurrency ${level.concurrency}`);
    near(level.itl_ms.p50, ITL, 3, `ITL p50 at concurrency ${level.concurrency}`);
    near(level.e2e_ms.p50, TTFT + ITL * (TOKENS - 1), 30, "E2E p50");
    near(level.tpot_ms_mean, ITL, 2, "TPOT");
    assert.equal(level.finish_reasons["length"], 8);
    assert.ok(level.server_predicted_tok_s_p50 !== null, "server timings are read");
  }
  const perRequestS = (TTFT + ITL * (TOKENS - 1)) / 1000;
  // one at a time: tokens / (requests × one request's time); four at a time: about four times that
  near(one.output_tok_s, TOKENS / perRequestS, (TOKENS / perRequestS) * 0.2, "tok/s at concurrency 1");
  near(four.output_tok_s, (4 * TOKENS) / perRequestS, ((4 * TOKENS) / perRequestS) * 0.25, "tok/s at concurrency 4");
  const target = report.targets[0]!;
  assert.equal(target.ignore_eos, true, "the fake accepts ignore_eos");
  near(target.prompt_tokens_actual, 64, 3, "calibrated prompt length");
  near(target.avg_output_tok_s, (one.output_tok_s + four.output_tok_s) / 2, 1e-9, "the gate's average");
});

test("concurrency is respected: never more requests in flight than the level asks", async () => {
  const local = await startFakeOpenAi({ ttftMs: 20, itlMs: 2 });
  try {
    const report = await runBenchmark(
      [{ label: "A", url: local.url, model: null, apiKey: null, adminKey: null }],
      workload({ concurrency: [3], requests: 9, maxTokens: 8 }),
    );
    assert.equal(local.maxInFlight, 3);
    assert.equal(report.targets[0]!.model, "fake-model", "the model defaults to the first one listed");
    assert.equal(report.targets[0]!.levels[0]!.requests, 9);
  } finally {
    await local.close();
  }
});

test("500s are counted as errors and left out of the latencies; ignore_eos refused → sent no more", async () => {
  const local = await startFakeOpenAi({
    ttftMs: 20,
    itlMs: 2,
    rejectFields: ["ignore_eos"],
    failWhen: ({ stream }) => stream !== null && stream % 3 === 0,
  });
  try {
    const report = await runBenchmark(
      [{ label: "A", url: local.url, model: "fake-model", apiKey: null, adminKey: null }],
      workload({ concurrency: [2], requests: 9, maxTokens: 5 }),
    );
    const level = report.targets[0]!.levels[0]!;
    assert.equal(level.errors, 3);
    assert.equal(level.requests, 9);
    assert.equal(level.completion_tokens, 6 * 5);
    assert.match(level.error_samples[0] ?? "", /500: injected failure/);
    assert.equal(report.targets[0]!.ignore_eos, false);
    const streamed = local.bodies.filter((b) => b["stream"] === true);
    assert.ok(streamed.length === 9 && streamed.every((b) => !("ignore_eos" in b)), "no streamed request carried ignore_eos");
  } finally {
    await local.close();
  }
});

test("--compare alternates the two servers level by level and reports ratios; multiturn reports TTFT per turn", async () => {
  const slow = await startFakeOpenAi({ ttftMs: 100, itlMs: 20 });
  try {
    const report = await runBenchmark(
      [
        { label: "A", url: fake.url, model: "fake-model", apiKey: null, adminKey: null },
        { label: "B", url: slow.url, model: "fake-model", apiKey: null, adminKey: null },
      ],
      workload({ concurrency: [1, 2], requests: 2, rounds: 2, maxTokens: 10 }),
    );
    assert.equal(report.targets.length, 2);
    assert.equal(report.targets[0]!.rounds.length, 2);
    const row = report.comparison?.[0];
    assert.ok(row);
    near(row.ttft_ms_p50, 0.5, 0.15, "A/B TTFT ratio");
    near(row.itl_ms_p50, 0.5, 0.15, "A/B ITL ratio");
    assert.ok(row.output_tok_s !== null && row.output_tok_s > 1.5, "A is faster");

    const multi = await runBenchmark(
      [{ label: "A", url: fake.url, model: "fake-model", apiKey: null, adminKey: null }],
      workload({ scenario: "multiturn", endpoint: "chat", maxTokens: 4, systemTokens: 200, turns: 3, conversations: 2 }),
    );
    const turns = multi.targets[0]!.multiturn?.[0]?.turns ?? [];
    assert.equal(turns.length, 3);
    for (const t of turns) near(t.ttft_ms_p50, TTFT, 15, `turn ${t.turn} TTFT`);
    assert.ok(turns[2]!.prompt_tokens_p50! > turns[0]!.prompt_tokens_p50!, "the conversation grows");
    near(multi.targets[0]!.multiturn![0]!.last_over_first_ttft, 1, 0.3, "flat TTFT on a server with constant TTFT");
  } finally {
    await slow.close();
  }
});

function cliOptions(overrides: Partial<BenchCommandOptions>): BenchCommandOptions {
  return {
    url: fake.url,
    scenario: "throughput",
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

test("lmx bench: one JSON document, stored results, gate exit codes, usage errors", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-bench-cli-"));
  const db = path.join(dir, "lmx.db");
  const run = async (overrides: Partial<BenchCommandOptions>) => {
    let out = "";
    let err = "";
    const code = await runBenchCommand(cliOptions(overrides), { out: (t) => (out += t), err: (t) => (err += t) });
    return { code, out, err };
  };
  try {
    const noBaseline = await run({ gate: true, db });
    assert.equal(noBaseline.code, BENCH_EXIT.noBaseline, noBaseline.err);
    const doc = JSON.parse(noBaseline.out) as BenchOutput;
    assert.equal(doc.schema, "lmx-bench/1");
    assert.equal(doc.gate?.status, "no_baseline");

    const recorded = await run({ updateBaseline: true, db });
    assert.equal(recorded.code, BENCH_EXIT.ok, recorded.err);
    assert.equal((JSON.parse(recorded.out) as BenchOutput).stored_ids.length, 1);

    const gated = await run({ gate: true, db });
    const gatedDoc = JSON.parse(gated.out) as BenchOutput;
    assert.equal(gated.code, BENCH_EXIT.ok, gatedDoc.gate?.message);
    assert.equal(gatedDoc.gate?.status, "pass");

    const table = await run({ json: false });
    assert.equal(table.code, BENCH_EXIT.ok);
    assert.match(table.out, /TTFT p50/);

    assert.equal((await run({ scenario: "nope" })).code, BENCH_EXIT.usage);
    assert.equal((await run({ url: "not a url" })).code, BENCH_EXIT.usage);
    assert.equal((await run({ url: "http://127.0.0.1:9" })).code, BENCH_EXIT.failed, "an unreachable server");
    assert.equal(workloadFrom(cliOptions({ scenario: "multiturn", concurrency: undefined, maxTokens: undefined })).endpoint, "chat");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
