/**
 * POST /v1/responses and the stored responses, through the official openai client, against a real gateway and
 * real runners on both engines (the shared stories260K ChatML model): whole and streamed answers, a forced
 * function call and a JSON Schema answer (grammars make them well-formed whatever the weights), a conversation
 * continued with previous_response_id across a restart on the same state directory, GET / DELETE, refusals.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { writeChatFamilyModel } from "../../src/gguf/chat-families.js";
import type { ModelEntryInput } from "../../src/config/schema.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { getJson, startTestServer, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();
const ajv = new Ajv({ strict: false });

const addTool = {
  type: "function" as const,
  name: "add",
  description: "Adds two small integers",
  strict: true,
  parameters: {
    type: "object",
    properties: { left: { type: "integer", minimum: 0, maximum: 9 }, right: { type: "integer", minimum: 0, maximum: 9 } },
    required: ["left", "right"],
    additionalProperties: false,
  },
};
const verdictSchema = {
  type: "object",
  properties: { answer: { type: "string", enum: ["yes", "no"] }, confidence: { type: "integer", minimum: 0, maximum: 10 } },
  required: ["answer", "confidence"],
  additionalProperties: false,
};

/** The status and error param of a refused call. */
async function refusedWith(call: Promise<unknown>): Promise<{ status: number; param: string | null | undefined; code: string | null | undefined }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `expected an API error, got ${String(error)}`);
    return { status: error.status as number, param: error.param, code: error.code };
  }
  assert.fail("expected the call to be refused");
}

