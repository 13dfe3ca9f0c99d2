/**
 * The OpenAI request bodies we accept, validated strictly: an unknown or unsupported field is a 400 that names it,
 * never a silent no-op. Shared by the gateway (validation) and the runner (types of what it receives).
 */
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";

const MAX_STOP_SEQUENCES = 16;
/** Choices per request: each is a sequence of its own, so n is bounded like any other use of slots. */
export const MAX_CHOICES = 16;
/** OpenAI's own limit for top_logprobs. */
export const MAX_TOP_LOGPROBS = 20;
const MAX_TOOLS = 128;

/**
 * Fields real OpenAI clients send that change nothing in a local server, accepted so those clients work as they
 * are (docs/openai-api.md says what each means here): `user` and `safety_identifier` are logged ids; `store` and
 * `metadata` only matter to the Responses API's store; `service_tier` and `prompt_cache_key` are hints llama.cpp's
 * own prompt cache makes moot.
 */
const harmlessFields = {
  user: z.string().max(512).optional(),
  safety_identifier: z.string().max(512).nullable().optional(),
  store: z.boolean().nullable().optional(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
  service_tier: z.enum(["auto", "default", "flex", "scale", "priority"]).nullable().optional(),
  prompt_cache_key: z.string().max(1024).nullable().optional(),
};

const samplingFields = {
  model: z.string().min(1).max(512),
  max_tokens: z.number().int().min(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop: z
    .union([z.string().min(1), z.array(z.string().min(1)).max(MAX_STOP_SEQUENCES)])
    .nullable()
    .optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  n: z.number().int().min(1).max(MAX_CHOICES).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() }).nullable().optional(),
  /** vLLM's and llama-server's extension: keep generating past end-of-sequence tokens, up to max_tokens (benchmarks). */
  ignore_eos: z.boolean().nullable().optional(),
  ...harmlessFields,
};

const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });
const messageContent = z.union([z.string(), z.array(textPart).min(1)]);

const toolName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-zA-Z0-9_.-]+$/, "a function name may only hold a-z, A-Z, 0-9, underscores, dots and dashes");

const toolCall = z.strictObject({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  function: z.strictObject({ name: toolName, arguments: z.string() }),
});

const chatMessage = z.discriminatedUnion("role", [
  z.strictObject({ role: z.literal("system"), content: messageContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal("developer"), content: messageContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal("user"), content: messageContent, name: z.string().optional() }),
  z.strictObject({
    role: z.literal("assistant"),
    content: messageContent.nullable().optional(),
    name: z.string().optional(),
    tool_calls: z.array(toolCall).max(MAX_TOOLS).optional(),
    refusal: z.string().nullable().optional(),
    /** What reasoning models thought before answering (llama-server's and DeepSeek's name), sent back by agents. */
    reasoning_content: z.string().nullable().optional(),
  }),
  z.strictObject({
    role: z.literal("tool"),
    content: messageContent,
    tool_call_id: z.string({ message: "a tool message needs the tool_call_id of the call it answers" }).min(1).max(256),
  }),
]);

const functionTool = z.strictObject({
  type: z.literal("function"),
  function: z.strictObject({
    name: toolName,
    description: z.string().max(16_384).optional(),
    // JSON Schema; checked with a JSON Schema validator (and for enforceability where a grammar applies) after parsing
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

/**
 * Our extension (docs/skills.md, "Server-side tool loop"): a skill of the server's registry the server runs itself
 * when the model calls it; offered to the model as a function tool with the skill's own schema.
 */
const skillTool = z.strictObject({
  type: z.literal("skill"),
  skill: z.strictObject({
    name: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[a-zA-Z0-9_.-]+$/, "a skill name may only hold a-z, A-Z, 0-9, underscores, dots and dashes"),
  }),
});

const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: toolName }) }),
]);

const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.strictObject({
      name: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[a-zA-Z0-9_-]+$/, "a schema name may only hold a-z, A-Z, 0-9, underscores and dashes"),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

export const chatCompletionRequestSchema = z
  .strictObject({
    ...samplingFields,
    messages: z.array(chatMessage).min(1, "messages must contain at least one message"),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    logprobs: z.boolean().nullable().optional(),
    top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullable().optional(),
    response_format: responseFormat.optional(),
    tools: z
      .array(z.discriminatedUnion("type", [functionTool, skillTool]))
      .max(MAX_TOOLS)
      .optional(),
    tool_choice: toolChoice.optional(),
    parallel_tool_calls: z.boolean().nullable().optional(),
    /** Passed to templates that read it (gpt-oss's Harmony: "Reasoning: high"). */
    reasoning_effort: z.enum(["minimal", "low", "medium", "high"]).nullable().optional(),
  })
  .superRefine((body, ctx) => {
    if (body.top_logprobs !== null && body.top_logprobs !== undefined && body.logprobs !== true) {
      ctx.addIssue({ code: "custom", path: ["top_logprobs"], message: "top_logprobs needs logprobs: true" });
    }
  });
export type ChatCompletionRequest = z.output<typeof chatCompletionRequestSchema>;
export type ChatMessage = z.output<typeof chatMessage>;

export const completionRequestSchema = z.strictObject({
  ...samplingFields,
  prompt: z.union([z.string(), z.array(z.string()).length(1, "prompt arrays must hold exactly one string")]),
  echo: z.literal(false, { message: "echo is not supported" }).nullable().optional(),
  /** The legacy API's top-N log-probabilities per token (OpenAI allows at most 5). */
  logprobs: z.number().int().min(0).max(5).nullable().optional(),
  best_of: z.literal(1, { message: "only best_of=1 is supported" }).nullable().optional(),
});
export type CompletionRequest = z.output<typeof completionRequestSchema>;

export const embeddingRequestSchema = z.strictObject({
  model: z.string().min(1).max(512),
  input: z.union([z.string(), z.array(z.string()).min(1).max(2048)]),
  encoding_format: z.enum(["float", "base64"]).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().max(512).optional(),
});
export type EmbeddingRequest = z.output<typeof embeddingRequestSchema>;

/** Parses a body, turning the first problem into an OpenAI-style 400 that names the parameter. */
export function parseRequest<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new LmxError("invalid_request", "the request body must be a JSON object");
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new LmxError("invalid_request", "invalid request body");
  const at = formatPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const param = at ? `${at}.${key}` : key;
    throw new LmxError("unknown_parameter", `unrecognized request argument supplied: ${param}`, { param });
  }
  const message = at ? `invalid value for '${at}': ${issue.message}` : issue.message;
  throw new LmxError("invalid_value", message, { param: at || null });
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

// runners import these without pulling zod into their process
export { messageText, stopList } from "./messages.js";
