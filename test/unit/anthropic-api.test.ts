/** The Anthropic dialect's edges without a model: request → chat job, refusals, and events → wire shapes. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LmxError } from "../../src/errors/codes.js";
import { parseRequest } from "../../src/api/openai/schemas.js";
import { messagesRequestSchema, refuseUnsupported, type MessagesRequest } from "../../src/api/anthropic/schemas.js";
import { chatJobFromMessages } from "../../src/api/anthropic/to-chat.js";
import { anthropicUsage, MessageAssembler, MessageStreamEncoder, stopOf } from "../../src/api/anthropic/wire.js";
import type { ChoiceEvent } from "../../src/serving/chat.js";

const tool = { name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } };

function request(extra: Record<string, unknown>): MessagesRequest {
  return parseRequest(messagesRequestSchema, { model: "m", max_tokens: 10, messages: [{ role: "user", content: "hi" }], ...extra });
}

function refusal(call: () => unknown): LmxError {
  try {
    call();
  } catch (error) {
    if (error instanceof LmxError) return error;
    throw error;
  }
  return assert.fail("expected a refusal");
}

describe("Anthropic request → chat job", () => {
  test("system blocks are joined into one system turn first", () => {
    const job = chatJobFromMessages(
      request({
        system: [
          { type: "text", text: "A" },
          { type: "text", text: "B", cache_control: { type: "ephemeral" } },
        ],
      }),
    );
    assert.deepEqual(job.turns, [
      { role: "system", content: "A\n\nB" },
      { role: "user", content: "hi" },
    ]);
  });

  test("tool_choice: auto by default with tools, any → required, tool → named, none keeps the tools described", () => {
    assert.deepEqual(chatJobFromMessages(request({ tools: [tool] })).choice, { kind: "auto" });
    assert.deepEqual(chatJobFromMessages(request({ tools: [tool], tool_choice: { type: "any" } })).choice, { kind: "required" });
    const named = chatJobFromMessages(
      request({ tools: [tool], tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true } }),
    );
    assert.deepEqual(named.choice, { kind: "named", name: "get_weather" });
    assert.equal(named.parallel, false);
    const none = chatJobFromMessages(request({ tools: [tool], tool_choice: { type: "none" } }));
    assert.deepEqual(none.choice, { kind: "none" });
    assert.equal(none.tools.length, 0);
    assert.equal(none.offeredTools.length, 1);
    assert.equal(
      refusal(() => chatJobFromMessages(request({ tools: [tool], tool_choice: { type: "tool", name: "nope" } }))).param,
      "tool_choice.name",
    );
    assert.equal(refusal(() => chatJobFromMessages(request({ tool_choice: { type: "any" } }))).param, "tool_choice");
  });

  test("tool_use blocks become the assistant's calls (block id = call id), tool_result blocks tool turns", () => {
    const job = chatJobFromMessages(
      request({
        tools: [tool],
        messages: [
          { role: "user", content: "weather?" },
          {
            role: "assistant",
            content: [
              { type: "text", text: "Looking." },
              { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
            ],
          },
          {
            role: "user",
            content: [
              { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "21C" }], is_error: true },
              { type: "text", text: "and now?" },
            ],
          },
        ],
      }),
    );
    assert.deepEqual(job.turns.slice(1), [
      { role: "assistant", content: "Looking.", toolCalls: [{ id: "toolu_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
      { role: "tool", content: "Error: 21C", toolCallId: "toolu_1", name: "get_weather" },
      { role: "user", content: "and now?" },
    ]);
  });

  test("a tool_result answering no tool_use and a final assistant message are refused, naming where", () => {
    const orphan = refusal(() =>
      chatJobFromMessages(request({ messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "x", content: "1" }] }] })),
    );
    assert.equal(orphan.param, "messages[0].content[0].tool_use_id");
    const prefill = refusal(() =>
      chatJobFromMessages(
        request({
          messages: [
            { role: "user", content: "hi" },
            { role: "assistant", content: "Once" },
          ],
        }),
      ),
    );
    assert.equal(prefill.code, "unsupported_parameter");
    assert.equal(prefill.param, "messages[1]");
  });
});

describe("Anthropic refusals", () => {
  test("images (also inside tool results), documents, thinking with a budget and server tools are unsupported_parameter", () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ messages: [{ role: "user", content: [{ type: "image", source: {} }] }] }, "messages[0].content[0]"],
      [
        { messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "image", source: {} }] }] }] },
        "messages[0].content[0].content[0]",
      ],
      [{ messages: [{ role: "user", content: [{ type: "document", source: {} }] }] }, "messages[0].content[0]"],
      [{ thinking: { type: "enabled", budget_tokens: 2048 } }, "thinking"],
      [{ tools: [{ type: "bash_20250124", name: "bash" }] }, "tools[0].type"],
    ];
    for (const [body, param] of cases) {
      const error = refusal(() => refuseUnsupported(body));
      assert.equal(error.code, "unsupported_parameter");
      assert.equal(error.param, param);
    }
    refuseUnsupported({ thinking: { type: "disabled" }, messages: [{ role: "user", content: [{ type: "text", text: "x" }] }] });
  });

  test("an unknown field is unknown_parameter naming it; max_tokens is required", () => {
    const unknown = refusal(() => request({ top_logprobs: 3 }));
    assert.equal(unknown.code, "unknown_parameter");
    assert.equal(unknown.param, "top_logprobs");
    const missing = refusal(() => parseRequest(messagesRequestSchema, { model: "m", messages: [{ role: "user", content: "hi" }] }));
    assert.equal(missing.param, "max_tokens");
  });
});

describe("Anthropic wire shapes", () => {
  test("stop reasons and usage", () => {
    assert.deepEqual(stopOf("length", null, []), { stop_reason: "max_tokens", stop_sequence: null });
    assert.deepEqual(stopOf("tool_calls", null, []), { stop_reason: "tool_use", stop_sequence: null });
    assert.deepEqual(stopOf("stop", "END", ["END"]), { stop_reason: "stop_sequence", stop_sequence: "END" });
    // the template's own end marker is not the client's stop sequence
    assert.deepEqual(stopOf("stop", "<|im_end|>", ["END"]), { stop_reason: "end_turn", stop_sequence: null });
    assert.deepEqual(anthropicUsage({ promptTokens: 50, cachedTokens: 20, completionTokens: 7 }), {
      input_tokens: 30,
      output_tokens: 7,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 20,
    });
  });

  const events: ChoiceEvent[] = [
    { type: "reasoning", choice: 0, text: "hmm" },
    { type: "content", choice: 0, text: "Let me " },
    { type: "content", choice: 0, text: "check." },
    { type: "tool_call_start", choice: 0, index: 0, id: "call_abc", name: "get_weather" },
    { type: "tool_call_arguments", choice: 0, index: 0, text: '{"city":' },
    { type: "tool_call_arguments", choice: 0, index: 0, text: '"Paris"}' },
  ];

  test("a whole message: text then tool_use blocks, call ids as toolu_ ids, reasoning left out", () => {
    const assembler = new MessageAssembler();
    for (const event of events) assembler.add(event);
    assert.deepEqual(assembler.blocks(), [
      { type: "text", text: "Let me check." },
      { type: "tool_use", id: "toolu_abc", name: "get_weather", input: { city: "Paris" } },
    ]);
  });

  test("the stream: message_start, blocks with one ping after the first start, message_delta, message_stop", () => {
    const encoder = new MessageStreamEncoder({ id: "msg_1", model: "m" });
    let wire = encoder.start();
    for (const event of events) wire += encoder.event(event);
    wire += encoder.end(stopOf("tool_calls", null, []), anthropicUsage({ promptTokens: 9, cachedTokens: 0, completionTokens: 4 }));
    const parsed = wire
      .split("\n\n")
      .filter(Boolean)
      .map((block) => {
        const [event, data] = block.split("\n");
        const json = JSON.parse(data!.slice(6)) as { type: string; index?: number };
        assert.equal(json.type, event!.slice(7));
        return `${json.type}${json.index === undefined ? "" : `#${json.index}`}`;
      });
    assert.deepEqual(parsed, [
      "message_start",
      "content_block_start#0",
      "ping",
      "content_block_delta#0",
      "content_block_delta#0",
      "content_block_stop#0",
      "content_block_start#1",
      "content_block_delta#1",
      "content_block_delta#1",
      "content_block_stop#1",
      "message_delta",
      "message_stop",
    ]);
    assert.match(wire, /"delta":\{"type":"input_json_delta","partial_json":"\{\\"city\\":"\}/);
    assert.match(wire, /"delta":\{"stop_reason":"tool_use","stop_sequence":null\},"usage":\{"input_tokens":9,"output_tokens":4/);
  });
});
