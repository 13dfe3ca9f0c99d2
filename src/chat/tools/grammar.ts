/**
 * Grammar pieces the families share: which tools a forced choice allows, one rule per tool's call, and bounded
 * repetition for parallel calls.
 */
import { LmxError } from "../../errors/codes.js";
import type { GbnfBuilder } from "../json-schema/gbnf.js";
import type { ToolDefinition } from "../types.js";

export type ForcedChoice = { kind: "required" } | { kind: "named"; name: string };

/** Parallel calls per answer the grammars allow: bounded so that any weights finish. */
export const MAX_PARALLEL_CALLS = 8;

/** The tools a forced choice may call: all of them, or exactly the named one. */
export function allowedTools(tools: readonly ToolDefinition[], choice: ForcedChoice): readonly ToolDefinition[] {
  if (choice.kind === "named") {
    const tool = tools.find((t) => t.name === choice.name);
    if (tool === undefined)
      throw new LmxError("invalid_value", `tool_choice names "${choice.name}", which is not one of the tools`, { param: "tool_choice" });
    return [tool];
  }
  if (tools.length === 0) throw new LmxError("invalid_value", 'tool_choice "required" needs at least one tool', { param: "tool_choice" });
  return tools;
}

/** A rule-name hint from a tool name (tool names may hold characters rule names cannot). */
export function ruleHint(name: string, suffix: string): string {
  return `${
    name
      .replace(/[^A-Za-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40) || "tool"
  }-${suffix}`;
}

/**
 * One call of any allowed tool: a rule whose alternatives are `render(quotedName, argsRule)` per tool, where
 * `quotedName` is the name as a JSON string and `argsRule` the rule of a JSON value valid against its parameters.
 */
export function callRule(b: GbnfBuilder, tools: readonly ToolDefinition[], render: (quotedName: string, argsRule: string) => string): string {
  const alternatives = tools.map((tool) => {
    const args = b.schema(tool.parameters, ruleHint(tool.name, "args"));
    return b.rule(ruleHint(tool.name, "call"), render(JSON.stringify(tool.name), args));
  });
  return b.rule("tool-call", alternatives.join(" | "));
}

/** `call`, or with `parallel` one to MAX_PARALLEL_CALLS calls with `separator` (a GBNF expression) between. */
export function repeated(call: string, separator: string, parallel: boolean): string {
  return parallel ? `${call} ( ${separator} ${call} ){0,${MAX_PARALLEL_CALLS - 1}}` : call;
}

/** Joins GBNF sequence parts, skipping empty ones. */
export function seq(...parts: string[]): string {
  return parts.filter((p) => p !== "").join(" ");
}
