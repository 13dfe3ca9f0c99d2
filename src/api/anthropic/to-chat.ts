/**
 * An Anthropic Messages request as the chat layer's job: system text first, tool_use blocks as the assistant's
 * tool calls (the block id is the call id), tool_result blocks as tool turns, tool_choice any/tool/none as
 * required/named/none. Everything a client can get wrong is refused here, before a model is loaded, with the
 * Anthropic field named.
 */
import { LmxError } from "../../errors/codes.js";
import type { ChatJob, OutputConstraint } from "../../chat/request.js";
import { checkEnforceable } from "../../chat/json-schema/gbnf.js";
import { assertValidJsonSchema } from "../../chat/json-schema/validate.js";
import type { ChatTurn, JsonSchema, ToolCallRecord, ToolChoice, ToolDefinition } from "../../chat/types.js";
import type { SamplingRequest } from "../../serving/chat.js";
import type { CountTokensRequest, MessageParam, MessagesRequest } from "./schemas.js";

/** How text blocks of one message or of `system` are joined: each block is a paragraph. */
const BLOCK_SEPARATOR = "\n\n";

export function chatJobFromMessages(body: MessagesRequest | CountTokensRequest): ChatJob {
  const offeredTools = (body.tools ?? []).map((tool, index): ToolDefinition => {
    assertValidJsonSchema(tool.input_schema, `tools[${index}].input_schema`);
    return { name: tool.name, description: tool.description, parameters: tool.input_schema as JsonSchema };
  });
  const names = new Set<string>();
  offeredTools.forEach((tool, index) => {
    if (names.has(tool.name)) throw new LmxError("invalid_value", `two tools are named '${tool.name}'`, { param: `tools[${index}].name` });
    names.add(tool.name);
  });
  const choice = toolChoiceOf(body, offeredTools);
  // a grammar writes forced calls: every schema it embeds must be one it can enforce
  if (choice.kind === "required") offeredTools.forEach((tool, i) => checkEnforceable(tool.parameters, `tools[${i}].input_schema`));
  if (choice.kind === "named") {
    const index = offeredTools.findIndex((tool) => tool.name === choice.name);
    checkEnforceable(offeredTools[index]!.parameters, `tools[${index}].input_schema`);
  }
  const output = outputOf(body);
  if (output.kind !== "text" && (choice.kind === "required" || choice.kind === "named")) {
    throw new LmxError(
      "invalid_value",
      "output_config.format constrains the answer's text, and this tool_choice forces a tool call instead; send one of them",
      { param: "output_config.format" },
    );
  }
  const tc = body.tool_choice;
  return {
    turns: turnsOf(body),
    tools: choice.kind === "none" ? [] : offeredTools,
    offeredTools,
    choice,
    parallel: !(tc && tc.type !== "none" && tc.disable_parallel_tool_use === true),
    output,
    logprobs: null,
    choices: 1,
    reasoningEffort: effortOf(body),
  };
}

/** The sampling knobs of a Messages request; stop_sequences are the client's, the template's own come from the plan. */
export function samplingOf(body: MessagesRequest): SamplingRequest {
  return {
    maxTokens: body.max_tokens,
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k,
    stop: body.stop_sequences ?? [],
  };
}

function toolChoiceOf(body: MessagesRequest | CountTokensRequest, tools: ToolDefinition[]): ToolChoice {
  const choice = body.tool_choice;
  if (choice === undefined) return { kind: tools.length > 0 ? "auto" : "none" };
  if (choice.type === "none") return { kind: "none" };
  if (tools.length === 0)
    throw new LmxError("invalid_value", `tool_choice '${choice.type}' needs at least one tool in 'tools'`, { param: "tool_choice" });
  if (choice.type === "auto") return { kind: "auto" };
  if (choice.type === "any") return { kind: "required" };
  if (!tools.some((tool) => tool.name === choice.name)) {
    throw new LmxError("invalid_value", `tool_choice names the tool '${choice.name}', which is not in 'tools'`, { param: "tool_choice.name" });
  }
  return { kind: "named", name: choice.name };
}

