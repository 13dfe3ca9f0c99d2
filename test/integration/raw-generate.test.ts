/**
 * One raw, grammar-constrained generation (llama-server's `/completion` dialect) on both engines, driven through
 * `rawGenerate` on a lease from a real gateway's scheduler: real runner processes, real llama.cpp. Random
 * weights are fine: the grammars make the output checkable whatever the model says.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { LmxError } from "../../src/errors/codes.js";
import { writeTinyLlamaModel } from "../../src/gguf/fixtures.js";
import type { CompletionFinal } from "../../src/api/llama/completion.js";
import { rawGenerate, type RawChunk, type RawGenerateRequest, type RawToken } from "../../src/serving/raw-generate.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const TIMEOUT = { timeout: 60_000 };
const binary = testLlamaServerBinary();

const YES_NO = `root ::= "yes" | "no"`;
const JSONISH = `root ::= "{" ws "\\"n\\":" ws digit digit? digit? ws "}"
digit ::= [0-9]
ws ::= " "?`;
const JSONISH_TEXT = /^\{ ?"n": ?[0-9]{1,3} ?\}$/;
/** `<|im_start|>` is a control token of the ChatML stand-in (not an end-of-generation one, which a grammar cannot write). */
const MARKER = `root ::= "<|im_start|>" ("yes" | "no")`;

function request(overrides: Partial<RawGenerateRequest>): RawGenerateRequest {
  return { prompt: "Once upon a time", maxTokens: 16, stop: [], grammar: null, nProbs: 0, preservedTokens: [], temperature: 0, ...overrides };
}

interface Collected {
  text: string;
  tokens: RawToken[];
  done: Extract<RawChunk, { type: "done" }>;
}

/** What each engine answered to the same greedy grammar-constrained request, compared at the end. */
const greedyAnswers = new Map<string, string>();

