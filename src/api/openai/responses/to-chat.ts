/**
 * A Responses request as the chat layer's job: instructions, the stored chain and this input become chat
 * messages, the flat tools and text.format become their chat completion forms, and chatJobFrom checks them all.
 * Its refusals name chat completion parameters; they are renamed here to the ones this client sent.
 */
import { LmxError } from "../../../errors/codes.js";
import { chatJobFrom, type ChatJob } from "../../../chat/request.js";
import type { ChatCompletionRequest, ChatMessage } from "../schemas.js";
import { messageItemText, type ResponseItem } from "./items.js";
import type { ResponseCreateRequest } from "./schema.js";

/** Where a chat message came from: the Responses parameter its errors name. */
interface Origin {
  param: string;
  /** The parameter of each tool call the message holds (function_call items merged into it). */
  calls: string[];
}

export interface ChatConversion {
  request: ChatCompletionRequest;
  origins: Origin[];
}

/**
 * `history`: the previous_response_id chain's inputs and outputs, oldest first (its instructions are not carried
 * over, as OpenAI documents); `input`: this request's input items, normalized.
 */
export function chatRequestFrom(body: ResponseCreateRequest, history: ResponseItem[], input: ResponseItem[]): ChatConversion {
  const messages: ChatMessage[] = [];
  const origins: Origin[] = [];
  if (body.instructions) {
    messages.push({ role: "system", content: body.instructions });
    origins.push({ param: "instructions", calls: [] });
  }
  const inputParam = (index: number) => (typeof body.input === "string" ? "input" : `input[${index}]`);
  appendItems(messages, origins, history, () => "previous_response_id");
  appendItems(messages, origins, input, inputParam);
  const format = body.text?.format;
  const choice = body.tool_choice;
  const request: ChatCompletionRequest = {
    model: body.model,
    messages,
    ...(body.max_output_tokens !== undefined ? { max_completion_tokens: body.max_output_tokens } : {}),
    ...(body.temperature !== undefined ? { temperature: body.temperature } : {}),
    ...(body.top_p !== undefined ? { top_p: body.top_p } : {}),
    ...(body.seed !== undefined ? { seed: body.seed } : {}),
    ...(body.parallel_tool_calls !== undefined ? { parallel_tool_calls: body.parallel_tool_calls } : {}),
    ...(body.tools
      ? {
          tools: body.tools.map((tool) => ({
            type: "function" as const,
            function: {
              name: tool.name,
              ...(tool.description ? { description: tool.description } : {}),
              ...(tool.parameters ? { parameters: tool.parameters } : {}),
            },
          })),
        }
      : {}),
    ...(choice !== undefined ? { tool_choice: typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } } } : {}),
    ...(format
      ? {
          response_format:
            format.type === "json_schema"
              ? {
                  type: "json_schema",
                  json_schema: { name: format.name, schema: format.schema, ...(format.description ? { description: format.description } : {}) },
                }
              : { type: format.type },
        }
      : {}),
    ...(body.reasoning?.effort && body.reasoning.effort !== "none" ? { reasoning_effort: body.reasoning.effort } : {}),
  };
  return { request, origins };
}

/**
 * Items become chat messages: function_call items join the assistant message before them (one assistant turn
 * with its calls, as templates expect), a reasoning item rides on the assistant message after it.
 */
function appendItems(messages: ChatMessage[], origins: Origin[], items: ResponseItem[], paramOf: (index: number) => string): void {
  let reasoning: string | null = null;
  // the assistant message function calls may still join: only the one just added
  let openAssistant: Extract<ChatMessage, { role: "assistant" }> | null = null;
  items.forEach((item, index) => {
    const param = paramOf(index);
    switch (item.type) {
      case "reasoning":
        reasoning = (reasoning ?? "") + item.content.map((part) => part.text).join("");
        openAssistant = null;
        return;
      case "message": {
        const text = messageItemText(item);
        if (item.role === "assistant") {
          openAssistant = { role: "assistant", content: text, ...(reasoning !== null ? { reasoning_content: reasoning } : {}) };
          messages.push(openAssistant);
          reasoning = null;
        } else {
          messages.push({ role: item.role, content: text });
          openAssistant = null;
        }
        origins.push({ param, calls: [] });
        return;
      }
      case "function_call": {
        const call = { id: item.call_id, type: "function" as const, function: { name: item.name, arguments: item.arguments } };
        if (openAssistant && reasoning === null) {
          (openAssistant.tool_calls ??= []).push(call);
          origins[origins.length - 1]!.calls.push(param);
          return;
        }
        openAssistant = { role: "assistant", content: null, tool_calls: [call], ...(reasoning !== null ? { reasoning_content: reasoning } : {}) };
        reasoning = null;
        messages.push(openAssistant);
        origins.push({ param, calls: [param] });
        return;
      }
      case "function_call_output":
        messages.push({ role: "tool", content: item.output, tool_call_id: item.call_id });
        origins.push({ param, calls: [] });
        openAssistant = null;
        return;
    }
  });
  // reasoning with nothing after it (an answer cut off while thinking) is still part of the conversation
  if (reasoning !== null) {
    messages.push({ role: "assistant", content: "", reasoning_content: reasoning });
    origins.push({ param: paramOf(items.length - 1), calls: [] });
  }
}

/** chatJobFrom over the converted request, its refusals renamed to the Responses parameters. */
export function chatJobFromResponses(conversion: ChatConversion): ChatJob {
  try {
    return chatJobFrom(conversion.request);
  } catch (error) {
    if (!(error instanceof LmxError)) throw error;
    throw new LmxError(error.code, renameInMessage(error.message), {
      param: error.param === null ? null : responsesParam(error.param, conversion.origins),
      ...(error.retryAfterSec !== undefined ? { retryAfterSec: error.retryAfterSec } : {}),
      ...(error.details !== undefined ? { details: error.details } : {}),
      cause: error,
    });
  }
}

/** A chat completion parameter path as the Responses parameter it was made from. */
export function responsesParam(param: string, origins: Origin[]): string {
  const message = /^messages\[(\d+)\](.*)$/.exec(param);
  if (message) {
    const origin = origins[Number(message[1])];
    if (!origin) return "input";
    const rest = message[2] ?? "";
    const call = /^\.tool_calls\[(\d+)\]\.function\.(.+)$/.exec(rest);
    if (call) return `${origin.calls[Number(call[1])] ?? origin.param}.${call[2]}`;
    if (rest === ".tool_call_id") return `${origin.param}.call_id`;
    return origin.param;
  }
  if (param === "messages") return "input";
  const tool = /^tools\[(\d+)\]\.function\.(.+)$/.exec(param);
  if (tool) return `tools[${tool[1]}].${tool[2]}`;
  if (param.startsWith("response_format.json_schema.")) return `text.format.${param.slice("response_format.json_schema.".length)}`;
  if (param === "response_format") return "text.format";
  if (param === "reasoning_effort") return "reasoning.effort";
  return param;
}

function renameInMessage(message: string): string {
  return message
    .replace(/response_format/g, "text.format")
    .replace(/tool_call_id '([^']*)' answers no tool call of an earlier assistant message/, "call_id '$1' answers no earlier function_call");
}
