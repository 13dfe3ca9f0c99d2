/**
 * The OpenAI request bodies we accept, validated strictly: an unknown or unsupported field is a 400 that names it,
 * never a silent no-op. Shared by the gateway (validation) and the runner (types of what it receives).
 */
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";

const MAX_STOP_SEQUENCES = 16;

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
  n: z.literal(1, { message: "only n=1 is supported" }).nullable().optional(),
  user: z.string().max(512).optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  /** vLLM's and llama-server's extension: keep generating past end-of-sequence tokens, up to max_tokens (benchmarks). */
  ignore_eos: z.boolean().nullable().optional(),
};

const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });
const messageContent = z.union([z.string(), z.array(textPart).min(1)]);

const chatMessage = z.discriminatedUnion("role", [
  z.strictObject({ role: z.literal("system"), content: messageContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal("developer"), content: messageContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal("user"), content: messageContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal("assistant"), content: messageContent.nullable(), name: z.string().optional() }),
]);

export const chatCompletionRequestSchema = z.strictObject({
  ...samplingFields,
  messages: z.array(chatMessage).min(1, "messages must contain at least one message"),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.literal(false, { message: "logprobs are not supported" }).nullable().optional(),
  response_format: z.strictObject({ type: z.literal("text", { message: 'only response_format {type: "text"} is supported' }) }).optional(),
});
export type ChatCompletionRequest = z.output<typeof chatCompletionRequestSchema>;
export type ChatMessage = z.output<typeof chatMessage>;

export const completionRequestSchema = z.strictObject({
  ...samplingFields,
  prompt: z.union([z.string(), z.array(z.string()).length(1, "prompt arrays must hold exactly one string")]),
  echo: z.literal(false, { message: "echo is not supported" }).nullable().optional(),
  logprobs: z.null({ message: "logprobs are not supported" }).optional(),
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
