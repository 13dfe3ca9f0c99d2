/**
 * POST /v1/responses request bodies, validated as strictly as chat completions (src/api/openai/schemas.ts): an
 * unknown field is a 400 naming it. Input items are the text subset of OpenAI's: messages (with or without
 * `type: "message"`), function calls and their outputs, and reasoning items as a previous answer returned them.
 */
import { z } from "zod";
const MAX_INPUT_ITEMS = 4096;
/** As chat completions (src/api/openai/schemas.ts). */
const MAX_TOOLS = 128;

const toolName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-zA-Z0-9_.-]+$/, "a function name may only hold a-z, A-Z, 0-9, underscores, dots and dashes");

const itemStatus = z.enum(["in_progress", "completed", "incomplete"]).optional();

const textPart = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("input_text"), text: z.string() }),
  z.strictObject({
    type: z.literal("output_text"),
    text: z.string(),
    // what an earlier answer carried, sent back as it was
    annotations: z.array(z.unknown()).optional(),
    logprobs: z.array(z.unknown()).optional(),
  }),
  z.strictObject({ type: z.literal("refusal"), refusal: z.string() }),
]);

const messageItem = z.strictObject({
  type: z.literal("message").optional(),
  role: z.enum(["user", "system", "developer", "assistant"]),
  content: z.union([z.string(), z.array(textPart)]),
  id: z.string().max(256).optional(),
  status: itemStatus,
  phase: z.enum(["commentary", "final_answer"]).nullable().optional(),
});

const functionCallItem = z.strictObject({
  type: z.literal("function_call"),
  call_id: z.string().min(1).max(256),
  name: toolName,
  arguments: z.string(),
  id: z.string().max(256).optional(),
  status: itemStatus,
});

const functionCallOutputItem = z.strictObject({
  type: z.literal("function_call_output"),
  call_id: z.string().min(1).max(256),
  output: z.union([z.string(), z.array(z.strictObject({ type: z.literal("input_text"), text: z.string() }))]),
  id: z.string().max(256).nullable().optional(),
  status: itemStatus.nullable(),
});

const reasoningItem = z.strictObject({
  type: z.literal("reasoning"),
  id: z.string().max(256).optional(),
  summary: z.array(z.strictObject({ type: z.literal("summary_text"), text: z.string() })),
  content: z.array(z.strictObject({ type: z.literal("reasoning_text"), text: z.string() })).optional(),
  encrypted_content: z.null().optional(),
  status: itemStatus,
});

/** A message may come without `type`; every other item names its type. */
const inputItem = z.preprocess(
  (value) => (typeof value === "object" && value !== null && !Array.isArray(value) && !("type" in value) ? { ...value, type: "message" } : value),
  z.discriminatedUnion("type", [messageItem.extend({ type: z.literal("message") }), functionCallItem, functionCallOutputItem, reasoningItem]),
);

const functionTool = z.strictObject({
  type: z.literal("function"),
  name: toolName,
  description: z.string().max(16_384).nullable().optional(),
  // JSON Schema; checked with a JSON Schema validator (and for enforceability where a grammar applies) after parsing
  parameters: z.record(z.string(), z.unknown()).nullable().optional(),
  strict: z.boolean().nullable().optional(),
});

const toolChoice = z.union([z.enum(["none", "auto", "required"]), z.strictObject({ type: z.literal("function"), name: toolName })]);

const textFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[a-zA-Z0-9_-]+$/, "a schema name may only hold a-z, A-Z, 0-9, underscores and dashes"),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().optional(),
    strict: z.boolean().nullable().optional(),
  }),
]);

export const responseCreateRequestSchema = z
  .strictObject({
    model: z.string().min(1).max(512),
    input: z.union([z.string(), z.array(inputItem).max(MAX_INPUT_ITEMS)]),
    instructions: z.string().nullable().optional(),
    tools: z.array(functionTool).max(MAX_TOOLS).optional(),
    tool_choice: toolChoice.optional(),
    parallel_tool_calls: z.boolean().nullable().optional(),
    text: z.strictObject({ format: textFormat.optional() }).optional(),
    max_output_tokens: z.number().int().min(1).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    seed: z.number().int().nullable().optional(),
    stream: z.boolean().nullable().optional(),
    stream_options: z.strictObject({ include_obfuscation: z.boolean().optional() }).nullable().optional(),
    store: z.boolean().nullable().optional(),
    previous_response_id: z.string().min(1).max(256).nullable().optional(),
    metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
    user: z.string().max(512).optional(),
    safety_identifier: z.string().max(512).nullable().optional(),
    prompt_cache_key: z.string().max(1024).nullable().optional(),
    service_tier: z.enum(["auto", "default", "flex", "scale", "priority"]).nullable().optional(),
    reasoning: z
      .strictObject({
        effort: z.enum(["none", "minimal", "low", "medium", "high"]).nullable().optional(),
        // no summaries are written here (reasoning items carry the text itself); asking for one changes nothing
        summary: z.enum(["auto", "concise", "detailed"]).nullable().optional(),
      })
      .nullable()
      .optional(),
    truncation: z.enum(["disabled", "auto"]).nullable().optional(),
    include: z.array(z.string()).max(0, "nothing extra can be included here; send include: []").nullable().optional(),
  })
  .superRefine((body, ctx) => {
    if (body.truncation === "auto") {
      ctx.addIssue({
        code: "custom",
        path: ["truncation"],
        message: "truncation 'auto' would drop earlier turns silently; this server never does: send 'disabled' (the default)",
      });
    }
    if (Array.isArray(body.input) && body.input.length === 0) {
      ctx.addIssue({ code: "custom", path: ["input"], message: "input must hold at least one item" });
    }
  });

export type ResponseCreateRequest = z.output<typeof responseCreateRequestSchema>;
export type ResponseInputItem = Exclude<ResponseCreateRequest["input"], string>[number];
export type ResponseFunctionTool = NonNullable<ResponseCreateRequest["tools"]>[number];
