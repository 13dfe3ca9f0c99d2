/** Runner failures stay contained: kill -9 mid-stream, load timeouts and bad files each give a clear error. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { writeBadMagicFile, writeTruncatedCopy } from "../../src/gguf/fixtures.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let server: TestServer;
let client: OpenAI;
let fixtures: string;

before(async () => {
  fixtures = mkdtempSync(path.join(os.tmpdir(), "lmx-supervision-"));
  const story = await testModel("stories260K.gguf");
  const fifo = path.join(fixtures, "hangs-forever.gguf");
  // opening a FIFO with no writer blocks: a faithful stand-in for a model on a hung network mount
  execFileSync("mkfifo", [fifo]);
  await writeBadMagicFile(path.join(fixtures, "bad-magic.gguf"));
  await writeTruncatedCopy(story.path, path.join(fixtures, "truncated.gguf"), 0.5);
  server = await startTestServer({
    loader_timeout_sec: 1.5,
    models: [
      // only "hangs" is meant to hit loader_timeout_sec; a loaded machine may take longer than 1.5 s to load this one
      { id: "chat", path: (await testModel("stories260K-chatml.gguf")).path, parallel: 4, context_size: 2048, loader_timeout_sec: 60 },
      { id: "hangs", path: fifo },
      { id: "bad-magic", path: path.join(fixtures, "bad-magic.gguf") },
      { id: "truncated", path: path.join(fixtures, "truncated.gguf") },
    ],
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

after(async () => {
  await server?.stop();
  rmSync(fixtures, { recursive: true, force: true });
});

async function runnerPid(id: string): Promise<number> {
  const loaded = await getJson<{ data: Array<{ id: string; pid: number }> }>(`${server.url}/admin/models/loaded`);
  const entry = loaded.body.data.find((m) => m.id === id);
  assert.ok(entry, `${id} is loaded`);
  return entry.pid;
}

const messages = [{ role: "user" as const, content: "Tell me a long story." }];

describe("a runner killed with SIGKILL", () => {
  test("mid-stream: every stream gets an error event, the gateway stays up, the next request reloads", async () => {
    await client.chat.completions.create({ model: "chat", messages, max_tokens: 2 });
    const pid = await runnerPid("chat");
    let started = 0;
    const streams = Array.from({ length: 4 }, async () => {
      const stream = await client.chat.completions.create({ model: "chat", messages, max_tokens: 1900, temperature: 0.8, stream: true });
      let chunks = 0;
      try {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta.content) chunks++;
          if (chunks === 1) started++;
        }
      } catch (error) {
        return { chunks, error };
      }
      return { chunks, error: null };
    });
    await waitFor(() => started === 4, 10_000, "all four streams to produce text");
    process.kill(pid, "SIGKILL");
    const outcomes = await Promise.all(streams);
    for (const outcome of outcomes) {
      assert.ok(outcome.chunks > 0);
      assert.ok(outcome.error instanceof OpenAI.APIError, `stream ended with an error event, got ${String(outcome.error)}`);
      assert.match(String((outcome.error as InstanceType<typeof OpenAI.APIError>).message), /SIGKILL|runner/);
    }
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    const again = await client.chat.completions.create({ model: "chat", messages, max_tokens: 8 });
    assert.equal(again.choices[0]?.finish_reason, "length");
    assert.notEqual(await runnerPid("chat"), pid, "a new runner serves the model");
  });

  test("during a non-streamed request: 503 model_crashed", async () => {
    await client.chat.completions.create({ model: "chat", messages, max_tokens: 2 });
    const pid = await runnerPid("chat");
    const pending = getJson<{ error: { code: string; message: string } }>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages, max_tokens: 1900 }),
    });
    await waitFor(async () => {
      const loaded = await getJson<{ data: Array<{ id: string; stats: { requests_active: number } | null }> }>(`${server.url}/admin/models/loaded`);
      return (loaded.body.data.find((m) => m.id === "chat")?.stats?.requests_active ?? 0) > 0;
    });
    process.kill(pid, "SIGKILL");
    const result = await pending;
    assert.equal(result.status, 503);
    assert.equal(result.body.error.code, "model_crashed");
    assert.match(result.body.error.message, /SIGKILL/);
  });
});

describe("loads that fail", () => {
  test("a load that hangs past loader_timeout_sec is killed and answered model_load_timeout", async () => {
    const started = Date.now();
    const result = await getJson<{ error: { code: string; type: string } }>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "hangs", messages }),
    });
    assert.equal(result.status, 503);
    assert.equal(result.body.error.code, "model_load_timeout");
    assert.ok(result.headers.get("retry-after"));
    assert.ok(Date.now() - started < 10_000);
    const models = await getJson<{ data: Array<{ id: string; status: string; last_error: { code: string } | null }> }>(`${server.url}/v1/models`);
    const hangs = models.body.data.find((m) => m.id === "hangs");
    assert.equal(hangs?.status, "available");
    assert.equal(hangs?.last_error?.code, "model_load_timeout");
  });

  for (const id of ["bad-magic", "truncated"]) {
    test(`${id}: answered model_file_invalid, other models unaffected`, async () => {
      const result = await getJson<{ error: { code: string } }>(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: id, messages }),
      });
      assert.equal(result.body.error.code, "model_file_invalid", JSON.stringify(result.body));
      assert.equal(result.status, 422);
      const ok = await client.chat.completions.create({ model: "chat", messages, max_tokens: 4 });
      assert.ok(ok.choices[0]?.message.content);
    });
  }
});

describe("runners that stop answering", () => {
  test("a runner frozen with SIGSTOP misses its health pings, is killed, and the model reloads", async () => {
    const quick = await startTestServer({
      health_interval_sec: 0.2,
      models: [{ id: "m", path: (await testModel("stories260K.gguf")).path, parallel: 1 }],
      auto_load: ["m"],
    });
    try {
      await waitFor(async () => (await fetch(`${quick.url}/readyz`)).status === 200);
      const loaded = await getJson<{ data: Array<{ pid: number }> }>(`${quick.url}/admin/models/loaded`);
      const pid = loaded.body.data[0]!.pid;
      process.kill(pid, "SIGSTOP");
      await waitFor(
        async () => {
          const models = await getJson<{ data: Array<{ status: string; last_error: { code: string; message: string } | null }> }>(
            `${quick.url}/v1/models`,
          );
          return models.body.data[0]?.last_error?.code === "model_crashed";
        },
        15_000,
        "the hung runner to be declared crashed",
      );
      const models = await getJson<{ data: Array<{ last_error: { message: string } }> }>(`${quick.url}/v1/models`);
      assert.match(models.body.data[0]!.last_error.message, /health/);
      const res = await fetch(`${quick.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 4 }),
      });
      assert.equal(res.status, 200);
    } finally {
      await quick.stop();
    }
  });
});

describe("clients that leave", () => {
  test("a client disconnect mid-stream stops generation in the runner", async () => {
    await client.chat.completions.create({ model: "chat", messages, max_tokens: 2 });
    const statsOf = async () => {
      const loaded = await getJson<{ data: Array<{ id: string; stats: { requests_active: number; generated_tokens: number } }> }>(
        `${server.url}/admin/models/loaded`,
      );
      return loaded.body.data.find((m) => m.id === "chat")!.stats;
    };
    const before = await statsOf();
    const controller = new AbortController();
    // ignore_eos: a generation nobody stops runs to all 1900 tokens, so "fewer than 1900" means it was stopped
    const params = { model: "chat", messages, max_tokens: 1900, temperature: 0.8, stream: true as const, ignore_eos: true };
    const stream = await client.chat.completions.create(params, { signal: controller.signal });
    // what is asserted is the runner's behaviour, not how many chunks the client had parsed before it hung up:
    // under load a chunk or two more may already sit in the client's buffer
    let chunks = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content && ++chunks === 3) {
          controller.abort();
          break;
        }
      }
    } catch {
      // the client library may report its own abort; either way the connection is gone
    }
    await waitFor(async () => (await statsOf()).requests_active === 0, 30_000, "the runner to stop generating");
    const stopped = await statsOf();
    // a generation that went on would add tokens here; a stopped one adds none, however slow the machine
    await new Promise((r) => setTimeout(r, 500));
    const after = await statsOf();
    assert.equal(after.generated_tokens, stopped.generated_tokens, "no token generated after the request ended");
    const generated = after.generated_tokens - before.generated_tokens;
    assert.ok(generated < 1900, `generation stopped early (${generated} of 1900 tokens)`);
  });
});

describe("a sequence freed late", () => {
  test("a request right after a client left mid-stream waits for the sequence instead of getting runner_busy", async () => {
    const single = await startTestServer({
      models: [{ id: "one", path: (await testModel("stories260K.gguf")).path, parallel: 1, context_size: 2048 }],
    });
    try {
      const oneClient = new OpenAI({ baseURL: `${single.url}/v1`, apiKey: "x", maxRetries: 0 });
      for (let round = 0; round < 5; round++) {
        const controller = new AbortController();
        const stream = await oneClient.completions.create(
          { model: "one", prompt: "Once upon a time", max_tokens: 1900, stream: true },
          { signal: controller.signal },
        );
        try {
          for await (const chunk of stream) if (chunk.choices[0]?.text) controller.abort();
        } catch {
          // the client library may report its own abort
        }
        const next = await getJson<{ error?: { code: string } }>(`${single.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "one", prompt: "Once upon a time", max_tokens: 2 }),
        });
        assert.equal(next.status, 200, `round ${round}: ${JSON.stringify(next.body)}`);
      }
    } finally {
      await single.stop();
    }
  });
});
