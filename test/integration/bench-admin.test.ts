/**
 * POST /admin/benchmark: one benchmark at a time per server (a second concurrent one is a 409
 * `benchmark_in_progress`), results stored in <state_dir>/lmx.db. The harness is pointed at a fake OpenAI
 * server with known timings so this test needs no model to run.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { registerBenchmarkRoutes } from "../../src/http/routes/benchmark.js";
import { sendError } from "../../src/http/errors.js";
import { BenchStore, benchDbPath } from "../../src/bench/store.js";
import { startFakeOpenAi, type FakeOpenAi } from "../helpers/fake-openai.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let gateway: TestServer;
let fake: FakeOpenAi;
let admin: FastifyInstance;

before(async () => {
  const model = await testModel("stories260K.gguf");
  // the gateway supplies the real context (inventory, config, state_dir); nothing is loaded
  gateway = await startTestServer({ models: [{ id: "fake-model", path: model.path }], demo_model: false });
  fake = await startFakeOpenAi({ ttftMs: 30, itlMs: 5 });
  admin = Fastify();
  admin.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  registerBenchmarkRoutes(admin, gateway.ctx, { baseUrl: fake.url });
  await admin.ready();
});

after(async () => {
  await admin?.close();
  await fake?.close();
  await gateway?.stop();
});

const body = { model: "fake-model", concurrency: [2], requests: 6, max_tokens: 20, prompt_tokens: 16, warmup: 0 };

test("a second concurrent benchmark gets 409 benchmark_in_progress; the first completes and is stored", async () => {
  const first = admin.inject({ method: "POST", url: "/admin/benchmark", payload: body });
  await new Promise((r) => setTimeout(r, 30));
  const second = await admin.inject({ method: "POST", url: "/admin/benchmark", payload: body });
  assert.equal(second.statusCode, 409);
  const error = second.json<{ error: { code: string; type: string; message: string; param: null } }>().error;
  assert.equal(error.code, "benchmark_in_progress");
  assert.equal(error.type, "invalid_request_error");
  assert.match(error.message, /already running/);

  const done = await first;
  assert.equal(done.statusCode, 200, done.body);
  const report = done.json<{
    targets: Array<{ levels: Array<{ requests: number; errors: number; ttft_ms: { p50: number } }> }>;
    stored_ids: number[];
  }>();
  assert.equal(report.targets[0]!.levels[0]!.requests, 6);
  assert.equal(report.targets[0]!.levels[0]!.errors, 0);
  assert.equal(report.stored_ids.length, 1);

  const store = BenchStore.open(benchDbPath(gateway.ctx.config.state_dir));
  try {
    const row = store.get(report.stored_ids[0]!);
    assert.equal(row?.model, "fake-model");
    assert.equal(row?.source, "admin");
    assert.equal(row?.baseline, false);
  } finally {
    store.close();
  }

  const again = await admin.inject({ method: "POST", url: "/admin/benchmark", payload: { ...body, store: false, update_baseline: false } });
  assert.equal(again.statusCode, 200, "the lock is released after a run");
});

test("bad bodies and unknown models are refused like every other admin route", async () => {
  const unknown = await admin.inject({ method: "POST", url: "/admin/benchmark", payload: { ...body, model: "nope" } });
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json<{ error: { code: string } }>().error.code, "model_not_found");
  const extra = await admin.inject({ method: "POST", url: "/admin/benchmark", payload: { ...body, bogus: 1 } });
  assert.equal(extra.statusCode, 400);
  const multi = await admin.inject({ method: "POST", url: "/admin/benchmark", payload: { ...body, scenario: "multiturn", endpoint: "completions" } });
  assert.equal(multi.statusCode, 400);
});
