/**
 * Plans one chat request against one model: the family its template writes tool calls in, the prompt rendered
 * from its own template, the grammar that enforces forced calls or the JSON answer, and the parser that reads
 * the output back. The same plan runs on every engine.
 */
import { GbnfBuilder } from "./json-schema/gbnf.js";
import type { ChatJob } from "./request.js";
import { detectFamily } from "./templates/family.js";
import { renderPrompt } from "./templates/render.js";
import { toolFormatFor } from "./tools/formats.js";
import type { OutputParser, TemplateInfo, ToolFamily } from "./types.js";
import { randomBytes } from "node:crypto";

export interface ChatPlan {
  family: ToolFamily;
  thinking: boolean;
  prompt: string;
  /** GBNF the whole output must match; null when the output is free. */
  grammar: string | null;
  /** Calls are written by the grammar (tool_choice required or a named function). */
  forced: boolean;
  stops: string[];
  /** Markers the engine must render as text so the parser sees them. */
  preservedTokens: string[];
  newParser(): OutputParser;
}

/**
 * With max_tokens set, thinking before a forced call or a JSON answer gets at most a quarter of it (a character
 * takes at most four byte tokens), so the constrained answer always has room to finish.
 */
function thinkingBudget(maxTokens: number | null): number | undefined {
  return maxTokens === null ? undefined : Math.min(MAX_THINKING_CHARS, Math.max(0, Math.floor(maxTokens / 4) - THINK_MARKER_TOKENS));
}
/** llama.cpp expands a bounded repetition into one rule per step: keep the grammar small. */
const MAX_THINKING_CHARS = 4096;
const THINK_MARKER_TOKENS = 8;

export function planChat(job: ChatJob, template: TemplateInfo, maxTokens: number | null = null): ChatPlan {
  const detected = detectFamily(template.jinja);
  const format = toolFormatFor(detected.family);
  const prompt = renderPrompt(template, job.turns, job.offeredTools.length > 0 ? job.offeredTools : null, {
    reasoningEffort: job.reasoningEffort,
  });
  const thinking = detected.thinking;
  // A prompt that ends inside an opened block (`<think>\n`): the output starts as reasoning and must close it.
  const thinkingMode = thinking && /<think>\s*$/.test(prompt) ? ("open" as const) : thinking;
  let grammar: string | null = null;
  const forced = job.choice.kind === "required" || job.choice.kind === "named";
  const grammarOptions = { thinking: thinkingMode, maxThinkingChars: thinkingBudget(maxTokens) };
  if (job.choice.kind === "required" || job.choice.kind === "named") {
    const builder = new GbnfBuilder();
    // a named function is called once (OpenAI's meaning of forcing one function); required may call several
    const parallel = job.parallel && job.choice.kind === "required";
    grammar = builder.build(format.grammar(builder, job.tools, job.choice, parallel, grammarOptions));
  } else if (job.output.kind !== "text") {
    const builder = new GbnfBuilder();
    grammar = builder.build(format.jsonGrammar(builder, job.output.kind === "json_object" ? "object" : job.output.schema, grammarOptions));
  }
  return {
    family: detected.family,
    thinking,
    prompt,
    grammar,
    forced,
    stops: format.stops,
    preservedTokens: format.preservedTokens,
    newParser: () => format.parser({ tools: job.tools, forced, newId: newToolCallId, thinking: thinkingMode }),
  };
}

/** OpenAI's shape (`call_` and 24 characters); Mistral's 9-character ids are made by its format when rendered. */
function newToolCallId(): string {
  return `call_${randomBytes(12).toString("hex")}`;
}
