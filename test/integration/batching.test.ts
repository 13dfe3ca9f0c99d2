/** Concurrent requests are decoded together in shared batches, and the excess waits in the gateway's queue. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let server: TestServer;
let client: OpenAI;

before(async () => {
  const model = await testModel("stories260K-chatml.gguf");
  server = await startTestServer({ models: [{ id: "stories-chat", path: model.path, parallel: 4, context_size: 256 }], auto_load: ["stories-chat"] });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

after(async () => {
  await server?.stop();
});

interface LoadedList {
  data: Array<{ id: string; stats: { decode_calls: number; generated_tokens: number; requests_served: number; slots_busy: number } }>;
}

async function runnerStats() {
  const loaded = await getJson<LoadedList>(`${server.url}/admin/models/loaded`);
  const entry = loaded.body.data.find((m) => m.id === "stories-chat");
  assert.ok(entry, "the model is loaded");
  return entry.stats;
}

test("16 concurrent streams on a runner with parallel 4 all complete, batched", async (t) => {
  await client.chat.completions.create({ model: "stories-chat", messages: [{ role: "user", content: "warm up" }], max_tokens: 2 });
  const before = await runnerStats();
  const maxTokens = 48;
  let maxWaiting = 0;
  let maxRunning = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const status = await getJson<{ queue: { running: number; waiting: number } }>(`${server.url}/admin/status`);
      maxWaiting = Math.max(maxWaiting, status.body.queue.waiting);
      maxRunning = Math.max(maxRunning, status.body.queue.running);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const results = await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const stream = await client.chat.completions.create({
        model: "stories-chat",
        messages: [{ role: "user", content: `Story number ${i} about a cat.` }],
        max_tokens: maxTokens,
        temperature: 0.7,
        seed: i,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let tokens = 0;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
      return { text, tokens };
    }),
  );
  polling = false;
  await poller;
  const afterStats = await runnerStats();
  for (const r of results) {
    assert.ok(r.text.length > 0);
    assert.ok(r.tokens > 0 && r.tokens <= maxTokens);
  }
  const generated = afterStats.generated_tokens - before.generated_tokens;
  const decodes = afterStats.decode_calls - before.decode_calls;
  t.diagnostic(`${decodes} decode calls for ${generated} generated tokens (${(generated / decodes).toFixed(2)} tokens per decode)`);
  assert.equal(afterStats.requests_served - before.requests_served, 16);
  assert.equal(
    generated,
    results.reduce((sum, r) => sum + r.tokens, 0),
    "the runner counted every streamed token",
  );
  // one decode per token per sequence would be `generated` decodes; sharing batches needs far fewer
  assert.ok(decodes < generated * 0.5, `expected batched decoding: ${decodes} decode calls for ${generated} generated tokens`);
  assert.ok(maxRunning <= 4, `never more than parallel=4 running (saw ${maxRunning})`);
  assert.ok(maxWaiting > 0, "requests beyond the runner's sequences waited in the gateway queue");
});

test("a full queue answers 429 with Retry-After instead of buffering without bound", async () => {
  const small = await startTestServer({
    models: [{ id: "m", path: (await testModel("stories260K.gguf")).path, parallel: 1, context_size: 2048 }],
    auto_load: ["m"],
    queue_size: 1,
  });
  try {
    // while a model loads, every request waits in the queue (its runner has no sequence yet): start when it is ready
    await waitFor(async () => (await fetch(`${small.url}/readyz`)).status === 200, 30_000, "auto_load");
    const body = JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 1500, temperature: 0 });
    const send = () => fetch(`${small.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const responses = await Promise.all([send(), send(), send(), send()]);
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    const refused = responses.find((r) => r.status === 429)!;
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    const error = (await refused.json()) as { error: { code: string; type: string } };
    assert.equal(error.error.code, "queue_full");
    assert.equal(error.error.type, "rate_limit_error");
    await Promise.all(responses.filter((r) => !r.bodyUsed).map((r) => r.body?.cancel()));
  } finally {
    await small.stop();
  }
});
