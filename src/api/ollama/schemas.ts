/**
 * Ollama's request bodies (https://github.com/ollama/ollama/blob/main/docs/api.md) as this server accepts them.
 * Top-level fields Ollama knows but this server has no use for (`truncate`, `shift`, `insecure`...) are
 * ignored, as Ollama ignores unknown fields: clients such as Open WebUI send extras. What would change the
 * answer and cannot be honoured (`images`, `template`, `context`, `suffix`, `logprobs`) is refused by the
 * converters, and `options` is strict: an option this server does not map is a 400 naming it, never dropped.
 */
import { z } from "zod";

/** The `options` keys mapped onto this server's sampling and context settings. */
export const ollamaOptionsSchema = z.strictObject({
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  min_p: z.number().min(0).max(1).optional(),
  seed: z.number().int().optional(),
  /** -1: until the model stops; -2: until the context is full (both: no limit here). */
  num_predict: z.number().int().min(-2).optional(),
  stop: z.array(z.string().min(1)).max(16).optional(),
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  num_ctx: z.number().int().min(1).optional(),
});
export type OllamaOptions = z.infer<typeof ollamaOptionsSchema>;

/** Seconds (negative: forever) or a Go duration ("5m", "1h30m", "300ms", "-1m"). */
export const keepAliveFieldSchema = z.union([z.number(), z.string().max(40)]);

/** `"json"`, or a JSON Schema object the answer must match; `""` is no constraint. */
const formatSchema = z.union([z.string().max(16), z.record(z.string(), z.unknown())]);

const thinkSchema = z.union([z.boolean(), z.enum(["high", "medium", "low"])]);

const toolCallSchema = z.object({
  function: z.object({
    name: z.string().min(1).max(256),
    /** An object in Ollama's shape; a JSON text is taken too (some clients send OpenAI's). */
    arguments: z.union([z.record(z.string(), z.unknown()), z.string()]).optional(),
  }),
});

export const ollamaMessageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string().default(""),
  thinking: z.string().optional(),
  images: z.array(z.string()).nullable().optional(),
  tool_calls: z.array(toolCallSchema).optional(),
  tool_name: z.string().optional(),
});
export type OllamaMessage = z.infer<typeof ollamaMessageSchema>;

export const ollamaToolSchema = z.object({
  type: z.literal("function").default("function"),
  function: z.object({
    name: z.string().min(1).max(256),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

const common = {
  model: z.string().min(1).max(512),
  stream: z.boolean().optional(),
  format: formatSchema.optional(),
  options: ollamaOptionsSchema.optional(),
  keep_alive: keepAliveFieldSchema.optional(),
  think: thinkSchema.optional(),
  logprobs: z.boolean().optional(),
};

export const ollamaChatSchema = z.object({
  ...common,
  messages: z.array(ollamaMessageSchema).default([]),
  tools: z.array(ollamaToolSchema).optional(),
});
export type OllamaChatRequest = z.infer<typeof ollamaChatSchema>;

export const ollamaGenerateSchema = z.object({
  ...common,
  prompt: z.string().default(""),
  system: z.string().optional(),
  raw: z.boolean().optional(),
  suffix: z.string().optional(),
  template: z.string().optional(),
  context: z.array(z.number()).optional(),
  images: z.array(z.string()).nullable().optional(),
});
export type OllamaGenerateRequest = z.infer<typeof ollamaGenerateSchema>;

export const ollamaEmbedSchema = z.object({
  model: z.string().min(1).max(512),
  input: z.union([z.string(), z.array(z.string()).min(1).max(2048)]),
  keep_alive: keepAliveFieldSchema.optional(),
  options: ollamaOptionsSchema.optional(),
  truncate: z.boolean().optional(),
});

export const ollamaEmbeddingsSchema = z.object({
  model: z.string().min(1).max(512),
  prompt: z.string(),
  keep_alive: keepAliveFieldSchema.optional(),
  options: ollamaOptionsSchema.optional(),
});

/** /api/show, /api/pull and /api/delete name the model as `model` (the API) or `name` (older clients). */
export const ollamaModelNameSchema = z
  .object({ model: z.string().min(1).max(512).optional(), name: z.string().min(1).max(512).optional(), stream: z.boolean().optional() })
  .refine((body) => body.model !== undefined || body.name !== undefined, { message: "'model' is required", path: ["model"] });
