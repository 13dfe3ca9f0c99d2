/**
 * ignore_eos (vLLM's and llama-server's extension) forces the output length on both engines. The tiny
 * random-weight fixture (1,024-token vocabulary) sampled near-uniformly emits EOS within a few hundred tokens for
 * most seeds; the same request with ignore_eos must write exactly max_tokens.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { writeTinyLlamaModel } from "../../src/gguf/fixtures.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MAX = 400;
const llamaServer = testLlamaServerBinary();

for (const engine of ["llama.cpp", "llama-server"] as const) {
  describe(`ignore_eos on the ${engine} engine`, { skip: engine === "llama-server" && !llamaServer ? NO_LLAMA_SERVER : false }, () => {
    let dir: string;
    let server: TestServer;
    let client: OpenAI;
    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "lmx-ignore-eos-"));
      const model = path.join(dir, "tiny.gguf");
      await writeTinyLlamaModel(model, {});
      server = await startTestServer({
        backends: { llama_server: engine === "llama-server" ? llamaServer! : false, cpu_fallback: false },
        models: [{ id: "tiny", path: model, context_size: 512, parallel: 1, threads: 1 }],
      });
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    });
    after(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test("without it a sampled answer ends at EOS; the same request with it has exactly max_tokens tokens", async () => {
      // near-uniform sampling over the whole vocabulary, so EOS comes up
      const ask = (seed: number, ignore: boolean) =>
        client.completions
          .create({
            model: "tiny",
            prompt: "Once upon a time",
            max_tokens: MAX,
            temperature: 1,
            top_k: 0,
            top_p: 1,
            min_p: 0,
            seed,
            ...(ignore ? { ignore_eos: true } : {}),
          } as OpenAI.CompletionCreateParamsNonStreaming)
          .withResponse();
      let stoppedSeed: number | null = null;
      for (let seed = 1; seed <= 12 && stoppedSeed === null; seed++) {
        const { data, response } = await ask(seed, false);
        assert.equal(response.headers.get("x-lmx-backend"), engine);
        if (data.choices[0]?.finish_reason === "stop") {
          assert.ok((data.usage?.completion_tokens ?? MAX) < MAX);
          stoppedSeed = seed;
        }
      }
      assert.notEqual(stoppedSeed, null, "no sampled answer ended at EOS in 12 tries");
      const { data: forced } = await ask(stoppedSeed!, true);
      assert.equal(forced.usage?.completion_tokens, MAX);
      assert.equal(forced.choices[0]?.finish_reason, "length");
    });
  });
}
