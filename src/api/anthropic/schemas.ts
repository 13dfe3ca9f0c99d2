/**
 * Anthropic's Messages API request bodies (POST /v1/messages, /v1/messages/count_tokens), validated strictly as
 * the OpenAI ones are: an unknown field is a 400 naming it. What Anthropic has and a local server cannot do
 * (images, documents, extended thinking, server tools, prefill) is refused by `refuseUnsupported` before the
 * schema, as `unsupported_parameter` naming where it was, so a client learns why instead of meeting a vague
 * "invalid value".
 */
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";

const MAX_STOP_SEQUENCES = 16;
const MAX_TOOLS = 128;

/** Prompt caching is automatic in llama.cpp: the markers are accepted and change nothing. */
const cacheControl = z
  .strictObject({ type: z.literal("ephemeral"), ttl: z.enum(["5m", "1h"]).optional() })
  .nullable()
  .optional();

const textBlock = z.strictObject({
  type: z.literal("text"),
  text: z.string(),
  cache_control: cacheControl,
  // sent back when a client echoes an answer's content into the history; nothing here makes citations
  citations: z.array(z.unknown()).nullable().optional(),
});

const toolName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-zA-Z0-9_-]+$/, "a tool name may only hold a-z, A-Z, 0-9, underscores and dashes");

const toolUseBlock = z.strictObject({
  type: z.literal("tool_use"),
  id: z.string().min(1).max(256),
  name: toolName,
  input: z.record(z.string(), z.unknown()),
  cache_control: cacheControl,
  caller: z.looseObject({ type: z.string() }).optional(),
});

const toolResultBlock = z.strictObject({
  type: z.literal("tool_result"),
  tool_use_id: z.string().min(1).max(256),
  content: z.union([z.string(), z.array(textBlock)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
});

/** Reasoning a client sends back with an earlier answer; the signature means nothing here. */
const thinkingBlock = z.strictObject({ type: z.literal("thinking"), thinking: z.string(), signature: z.string().optional() });

const contentBlock = z.discriminatedUnion("type", [textBlock, toolUseBlock, toolResultBlock, thinkingBlock]);

const message = z.strictObject({
  role: z.enum(["user", "assistant"]),
  content: z.union([z.string(), z.array(contentBlock)]),
});

const customTool = z.strictObject({
  type: z.literal("custom").nullable().optional(),
  name: toolName,
  description: z.string().max(16_384).optional(),
  // JSON Schema of the input object; checked with ajv (and for enforceability where a grammar applies) after parsing
  input_schema: z.record(z.string(), z.unknown()).refine((schema) => schema["type"] === "object", "input_schema must have type 'object'"),
  cache_control: cacheControl,
  strict: z.boolean().optional(),
  // hints to Anthropic's own serving (deferred loading, eager argument streaming, examples): accepted, no effect
  defer_loading: z.boolean().optional(),
  eager_input_streaming: z.boolean().nullable().optional(),
  input_examples: z.array(z.unknown()).optional(),
  allowed_callers: z.array(z.string()).optional(),
});

const disableParallel = { disable_parallel_tool_use: z.boolean().optional() };
const toolChoice = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("auto"), ...disableParallel }),
  z.strictObject({ type: z.literal("any"), ...disableParallel }),
  z.strictObject({ type: z.literal("tool"), name: toolName, ...disableParallel }),
  z.strictObject({ type: z.literal("none") }),
]);

const outputConfig = z.strictObject({
  effort: z.enum(["low", "medium", "high", "xhigh", "max"]).nullable().optional(),
  format: z
    .strictObject({ type: z.literal("json_schema"), schema: z.record(z.string(), z.unknown()) })
    .nullable()
    .optional(),
});

/** What a prompt is made of: shared by a message request and a token count. */
const promptFields = {
  model: z.string().min(1).max(512),
  messages: z.array(message).min(1, "messages must contain at least one message"),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  tools: z.array(customTool).max(MAX_TOOLS).optional(),
  tool_choice: toolChoice.optional(),
  // only "disabled" passes refuseUnsupported
  thinking: z.strictObject({ type: z.literal("disabled") }).optional(),
  output_config: outputConfig.optional(),
  cache_control: cacheControl,
};

export const messagesRequestSchema = z.strictObject({
  ...promptFields,
  max_tokens: z.number({ message: "max_tokens is required: the most tokens the answer may have" }).int().min(1),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stop_sequences: z.array(z.string().min(1)).max(MAX_STOP_SEQUENCES).optional(),
  stream: z.boolean().optional(),
  /** An opaque end-user id: logged by Anthropic, ignored here. */
  metadata: z.strictObject({ user_id: z.string().max(512).nullable().optional() }).optional(),
  service_tier: z.enum(["auto", "standard_only"]).optional(),
});
export type MessagesRequest = z.output<typeof messagesRequestSchema>;

export const countTokensRequestSchema = z.strictObject(promptFields);
export type CountTokensRequest = z.output<typeof countTokensRequestSchema>;

export type MessageParam = z.output<typeof message>;
export type ContentBlockParam = z.output<typeof contentBlock>;

/** Block types Anthropic accepts in a message that this server cannot read. */
const UNSUPPORTED_BLOCKS: Readonly<Record<string, string>> = {
  image: "image blocks are not supported: the models served here read text only",
  document: "document blocks are not supported: send the document's text in a text block",
  search_result: "search_result blocks are not supported",
  redacted_thinking: "redacted_thinking blocks are not supported: this server never writes them",
  server_tool_use: "server tools are not supported",
  web_search_tool_result: "server tools are not supported",
  container_upload: "container uploads are not supported",
};

/**
 * Refuses, naming where it is, what Anthropic has and this server does not: image/document blocks (in messages
 * and tool results), extended or adaptive thinking, Anthropic-hosted tools (web search, bash...). Runs on the
 * raw body, before the schema, so the answer says "unsupported" rather than "invalid".
 */
export function refuseUnsupported(body: unknown): void {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return;
  const record = body as Record<string, unknown>;
  const thinking = record["thinking"];
  if (isRecord(thinking) && thinking["type"] !== "disabled") {
    throw new LmxError(
      "unsupported_parameter",
      `thinking of type '${String(thinking["type"])}' is not supported: models that think here do so on their own, without a budget; send {"type":"disabled"} or leave thinking out`,
      { param: "thinking" },
    );
  }
  const tools = record["tools"];
  if (Array.isArray(tools)) {
    tools.forEach((tool, index) => {
      if (isRecord(tool) && typeof tool["type"] === "string" && tool["type"] !== "custom") {
        throw new LmxError(
          "unsupported_parameter",
          `tool type '${tool["type"]}' is an Anthropic-hosted tool, not supported here; define a custom tool`,
          {
            param: `tools[${index}].type`,
          },
        );
      }
    });
  }
  const messages = record["messages"];
  if (!Array.isArray(messages)) return;
  messages.forEach((m, i) => {
    const content = isRecord(m) ? m["content"] : undefined;
    if (!Array.isArray(content)) return;
    content.forEach((block, b) => {
      refuseBlock(block, `messages[${i}].content[${b}]`);
      if (isRecord(block) && block["type"] === "tool_result" && Array.isArray(block["content"])) {
        block["content"].forEach((inner, k) => refuseBlock(inner, `messages[${i}].content[${b}].content[${k}]`));
      }
    });
  });
}

function refuseBlock(block: unknown, param: string): void {
  if (!isRecord(block) || typeof block["type"] !== "string") return;
  const why = UNSUPPORTED_BLOCKS[block["type"]];
  if (why) throw new LmxError("unsupported_parameter", why, { param });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
