/**
 * `lmx do` / `lmx chat` ask for an answer, not for the whole context: 512 tokens unless --max-tokens says
 * otherwise, and on a model whose context has less room, what fits (the server refuses a cap beyond the context).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { startFakeOpenAi, type FakeOpenAi } from "../helpers/fake-openai.js";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
let fake: FakeOpenAi;
let server: TestServer;

before(async () => {
  fake = await startFakeOpenAi({ ttftMs: 0, itlMs: 0 });
  server = await startTestServer({ models: [{ id: "small", path: (await testModel("stories260K-chatml.gguf")).path, context_size: 256 }] });
});
after(async () => {
  await fake?.close();
  await server?.stop();
});

/** Not spawnSync: the test server answers from this process's event loop. */
function lmx(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("LMX_")) env[k] = v;
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, LMX_CONFIG: "" }, stdio: ["ignore", "pipe", "pipe"] });
  const out = { code: null as number | null, stdout: "", stderr: "" };
  child.stdout.on("data", (b: Buffer) => (out.stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (out.stderr += b.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ ...out, code })));
}

test("lmx do sends max_tokens 512 by default, --max-tokens N otherwise, streamed or not", async () => {
  for (const extra of [[], ["--json"]]) {
    const before = fake.bodies.length;
    const run = await lmx(["do", "--url", fake.url, "--model", "fake-model", ...extra, "Hello"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(fake.bodies[before]?.["max_tokens"], 512);
  }
  const before = fake.bodies.length;
  assert.equal((await lmx(["do", "--url", fake.url, "--model", "fake-model", "--max-tokens", "7", "Hello"])).code, 0);
  assert.equal(fake.bodies[before]?.["max_tokens"], 7);
});

test("on a model whose context is smaller than the default, lmx do answers with what fits instead of failing", async () => {
  const run = await lmx(["do", "--url", server.url, "--model", "small", "--json", "Once upon a time"]);
  assert.equal(run.code, 0, run.stderr);
  const body = JSON.parse(run.stdout) as { usage: { completion_tokens: number }; choices: Array<{ finish_reason: string }> };
  assert.ok(body.usage.completion_tokens > 0 && body.usage.completion_tokens < 256);
  const streamed = await lmx(["do", "--url", server.url, "--model", "small", "Once upon a time"]);
  assert.equal(streamed.code, 0, streamed.stderr);
});
