/** Priority classes on a real runner: x-priority, interactive before batch, per-key defaults, metrics. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let server: TestServer;
const batchKey = "bots-key-123456";

before(async () => {
  const story = await testModel("stories260K.gguf");
  server = await startTestServer({
    api_keys: [batchKey, "people-key-123456"],
    priority: { by_api_key: { [batchKey]: "batch" } },
    models: [{ id: "m", path: story.path, parallel: 1, context_size: 1024 }],
  });
});
after(() => server.stop());

const complete = (headers: Record<string, string>, tokens: number) =>
  fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer people-key-123456", ...headers },
    body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: tokens, ignore_eos: true, temperature: 0 }),
  });

test("an unknown x-priority is a 400 naming the header", async () => {
  const res = await complete({ "x-priority": "urgent" }, 2);
  assert.equal(res.status, 400);
  const body = (await res.json()) as { error: { code: string; param: string; message: string } };
  assert.equal(body.error.param, "x-priority");
  assert.match(body.error.message, /interactive, normal, batch/);
});

test("a waiting interactive request is admitted before batch requests that waited longer", async () => {
  const finished: string[] = [];
  // holds the only sequence for a while
  const running = complete({ "x-priority": "batch" }, 600).then(async (r) => {
    await r.text();
    finished.push("first");
  });
  await waitFor(
    async () => (await getJson<{ queue: { running: number } }>(`${server.url}/admin/status`)).body.queue.running === 1,
    10_000,
    "the first to run",
  );
  // two batch requests by the bots' key (batch by config), then one interactive
  const batch = [1, 2].map((i) =>
    complete({ authorization: `Bearer ${batchKey}` }, 40).then(async (r) => {
      assert.equal(r.status, 200);
      await r.text();
      finished.push(`batch${i}`);
    }),
  );
  await waitFor(
    async () => (await getJson<{ queue: { waiting: number } }>(`${server.url}/admin/status`)).body.queue.waiting === 2,
    10_000,
    "two batch waiting",
  );
  const interactive = complete({ "x-priority": "interactive" }, 40).then(async (r) => {
    assert.equal(r.status, 200);
    await r.text();
    finished.push("interactive");
  });
  const status = await getJson<{ queue: { per_priority: Record<string, { waiting: number }> } }>(`${server.url}/admin/status`);
  assert.equal(status.body.queue.per_priority["batch"]?.waiting, 2);
  await Promise.all([running, ...batch, interactive]);
  assert.deepEqual(finished, ["first", "interactive", "batch1", "batch2"]);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /lmx:requests_admitted_total\{priority="interactive"\} 1/);
  assert.match(metrics, /lmx:requests_admitted_total\{priority="batch"\} 3/);
  assert.match(metrics, /lmx:queue_wait_seconds_count\{priority="batch"\} 3/);
});
