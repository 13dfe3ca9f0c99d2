/**
 * Which tool-call syntax a chat template speaks, read from the markers in its text. The markers are the
 * families' own (as in real models' templates and in our fixtures, src/gguf/chat-families.ts); a template with
 * none of them gets the generic family: we describe tools ourselves and read our own call syntax.
 */
import type { ToolFamily } from "../types.js";

export interface FamilyDetection {
  family: ToolFamily;
  /** The model writes reasoning first (`<think>` blocks, or harmony's analysis channel). */
  thinking: boolean;
  /** The template renders the `tools` variable itself; false for the generic family (we inject tools). */
  toolsInTemplate: boolean;
}

/** Markers checked most specific first: Qwen-style ChatML and Hermes-on-Llama templates carry `<tool_call>`. */
function familyOf(jinja: string): ToolFamily {
  if (jinja.includes("<|channel|>")) return "harmony";
  if (jinja.includes("[TOOL_CALLS]")) return "mistral";
  if (jinja.includes("<tool_call>")) return "hermes";
  // Llama 3.0 has the header markers but no tools; 3.1+ adds the ipython role and the "parameters" call shape.
  if (jinja.includes("<|start_header_id|>") && (jinja.includes("ipython") || jinja.includes("parameters"))) return "llama3";
  return "generic";
}

export function detectFamily(jinja: string | null): FamilyDetection {
  if (jinja === null) return { family: "generic", thinking: false, toolsInTemplate: false };
  const family = familyOf(jinja);
  return {
    family,
    thinking: family === "harmony" || jinja.includes("<think>"),
    toolsInTemplate: family !== "generic" && /\btools\b/.test(jinja),
  };
}
