/**
 * The Responses API's pure parts: request validation, the conversion to a chat job (and the renaming of its
 * refusals to Responses parameters), and the assembler, whose stream events must replay, through the official
 * SDK's own accumulator, into exactly the Response object it returns.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import type OpenAI from "openai";
import { accumulateResponse } from "openai/lib/responses/ResponseAccumulator";
import { LmxError } from "../../src/errors/codes.js";
import { parseRequest } from "../../src/api/openai/schemas.js";
import { normalizeInput, type ResponseItem } from "../../src/api/openai/responses/items.js";
import { responseCreateRequestSchema, type ResponseCreateRequest } from "../../src/api/openai/responses/schema.js";
import { chatJobFromResponses, chatRequestFrom, responsesParam } from "../../src/api/openai/responses/to-chat.js";
import { initialResponse, ResponseAssembler, type ResponseObject, type ResponseStreamEvent } from "../../src/api/openai/responses/wire.js";
import type { ChoiceEvent } from "../../src/chat/events.js";
import { openStateDatabase } from "../../src/state/database.js";
import { ResponsesStore } from "../../src/state/responses-store.js";

const parse = (body: Record<string, unknown>): ResponseCreateRequest => parseRequest(responseCreateRequestSchema, { model: "m", ...body });

function refusal(action: () => unknown): LmxError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof LmxError, `expected an LmxError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a refusal");
}

const usage = { promptTokens: 12, cachedTokens: 4, completionTokens: 7 };
const finish = (reason: "stop" | "length" | "tool_calls"): ChoiceEvent => ({ type: "finish", choice: 0, reason, outcome: "none", usage });

/** Runs events through an assembler and replays what it streamed through the SDK's accumulator. */
function assemble(body: ResponseCreateRequest, events: ChoiceEvent[]) {
  const assembler = new ResponseAssembler(initialResponse("resp_test", "m", body, 1_700_000_000));
  const streamed: ResponseStreamEvent[] = [...assembler.start()];
  for (const event of events) streamed.push(...assembler.add(event));
  streamed.push(...assembler.finish());
  let snapshot: OpenAI.Responses.Response | undefined;
  streamed.forEach((event, sequence_number) => {
    snapshot = accumulateResponse({ ...event, sequence_number } as unknown as OpenAI.Responses.ResponseStreamEvent, snapshot);
  });
  return { streamed, replayed: snapshot!, response: assembler.response() };
}

describe("request validation", () => {
  test("unknown fields are 400 unknown_parameter naming them, at the top and inside items", () => {
    const top = refusal(() => parse({ input: "hi", frobnicate: 1 }));
    assert.equal(top.code, "unknown_parameter");
    assert.equal(top.param, "frobnicate");
    const inner = refusal(() => parse({ input: [{ role: "user", content: "hi", colour: "red" }] }));
    assert.equal(inner.code, "unknown_parameter");
    assert.equal(inner.param, "input[0].colour");
  });

  test("truncation auto is refused with the reason; include must be empty; a non-function tool is refused", () => {
    const truncation = refusal(() => parse({ input: "hi", truncation: "auto" }));
    assert.equal(truncation.param, "truncation");
    assert.match(truncation.message, /never/);
    assert.equal(refusal(() => parse({ input: "hi", include: ["reasoning.encrypted_content"] })).param, "include");
    assert.equal(refusal(() => parse({ input: "hi", tools: [{ type: "web_search" }] })).param, "tools[0].type");
    assert.equal(parse({ input: "hi", truncation: "disabled", include: [] }).truncation, "disabled");
  });

  test("messages with or without type, function calls and outputs are normalized with ids", () => {
    const body = parse({
      input: [
        { role: "developer", content: "Be brief." },
        {
          type: "message",
          role: "user",
          content: [
            { type: "input_text", text: "Add " },
            { type: "input_text", text: "2 and 3" },
          ],
        },
        { type: "function_call", call_id: "call_1", name: "add", arguments: '{"left":2,"right":3}' },
        { type: "function_call_output", call_id: "call_1", output: "5" },
      ],
    });
    const items = normalizeInput(body.input);
    assert.deepEqual(
      items.map((item) => [item.type, item.id.split("_")[0]]),
      [
        ["message", "msg"],
        ["message", "msg"],
        ["function_call", "fc"],
        ["function_call_output", "fco"],
      ],
    );
    const [hello] = normalizeInput("hello");
    assert.deepEqual(hello, { type: "message", id: hello!.id, role: "user", status: "completed", content: [{ type: "input_text", text: "hello" }] });
  });
});

