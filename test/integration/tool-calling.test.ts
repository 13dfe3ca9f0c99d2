/**
 * Tool calling, structured output, logprobs and n through the chat layer, with the official openai client, on
 * both engines and every template family: the shared stories260K ChatML model (no tool syntax: the generic
 * format) and random-weight models carrying Llama 3, Hermes, Qwen3 (thinking), Mistral and Harmony templates.
 * The weights are noise; the guarantees under test are the ones grammars and parsers make whatever the weights.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { writeChatFamilyModel, type ChatFamilyName } from "../../src/gguf/chat-families.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { getJson, startTestServer, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();
const FAMILIES: readonly ChatFamilyName[] = ["llama3", "hermes", "qwen3", "mistral", "harmony"];

const weather = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] }, unit: { type: "string", enum: ["c", "f"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
const add = {
  type: "function" as const,
  function: {
    name: "add",
    description: "Adds two small integers",
    parameters: {
      type: "object",
      properties: { left: { type: "integer", minimum: 0, maximum: 99 }, right: { type: "integer", minimum: 0, maximum: 99 } },
      required: ["left", "right"],
      additionalProperties: false,
    },
  },
};
const TOOLS = [weather, add];
const ajv = new Ajv({ strict: false });
const validators = new Map(TOOLS.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));

type Message = OpenAI.Chat.Completions.ChatCompletionMessage;

/** Every call names an offered tool and its arguments JSON-parse and satisfy that tool's schema. */
function assertValidCalls(message: Message, allowed: string[] = ["get_weather", "add"]): void {
  const calls = message.tool_calls ?? [];
  assert.ok(calls.length >= 1, `expected tool calls, got ${JSON.stringify(message)}`);
  for (const call of calls) {
    assert.equal(call.type, "function");
    assert.match(call.id, /^call_/);
    const fn = (call as { function: { name: string; arguments: string } }).function;
    assert.ok(allowed.includes(fn.name), `unexpected tool ${fn.name}`);
    const args: unknown = JSON.parse(fn.arguments);
    const validate = validators.get(fn.name)!;
    assert.ok(validate(args), `${fn.name} arguments ${fn.arguments} fail the schema: ${ajv.errorsText(validate.errors)}`);
  }
}

const CALL_MARKERS = ["<tool_call>", "[TOOL_CALLS]", "<|channel|>", "<|python_tag|>", "<|call|>"];

