/** INTERFACE STUB — implemented in its own change. */
import type { GbnfBuilder } from "../json-schema/gbnf.js";
import type { JsonSchema, OutputParser, ToolDefinition, ToolFamily } from "../types.js";
export interface ToolFormat {
  grammar(
    builder: GbnfBuilder,
    tools: ToolDefinition[],
    choice: { kind: "required" } | { kind: "named"; name: string },
    parallel: boolean,
    opts: { thinking: boolean },
  ): string;
  jsonGrammar(builder: GbnfBuilder, schema: JsonSchema | "object", opts: { thinking: boolean }): string;
  parser(opts: { tools: ToolDefinition[]; forced: boolean; newId: () => string; thinking: boolean }): OutputParser;
  preservedTokens: string[];
  stops: string[];
}
export function toolFormatFor(_family: ToolFamily): ToolFormat {
  throw new Error("not implemented");
}
