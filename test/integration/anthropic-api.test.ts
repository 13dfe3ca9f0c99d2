/**
 * Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) with the official @anthropic-ai/sdk,
 * on both engines: the shared stories260K ChatML model for text, and a random-weight model with a Hermes
 * template for tools (forced calls are written by a grammar, so their input validates whatever the weights).
 * Usage is compared with the OpenAI dialect's for the same conversation; bad input must come back in
 * Anthropic's error shape with the right status.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { writeChatFamilyModel } from "../../src/gguf/chat-families.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();
const KEY = "anthropic-test-key-1";
const TIMEOUT = { timeout: 180_000 };
/** Greedy sampling, so two requests give the same answer. This SDK's types no longer list temperature; the API takes it. */
const GREEDY = { temperature: 0 };

const weather: Anthropic.Tool = {
  name: "get_weather",
  description: "Current weather in a city",
  input_schema: {
    type: "object",
    properties: { city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] }, unit: { type: "string", enum: ["c", "f"] } },
    required: ["city", "unit"],
    additionalProperties: false,
  },
};
const add: Anthropic.Tool = {
  name: "add",
  description: "Adds two small integers",
  input_schema: {
    type: "object",
    properties: { left: { type: "integer", minimum: 0, maximum: 99 }, right: { type: "integer", minimum: 0, maximum: 99 } },
    required: ["left", "right"],
    additionalProperties: false,
  },
};
const TOOLS = [weather, add];
const ajv = new Ajv({ strict: false });
const validators = new Map(TOOLS.map((t) => [t.name, ajv.compile(t.input_schema)]));

/** The tool_use blocks of an answer: each names an offered tool and its input satisfies that tool's schema. */
function validToolUses(message: Anthropic.Message, allowed: string[]): Anthropic.ToolUseBlock[] {
  const uses = message.content.filter((block): block is Anthropic.ToolUseBlock => block.type === "tool_use");
  assert.ok(uses.length >= 1, `expected tool_use blocks, got ${JSON.stringify(message.content)}`);
  for (const use of uses) {
    assert.match(use.id, /^toolu_/);
    assert.ok(allowed.includes(use.name), `unexpected tool ${use.name}`);
    const validate = validators.get(use.name)!;
    assert.ok(validate(use.input), `${use.name} input ${JSON.stringify(use.input)} fails the schema: ${ajv.errorsText(validate.errors)}`);
  }
  return uses;
}

function textOf(message: Anthropic.Message): string {
  return message.content.map((block) => (block.type === "text" ? block.text : "")).join("");
}

/** The whole prompt of an answer: what count_tokens counts and OpenAI's prompt_tokens. */
function promptTokens(usage: Anthropic.Usage): number {
  return usage.input_tokens + (usage.cache_read_input_tokens ?? 0);
}

