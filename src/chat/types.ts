/**
 * The chat layer's shared vocabulary. The chat layer turns an OpenAI chat request into one raw, optionally
 * grammar-constrained generation that every engine runs the same way (a rendered prompt, a GBNF grammar, stop
 * strings), and turns the generated text back into content, reasoning and tool calls. Engines never see tools
 * or schemas; the same request gets the same guarantees on llama-server and on node-llama-cpp.
 */

/** A JSON Schema as clients send it (validated with ajv before use). */
export type JsonSchema = { readonly [key: string]: unknown } | boolean;

/**
 * How a model writes tool calls, decided from its chat template. `generic` is ours, for templates with no tool
 * syntax: the tools are described in the system message and calls are `<tool_call>{"name":…,"arguments":…}</tool_call>`
 * (docs/tools.md).
 */
export type ToolFamily = "llama3" | "hermes" | "mistral" | "harmony" | "generic";
export const TOOL_FAMILIES: readonly ToolFamily[] = ["llama3", "hermes", "mistral", "harmony", "generic"];

export interface ToolDefinition {
  name: string;
  description?: string | undefined;
  /** JSON Schema of the arguments object (an empty object schema when the client sent none). */
  parameters: JsonSchema;
}

export type ToolChoice = { kind: "auto" } | { kind: "none" } | { kind: "required" } | { kind: "named"; name: string };

/** One message of the conversation as the template renders it (OpenAI's shape, text content only). */
export type ChatTurn =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string | null; reasoning?: string | undefined; toolCalls?: ToolCallRecord[] | undefined }
  | { role: "tool"; content: string; toolCallId: string; name?: string | undefined };

export interface ToolCallRecord {
  id: string;
  name: string;
  /** The arguments as a JSON text, exactly as OpenAI carries them. */
  arguments: string;
}

/** The model's facts a prompt is rendered with: read from the GGUF by the runner at load. */
export interface TemplateInfo {
  /** tokenizer.chat_template; null when the file has none. */
  jinja: string | null;
  bosToken: string | null;
  eosToken: string | null;
  /** Whether the engine adds BOS itself when tokenizing (then a rendered leading BOS is dropped). */
  addsBos: boolean;
}

/** What the generated text turns into, event by event, as it streams. */
export type OutputEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "tool_call_start"; index: number; id: string; name: string }
  | { type: "tool_call_arguments"; index: number; text: string };

/**
 * How tool calling went for one answer: `forced` (required/named choice: the grammar wrote the call), `parsed`
 * (auto: the model wrote a call and it parsed), `fell_back` (call markup that did not parse, returned as content),
 * `none` (no call was made or asked for).
 */
export type ToolOutcome = "none" | "parsed" | "forced" | "fell_back";

/** Reads generated text as it arrives; never throws on what a model writes. */
export interface OutputParser {
  push(text: string): OutputEvent[];
  /** The end of the generation: what was held back, and how tool calling went. */
  finish(): { events: OutputEvent[]; outcome: ToolOutcome };
}