for (const engine of ["node-llama-cpp", "llama-server"] as const) {
  const skip = engine === "llama-server" && !binary ? NO_LLAMA_SERVER : false;
  describe(`Responses API on ${engine}`, { skip }, () => {
    let server: TestServer;
    let client: OpenAI;
    let stateDir: string;
    let models: ModelEntryInput[];
    const base = { model: "chat", temperature: 0, max_output_tokens: 24 };

    const start = async () => {
      server = await startTestServer({
        state_dir: stateDir,
        backends: engine === "llama-server" ? { llama_server: binary!, cpu_fallback: false } : {},
        models,
      });
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
    };

    before(async () => {
      stateDir = mkdtempSync(path.join(os.tmpdir(), "lmx-responses-state-"));
      const chat = await testModel("stories260K-chatml.gguf");
      // a random-weight model with Qwen3's template: it thinks before it answers
      const qwen3 = path.join(stateDir, "qwen3.gguf");
      await writeChatFamilyModel(qwen3, "qwen3", { seed: 7 });
      models = [
        { id: "chat", path: chat.path, context_size: 1024, parallel: 2, threads: 1 },
        { id: "qwen3", path: qwen3, context_size: 2048, parallel: 1, threads: 1 },
      ];
      await start();
    });
    after(async () => {
      await server?.stop();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    });

    test("string input: a Response with one assistant message, honest usage and the request echoed", async () => {
      const response = await client.responses.create({ ...base, input: "Tell me a story about a dog.", metadata: { run: "1" } });
      assert.match(response.id, /^resp_/);
      assert.equal(response.object, "response");
      assert.equal(response.model, "chat");
      assert.ok(response.output_text.length > 0, "the model answered");
      const messages = response.output.filter((item) => item.type === "message");
      assert.equal(messages.length, 1);
      assert.match(messages[0]!.id, /^msg_/);
      const usage = response.usage!;
      assert.ok(usage.input_tokens > 0 && usage.output_tokens > 0);
      assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
      // cut by max_output_tokens exactly when all of them were generated
      assert.equal(response.status, usage.output_tokens === 24 ? "incomplete" : "completed");
      if (response.status === "incomplete") assert.deepEqual(response.incomplete_details, { reason: "max_output_tokens" });
      assert.equal(response.max_output_tokens, 24);
      assert.equal(response.temperature, 0);
      assert.deepEqual(response.metadata, { run: "1" });
      assert.equal((response as unknown as { store: boolean }).store, true);
      assert.deepEqual(response.tools, []);
    });

    test("item input with instructions: the instructions are in the prompt", async () => {
      const input = [{ type: "message" as const, role: "user" as const, content: [{ type: "input_text" as const, text: "Once upon a time" }] }];
      const plain = await client.responses.create({ ...base, input });
      const instructed = await client.responses.create({ ...base, input, instructions: "You tell short stories about a little cat." });
      assert.equal(instructed.instructions, "You tell short stories about a little cat.");
      assert.ok(
        instructed.usage!.input_tokens > plain.usage!.input_tokens,
        `instructions add prompt tokens: ${instructed.usage!.input_tokens} vs ${plain.usage!.input_tokens}`,
      );
    });

    test("streamed: events in order with sequence numbers, finalResponse() equal to the whole answer", async () => {
      const whole = await client.responses.create({ ...base, input: "Tell me a story about a dog.", store: false });
      const stream = client.responses.stream({ ...base, input: "Tell me a story about a dog.", store: false });
      const types: string[] = [];
      const sequence: number[] = [];
      let deltas = "";
      for await (const event of stream) {
        types.push(event.type);
        sequence.push(event.sequence_number);
        if (event.type === "response.output_text.delta") deltas += event.delta;
      }
      const final = await stream.finalResponse();
      assert.deepEqual(
        sequence,
        types.map((_, i) => i),
      );
      assert.deepEqual(types.slice(0, 4), ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]);
      assert.deepEqual(types.slice(-4), [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        final.status === "incomplete" ? "response.incomplete" : "response.completed",
      ]);
      assert.ok(types.includes("response.output_text.delta"));
      assert.equal(final.output_text, deltas);
      assert.equal(final.output_text, whole.output_text, "greedy: streamed and whole answers are the same");
      // the prompt cache makes cached_tokens differ between the two runs; the counts themselves may not
      assert.equal(final.usage!.input_tokens, whole.usage!.input_tokens);
      assert.equal(final.usage!.output_tokens, whole.usage!.output_tokens);
    });

    test("tool_choice required: function_call items whose arguments satisfy the schema; the result continues the turn", async () => {
      const response = await client.responses.create({
        ...base,
        max_output_tokens: 200,
        input: "What is 2 plus 3?",
        tools: [addTool],
        tool_choice: "required",
        parallel_tool_calls: false,
      });
      const calls = response.output.filter((item) => item.type === "function_call");
      assert.ok(calls.length >= 1, JSON.stringify(response.output));
      const validate = ajv.compile(addTool.parameters);
      for (const call of calls) {
        assert.equal(call.name, "add");
        assert.match(call.call_id, /^call_/);
        assert.match(call.id!, /^fc_/);
        assert.equal(call.status, "completed");
        assert.ok(validate(JSON.parse(call.arguments)), `${call.arguments}: ${ajv.errorsText(validate.errors)}`);
      }
      assert.equal(calls.length, 1, "one call without parallel calls");
      assert.equal(response.status, "completed", JSON.stringify(response.output));
      assert.deepEqual(response.tool_choice, "required");
      assert.equal(response.tools[0]!.type === "function" && response.tools[0]!.name, "add");

      // the client runs the function and sends its output, continuing from the stored response
      const next = await client.responses.create({
        ...base,
        previous_response_id: response.id,
        tools: [addTool],
        input: calls.map((call) => ({ type: "function_call_output" as const, call_id: call.call_id, output: "5" })),
      });
      assert.ok(["completed", "incomplete"].includes(next.status!));
      assert.ok(next.usage!.input_tokens > response.usage!.input_tokens);
    });

    test("text.format json_schema: output_text parses and validates", async () => {
      const response = await client.responses.create({
        ...base,
        max_output_tokens: 200,
        input: "Is the sky blue?",
        text: { format: { type: "json_schema", name: "verdict", schema: verdictSchema, strict: true } },
      });
      const validate = ajv.compile(verdictSchema);
      assert.ok(validate(JSON.parse(response.output_text)), `${response.output_text}: ${ajv.errorsText(validate.errors)}`);
      assert.equal(response.text?.format?.type, "json_schema");
    });

    test("a thinking model: a reasoning item before the message, streamed as reasoning_text events", async () => {
      const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
      const stream = client.responses.stream({
        model: "qwen3",
        input: "Think, then answer.",
        text: { format: { type: "json_schema", name: "ok", schema } },
        max_output_tokens: 600,
        temperature: 0,
      });
      const types: string[] = [];
      for await (const event of stream) types.push(event.type);
      const final = await stream.finalResponse();
      assert.deepEqual(
        final.output.map((item) => item.type),
        ["reasoning", "message"],
      );
      const reasoning = final.output[0] as OpenAI.Responses.ResponseReasoningItem;
      assert.ok((reasoning.content?.[0]?.text ?? "").length > 0);
      assert.ok(!final.output_text.includes("<think>") && !final.output_text.includes("</think>"));
      assert.equal(typeof JSON.parse(final.output_text).ok, "boolean", "the schema applies to the answer after the reasoning");
      assert.ok(types.indexOf("response.reasoning_text.delta") < types.indexOf("response.reasoning_text.done"));
      assert.ok(types.indexOf("response.reasoning_text.done") < types.indexOf("response.output_text.delta"));
      // stored as streamed (the SDK's finalResponse() adds its own \`parsed\` field to a json_schema answer)
      const stored = await client.responses.retrieve(final.id);
      assert.deepEqual(
        stored.output.map((item) => item.id),
        final.output.map((item) => item.id),
      );
      assert.equal(stored.output_text, final.output_text);
      assert.deepEqual((stored.output[0] as OpenAI.Responses.ResponseReasoningItem).content, reasoning.content);
    });

    test("three turns through previous_response_id, the third after a restart on the same state directory", async () => {
      const first = await client.responses.create({ ...base, input: "Tell me about a dog.", instructions: "Be kind." });
      const second = await client.responses.create({ ...base, input: "What did the dog do next?", previous_response_id: first.id });
      assert.equal(second.previous_response_id, first.id);
      assert.equal(second.instructions, null, "instructions are not carried over");
      assert.ok(second.usage!.input_tokens > first.usage!.input_tokens, "the first turn is in the second's prompt");

      await server.stop();
      await start();

      const stored = await client.responses.retrieve(second.id);
      assert.equal(stored.id, second.id);
      assert.deepEqual(stored.output, second.output);
      assert.equal(stored.output_text, second.output_text);
      const third = await client.responses.create({ ...base, input: "And then?", previous_response_id: second.id });
      assert.ok(third.usage!.input_tokens > second.usage!.input_tokens, "both earlier turns are in the third's prompt");
      const alone = await client.responses.create({ ...base, input: "And then?", store: false });
      assert.ok(third.usage!.input_tokens > alone.usage!.input_tokens + second.usage!.input_tokens / 2);

      const items = await client.responses.inputItems.list(first.id, { order: "asc" });
      assert.equal(items.data.length, 1);
      const item = items.data[0]!;
      assert.ok(item.type === "message" && item.content[0]?.type === "input_text" && item.content[0].text === "Tell me about a dog.");
    });

    test("GET and DELETE a stored response; store: false keeps nothing", async () => {
      const response = await client.responses.create({ ...base, input: "Hello" });
      const fetched = await client.responses.retrieve(response.id);
      assert.deepEqual(fetched.output, response.output);
      assert.equal(fetched.status, response.status);
      const { status, body } = await getJson<unknown>(`${server.url}/v1/responses/${response.id}`, { method: "DELETE" });
      assert.equal(status, 200);
      assert.deepEqual(body, { id: response.id, object: "response.deleted", deleted: true });
      assert.equal((await refusedWith(client.responses.retrieve(response.id))).status, 404);
      assert.equal((await refusedWith(client.responses.delete(response.id))).status, 404);

      const unstored = await client.responses.create({ ...base, input: "Hello", store: false });
      assert.equal((unstored as unknown as { store: boolean }).store, false);
      assert.equal((await refusedWith(client.responses.retrieve(unstored.id))).status, 404);
    });

    test("refusals: 400 naming the parameter, 404 for an unknown previous_response_id", async () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ input: [{ role: "user", content: "hi", colour: "red" }] }, "input[0].colour"],
        [{ input: "hi", frobnicate: true }, "frobnicate"],
        [{ input: "hi", truncation: "auto" }, "truncation"],
        [{ input: "hi", tools: [addTool], tool_choice: { type: "function", name: "ghost" } }, "tool_choice"],
        [
          {
            input: [
              { role: "user", content: "hi" },
              { type: "function_call_output", call_id: "nope", output: "x" },
            ],
          },
          "input[1].call_id",
        ],
        [{ input: "hi", text: { format: { type: "json_schema", name: "x", schema: { type: "string", pattern: "^a+$" } } } }, "text.format.schema"],
      ];
      for (const [body, param] of cases) {
        const refused = await refusedWith(
          client.responses.create({ model: "chat", ...body } as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming),
        );
        assert.equal(refused.status, 400, `${JSON.stringify(body)}`);
        assert.equal(refused.param, param, JSON.stringify(body));
      }
      const unknown = await refusedWith(client.responses.create({ ...base, input: "hi", previous_response_id: "resp_doesnotexist" }));
      assert.deepEqual(unknown, { status: 404, param: "previous_response_id", code: "not_found" });
      const priority = await refusedWith(client.responses.create({ ...base, input: "hi" }, { headers: { "x-priority": "urgent" } }));
      assert.deepEqual([priority.status, priority.param], [400, "x-priority"]);
    });
  });
}

