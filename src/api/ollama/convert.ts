/**
 * Ollama's requests in the chat layer's terms (src/chat): messages become turns, `format` the output
 * constraint, `options` the sampling request, `think` whether reasoning is shown. Everything a client can get
 * wrong is refused here, before a model is loaded.
 */
import { randomBytes } from "node:crypto";
import { LmxError } from "../../errors/codes.js";
import type { ChatJob, OutputConstraint } from "../../chat/request.js";
import type { ChatTurn, JsonSchema, ToolCallRecord, ToolDefinition } from "../../chat/types.js";
import { checkEnforceable } from "../../chat/json-schema/gbnf.js";
import { assertValidJsonSchema } from "../../chat/json-schema/validate.js";
import type { SamplingRequest } from "../../serving/chat.js";
import type { OllamaChatRequest, OllamaGenerateRequest, OllamaMessage, OllamaOptions } from "./schemas.js";

const NO_PARAMETERS: JsonSchema = { type: "object", properties: {}, additionalProperties: false };

/** How long the model stays loaded after this request: 0 unloads it once idle, null keeps it. */
export type KeepAlive = { kind: "unload" } | { kind: "configured" };

const GO_DURATION = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/;
const GO_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds; negative means forever. Numbers are seconds, strings Go durations (or seconds as text). */
export function keepAliveMillis(value: number | string): number {
  if (typeof value === "number") return value * 1000;
  const text = value.trim();
  if (/^[+-]?\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (!GO_DURATION.test(text)) {
    throw new LmxError("invalid_value", `keep_alive takes seconds or a duration like "5m", "1h30m", "-1"; got '${text.slice(0, 40)}'`, {
      param: "keep_alive",
    });
  }
  let ms = 0;
  for (const match of text.matchAll(GO_PART)) ms += Number(match[1]) * UNIT_MS[match[2]!]!;
  return text.startsWith("-") ? -ms : ms;
}

/**
 * This server keeps models by its own keep_alive (per model in the config); a request cannot lengthen or
 * shorten that. A request's `keep_alive: 0` is honoured as Ollama means it: the model is unloaded once this
 * request and any others running on it are done. Any other value is checked and leaves the configured one.
 */
export function keepAliveOf(value: number | string | undefined): KeepAlive {
  if (value === undefined) return { kind: "configured" };
  return keepAliveMillis(value) === 0 ? { kind: "unload" } : { kind: "configured" };
}

export interface OllamaSampling {
  sampling: SamplingRequest;
  /** The context the request asks for (options.num_ctx), or null. */
  numCtx: number | null;
}

export function samplingOf(options: OllamaOptions | undefined): OllamaSampling {
  const o = options ?? {};
  const limit = o.num_predict;
  return {
    sampling: {
      // -1 (until the model stops) and -2 (until the context is full) are both "no limit" here
      maxTokens: limit === undefined || limit < 0 ? null : limit,
      temperature: o.temperature,
      topP: o.top_p,
      topK: o.top_k,
      minP: o.min_p,
      seed: o.seed,
      presencePenalty: o.presence_penalty,
      frequencyPenalty: o.frequency_penalty,
      stop: o.stop ?? [],
    },
    numCtx: o.num_ctx ?? null,
  };
}

export function outputOf(format: OllamaChatRequest["format"]): OutputConstraint {
  if (format === undefined || format === "") return { kind: "text" };
  if (typeof format === "string") {
    if (format !== "json") throw new LmxError("invalid_value", `format must be "json" or a JSON Schema object; got '${format}'`, { param: "format" });
    return { kind: "json_object" };
  }
  const schema = format as JsonSchema;
  assertValidJsonSchema(schema, "format");
  checkEnforceable(schema, "format");
  return { kind: "json_schema", name: "format", schema };
}

/** Whether reasoning is shown (`message.thinking`), and the effort a template may read. */
export interface Thinking {
  show: boolean;
  effort: string | null;
}

/** Shown unless `think: false` (a thinking model's reasoning is never mixed into the content). */
export function thinkingOf(think: OllamaChatRequest["think"]): Thinking {
  if (think === false) return { show: false, effort: null };
  return { show: true, effort: typeof think === "string" ? think : null };
}

function refuseUnsupported(body: { logprobs?: boolean | undefined }, images: boolean): void {
  if (images) throw new LmxError("unsupported_parameter", "images are not supported: the models served here read text only", { param: "images" });
  if (body.logprobs === true) {
    throw new LmxError("unsupported_parameter", "logprobs are not offered on /api/*; use /v1/chat/completions with logprobs", { param: "logprobs" });
  }
}

function newCallId(): string {
  return `call_${randomBytes(12).toString("hex")}`;
}

function argumentsText(args: Record<string, unknown> | string | undefined, param: string): string {
  if (args === undefined) return "{}";
  if (typeof args !== "string") return JSON.stringify(args);
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    parsed = null;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new LmxError("invalid_value", "a tool call's arguments must be a JSON object", { param });
  }
  return args;
}

