/**
 * A huge prompt must not freeze the other streams of its model: node-llama-cpp tokenizes synchronously (about a
 * second per megabyte here), so prompts over max_prompt_bytes are refused at the gateway, and prompts whose byte
 * length proves they exceed the context are refused by the runner without being tokenized.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let server: TestServer;
const CONTEXT = 2048;

before(async () => {
  server = await startTestServer({
    models: [
      { id: "m", path: (await testModel("stories260K.gguf")).path, context_size: CONTEXT, parallel: 2, threads: 1 },
      { id: "chat", path: (await testModel("stories260K-chatml.gguf")).path, context_size: CONTEXT, parallel: 1, threads: 1 },
    ],
  });
});
after(() => server?.stop());

const json = { "content-type": "application/json" };

async function post(path: string, body: unknown): Promise<{ status: number; error: { code: string; message: string; param: string | null } }> {
  const res = await fetch(`${server.url}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) });
  const parsed = (await res.json()) as { error: { code: string; message: string; param: string | null } };
  return { status: res.status, error: parsed.error };
}

/** A stream on model m that counts its chunks; resolves with the count and finish reason once [DONE] arrives. */
function canary(maxTokens: number): { firstChunk: Promise<void>; chunks: () => number; done: Promise<{ chunks: number; finish: string | null }> } {
  let count = 0;
  let first!: () => void;
  const firstChunk = new Promise<void>((resolve) => (first = resolve));
  const done = (async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: maxTokens, ignore_eos: true, stream: true }),
    });
    assert.equal(res.status, 200);
    let finish: string | null = null;
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const bytes of res.body!) {
      buffer += decoder.decode(bytes as Uint8Array, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
        const chunk = JSON.parse(event.slice(6)) as { choices: Array<{ finish_reason: string | null }> };
        count++;
        first();
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
    }
    return { chunks: count, finish };
  })();
  return { firstChunk, chunks: () => count, done };
}

test("a multi-megabyte prompt is refused with 413 naming max_prompt_bytes while a stream on the model keeps going", async () => {
  const stream = canary(1500);
  await stream.firstChunk;
  const big = "Once upon a time there was a little girl. ".repeat(200_000); // 8.4 MB, under max_body_bytes
  const refused = await post("/v1/completions", { model: "m", prompt: big, max_tokens: 4 });
  assert.equal(refused.status, 413);
  assert.equal(refused.error.code, "request_too_large");
  assert.match(refused.error.message, /max_prompt_bytes/);
  assert.equal(refused.error.param, "prompt");
  const atRefusal = stream.chunks();
  const result = await stream.done;
  assert.equal(result.finish, "length");
  assert.ok(result.chunks > atRefusal, "the canary kept streaming after the refusal");
});

test("a prompt whose byte length proves it exceeds the context is refused without being tokenized", async () => {
  const stream = canary(1500);
  await stream.firstChunk;
  // 100 KB: far under max_prompt_bytes, far over 2048 tokens of a vocabulary whose longest token is a few bytes
  const long = "Once upon a time there was a little girl. ".repeat(2_400);
  const completion = await post("/v1/completions", { model: "m", prompt: long, max_tokens: 4 });
  assert.equal(completion.status, 400);
  assert.equal(completion.error.code, "context_length_exceeded");
  assert.match(completion.error.message, new RegExp(`context is ${CONTEXT} tokens per request, but the prompt has at least \\d+ tokens`));
  assert.equal(completion.error.param, "prompt");
  const chat = await post("/v1/chat/completions", { model: "chat", messages: [{ role: "user", content: long }], max_tokens: 4 });
  assert.equal(chat.status, 400);
  assert.equal(chat.error.code, "context_length_exceeded");
  assert.match(chat.error.message, /at least \d+ tokens/);
  assert.equal(chat.error.param, "messages");
  const result = await stream.done;
  assert.equal(result.finish, "length");
  // a prompt near the context is still measured exactly: the byte bound only ever refuses what cannot fit
  const near = await post("/v1/completions", { model: "m", prompt: "Once upon a time ".repeat(700), max_tokens: 4 });
  assert.equal(near.status, 400);
  assert.match(near.error.message, /the prompt has \d+ tokens/);
});

test("a large prompt that may fit is tokenized off the runner's event loop: a stream on the model keeps receiving tokens meanwhile", async () => {
  // a long context makes the byte bound (32768 tokens × the longest token) larger than this prompt, so the
  // runner has to tokenize it: about a tenth of a second here, during which an inline tokenize froze the canary
  const big = await startTestServer({
    models: [{ id: "m", path: (await testModel("stories260K.gguf")).path, context_size: 32768, parallel: 2, threads: 1 }],
  });
  try {
    const prompt = "Once upon a time there was a little girl. ".repeat(6_900); // 290 KB, ~83K tokens
    let during = 0;
    for (let round = 0; round < 3; round++) {
      const times: number[] = [];
      const stop = new AbortController();
      const res = await fetch(`${big.url}/v1/completions`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 3000, ignore_eos: true, stream: true }),
        signal: stop.signal,
      });
      const reading = (async () => {
        for await (const _chunk of res.body!) times.push(performance.now());
      })().catch(() => undefined);
      while (times.length < 5) await new Promise((r) => setTimeout(r, 5));
      const sent = performance.now();
      const answer = await fetch(`${big.url}/v1/completions`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: "m", prompt, max_tokens: 4 }),
      });
      const answered = performance.now();
      const body = (await answer.json()) as { error: { code: string; message: string } };
      assert.equal(answer.status, 400);
      // measured exactly (not the byte bound's "at least"): the worker's tokens are the model's own
      assert.match(body.error.message, /but the prompt has \d+ tokens/);
      during += times.filter((t) => t >= sent && t <= answered).length;
      stop.abort();
      await reading;
    }
    // inline tokenizing let 2-4 chunks through per request (those already on their way); off the loop, hundreds
    assert.ok(during >= 30, `the canary received ${during} chunks while the three large prompts were tokenized`);
  } finally {
    await big.stop();
  }
});
