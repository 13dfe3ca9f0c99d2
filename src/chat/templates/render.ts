/** INTERFACE STUB — implemented in its own change. */
import type { ChatTurn, TemplateInfo, ToolDefinition } from "../types.js";
export function renderPrompt(
  _info: TemplateInfo,
  _turns: ChatTurn[],
  _tools: ToolDefinition[] | null,
  _opts?: { reasoningEffort?: string | null },
): string {
  throw new Error("not implemented");
}
