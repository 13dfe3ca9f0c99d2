/**
 * The scheduler with real runners: capacity from the runner that serves, ordered load commands, memory held
 * per runner across a reload during a drain, memory placed before processes start, and the admin event stream.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel, type TestModel } from "../helpers/models.js";
import { childrenOf } from "../helpers/processes.js";

let story: TestModel;

before(async () => {
  story = await testModel("stories260K.gguf");
});

interface Status {
  queue: { running: number; waiting: number; per_model: Record<string, { running: number; waiting: number }> };
  memory: { used_bytes: number; budget_bytes: number; models: Record<string, { bytes: number }> };
  models_loaded: Array<{ id: string; pid: number; parallel: number }>;
}

const post = (server: TestServer, path: string, body: unknown) =>
  getJson<Record<string, unknown>>(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** A completion long enough to overlap with others (ignore_eos keeps it going for max_tokens). */
const longCompletion = (server: TestServer, model: string, tokens = 300) =>
  fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: tokens, ignore_eos: true, temperature: 0 }),
  }).then(async (res) => ({ status: res.status, body: await res.text() }));

/** Runs `work` while sampling /admin/status; returns the most requests seen running and waiting for `model`. */
async function peakConcurrency(server: TestServer, model: string, work: Promise<unknown>): Promise<{ running: number; waiting: number }> {
  let done = false;
  const peak = { running: 0, waiting: 0 };
  void work.finally(() => (done = true));
  while (!done) {
    const { body } = await getJson<Status>(`${server.url}/admin/status`);
    const entry = body.queue.per_model[model];
    if (entry) {
      peak.running = Math.max(peak.running, entry.running);
      peak.waiting = Math.max(peak.waiting, entry.waiting);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await work;
  return peak;
}

describe("capacity comes from the runner that serves", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      models: [
        { id: "one", path: story.path, parallel: 1, context_size: 512 },
        { id: "four", path: story.path, parallel: 4, context_size: 512 },
      ],
    });
  });
  after(() => server.stop());

  test("a model configured with parallel 1 but loaded with parallel 4 runs 4 requests together", async () => {
    const loaded = await post(server, "/admin/models/load", { model_id: "one", settings: { parallel: 4 } });
    assert.equal(loaded.status, 200);
    assert.equal((loaded.body["info"] as { parallel: number }).parallel, 4);
    const work = Promise.all([1, 2, 3, 4].map(() => longCompletion(server, "one")));
    const peak = await peakConcurrency(server, "one", work);
    for (const answer of await work) assert.equal(answer.status, 200);
    assert.equal(peak.running, 4, `4 requests ran together on the 4-sequence runner (peak running ${peak.running}, waiting ${peak.waiting})`);
  });

  test("the reverse never overfills: configured 4, loaded with 1, one request at a time and all answered", async () => {
    await post(server, "/admin/models/load", { model_id: "four", settings: { parallel: 1 } });
    const work = Promise.all([1, 2, 3, 4].map(() => longCompletion(server, "four", 60)));
    const peak = await peakConcurrency(server, "four", work);
    for (const answer of await work) assert.equal(answer.status, 200);
    assert.equal(peak.running, 1);
  });
});

describe("load commands", () => {
  test("concurrent loads with different settings: every 'loaded' answer is true, and the state follows the last command", async () => {
    const server = await startTestServer({ models: [{ id: "m", path: story.path, parallel: 1, context_size: 256 }] });
    try {
      const commands = Array.from({ length: 24 }, (_, i) =>
        i % 6 === 5 ? { kind: "unload" as const } : { kind: "load" as const, parallel: (i % 3) + 1 },
      );
      const answers = await Promise.all(
        commands.map((c) =>
          c.kind === "unload"
            ? post(server, "/admin/models/unload", { model_id: "m" })
            : post(server, "/admin/models/load", { model_id: "m", settings: { parallel: c.parallel } }),
        ),
      );
      answers.forEach((answer, i) => {
        const command = commands[i]!;
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        if (command.kind === "load") {
          assert.equal(answer.body["status"], "loaded");
          assert.equal(
            (answer.body["info"] as { parallel: number }).parallel,
            command.parallel,
            `command ${i} answered with the runner it asked for`,
          );
        }
      });
      // one more, sequential: it must see the runner as it really is
      const last = await post(server, "/admin/models/load", { model_id: "m", settings: { parallel: 1 } });
      const loaded = (await getJson<{ data: Array<{ id: string; parallel: number }> }>(`${server.url}/admin/models/loaded`)).body.data;
      assert.deepEqual(
        loaded.map((m) => [m.id, m.parallel]),
        [["m", 1]],
      );
      assert.equal((last.body["info"] as { parallel: number }).parallel, 1);
      assert.equal(childrenOf(process.pid).length, 1, "exactly one runner process");
    } finally {
      await server.stop();
    }
  });
});