describe("Responses API: a runner that dies mid-answer", () => {
  let server: TestServer;
  let client: OpenAI;

  before(async () => {
    const chat = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({ models: [{ id: "slow", path: chat.path, context_size: 1024, parallel: 1, threads: 1 }] });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
    // a slow token loop (test-only fault injection, read by the runner at its start) leaves time to kill it mid-answer
    process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
    process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ tokenDelayMs: 20 });
    try {
      const loaded = await fetch(`${server.url}/admin/models/load`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model_id: "slow" }),
      });
      assert.equal(loaded.status, 200, await loaded.text());
    } finally {
      delete process.env["LMX_ENABLE_FAULT_INJECTION"];
      delete process.env["LMX_FAULT_INJECTION"];
    }
  });
  after(async () => {
    await server?.stop();
  });

  test("after the 200: response.failed with the error, then an error event; nothing is stored", async () => {
    const { body } = await getJson<{ data: Array<{ id: string; pid: number }> }>(`${server.url}/admin/models/loaded`);
    const pid = body.data.find((m) => m.id === "slow")!.pid;
    // greedy, this prompt's answer is longer than 24 tokens (the first test above): the kill lands mid-answer
    const stream = await client.responses.create({
      model: "slow",
      input: "Tell me a story about a dog.",
      max_output_tokens: 200,
      temperature: 0,
      stream: true,
    });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) {
      events.push(event);
      if (event.type === "response.output_text.delta" && events.filter((e) => e.type === event.type).length === 1) process.kill(pid, "SIGKILL");
    }
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(-2), ["response.failed", "error"], types.join(", "));
    const failed = events.at(-2) as OpenAI.Responses.ResponseFailedEvent;
    assert.equal(failed.response.status, "failed");
    assert.ok(failed.response.error?.message);
    const error = events.at(-1) as OpenAI.Responses.ResponseErrorEvent;
    assert.ok(error.code && error.message, JSON.stringify(error));
    assert.equal((await refusedWith(client.responses.retrieve(failed.response.id))).status, 404);
  });
});
