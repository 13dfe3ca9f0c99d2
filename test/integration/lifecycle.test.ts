/** Model lifecycle: memory-aware admission and eviction, keep_alive, pinning, max_loaded_models, admin auth. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel, type TestModel } from "../helpers/models.js";

let story: TestModel;
let chat: TestModel;

before(async () => {
  story = await testModel("stories260K.gguf");
  chat = await testModel("stories260K-chatml.gguf");
});

interface Loaded {
  id: string;
  pid: number;
  estimate: { ram: number };
  memory: { model_ram: number; context_ram: number };
  reserved_bytes: number;
  stats: { rss_bytes: number } | null;
}

const complete = (server: TestServer, model: string) =>
  fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 4 }),
  });

const loadedIds = async (server: TestServer) =>
  (await getJson<{ data: Loaded[] }>(`${server.url}/admin/models/loaded`)).body.data.map((m) => m.id).sort();

describe("memory-aware admission", () => {
  // Each model's need is llama.cpp's estimate (~10 MB for stories260K at 2048 × 4 sequences) plus the runner
  // overhead; an 8 MiB overhead makes one model fit a 30 MiB budget and two not.
  const settings = { context_size: 2048, parallel: 4 };
  const memory = { budget_bytes: 30 * 1024 * 1024, runner_overhead_mb: 8 };

  test("loading a second model evicts the idle first one when the budget is short", async (t) => {
    const server = await startTestServer({
      memory: { ...memory, eviction: true },
      models: [
        { id: "a", path: story.path, ...settings },
        { id: "b", path: chat.path, ...settings },
      ],
    });
    try {
      assert.equal((await complete(server, "a")).status, 200);
      assert.deepEqual(await loadedIds(server), ["a"]);
      const a = (await getJson<{ data: Loaded[] }>(`${server.url}/admin/models/loaded`)).body.data[0]!;
      const measured = a.memory.model_ram + a.memory.context_ram;
      t.diagnostic(`stories260K estimate ${a.estimate.ram} B, allocated ${measured} B, runner RSS ${a.stats?.rss_bytes} B`);
      assert.ok(Math.abs(a.estimate.ram - measured) <= 0.25 * measured, "estimate within 25% of what llama.cpp allocated");
      assert.equal((await complete(server, "b")).status, 200);
      assert.deepEqual(await loadedIds(server), ["b"], "a was evicted to make room for b");
      const status = await getJson<{ memory: { used_bytes: number; budget_bytes: number } }>(`${server.url}/admin/status`);
      assert.ok(status.body.memory.used_bytes <= status.body.memory.budget_bytes);
    } finally {
      await server.stop();
    }
  });

  test("with eviction off the second load is refused with 507 insufficient_memory, and nothing breaks", async () => {
    const server = await startTestServer({
      memory: { ...memory, eviction: false },
      models: [
        { id: "a", path: story.path, ...settings },
        { id: "b", path: chat.path, ...settings },
      ],
    });
    try {
      assert.equal((await complete(server, "a")).status, 200);
      const refused = await complete(server, "b");
      assert.equal(refused.status, 507);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "insufficient_memory");
      assert.match(body.error.message, /MiB.*budget/);
      assert.deepEqual(await loadedIds(server), ["a"]);
      assert.equal((await complete(server, "a")).status, 200, "the loaded model still serves");
    } finally {
      await server.stop();
    }
  });

  test("a model bigger than the whole budget is refused before anything is loaded", async () => {
    const server = await startTestServer({
      memory: { budget_bytes: 4 * 1024 * 1024, runner_overhead_mb: 0 },
      models: [{ id: "a", path: story.path, ...settings }],
    });
    try {
      const refused = await complete(server, "a");
      assert.equal(refused.status, 507);
      assert.deepEqual(await loadedIds(server), []);
    } finally {
      await server.stop();
    }
  });

  test("max_loaded_models evicts the least recently used idle model; pinned models are never evicted", async () => {
    const server = await startTestServer({
      max_loaded_models: 2,
      models: [
        { id: "pinned", path: story.path, pinned: true, context_size: 256 },
        { id: "x", path: story.path, context_size: 256 },
        { id: "y", path: chat.path, context_size: 256 },
      ],
    });
    try {
      for (const id of ["pinned", "x", "y"]) assert.equal((await complete(server, id)).status, 200);
      assert.deepEqual(await loadedIds(server), ["pinned", "y"]);
      assert.equal((await complete(server, "x")).status, 200);
      assert.deepEqual(await loadedIds(server), ["pinned", "x"]);
    } finally {
      await server.stop();
    }
  });
});

describe("keep_alive", () => {
  test("a JIT-loaded model unloads after its keep_alive; a pinned one stays", async () => {
    const server = await startTestServer({
      keep_alive: "1s",
      models: [
        { id: "ttl", path: story.path, context_size: 256 },
        { id: "pinned", path: story.path, context_size: 256, pinned: true },
        { id: "forever", path: chat.path, context_size: 256, keep_alive: "never" },
      ],
    });
    try {
      const status = async (id: string) => (await getJson<{ status: string }>(`${server.url}/v1/models/${id}`)).body.status;
      assert.equal(await status("ttl"), "available");
      for (const id of ["pinned", "forever", "ttl"]) assert.equal((await complete(server, id)).status, 200);
      assert.equal(await status("ttl"), "loaded", "loaded just in time by its first request");
      await waitFor(async () => (await status("ttl")) === "available", 5_000, "ttl to unload");
      assert.equal(await status("pinned"), "loaded");
      assert.equal(await status("forever"), "loaded");
      assert.equal((await complete(server, "ttl")).status, 200, "it loads again on the next request");
    } finally {
      await server.stop();
    }
  });
});

describe("admin security", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ admin_key: "s3cret-admin-key", models: [{ id: "a", path: story.path, context_size: 256 }] });
  });
  after(async () => server?.stop());

  test("admin routes need the key; the message says which header and setting", async () => {
    const none = await getJson<{ error: { code: string; message: string } }>(`${server.url}/admin/status`);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, "unauthorized");
    assert.match(none.body.error.message, /X-Admin-Key/);
    assert.match(none.body.error.message, /admin_key|LMX_ADMIN_KEY/);
    const wrong = await fetch(`${server.url}/admin/status`, { headers: { "x-admin-key": "nope-nope-nope" } });
    assert.equal(wrong.status, 401);
    const good = await fetch(`${server.url}/admin/status`, { headers: { "x-admin-key": "s3cret-admin-key" } });
    assert.equal(good.status, 200);
    const bearer = await fetch(`${server.url}/admin/models/loaded`, { headers: { authorization: "Bearer s3cret-admin-key" } });
    assert.equal(bearer.status, 200);
    const load = await fetch(`${server.url}/admin/models/load`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-admin-key": "s3cret-admin-key" },
      body: JSON.stringify({ model_id: "a" }),
    });
    assert.equal(load.status, 200);
    const unloadWithout = await fetch(`${server.url}/admin/models/unload`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model_id: "a" }),
    });
    assert.equal(unloadWithout.status, 401);
  });

  test("the OpenAI routes stay open", async () => {
    assert.equal((await fetch(`${server.url}/v1/models`)).status, 200);
  });
});

describe("runner configuration", () => {
  test("concurrent first requests share one load; explicit settings reload and say so in headers", async () => {
    const server = await startTestServer({ models: [{ id: "m", path: story.path, context_size: 256, parallel: 2 }] });
    try {
      const first = await Promise.all([1, 2, 3, 4].map(() => complete(server, "m")));
      assert.deepEqual(
        first.map((r) => r.status),
        [200, 200, 200, 200],
      );
      assert.equal(first[0]!.headers.get("x-lmx-context-size"), "256");
      const loaded = async () =>
        (await getJson<{ data: Array<{ id: string; pid: number; loads: number; context_size: number }> }>(`${server.url}/admin/models/loaded`)).body
          .data[0]!;
      const before = await loaded();
      assert.equal(before.loads, 1, "one load served all four concurrent first requests");
      const load = (body: unknown) =>
        getJson<{ status: string; reloaded: boolean; error?: { code: string; param: string } }>(`${server.url}/admin/models/load`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const same = await load({ model_id: "m" });
      assert.deepEqual([same.status, same.body.reloaded], [200, false], "a plain load of a loaded model changes nothing");
      const bigger = await load({ model_id: "m", settings: { context_size: 512 } });
      assert.deepEqual([bigger.status, bigger.body.reloaded], [200, true]);
      const after = await loaded();
      assert.notEqual(after.pid, before.pid);
      assert.equal(after.context_size, 512);
      const res = await complete(server, "m");
      assert.equal(res.headers.get("x-lmx-context-size"), "512", "the response names the runner configuration that answered");
      const again = await load({ model_id: "m", settings: { context_size: 512 } });
      assert.equal(again.body.reloaded, false);
      const bad = await load({ model_id: "m", settings: { parallel: 0 } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error?.param, "settings.parallel");
    } finally {
      await server.stop();
    }
  });
});

describe("API keys for /v1", () => {
  test("when api_keys are set, OpenAI routes need one; health stays open", async () => {
    const { default: OpenAI } = await import("openai");
    const server = await startTestServer({ api_keys: ["client-key-1", "client-key-2"], models: [{ id: "a", path: story.path, context_size: 256 }] });
    try {
      const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "not-a-key", maxRetries: 0 });
      await assert.rejects(
        wrong.models.list(),
        (e: unknown) => e instanceof OpenAI.AuthenticationError && (e.error as { code?: string }).code === "invalid_api_key",
      );
      const none = await getJson<{ error: { message: string } }>(`${server.url}/v1/models`);
      assert.equal(none.status, 401);
      assert.match(none.body.error.message, /api_keys|LMX_API_KEYS/);
      const right = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "client-key-2", maxRetries: 0 });
      const done = await right.completions.create({ model: "a", prompt: "Once upon a time", max_tokens: 2 });
      assert.equal(done.choices.length, 1);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      await server.stop();
    }
  });
});