for (const engine of ["node-llama-cpp", "llama-server"] as const) {
  const skip = engine === "llama-server" && !binary ? NO_LLAMA_SERVER : false;
  describe(`Anthropic Messages API on ${engine}`, { skip }, () => {
    let server: TestServer;
    let client: Anthropic;
    let openai: OpenAI;
    let dir: string;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "lmx-anthropic-"));
      const chat = await testModel("stories260K-chatml.gguf");
      const hermes = path.join(dir, "hermes.gguf");
      await writeChatFamilyModel(hermes, "hermes", { seed: 7 });
      server = await startTestServer({
        backends: engine === "llama-server" ? { llama_server: binary!, cpu_fallback: false } : {},
        api_keys: [KEY],
        models: [
          { id: "chat", path: chat.path, context_size: 2048, parallel: 2, threads: 1 },
          { id: "hermes", path: hermes, context_size: 2048, parallel: 2, threads: 1 },
        ],
        max_loaded_models: 2,
      });
      // the SDK sends the key as x-api-key; the OpenAI client as a bearer token
      client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0, timeout: 120_000 });
      openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120_000 });
    });
    after(async () => {
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const base = { model: "chat", ...GREEDY } as const;
    const ask: Anthropic.MessageParam[] = [{ role: "user", content: "Tell me a story about a cat." }];

    test("messages.create: a message with text content, a stop reason and usage", TIMEOUT, async () => {
      const message = await client.messages.create({ ...base, max_tokens: 8, messages: ask });
      assert.match(message.id, /^msg_/);
      assert.equal(message.type, "message");
      assert.equal(message.role, "assistant");
      assert.equal(message.model, "chat");
      assert.ok(message.content.every((block) => block.type === "text"));
      assert.ok(["end_turn", "max_tokens"].includes(message.stop_reason!), String(message.stop_reason));
      assert.equal(message.stop_sequence, null);
      assert.ok(promptTokens(message.usage) > 0);
      assert.ok(message.usage.output_tokens > 0 && message.usage.output_tokens <= 8);
      if (message.stop_reason === "max_tokens") assert.equal(message.usage.output_tokens, 8);
    });

    test("stream: Anthropic's event order exactly, and finalMessage() equals the whole answer", TIMEOUT, async () => {
      const request = { ...base, max_tokens: 12, system: "You tell short stories.", messages: ask };
      const whole = await client.messages.create(request);
      const events = await client.messages.create({ ...request, stream: true });
      const types: string[] = [];
      let text = "";
      let start: Anthropic.RawMessageStartEvent | null = null;
      let delta: Anthropic.RawMessageDeltaEvent | null = null;
      for await (const event of events) {
        types.push(event.type === "content_block_delta" ? `${event.type}:${event.delta.type}` : event.type);
        if (event.type === "message_start") start = event;
        if (event.type === "message_delta") delta = event;
        if (event.type === "content_block_start") assert.deepEqual(event.content_block, { type: "text", text: "" });
        if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
      }
      // the SDK drops ping events: the order with them is read from the wire below
      assert.match(
        types.join(" "),
        /^message_start (content_block_start (content_block_delta:text_delta )*content_block_stop )?message_delta message_stop$/,
      );
      const wire = await sseEvents(server.url, { ...request, stream: true });
      const order = wire.map((e) => e.event).join(" ");
      assert.match(
        order,
        /^message_start (content_block_start ping (content_block_delta )*content_block_stop )?(ping )?message_delta message_stop$/,
        order,
      );
      for (const e of wire) assert.equal(e.data["type"], e.event, "each event's data names its own type");
      assert.equal(start!.message.role, "assistant");
      assert.deepEqual(start!.message.content, []);
      assert.equal(text, textOf(whole));
      assert.equal(delta!.delta.stop_reason, whole.stop_reason);
      assert.equal(delta!.usage.output_tokens, whole.usage.output_tokens);
      assert.equal(promptTokens(delta!.usage as Anthropic.Usage), promptTokens(whole.usage));

      const final = await client.messages.stream(request).finalMessage();
      assert.deepEqual(final.content, whole.content);
      assert.equal(final.stop_reason, whole.stop_reason);
      assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
      assert.equal(promptTokens(final.usage), promptTokens(whole.usage));
    });

    test("stop_sequences: the answer stops at the client's sequence, named in stop_sequence", TIMEOUT, async () => {
      const free = await client.messages.create({ ...base, max_tokens: 24, messages: ask });
      const text = textOf(free);
      // a character the deterministic answer writes after its start: the same answer must stop there
      const at = [...text].findIndex((char, i) => i > 0 && char.trim() !== "");
      if (at < 0) return assert.fail(`the answer has too little text to pick a stop sequence from: ${JSON.stringify(text)}`);
      const stop = [...text][at]!;
      const stopped = await client.messages.create({ ...base, max_tokens: 24, messages: ask, stop_sequences: [stop] });
      assert.equal(stopped.stop_reason, "stop_sequence");
      assert.equal(stopped.stop_sequence, stop);
      assert.equal(textOf(stopped), text.slice(0, text.indexOf(stop)));
    });

    test("count_tokens equals the prompt of a create with the same messages, system and tools", TIMEOUT, async () => {
      for (const request of [
        { model: "chat", messages: ask },
        {
          model: "chat",
          system: [
            { type: "text" as const, text: "Be brief." },
            { type: "text" as const, text: "Be kind." },
          ],
          messages: ask,
        },
        { model: "hermes", messages: ask, tools: TOOLS },
      ]) {
        const counted = await client.messages.countTokens(request);
        const answer = await client.messages.create({ ...request, ...GREEDY, max_tokens: 1 });
        assert.ok(counted.input_tokens > 0);
        assert.equal(counted.input_tokens, promptTokens(answer.usage), JSON.stringify(request));
      }
    });

    test("usage equals the OpenAI dialect's for the same conversation (plain text and with tools)", TIMEOUT, async () => {
      const system = "You tell short stories.";
      const user = "Tell me a story about a cat.";
      const anthropic = await client.messages.create({ ...base, max_tokens: 6, system, messages: [{ role: "user", content: user }] });
      const openaiMessages: OpenAI.Chat.ChatCompletionMessageParam[] = [
        { role: "system", content: system },
        { role: "user", content: user },
      ];
      // logprobs takes OpenAI's request through the chat layer, as every Messages request goes
      const layered = await openai.chat.completions.create({
        model: "chat",
        temperature: 0,
        max_tokens: 6,
        logprobs: true,
        messages: openaiMessages,
      });
      assert.equal(promptTokens(anthropic.usage), layered.usage!.prompt_tokens);
      assert.equal(anthropic.usage.output_tokens, layered.usage!.completion_tokens);
      assert.equal(textOf(anthropic), layered.choices[0]!.message.content ?? "");
      if (engine === "llama-server") {
        // a plain OpenAI request is relayed to llama-server, which renders and tokenizes the prompt whole, as we do;
        // node-llama-cpp's chat wrapper tokenizes its prompt segment by segment, so there the counts may differ
        // (a SentencePiece tokenizer adds a leading space to every segment): README, Anthropic Messages
        const relayed = await openai.chat.completions.create({ model: "chat", temperature: 0, max_tokens: 6, messages: openaiMessages });
        assert.equal(promptTokens(anthropic.usage), relayed.usage!.prompt_tokens);
        assert.equal(textOf(anthropic), relayed.choices[0]!.message.content ?? "");
      }

      const forced = await client.messages.create({
        ...GREEDY,
        model: "hermes",
        max_tokens: 200,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: TOOLS,
        tool_choice: { type: "tool", name: "get_weather" },
      });
      const openaiForced = await openai.chat.completions.create({
        model: "hermes",
        temperature: 0,
        max_tokens: 200,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: TOOLS.map((t) => ({ type: "function" as const, function: { name: t.name, description: t.description!, parameters: t.input_schema } })),
        tool_choice: { type: "function", function: { name: "get_weather" } },
        parallel_tool_calls: false,
      });
      assert.equal(promptTokens(forced.usage), openaiForced.usage!.prompt_tokens);
      assert.equal(forced.usage.output_tokens, openaiForced.usage!.completion_tokens);
      const call = openaiForced.choices[0]!.message.tool_calls![0] as { function: { arguments: string } };
      assert.deepEqual(validToolUses(forced, ["get_weather"])[0]!.input, JSON.parse(call.function.arguments));
    });

    describe("tools (Hermes template)", () => {
      const tooled = { model: "hermes", ...GREEDY, tools: TOOLS } as const;
      const question: Anthropic.MessageParam[] = [{ role: "user", content: "What is the weather in Paris?" }];

      test("tool_choice tool: one tool_use of the named tool whose input validates, stop_reason tool_use", TIMEOUT, async () => {
        // forced calls run to their grammar's end: max_tokens leaves them room
        const message = await client.messages.create({ ...tooled, max_tokens: 300, messages: question, tool_choice: { type: "tool", name: "add" } });
        const uses = validToolUses(message, ["add"]);
        assert.equal(uses.length, 1);
        assert.equal(message.stop_reason, "tool_use");
      });

      test("tool_choice any: every tool_use validates, also with temperature 1 and parallel use off", TIMEOUT, async () => {
        const message = await client.messages.create({ ...tooled, max_tokens: 300, messages: question, tool_choice: { type: "any" } });
        validToolUses(message, ["get_weather", "add"]);
        assert.equal(message.stop_reason, "tool_use");
        const single = await client.messages.create({
          ...tooled,
          ...{ temperature: 1 },
          max_tokens: 300,
          messages: question,
          tool_choice: { type: "any", disable_parallel_tool_use: true },
        });
        assert.equal(validToolUses(single, ["get_weather", "add"]).length, 1);
      });

      test("tool_choice none: the tools are described but no tool_use comes back", TIMEOUT, async () => {
        const message = await client.messages.create({ ...tooled, max_tokens: 20, messages: question, tool_choice: { type: "none" } });
        assert.ok(message.content.every((block) => block.type === "text"));
        assert.notEqual(message.stop_reason, "tool_use");
      });

      test("streamed tool_use: content_block_start with id and name, input_json_delta fragments that rebuild the input", TIMEOUT, async () => {
        const request = { ...tooled, max_tokens: 300, messages: question, tool_choice: { type: "tool" as const, name: "get_weather" } };
        const whole = await client.messages.create(request);
        const stream = client.messages.stream(request);
        let json = "";
        const starts: Anthropic.ContentBlock[] = [];
        stream.on("streamEvent", (event) => {
          if (event.type === "content_block_start") starts.push(event.content_block);
          if (event.type === "content_block_delta" && event.delta.type === "input_json_delta") json += event.delta.partial_json;
        });
        const final = await stream.finalMessage();
        const use = validToolUses(final, ["get_weather"])[0]!;
        assert.equal(starts.length, final.content.length);
        const start = starts.find((block) => block.type === "tool_use") as Anthropic.ToolUseBlock;
        assert.equal(start.name, "get_weather");
        assert.equal(start.id, use.id);
        assert.deepEqual(JSON.parse(json), use.input);
        assert.deepEqual(use.input, validToolUses(whole, ["get_weather"])[0]!.input);
        assert.equal(final.stop_reason, "tool_use");
      });

      test("round trip: the answer's tool_use and a tool_result in the history, then the next answer", TIMEOUT, async () => {
        const first = await client.messages.create({
          ...tooled,
          max_tokens: 300,
          messages: question,
          tool_choice: { type: "tool", name: "get_weather" },
        });
        const use = validToolUses(first, ["get_weather"])[0]!;
        const history: Anthropic.MessageParam[] = [
          ...question,
          { role: "assistant", content: first.content },
          { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: [{ type: "text", text: '{"temperature":21}' }] }] },
        ];
        const next = await client.messages.create({ ...tooled, max_tokens: 20, messages: history });
        assert.ok(["end_turn", "max_tokens", "tool_use"].includes(next.stop_reason!));
        // the template saw the call and its result: the prompt is longer than the question alone
        assert.ok(promptTokens(next.usage) > promptTokens(first.usage));
        const counted = await client.messages.countTokens({ model: "hermes", tools: TOOLS, messages: history });
        assert.equal(counted.input_tokens, promptTokens(next.usage));
        // a result with is_error reads differently to the model: a different prompt
        const failed = await client.messages.countTokens({
          model: "hermes",
          tools: TOOLS,
          messages: [
            ...history.slice(0, 2),
            { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "no such city", is_error: true }] },
          ],
        });
        assert.ok(failed.input_tokens > 0);
      });

      test("a tool_result answering no earlier tool_use is a 400 naming it", TIMEOUT, async () => {
        const error = await errorOf(() =>
          client.messages.create({
            ...tooled,
            max_tokens: 5,
            messages: [...question, { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_nope", content: "x" }] }],
          }),
        );
        assert.equal(error.status, 400);
        assert.match(error.message, /toolu_nope/);
      });
    });

    describe("errors in Anthropic's shape", () => {
      const cases: Array<{ name: string; body: Record<string, unknown>; status: number; type: string; match: RegExp }> = [
        { name: "missing max_tokens", body: { model: "chat", messages: ask }, status: 400, type: "invalid_request_error", match: /max_tokens/ },
        {
          name: "an image block",
          body: {
            model: "chat",
            max_tokens: 5,
            messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }] }],
          },
          status: 400,
          type: "invalid_request_error",
          match: /image/,
        },
        {
          name: "an unknown field",
          body: { model: "chat", max_tokens: 5, messages: ask, frobnicate: 1 },
          status: 400,
          type: "invalid_request_error",
          match: /frobnicate/,
        },
        {
          name: "extended thinking with a budget",
          body: { model: "chat", max_tokens: 50, messages: ask, thinking: { type: "enabled", budget_tokens: 1024 } },
          status: 400,
          type: "invalid_request_error",
          match: /thinking/,
        },
        {
          name: "a server tool",
          body: { model: "chat", max_tokens: 5, messages: ask, tools: [{ type: "web_search_20250305", name: "web_search" }] },
          status: 400,
          type: "invalid_request_error",
          match: /web_search/,
        },
        {
          name: "a prefilled answer",
          body: { model: "chat", max_tokens: 5, messages: [...ask, { role: "assistant", content: "Once" }] },
          status: 400,
          type: "invalid_request_error",
          match: /prefill/,
        },
        {
          name: "an unknown model",
          body: { model: "no-such-model", max_tokens: 5, messages: ask },
          status: 404,
          type: "not_found_error",
          match: /no-such-model/,
        },
      ];
      for (const c of cases) {
        test(`${c.name}: ${c.status} ${c.type}`, TIMEOUT, async () => {
          const response = await fetch(`${server.url}/v1/messages`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01" },
            body: JSON.stringify(c.body),
          });
          assert.equal(response.status, c.status);
          const body = (await response.json()) as { type: string; error: { type: string; message: string } };
          assert.equal(body.type, "error");
          assert.equal(body.error.type, c.type);
          assert.match(body.error.message, c.match);
          // the SDK reads the same answer as its typed error
          const error = await errorOf(() => client.messages.create(c.body as unknown as Anthropic.MessageCreateParamsNonStreaming));
          assert.equal(error.status, c.status);
          assert.equal((error.error as { error: { type: string } }).error.type, c.type);
        });
      }

      test("count_tokens refuses the same way (an image in a tool_result)", TIMEOUT, async () => {
        const error = await errorOf(() =>
          client.messages.countTokens({
            model: "chat",
            messages: [
              {
                role: "user",
                content: [
                  { type: "tool_result", tool_use_id: "t1", content: [{ type: "image", source: { type: "url", url: "https://example.com/a.png" } }] },
                ],
              },
            ],
          }),
        );
        assert.equal(error.status, 400);
        assert.match(error.message, /image/);
      });

      test("a wrong x-api-key is a 401 authentication_error; none at all too", TIMEOUT, async () => {
        const wrong = new Anthropic({ baseURL: server.url, apiKey: "wrong-key", maxRetries: 0 });
        const error = await errorOf(() => wrong.messages.create({ ...base, max_tokens: 5, messages: ask }));
        assert.ok(error instanceof Anthropic.AuthenticationError);
        assert.equal(error.status, 401);
        assert.equal((error.error as { type: string; error: { type: string } }).error.type, "authentication_error");
        const none = await fetch(`${server.url}/v1/messages/count_tokens`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "chat", messages: ask }),
        });
        assert.equal(none.status, 401);
        assert.equal(((await none.json()) as { error: { type: string } }).error.type, "authentication_error");
      });

      test("the key as a bearer token works too, and anthropic-version is not required", TIMEOUT, async () => {
        const response = await fetch(`${server.url}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
          body: JSON.stringify({ model: "chat", max_tokens: 2, messages: ask }),
        });
        assert.equal(response.status, 200);
        assert.equal(((await response.json()) as { type: string }).type, "message");
      });
    });
  });
}

/** The raw SSE events of a streamed request: event name and parsed data, in order. */
async function sseEvents(url: string, body: Record<string, unknown>): Promise<Array<{ event: string; data: Record<string, unknown> }>> {
  const response = await fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((line) => line.startsWith("event: "))?.slice(7) ?? "";
      const data = JSON.parse(lines.find((line) => line.startsWith("data: "))?.slice(6) ?? "null") as Record<string, unknown>;
      return { event, data };
    });
}

async function errorOf(call: () => Promise<unknown>): Promise<InstanceType<typeof Anthropic.APIError>> {
  try {
    await call();
  } catch (error) {
    if (error instanceof Anthropic.APIError) return error;
    throw error;
  }
  return assert.fail("the call succeeded");
}