for (const engine of ["node-llama-cpp", "llama-server"] as const) {
  const skip = engine === "llama-server" && !binary ? NO_LLAMA_SERVER : false;
  describe(`tool calling and structured output on ${engine}`, { skip }, () => {
    let server: TestServer;
    let client: OpenAI;
    let dir: string;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "lmx-tools-"));
      const chat = await testModel("stories260K-chatml.gguf");
      const models = [{ id: "generic", path: chat.path, context_size: 2048, parallel: 3, threads: 1 }];
      for (const family of FAMILIES) {
        const file = path.join(dir, `${family}.gguf`);
        await writeChatFamilyModel(file, family, { seed: 7 });
        models.push({ id: family, path: file, context_size: 2048, parallel: 2, threads: 1 });
      }
      server = await startTestServer({
        backends: engine === "llama-server" ? { llama_server: binary!, cpu_fallback: false } : {},
        models,
        max_loaded_models: 2,
      });
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
    });
    after(async () => {
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    for (const model of ["generic", ...FAMILIES]) {
      describe(`${model} template`, () => {
        // forced calls and JSON answers run to their grammar's end: no max_tokens (the room left in the context)
        const base = { model, temperature: 0, seed: 11 };
        const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Paris?" }];

        test("required: a call whose arguments validate, finish_reason tool_calls", async () => {
          const answer = await client.chat.completions.create({ ...base, messages, tools: TOOLS, tool_choice: "required" });
          const choice = answer.choices[0]!;
          assertValidCalls(choice.message);
          assert.equal(choice.finish_reason, "tool_calls");
        });

        test("named: exactly the named function, one call without parallel calls", async () => {
          const answer = await client.chat.completions.create({
            ...base,
            messages,
            tools: TOOLS,
            tool_choice: { type: "function", function: { name: "add" } },
            parallel_tool_calls: false,
          });
          const message = answer.choices[0]!.message;
          assertValidCalls(message, ["add"]);
          assert.equal(message.tool_calls!.length, 1);
        });

        test("required with parallel calls and temperature 1: every call of every seed validates", async () => {
          for (const seed of [1, 2, 3]) {
            const answer = await client.chat.completions.create({ ...base, temperature: 1, seed, messages, tools: TOOLS, tool_choice: "required" });
            assertValidCalls(answer.choices[0]!.message);
          }
        });

        test("auto: a call never leaks into content (markup in content only when it did not parse, and counted)", async () => {
          const before = await fellBack(server, model);
          const answer = await client.chat.completions.create({ ...base, max_tokens: 200, messages, tools: TOOLS, tool_choice: "auto" });
          const message = answer.choices[0]!.message;
          if (message.tool_calls?.length) assertValidCalls(message);
          const leaked = CALL_MARKERS.filter((m) => (message.content ?? "").includes(m));
          if (leaked.length > 0) assert.ok((await fellBack(server, model)) > before, `markup ${leaked} in content was not counted as fell_back`);
        });

        test("round trip: two calls and their results in the history, then the next answer", async () => {
          const history: OpenAI.Chat.ChatCompletionMessageParam[] = [
            ...messages,
            {
              role: "assistant",
              content: null,
              tool_calls: [
                { id: "call_a1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"c"}' } },
                { id: "call_b2", type: "function", function: { name: "add", arguments: '{"left":2,"right":5}' } },
              ],
            },
            { role: "tool", tool_call_id: "call_a1", content: '{"temperature":21}' },
            { role: "tool", tool_call_id: "call_b2", content: "7" },
          ];
          const answer = await client.chat.completions.create({ ...base, max_tokens: 30, messages: history, tools: TOOLS });
          assert.equal(answer.choices.length, 1);
          assert.ok(answer.usage!.prompt_tokens > 0);
          // the template saw the calls and results: the prompt is longer than without them
          const plain = await client.chat.completions.create({ ...base, max_tokens: 1, messages, tools: TOOLS });
          assert.ok(answer.usage!.prompt_tokens > plain.usage!.prompt_tokens);
        });

        test("streamed: id and name first, then argument fragments that reassemble to the whole answer's arguments", async () => {
          const request = { ...base, messages, tools: TOOLS, tool_choice: { type: "function" as const, function: { name: "get_weather" } } };
          const whole = await client.chat.completions.create(request);
          const stream = await client.chat.completions.create({ ...request, stream: true });
          const calls: Array<{ id: string; name: string; args: string }> = [];
          let finish: string | null = null;
          for await (const chunk of stream) {
            const choice = chunk.choices[0];
            if (!choice) continue;
            for (const delta of choice.delta.tool_calls ?? []) {
              if (delta.id) {
                assert.ok(delta.function?.name, "the first delta of a call carries its name");
                calls[delta.index] = { id: delta.id, name: delta.function.name, args: delta.function.arguments ?? "" };
              } else {
                assert.ok(calls[delta.index], "argument fragments come after the call's first delta");
                assert.equal(delta.function?.name, undefined);
                calls[delta.index]!.args += delta.function?.arguments ?? "";
              }
            }
            finish = choice.finish_reason ?? finish;
          }
          assert.equal(finish, "tool_calls");
          assert.equal(calls.length, 1);
          const expected = (whole.choices[0]!.message.tool_calls![0] as { function: { arguments: string } }).function.arguments;
          assert.deepEqual(JSON.parse(calls[0]!.args), JSON.parse(expected));
        });

        test("json_schema: the answer parses and validates", async () => {
          const schema = {
            type: "object",
            properties: { answer: { type: "string", enum: ["yes", "no"] }, confidence: { type: "integer", minimum: 0, maximum: 10 } },
            required: ["answer", "confidence"],
            additionalProperties: false,
          };
          const answer = await client.chat.completions.create({
            ...base,
            messages: [{ role: "user", content: "Is the sky blue?" }],
            response_format: { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } },
          });
          const content = answer.choices[0]!.message.content!;
          const validate = ajv.compile(schema);
          assert.ok(validate(JSON.parse(content)), `${content}: ${ajv.errorsText(validate.errors)}`);
        });
      });
    }

    test("json_object: a JSON object", async () => {
      const answer = await client.chat.completions.create({
        model: "hermes",
        messages: [{ role: "user", content: "Answer in JSON" }],
        response_format: { type: "json_object" },
        max_tokens: 400,
        temperature: 0,
      });
      const choice = answer.choices[0]!;
      if (choice.finish_reason === "stop") {
        const parsed: unknown = JSON.parse(choice.message.content!);
        assert.equal(typeof parsed, "object");
        assert.ok(parsed !== null && !Array.isArray(parsed));
      } else {
        assert.equal(choice.finish_reason, "length");
      }
    });

    test("ignore_eos with a grammar: the answer ends where the grammar does (no error, no hidden tokens to max_tokens)", async () => {
      const schema = {
        type: "object",
        properties: { answer: { type: "string", enum: ["yes", "no"] } },
        required: ["answer"],
        additionalProperties: false,
      };
      for (const stream of [false, true]) {
        const request = {
          model: "generic",
          messages: [{ role: "user" as const, content: "Yes or no?" }],
          response_format: { type: "json_schema" as const, json_schema: { name: "yn", schema } },
          max_tokens: 60,
          temperature: 0,
          ignore_eos: true,
        } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
        let content = "";
        let finish: string | null = null;
        if (stream) {
          for await (const chunk of await client.chat.completions.create({ ...request, stream: true })) {
            content += chunk.choices[0]?.delta.content ?? "";
            finish = chunk.choices[0]?.finish_reason ?? finish;
          }
        } else {
          const answer = await client.chat.completions.create(request);
          content = answer.choices[0]!.message.content!;
          finish = answer.choices[0]!.finish_reason;
        }
        assert.equal(finish, "stop", content);
        assert.ok(["yes", "no"].includes((JSON.parse(content) as { answer: string }).answer));
      }
    });

    test("qwen3 thinking: reasoning_content apart, the schema applies to the answer after it", async () => {
      const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
      const answer = await client.chat.completions.create({
        model: "qwen3",
        messages: [{ role: "user", content: "Think, then answer." }],
        response_format: { type: "json_schema", json_schema: { name: "ok", schema } },
        max_tokens: 600,
        temperature: 0,
      });
      const message = answer.choices[0]!.message as Message & { reasoning_content?: string };
      assert.equal(typeof JSON.parse(message.content!).ok, "boolean");
      assert.ok(!message.content!.includes("<think>"));
    });

    test("top_logprobs 5: sorted alternatives whose probabilities sum to at most 1, the chosen token first under greedy sampling", async () => {
      const answer = await client.chat.completions.create({
        model: "generic",
        messages: [{ role: "user", content: "Once upon a time" }],
        max_tokens: 8,
        temperature: 0,
        logprobs: true,
        top_logprobs: 5,
      });
      const tokens = answer.choices[0]!.logprobs!.content!;
      assert.ok(tokens.length > 0);
      for (const token of tokens) {
        assert.equal(token.top_logprobs.length, 5);
        const sum = token.top_logprobs.reduce((s, alt) => s + Math.exp(alt.logprob), 0);
        assert.ok(sum <= 1 + 1e-6, `probabilities sum to ${sum}`);
        for (let i = 1; i < 5; i++) assert.ok(token.top_logprobs[i - 1]!.logprob >= token.top_logprobs[i]!.logprob);
        assert.equal(token.top_logprobs[0]!.token, token.token);
        assert.ok(Math.abs(token.top_logprobs[0]!.logprob - token.logprob) < 1e-4);
      }
      assert.equal(tokens.map((t) => t.token).join(""), answer.choices[0]!.message.content);
    });

    test("n: 3 with a seed gives three indexed choices, the same three again", async () => {
      const request = {
        model: "generic",
        messages: [{ role: "user" as const, content: "Tell a story" }],
        max_tokens: 12,
        temperature: 1,
        seed: 5,
        n: 3,
      };
      const first = await client.chat.completions.create(request);
      assert.deepEqual(
        first.choices.map((c) => c.index),
        [0, 1, 2],
      );
      const again = await client.chat.completions.create(request);
      assert.deepEqual(
        again.choices.map((c) => c.message.content),
        first.choices.map((c) => c.message.content),
      );
      assert.ok(first.usage!.completion_tokens >= 3);
    });

    test("bad tool input: each a 400 naming the parameter", async () => {
      const post = (body: unknown) =>
        getJson<{ error: { param: string; code: string; message: string } }>(`${server.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const m = [{ role: "user", content: "hi" }];
      const cases: Array<[unknown, string]> = [
        [
          { model: "generic", messages: m, tools: [{ type: "function", function: { name: "f", parameters: { type: "strng" } } }] },
          "tools[0].function.parameters",
        ],
        [{ model: "generic", messages: m, tools: TOOLS, tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice"],
        [{ model: "generic", messages: [...m, { role: "tool", content: "x" }] }, "messages[1].tool_call_id"],
        [
          {
            model: "generic",
            messages: m,
            response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a+$" } } },
          },
          "response_format.json_schema.schema",
        ],
      ];
      for (const [body, param] of cases) {
        const { status, body: answer } = await post(body);
        assert.equal(status, 400, JSON.stringify(answer));
        assert.equal(answer.error.param, param, answer.error.message);
      }
    });

    test("conformance: outcomes per model, family and backend in /admin/models/available and /metrics", async () => {
      const { body } = await getJson<{ data: Array<{ id: string; tool_conformance: Array<{ family: string; backend: string; forced: number }> }> }>(
        `${server.url}/admin/models/available`,
      );
      const hermes = body.data.find((m) => m.id === "hermes")!;
      const entry = hermes.tool_conformance.find((e) => e.family === "hermes");
      assert.ok(entry && entry.forced > 0, JSON.stringify(hermes.tool_conformance));
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /lmx:tool_calls_total\{model="hermes",family="hermes",outcome="forced"\} [1-9]/);
    });
  });
}

async function fellBack(server: TestServer, model: string): Promise<number> {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const line = metrics.split("\n").find((l) => l.startsWith(`lmx:tool_calls_total{model="${model}"`) && l.includes('outcome="fell_back"'));
  return line ? Number(line.split(" ").pop()) : 0;
}