/**
 * Ollama's history carries no call ids: each call gets one, and a tool message answers the earliest
 * unanswered call of its `tool_name` (else the earliest unanswered call), as the templates need an id.
 */
export function turnsOf(messages: OllamaMessage[]): ChatTurn[] {
  let pending: ToolCallRecord[] = [];
  return messages.map((message, index): ChatTurn => {
    if ((message.images?.length ?? 0) > 0) refuseUnsupported({}, true);
    switch (message.role) {
      case "system":
      case "user":
        return { role: message.role, content: message.content };
      case "assistant": {
        const toolCalls = message.tool_calls?.map((call, c): ToolCallRecord => ({
          id: newCallId(),
          name: call.function.name,
          arguments: argumentsText(call.function.arguments, `messages[${index}].tool_calls[${c}].function.arguments`),
        }));
        if (toolCalls) pending = [...toolCalls];
        return {
          role: "assistant",
          content: message.content === "" && toolCalls ? null : message.content,
          reasoning: message.thinking || undefined,
          toolCalls,
        };
      }
      case "tool": {
        const at = pending.findIndex((call) => call.name === message.tool_name);
        const answered = pending.splice(at >= 0 ? at : 0, 1)[0];
        return { role: "tool", content: message.content, toolCallId: answered?.id ?? newCallId(), name: message.tool_name ?? answered?.name };
      }
    }
  });
}

function toolsOf(tools: OllamaChatRequest["tools"]): ToolDefinition[] {
  const names = new Set<string>();
  return (tools ?? []).map((tool, index) => {
    const param = `tools[${index}].function`;
    if (names.has(tool.function.name)) throw new LmxError("invalid_value", `two tools are named '${tool.function.name}'`, { param: `${param}.name` });
    names.add(tool.function.name);
    const parameters = (tool.function.parameters as JsonSchema | undefined) ?? NO_PARAMETERS;
    assertValidJsonSchema(parameters, `${param}.parameters`);
    return { name: tool.function.name, description: tool.function.description, parameters };
  });
}

function job(turns: ChatTurn[], tools: ToolDefinition[], output: OutputConstraint, thinking: Thinking): ChatJob {
  return {
    turns,
    tools,
    offeredTools: tools,
    // Ollama has no tool_choice: the model decides; `format` is how a client forces a shape
    choice: { kind: tools.length > 0 ? "auto" : "none" },
    parallel: true,
    output,
    logprobs: null,
    choices: 1,
    reasoningEffort: thinking.effort,
  };
}

export function chatJobOf(body: OllamaChatRequest): ChatJob {
  refuseUnsupported(body, false);
  return job(turnsOf(body.messages), toolsOf(body.tools), outputOf(body.format), thinkingOf(body.think));
}

/** /api/generate without `raw`: the model's template renders `system` and `prompt` as one exchange. */
export function generateJobOf(body: OllamaGenerateRequest): ChatJob {
  refuseUnsupported(body, (body.images?.length ?? 0) > 0);
  if (body.template !== undefined && body.template !== "") {
    throw new LmxError("unsupported_parameter", "a per-request template is not supported: the model's own chat template is used (or raw: true)", {
      param: "template",
    });
  }
  if ((body.context?.length ?? 0) > 0) {
    throw new LmxError("unsupported_parameter", "context (token ids of an earlier answer) is not supported: send the conversation to /api/chat", {
      param: "context",
    });
  }
  if (body.suffix) throw new LmxError("unsupported_parameter", "suffix (fill-in-the-middle) is not supported", { param: "suffix" });
  const turns: ChatTurn[] = [];
  if (body.system) turns.push({ role: "system", content: body.system });
  turns.push({ role: "user", content: body.prompt });
  return job(turns, [], outputOf(body.format), thinkingOf(body.think));
}
