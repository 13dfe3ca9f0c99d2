import type { ServerConfig } from "../config/load.js";
import type { Inventory } from "../inventory/inventory.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { SkillLookup } from "../chat/request.js";
import type { SkillExecution } from "../skills/types.js";
import type { NodeRegistry } from "../nodes/registry.js";

/** What the server-side tool loop needs of the skills registry (src/skills/registry.ts). */
export interface LoopSkills extends SkillLookup {
  execute(name: string, args: unknown, options: { caller: string; signal?: AbortSignal; inLoop?: boolean }): Promise<SkillExecution>;
}

/** What the use-cases need: no HTTP framework in sight (src/http passes its context, a superset). */
export interface ServingContext {
  config: ServerConfig;
  inventory: Inventory;
  scheduler: Scheduler;
  state: { ready: boolean; shuttingDown: boolean };
  /** The skills registry; absent where skills are off (then `{"type":"skill"}` tools are refused). */
  skills?: LoopSkills | null;
  /** Remote nodes requests may be routed to (src/nodes/); absent or empty: everything is served here. */
  nodes?: NodeRegistry | null;
}