function engineSuite(engine: "node-llama-cpp" | "llama-server", skip: string | false) {
  describe(`raw generation on ${engine}`, { skip }, () => {
    let server: TestServer;
    let modelDir: string;

    before(async () => {
      modelDir = mkdtempSync(path.join(os.tmpdir(), "lmx-raw-"));
      const chat = path.join(modelDir, "tiny-chat.gguf");
      await writeTinyLlamaModel(chat, { chat: true });
      const story = await testModel("stories260K.gguf");
      server = await startTestServer({
        ...(engine === "llama-server" ? { backends: { llama_server: binary!, cpu_fallback: false } } : {}),
        models: [
          { id: "story", path: story.path, context_size: 256, parallel: 2, threads: 1 },
          { id: "chat", path: chat, context_size: 256, parallel: 1, threads: 1 },
        ],
      });
    });
    after(async () => {
      await server?.stop();
      rmSync(modelDir, { recursive: true, force: true });
    });

    async function lease(model: string) {
      return server.ctx.scheduler.acquire(await server.ctx.inventory.resolve(model));
    }

    async function generate(model: string, body: RawGenerateRequest, signal = new AbortController().signal): Promise<Collected> {
      const held = await lease(model);
      try {
        let text = "";
        const tokens: RawToken[] = [];
        let done: Collected["done"] | null = null;
        for await (const chunk of rawGenerate(held.runner, body, signal)) {
          if (chunk.type === "text") {
            text += chunk.text;
            tokens.push(...chunk.tokens);
          } else done = chunk;
        }
        assert.ok(done, "the stream ended with its done chunk");
        return { text, tokens, done };
      } finally {
        held.release();
      }
    }

    test("the right engine serves", TIMEOUT, async () => {
      const held = await lease("story");
      held.release();
      assert.equal(held.runner.info.backend, engine === "llama-server" ? "llama-server" : "llama.cpp");
      // the llama-server engine is reached past the runner (the direct path); the runner relay is tested below
      assert.equal(held.runner.direct !== null, engine === "llama-server");
    });

    test("a yes|no grammar yields exactly one of them, whatever the seed", TIMEOUT, async () => {
      for (const seed of [1, 2, 3]) {
        const answer = await generate("story", request({ grammar: YES_NO, temperature: 1, seed }));
        assert.ok(answer.text === "yes" || answer.text === "no", `seed ${seed}: ${JSON.stringify(answer.text)}`);
        assert.equal(answer.done.finishReason, "stop");
      }
    });

    test("a JSON-ish grammar at temperature 1 yields text of its language for every seed", TIMEOUT, async () => {
      for (const seed of [7, 8, 9, 10]) {
        const answer = await generate("story", request({ grammar: JSONISH, temperature: 1, seed, maxTokens: 40 }));
        assert.match(answer.text, JSONISH_TEXT, `seed ${seed}`);
      }
    });

    test("greedy grammar-constrained text is recorded for the cross-engine comparison", TIMEOUT, async () => {
      const answer = await generate("story", request({ grammar: JSONISH, seed: 5, maxTokens: 40 }));
      assert.match(answer.text, JSONISH_TEXT);
      const again = await generate("story", request({ grammar: JSONISH, seed: 5, maxTokens: 40 }));
      assert.equal(again.text, answer.text, "greedy is deterministic on one engine");
      greedyAnswers.set(engine, answer.text);
    });

    test("n_probs 5 under greedy: five sorted alternatives, log-probabilities ≤ 0 summing to ≤ 1, the chosen token first", TIMEOUT, async () => {
      const answer = await generate("story", request({ nProbs: 5, maxTokens: 6, ignoreEos: true }));
      assert.equal(answer.tokens.length, 6);
      assert.equal(answer.tokens.map((t) => t.text).join(""), answer.text);
      for (const token of answer.tokens) {
        assert.equal(token.top.length, 5);
        for (let i = 1; i < token.top.length; i++) assert.ok(token.top[i - 1]!.logprob >= token.top[i]!.logprob, "sorted");
        for (const alt of token.top) assert.ok(alt.logprob <= 0);
        const sum = token.top.reduce((s, alt) => s + Math.exp(alt.logprob), 0);
        assert.ok(sum <= 1 + 1e-6, `sum ${sum}`);
        assert.equal(token.top[0]!.text, token.text);
        assert.ok(Math.abs(token.top[0]!.logprob - token.logprob) < 1e-6);
        assert.deepEqual(token.bytes, [...Buffer.from(token.text)]);
      }
    });

    test("special-token text in the prompt is tokenized as the special token", TIMEOUT, async () => {
      const answer = await generate("chat", request({ prompt: "<|im_end|>", maxTokens: 1, ignoreEos: true }));
      // BOS (this model adds it) + the one special token: as text it would be several tokens
      assert.equal(answer.done.promptTokens, 2);
    });

    test("a control-token marker the grammar forces comes back as text (preserved_tokens)", TIMEOUT, async () => {
      const answer = await generate(
        "chat",
        request({ prompt: "<|im_start|>user\nhi<|im_end|>\n", grammar: MARKER, preservedTokens: ["<|im_start|>"], nProbs: 1 }),
      );
      assert.match(answer.text, /^<\|im_start\|>(yes|no)$/);
      // written as the one control token, not spelled out in bytes
      assert.equal(answer.tokens[0]?.text, "<|im_start|>");
    });

    test("n_predict is respected: finish reason length", TIMEOUT, async () => {
      const answer = await generate("story", request({ maxTokens: 5, ignoreEos: true }));
      assert.equal(answer.done.finishReason, "length");
      assert.equal(answer.done.completionTokens, 5);
      assert.ok(answer.done.promptTokens > 0);
    });

    test("prompt + n_predict beyond the context is a 400 context_length_exceeded before any chunk", TIMEOUT, async () => {
      await assert.rejects(
        generate("story", request({ maxTokens: 1000 })),
        (error: unknown) =>
          error instanceof LmxError && error.code === "context_length_exceeded" && error.status === 400 && error.param === "max_tokens",
      );
      await assert.rejects(
        generate("story", request({ prompt: "Once upon a time there was a little girl. ".repeat(60), maxTokens: null })),
        (error: unknown) => error instanceof LmxError && error.code === "context_length_exceeded" && error.status === 400,
      );
    });

    test("an invalid grammar is refused", TIMEOUT, async () => {
      await assert.rejects(
        generate("story", request({ grammar: "root ::= (" })),
        (error: unknown) => error instanceof LmxError && error.status === 400,
      );
    });

    test("aborting mid-stream frees the sequence", TIMEOUT, async () => {
      const held = await lease("story");
      const controller = new AbortController();
      let pieces = 0;
      try {
        for await (const chunk of rawGenerate(
          held.runner,
          request({ maxTokens: null, ignoreEos: true, temperature: 1, seed: 3 }),
          controller.signal,
        )) {
          if (chunk.type === "text" && ++pieces === 3) controller.abort();
          assert.notEqual(chunk.type, "done", "the generation ended before the abort");
        }
      } finally {
        held.release();
      }
      assert.equal(pieces, 3);
      const runner = held.runner;
      await waitFor(async () => (await runner.stats())?.slotsBusy === 0, 10_000, "the sequence to be free");
      const after = await generate("story", request({ grammar: YES_NO }));
      assert.ok(after.text === "yes" || after.text === "no");
    });

    test("the runner's /completion answers llama-server's non-streamed shape", TIMEOUT, async () => {
      const held = await lease("story");
      try {
        const answer = await held.runner.dispatcher.request({
          path: "/completion",
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: "Once upon a time", n_predict: 4, temperature: 0, n_probs: 2, ignore_eos: true }),
        });
        assert.equal(answer.statusCode, 200);
        const body = (await answer.body.json()) as CompletionFinal;
        assert.equal(typeof body.content, "string");
        assert.equal(body.stop, true);
        assert.equal(body.stop_type, "limit");
        assert.equal(body.tokens_predicted, 4);
        assert.ok(body.tokens_evaluated > 0);
        for (const key of ["prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "cache_n"] as const)
          assert.equal(typeof body.timings[key], "number");
        assert.equal(body.completion_probabilities?.length, 4);
        assert.equal(body.completion_probabilities?.[0]?.top_logprobs.length, 2);
        const unknown = await held.runner.dispatcher.request({
          path: "/completion",
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: "x", n_predict: 1, mirostat: 2 }),
        });
        assert.equal(unknown.statusCode, 400);
        assert.equal(((await unknown.body.json()) as { error: { param: string } }).error.param, "mirostat");
      } finally {
        held.release();
      }
    });

    test("RunnerInfo.template carries the ChatML stand-in's facts", TIMEOUT, async () => {
      const held = await lease("chat");
      held.release();
      const template = held.runner.info.template;
      assert.match(template.jinja ?? "", /<\|im_start\|>/);
      assert.equal(template.eosToken, "<|im_end|>");
      assert.equal(template.bosToken, "<s>");
      assert.equal(template.addsBos, true);
    });
  });
}

engineSuite("node-llama-cpp", false);
engineSuite("llama-server", binary ? false : NO_LLAMA_SERVER);

describe("both engines", () => {
  test("the same grammar + seed + greedy gives the same text on both engines", { skip: binary ? false : NO_LLAMA_SERVER }, () => {
    const a = greedyAnswers.get("node-llama-cpp");
    const b = greedyAnswers.get("llama-server");
    assert.ok(a !== undefined && b !== undefined, "both engines answered");
    assert.equal(a, b);
  });
});