describe("conversion to a chat job", () => {
  test("instructions, the stored chain and the input become messages; calls join their assistant message", () => {
    const body = parse({ input: [{ type: "function_call_output", call_id: "call_9", output: "sunny" }], instructions: "Answer in French." });
    const history: ResponseItem[] = [
      ...normalizeInput("Weather in Paris?"),
      { type: "reasoning", id: "rs_1", summary: [], content: [{ type: "reasoning_text", text: "Need the tool." }] },
      {
        type: "message",
        id: "msg_1",
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text: "Checking.", annotations: [] }],
      },
      { type: "function_call", id: "fc_1", call_id: "call_9", name: "get_weather", arguments: '{"city":"Paris"}', status: "completed" },
    ];
    const conversion = chatRequestFrom(body, history, normalizeInput(body.input));
    assert.deepEqual(conversion.request.messages, [
      { role: "system", content: "Answer in French." },
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "Checking.",
        reasoning_content: "Need the tool.",
        tool_calls: [{ id: "call_9", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
      },
      { role: "tool", content: "sunny", tool_call_id: "call_9" },
    ]);
    const job = chatJobFromResponses(conversion);
    assert.equal(job.turns.length, 4);
    assert.equal(job.choices, 1);
  });

  test("refusals name the Responses parameters", () => {
    const orphan = parse({
      input: [
        { role: "user", content: "hi" },
        { type: "function_call_output", call_id: "nope", output: "x" },
      ],
    });
    const error = refusal(() => chatJobFromResponses(chatRequestFrom(orphan, [], normalizeInput(orphan.input))));
    assert.equal(error.param, "input[1].call_id");
    assert.doesNotMatch(error.message, /tool_call_id/);

    const badArgs = parse({
      input: [
        { role: "user", content: "hi" },
        { type: "function_call", call_id: "c", name: "f", arguments: "[1]" },
      ],
    });
    assert.equal(refusal(() => chatJobFromResponses(chatRequestFrom(badArgs, [], normalizeInput(badArgs.input)))).param, "input[1].arguments");

    const missingTool = parse({ input: "hi", tools: [], tool_choice: { type: "function", name: "ghost" } });
    assert.equal(refusal(() => chatJobFromResponses(chatRequestFrom(missingTool, [], normalizeInput("hi")))).param, "tool_choice");

    const origins = [
      { param: "instructions", calls: [] },
      { param: "input[0]", calls: ["input[0]", "input[1]"] },
    ];
    assert.equal(responsesParam("tools[2].function.parameters", origins), "tools[2].parameters");
    assert.equal(responsesParam("response_format.json_schema.schema", origins), "text.format.schema");
    assert.equal(responsesParam("response_format", origins), "text.format");
    assert.equal(responsesParam("messages[1].tool_calls[1].function.arguments", origins), "input[1].arguments");
    assert.equal(responsesParam("messages", origins), "input");
  });
});