function outputOf(body: MessagesRequest | CountTokensRequest): OutputConstraint {
  const format = body.output_config?.format;
  if (!format) return { kind: "text" };
  assertValidJsonSchema(format.schema, "output_config.format.schema");
  checkEnforceable(format.schema, "output_config.format.schema");
  return { kind: "json_schema", name: "output", schema: format.schema };
}

/** Anthropic's effort levels beyond "high" are the most a template's reasoning_effort can say. */
function effortOf(body: MessagesRequest | CountTokensRequest): string | null {
  const effort = body.output_config?.effort;
  if (effort === null || effort === undefined) return null;
  return effort === "xhigh" || effort === "max" ? "high" : effort;
}

function systemText(system: MessagesRequest["system"]): string | null {
  if (system === undefined) return null;
  const text = typeof system === "string" ? system : system.map((block) => block.text).join(BLOCK_SEPARATOR);
  return text === "" ? null : text;
}

function turnsOf(body: MessagesRequest | CountTokensRequest): ChatTurn[] {
  const turns: ChatTurn[] = [];
  const system = systemText(body.system);
  if (system !== null) turns.push({ role: "system", content: system });
  const callNames = new Map<string, string>();
  const last = body.messages.length - 1;
  body.messages.forEach((message, index) => {
    if (message.role === "assistant") {
      if (index === last) {
        throw new LmxError(
          "unsupported_parameter",
          "a final assistant message (prefilling the answer) is not supported: end the conversation with a user message",
          { param: `messages[${index}]` },
        );
      }
      turns.push(assistantTurn(message, index, callNames));
    } else {
      turns.push(...userTurns(message, index, callNames));
    }
  });
  return turns;
}

function assistantTurn(message: MessageParam, index: number, callNames: Map<string, string>): ChatTurn {
  if (typeof message.content === "string") return { role: "assistant", content: message.content };
  const texts: string[] = [];
  const reasoning: string[] = [];
  const calls: ToolCallRecord[] = [];
  message.content.forEach((block, b) => {
    switch (block.type) {
      case "text":
        texts.push(block.text);
        break;
      case "thinking":
        reasoning.push(block.thinking);
        break;
      case "tool_use":
        callNames.set(block.id, block.name);
        calls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input) });
        break;
      case "tool_result":
        throw new LmxError("invalid_value", "tool_result blocks belong in a user message", { param: `messages[${index}].content[${b}]` });
    }
  });
  return {
    role: "assistant",
    content: texts.length > 0 ? texts.join(BLOCK_SEPARATOR) : calls.length > 0 ? null : "",
    ...(reasoning.length > 0 ? { reasoning: reasoning.join(BLOCK_SEPARATOR) } : {}),
    ...(calls.length > 0 ? { toolCalls: calls } : {}),
  };
}

/** A user message: its tool results become tool turns, its text one user turn, in the order they came. */
function userTurns(message: MessageParam, index: number, callNames: Map<string, string>): ChatTurn[] {
  if (typeof message.content === "string") return [{ role: "user", content: message.content }];
  const turns: ChatTurn[] = [];
  let texts: string[] = [];
  const flush = () => {
    if (texts.length > 0) turns.push({ role: "user", content: texts.join(BLOCK_SEPARATOR) });
    texts = [];
  };
  message.content.forEach((block, b) => {
    const param = `messages[${index}].content[${b}]`;
    switch (block.type) {
      case "text":
        texts.push(block.text);
        break;
      case "tool_result": {
        flush();
        const name = callNames.get(block.tool_use_id);
        if (name === undefined) {
          throw new LmxError("invalid_value", `tool_use_id '${block.tool_use_id}' answers no tool_use block of an earlier assistant message`, {
            param: `${param}.tool_use_id`,
          });
        }
        const text = typeof block.content === "string" ? block.content : (block.content ?? []).map((t) => t.text).join(BLOCK_SEPARATOR);
        // the tool turn has no error flag: the model reads that the call failed from its text
        turns.push({ role: "tool", content: block.is_error ? `Error: ${text}` : text, toolCallId: block.tool_use_id, name });
        break;
      }
      case "tool_use":
      case "thinking":
        throw new LmxError("invalid_value", `${block.type} blocks belong in an assistant message`, { param });
    }
  });
  flush();
  // an empty content array still is a user turn (the template needs the turn to answer)
  if (turns.length === 0) turns.push({ role: "user", content: "" });
  return turns;
}
