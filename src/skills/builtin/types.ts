import type { JsonSchema } from "../../chat/types.js";
import type { SkillCallContext } from "../types.js";

/** A built-in before the source stamps source, timeout and loop permission on it. */
export interface BuiltinSkill {
  name: string;
  description: string;
  parameters: JsonSchema;
  outputSchema?: JsonSchema;
  run(args: Record<string, unknown>, context: SkillCallContext): Promise<unknown>;
}