describe("the Response and its stream events", () => {
  const body = parse({ input: "hi", max_output_tokens: 50, metadata: { k: "v" } });

  test("reasoning, then text: a reasoning item and a message, replayed by the SDK into the same Response", () => {
    const { streamed, replayed, response } = assemble(body, [
      { type: "reasoning", choice: 0, text: "Let me " },
      { type: "reasoning", choice: 0, text: "think." },
      { type: "content", choice: 0, text: "\n" },
      { type: "content", choice: 0, text: "Hello" },
      { type: "content", choice: 0, text: " there" },
      finish("stop"),
    ]);
    assert.deepEqual(
      streamed.map((e) => e.type),
      [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
      ],
    );
    assert.equal(response.status, "completed");
    assert.deepEqual(response.output[0], {
      type: "reasoning",
      id: response.output[0]!.id,
      summary: [],
      content: [{ type: "reasoning_text", text: "Let me think." }],
      status: "completed",
    });
    assert.deepEqual(response.output[1], {
      type: "message",
      id: response.output[1]!.id,
      role: "assistant",
      status: "completed",
      content: [{ type: "output_text", text: "\nHello there", annotations: [] }],
    });
    assert.deepEqual(replayed.output, response.output);
    assert.equal(replayed.output_text, "\nHello there");
    assert.deepEqual(response.usage, {
      input_tokens: 12,
      input_tokens_details: { cached_tokens: 4 },
      output_tokens: 7,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 19,
    });
    assert.equal(response.max_output_tokens, 50);
    assert.deepEqual(response.metadata, { k: "v" });
  });

  test("tool calls: whitespace before them is no message; each call is a function_call item", () => {
    const { streamed, replayed, response } = assemble(body, [
      { type: "content", choice: 0, text: " \n" },
      { type: "tool_call_start", choice: 0, index: 0, id: "call_a", name: "add" },
      { type: "tool_call_arguments", choice: 0, index: 0, text: '{"left":1,' },
      { type: "tool_call_arguments", choice: 0, index: 0, text: '"right":2}' },
      { type: "tool_call_start", choice: 0, index: 1, id: "call_b", name: "add" },
      { type: "tool_call_arguments", choice: 0, index: 1, text: '{"left":3,"right":4}' },
      finish("tool_calls"),
    ]);
    assert.deepEqual(
      response.output.map((item) => item.type === "function_call" && [item.call_id, item.name, item.arguments, item.status]),
      [
        ["call_a", "add", '{"left":1,"right":2}', "completed"],
        ["call_b", "add", '{"left":3,"right":4}', "completed"],
      ],
    );
    assert.ok(response.output.every((item) => item.id.startsWith("fc_")));
    assert.deepEqual(replayed.output, response.output);
    const done = streamed.filter((e) => e.type === "response.function_call_arguments.done");
    assert.deepEqual(
      done.map((e) => [e["name"], e["arguments"]]),
      [
        ["add", '{"left":1,"right":2}'],
        ["add", '{"left":3,"right":4}'],
      ],
    );
  });

  test("cut by max_output_tokens: incomplete, with the reason; nothing said still makes an empty message", () => {
    const cut = assemble(body, [{ type: "content", choice: 0, text: "Once upon" }, finish("length")]);
    assert.equal(cut.response.status, "incomplete");
    assert.deepEqual(cut.response.incomplete_details, { reason: "max_output_tokens" });
    assert.equal(cut.streamed.at(-1)!.type, "response.incomplete");
    assert.equal(cut.response.output[0]!.status, "incomplete");
    assert.deepEqual(cut.replayed.output, cut.response.output);

    const silent = assemble(body, [finish("stop")]);
    assert.equal(silent.response.output.length, 1);
    assert.equal(silent.replayed.output_text, "");
  });

  test("a failure after the start: response.failed with the error, then an error event", () => {
    const failed = assemble(body, [
      { type: "content", choice: 0, text: "Once" },
      { type: "error", choice: 0, error: new LmxError("model_crashed", "the runner died") },
    ]);
    assert.equal(failed.response.status, "failed");
    assert.deepEqual(failed.response.error, { code: "server_error", message: "the runner died" });
    assert.deepEqual(
      failed.streamed.slice(-2).map((e) => e.type),
      ["response.failed", "error"],
    );
    assert.equal(failed.streamed.at(-1)!["code"], "model_crashed");
  });
});

describe("the responses store", () => {
  test("a chain reads oldest first, inputs before outputs; a deleted link is named; kept across a reopen, for 30 days", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-responses-store-"));
    try {
      const open = () => {
        const state = openStateDatabase(dir, () => {});
        return { state, store: new ResponsesStore<ResponseItem, ResponseObject>(state) };
      };
      const first = open();
      const body = parse({ input: "x" });
      const now = Math.floor(Date.now() / 1000);
      // one kept longer than the 30 days OpenAI keeps responses: gone at the next start
      first.store.save({ response: initialResponse("resp_old", "m", body, now - 31 * 86_400), input: normalizeInput("old") });
      assert.ok(first.store.get("resp_old"));
      let previous: string | null = null;
      for (const turn of ["one", "two", "three"]) {
        const response: ResponseObject = {
          ...initialResponse(`resp_${turn}`, "m", body, now),
          previous_response_id: previous,
          status: "completed",
        };
        response.output = normalizeInput(`${turn} answered`);
        first.store.save({ response, input: normalizeInput(turn) });
        previous = response.id;
      }
      first.state.db.close();
      const { state, store } = open();
      const chain = store.chain("resp_three");
      assert.equal(chain.kind, "found");
      const texts = chain.kind === "found" ? chain.items.map((item) => (item.type === "message" ? item.content[0] : null)) : [];
      assert.deepEqual(
        texts.map((part) => part && part.type === "input_text" && part.text),
        ["one", "one answered", "two", "two answered", "three", "three answered"],
      );
      assert.equal(store.get("resp_two")?.response.previous_response_id, "resp_one");
      assert.equal(store.get("resp_old"), null);
      assert.equal(store.delete("resp_two"), true);
      assert.equal(store.delete("resp_two"), false);
      assert.deepEqual(store.chain("resp_three"), { kind: "missing", id: "resp_two" });
      assert.deepEqual(store.chain("resp_nope"), { kind: "missing", id: "resp_nope" });
      state.db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
