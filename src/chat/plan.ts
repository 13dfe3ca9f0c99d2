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

export function planChat(job: ChatJob, template: TemplateInfo): ChatPlan {
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
  if (job.choice.kind === "required" || job.choice.kind === "named") {
    const builder = new GbnfBuilder();
    grammar = builder.build(format.grammar(builder, job.tools, job.choice, job.parallel, { thinking: thinkingMode }));
  } else if (job.output.kind !== "text") {
    const builder = new GbnfBuilder();
    grammar = builder.build(
      format.jsonGrammar(builder, job.output.kind === "json_object" ? "object" : job.output.schema, { thinking: thinkingMode }),
    );
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