describe("memory", () => {
  test("a reload while the old runner drains keeps both reservations; never more runners than the budget holds", async () => {
    // each runner is reserved a few MB (stories260K, 2048 × 2) + a 40 MiB overhead: two fit in 110 MiB, three do not
    const server = await startTestServer({
      memory: { budget_bytes: 110 * 1024 * 1024, runner_overhead_mb: 40, eviction: false },
      shutdown_timeout_sec: 5,
      models: ["m1", "m2", "m3"].map((id) => ({ id, path: story.path, parallel: 2, context_size: 2048 })),
    });
    try {
      assert.equal((await longCompletion(server, "m1", 4)).status, 200);
      const draining = longCompletion(server, "m1", 1500);
      await waitFor(async () => (await getJson<Status>(`${server.url}/admin/status`)).body.queue.running === 1, 10_000, "the stream to run");
      const unloading = post(server, "/admin/models/unload", { model_id: "m1" });
      const again = longCompletion(server, "m1", 4);
      await Promise.all([draining, unloading, again]);
      const status = (await getJson<Status>(`${server.url}/admin/status`)).body;
      assert.deepEqual(
        status.models_loaded.map((m) => m.id),
        ["m1"],
      );
      assert.ok(status.memory.used_bytes > 40 * 1024 * 1024, `m1's new runner is reserved (used ${status.memory.used_bytes})`);
      assert.equal((await longCompletion(server, "m2", 4)).status, 200);
      const third = await longCompletion(server, "m3", 4);
      assert.equal(third.status, 507, "a third runner does not fit");
      const after = (await getJson<Status>(`${server.url}/admin/status`)).body;
      assert.deepEqual(after.models_loaded.map((m) => m.id).sort(), ["m1", "m2"]);
      assert.ok(after.memory.used_bytes <= after.memory.budget_bytes);
      assert.equal(childrenOf(process.pid).length, 2);
    } finally {
      await server.stop();
    }
  });

  test("20 models requested at once: memory is placed before runner processes start", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    // ~1 MB weights and context + a 40 MiB overhead each: 2 fit in 95 MiB, 3 do not
    const server = await startTestServer({
      memory: { budget_bytes: 95 * 1024 * 1024, runner_overhead_mb: 40, eviction: false },
      max_concurrent_loads: 2,
      models: ids.map((id) => ({ id, path: story.path, parallel: 1, context_size: 256 })),
    });
    try {
      let maxRunners = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          maxRunners = Math.max(maxRunners, childrenOf(process.pid).length);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const answers = await Promise.all(ids.map((id) => longCompletion(server, id, 2)));
      sampling = false;
      await sampler;
      const ok = answers.filter((a) => a.status === 200).length;
      const refused = answers.filter((a) => a.status === 507).length;
      assert.equal(ok + refused, 20);
      assert.equal(ok, 2);
      // only the runners that fit were ever started (before: one process per request, refused after starting)
      assert.ok(maxRunners <= 2, `runner processes at once: ${maxRunners} (2 fit)`);
    } finally {
      await server.stop();
    }
  });
});

describe("GET /admin/events", () => {
  test("streams a load's transitions (loading → ready) and an unload's (draining → unloaded), in order", async () => {
    const server = await startTestServer({ admin_key: "events-key-123", models: [{ id: "m", path: story.path, context_size: 256 }] });
    const auth = { authorization: "Bearer events-key-123" };
    try {
      assert.equal((await fetch(`${server.url}/admin/events`)).status, 401, "behind admin_key");
      const controller = new AbortController();
      const res = await fetch(`${server.url}/admin/events`, { headers: auth, signal: controller.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
      const events: Array<{ event: string; data: Record<string, unknown> }> = [];
      const reading = (async () => {
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf("\n\n")) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const name = /^event: (.+)$/m.exec(block)?.[1];
            const data = /^data: (.+)$/m.exec(block)?.[1];
            if (name && data) events.push({ event: name, data: JSON.parse(data) as Record<string, unknown> });
          }
        }
      })().catch(() => {});
      await waitFor(() => events.some((e) => e.event === "snapshot"), 5_000, "the snapshot event");
      const headers = { ...auth, "content-type": "application/json" };
      assert.equal(
        (await fetch(`${server.url}/admin/models/load`, { method: "POST", headers, body: JSON.stringify({ model_id: "m" }) })).status,
        200,
      );
      assert.equal(
        (await fetch(`${server.url}/admin/models/unload`, { method: "POST", headers, body: JSON.stringify({ model_id: "m" }) })).status,
        200,
      );
      const moves = () => events.filter((e) => e.event === "model" && e.data["model"] === "m").map((e) => `${e.data["from"]}->${e.data["to"]}`);
      await waitFor(() => moves().length >= 4, 5_000, "four transitions");
      assert.deepEqual(moves(), ["unloaded->loading", "loading->ready", "ready->draining", "draining->unloaded"]);
      controller.abort();
      await reading;
    } finally {
      await server.stop();
    }
  });
});
