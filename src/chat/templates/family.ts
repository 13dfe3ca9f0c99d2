/** INTERFACE STUB — implemented in its own change. */
import type { ToolFamily } from "../types.js";
export function detectFamily(_jinja: string | null): { family: ToolFamily; thinking: boolean; toolsInTemplate: boolean } {
  throw new Error("not implemented");
}
