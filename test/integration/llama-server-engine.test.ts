/**
 * The llama-server engine behind the same gateway: a real llama-server (built from node-llama-cpp's bundled
 * llama.cpp) supervised by a real runner, driven through the official openai client. The gateway must not care
 * which engine serves: same answers, same error codes, same crash handling.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { describeLlamaServer } from "../../src/engines/llama-server/binary.js";
import { writeNanWeightsCopy } from "../../src/gguf/fixtures.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel, type TestModel } from "../helpers/models.js";
import { alive, childrenOf } from "../helpers/processes.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();
const skip = binary ? false : NO_LLAMA_SERVER;
const json = { "content-type": "application/json" };

interface Loaded {
  data: Array<{
    id: string;
    pid: number;
    backend: string;
    context_size: number;
    stats: { decode_calls: number; generated_tokens: number; rss_bytes: number } | null;
  }>;
}

describe("llama-server engine", { skip }, () => {
  let story: TestModel;
  let chat: TestModel;
  let server: TestServer;
  let client: OpenAI;

  before(async () => {
    story = await testModel("stories260K.gguf");
    chat = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({
      backends: { llama_server: binary!, cpu_fallback: false },
      models: [
        { id: "story", path: story.path, context_size: 256, parallel: 4, threads: 1 },
        { id: "chat", path: chat.path, context_size: 256, parallel: 2, threads: 1 },
        // the model as its own draft: greedy drafts are always accepted, so the acceptance rate is known
        { id: "spec", path: story.path, context_size: 256, parallel: 1, threads: 1, draft_model: story.path, draft_max: 8 },
      ],
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(async () => {
    await server?.stop();
  });

  test("describes the binary: version with the llama.cpp commit, no GPU devices on this machine", () => {
    const described = describeLlamaServer(binary!);
    assert.match(described.version, /^llama-server .*commit [0-9a-f]{7}/);
    assert.ok(Array.isArray(described.devices));
  });

  test("serves completions and chat through the openai client, streamed equal to whole", async () => {
    const whole = await client.completions.create({ model: "story", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
    assert.equal(whole.model, "story");
    assert.equal(whole.usage?.completion_tokens, 12);
    assert.ok((whole.usage?.prompt_tokens ?? 0) > 0);
    let streamed = "";
    for await (const chunk of await client.completions.create({
      model: "story",
      prompt: "Once upon a time",
      max_tokens: 12,
      temperature: 0,
      stream: true,
    })) {
      streamed += chunk.choices[0]?.text ?? "";
    }
    assert.equal(streamed, whole.choices[0]?.text);
    if (story.real) assert.match(whole.choices[0]!.text, /^, there was a little girl/);

    const { data, response } = await client.chat.completions
      .create({
        model: "chat",
        messages: [
          { role: "system", content: "Tell a story." },
          { role: "user", content: "Once upon a time" },
        ],
        max_tokens: 8,
        temperature: 0,
      })
      .withResponse();
    assert.equal(response.headers.get("x-lmx-backend"), "llama-server");
    assert.equal(data.choices[0]?.message.role, "assistant");
    assert.ok((data.choices[0]?.message.content ?? "").length > 0);
    const usageChunks = [];
    for await (const chunk of await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    })) {
      if (chunk.usage) usageChunks.push(chunk.usage);
    }
    assert.equal(usageChunks.length, 1);
    assert.equal(usageChunks[0]?.completion_tokens, 4);
  });

  test("the same greedy answer as the node-llama-cpp engine on the same file", { skip: false }, async () => {
    const other = await startTestServer({
      backends: { llama_server: false },
      models: [{ id: "story", path: story.path, context_size: 256, parallel: 1, threads: 1 }],
    });
    try {
      const ask = (url: string) =>
        getJson<{ choices: Array<{ text: string }> }>(`${url}/v1/completions`, {
          method: "POST",
          headers: json,
          body: JSON.stringify({ model: "story", prompt: "Once upon a time", max_tokens: 16, temperature: 0 }),
        });
      const [ours, theirs] = [await ask(server.url), await ask(other.url)];
      assert.equal(ours.status, 200);
      assert.equal(ours.body.choices[0]?.text, theirs.body.choices[0]?.text);
    } finally {
      await other.stop();
    }
  });

  test("speculative decoding with a draft model: llama-server's draft counters come back in timings", async () => {
    const res = await getJson<{ usage: { completion_tokens: number }; timings: { draft_n?: number; draft_n_accepted?: number } }>(
      `${server.url}/v1/completions`,
      {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: "spec", prompt: "Once upon a time", max_tokens: 48, temperature: 0 }),
      },
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.usage.completion_tokens, 48);
    const drafted = res.body.timings.draft_n ?? 0;
    assert.ok(drafted > 0, "tokens were drafted");
    assert.ok((res.body.timings.draft_n_accepted ?? 0) / drafted >= 0.9, `accepted ${res.body.timings.draft_n_accepted} of ${drafted}`);
    const loaded = (await getJson<{ data: Array<{ id: string; estimate: { ram: number } }> }>(`${server.url}/admin/models/loaded`)).body.data;
    const story1 = loaded.find((m) => m.id === "spec")!;
    assert.ok(story1.estimate.ram > 0);
  });

  test("nothing is cut silently: prompt + max_tokens beyond the context is refused with our code", async () => {
    const long = "word ".repeat(30); // ~90 tokens: fits alone, not with 200 more
    const tooMuch = await getJson<{ error: { code: string; param: string; message: string } }>(`${server.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "story", prompt: long, max_tokens: 200 }),
    });
    assert.equal(tooMuch.status, 400);
    assert.equal(tooMuch.body.error.code, "context_length_exceeded");
    assert.equal(tooMuch.body.error.param, "max_tokens");
    const tooLong = await getJson<{ error: { code: string } }>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "word ".repeat(600) }] }),
    });
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.error.code, "context_length_exceeded");
    // the runner is still there and serves
    const ok = await client.completions.create({ model: "story", prompt: "Once", max_tokens: 2 });
    assert.equal(ok.usage?.completion_tokens, 2);
  });

  test("concurrent streams share decode batches (llama-server's counters through /admin/models/loaded)", async () => {
    const before = (await getJson<Loaded>(`${server.url}/admin/models/loaded`)).body.data.find((m) => m.id === "story")!;
    await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        let text = "";
        // long enough that the four overlap however late each one starts on a loaded machine
        for await (const chunk of await client.completions.create({
          model: "story",
          prompt: `${i} Once upon a time`,
          max_tokens: 240,
          stream: true,
          ...{ ignore_eos: true },
        })) {
          text += chunk.choices[0]?.text ?? "";
        }
        assert.ok(text.length > 0);
      }),
    );
    const after = (await getJson<Loaded>(`${server.url}/admin/models/loaded`)).body.data.find((m) => m.id === "story")!;
    const decodes = after.stats!.decode_calls - before.stats!.decode_calls;
    const tokens = after.stats!.generated_tokens - before.stats!.generated_tokens;
    assert.ok(tokens >= 4 * 200, `generated ${tokens}`);
    assert.ok(decodes < tokens * 0.6, `${decodes} decode calls for ${tokens} tokens: sequences were not batched`);
    assert.ok(after.stats!.rss_bytes > 0);
  });

  test("llama-server killed mid-stream: the stream ends with model_crashed, the gateway stays up and reloads", async () => {
    const loaded = (await getJson<Loaded>(`${server.url}/admin/models/loaded`)).body.data.find((m) => m.id === "story")!;
    const [llamaServerPid] = childrenOf(loaded.pid);
    assert.ok(llamaServerPid, "the runner has a llama-server child");
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "story", prompt: "Once upon a time", max_tokens: 200, stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read();
    process.kill(llamaServerPid!, "SIGKILL");
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString("utf8");
    }
    assert.match(text, /"code":"model_crashed"/);
    assert.match(text, /data: \[DONE\]/);
    await waitFor(() => !alive(loaded.pid), 5_000, "the runner to end with its llama-server");
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    const { data: again, response } = await client.completions.create({ model: "story", prompt: "Once", max_tokens: 2 }).withResponse();
    assert.equal(again.usage?.completion_tokens, 2);
    // a crash after a good load does not demote the engine: the reload is llama-server again
    assert.equal(response.headers.get("x-lmx-backend"), "llama-server");
  });

  test(
    "the runner killed with SIGKILL takes its llama-server with it (no orphan holding the model)",
    { skip: process.platform !== "linux" && "needs setpriv --pdeathsig (Linux)" },
    async () => {
      await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 });
      const loaded = (await getJson<Loaded>(`${server.url}/admin/models/loaded`)).body.data.find((m) => m.id === "chat")!;
      assert.equal(loaded.backend, "llama-server");
      const [llamaServerPid] = childrenOf(loaded.pid);
      assert.ok(llamaServerPid);
      process.kill(loaded.pid, "SIGKILL");
      await waitFor(() => !alive(llamaServerPid!), 5_000, "llama-server to die with its runner");
    },
  );
});

describe("llama-server engine: failures are classified and fall back", { skip }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "lmx-ls-fail-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("NaN weights fail llama-server's canary with model_probe_failed", async () => {
    const story = await testModel("stories260K.gguf");
    const nan = path.join(dir, "nan.gguf");
    await writeNanWeightsCopy(story.path, nan);
    const server = await startTestServer({
      backends: { llama_server: binary!, cpu_fallback: false },
      models: [{ id: "nan", path: nan, context_size: 128, threads: 1 }],
    });
    try {
      const probe = await getJson<{ results: Array<{ backend: string; outcome: string; reason: string | null }> }>(
        `${server.url}/admin/models/probe`,
        {
          method: "POST",
          headers: json,
          body: JSON.stringify({ model_id: "nan" }),
        },
      );
      assert.equal(probe.status, 200);
      const ls = probe.body.results.find((r) => r.backend === "llama-server");
      assert.deepEqual([ls?.outcome, ls?.reason], ["failure", "model_probe_failed"]);
    } finally {
      await server.stop();
    }
  });

  test("a llama-server load that fails falls back to node-llama-cpp, recorded for both", async () => {
    const story = await testModel("stories260K.gguf");
    process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
    process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ load: { "fb@llama-server": "abort" } });
    const server = await startTestServer({
      backends: { llama_server: binary!, cpu_fallback: false },
      models: [{ id: "fb", path: story.path, context_size: 128, threads: 1 }],
    });
    try {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: "fb", prompt: "Once", max_tokens: 2 }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-lmx-backend"), "llama.cpp");
      const attempts = await getJson<{ data: Array<{ backend: string; outcome: string; reason: string | null }> }>(
        `${server.url}/admin/models/compatibility?model=fb`,
      );
      const byBackend = new Map(attempts.body.data.map((a) => [a.backend, a]));
      assert.deepEqual([byBackend.get("llama-server")?.outcome, byBackend.get("llama-server")?.reason], ["failure", "model_loader_crashed"]);
      assert.equal(byBackend.get("llama.cpp")?.outcome, "success");
    } finally {
      delete process.env["LMX_ENABLE_FAULT_INJECTION"];
      delete process.env["LMX_FAULT_INJECTION"];
      await server.stop();
    }
  });

  test("a draft model without a llama-server engine is refused with backend_unavailable saying why", async () => {
    const story = await testModel("stories260K.gguf");
    const server = await startTestServer({
      backends: { llama_server: false },
      models: [{ id: "spec", path: story.path, context_size: 128, threads: 1, draft_model: story.path }],
    });
    try {
      const res = await getJson<{ error: { code: string; message: string } }>(`${server.url}/v1/completions`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: "spec", prompt: "Once", max_tokens: 2 }),
      });
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, "backend_unavailable");
      assert.match(res.body.error.message, /draft model .*llama-server engine/);
    } finally {
      await server.stop();
    }
  });

  test("a binary that is not there leaves node-llama-cpp serving alone", async () => {
    const story = await testModel("stories260K.gguf");
    const missing = path.join(dir, "no-such-llama-server");
    assert.equal(existsSync(missing), false);
    const server = await startTestServer({
      backends: { llama_server: missing },
      models: [{ id: "s", path: story.path, context_size: 128, threads: 1 }],
    });
    try {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: "s", prompt: "Once", max_tokens: 2 }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-lmx-backend"), "llama.cpp");
    } finally {
      await server.stop();
    }
  });
});
