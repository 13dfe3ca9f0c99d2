/**
 * Which model a step of `model: "auto"` runs on (docs/agents.md, "Model auto"):
 * 1. a loaded chat model, the one with the most free sequences (ties: the first loaded) — choosing a loaded
 *    model never loads or evicts anything, so a pinned model is never pushed out for an agent run;
 * 2. else `agents.default_model` (it loads on first use, like any request naming it);
 * 3. else the first available chat model of the inventory.
 */
import { LmxError } from "../errors/codes.js";
import type { ServingContext } from "../serving/context.js";

export interface ModelChoice {
  /** The model id (or alias) to resolve. */
  id: string;
  /** Why this one, as stored on the run. */
  reason: string;
}

export async function chooseAutoModel(ctx: ServingContext, defaultModel: string | null): Promise<ModelChoice> {
  const loaded = ctx.scheduler.loaded().filter((m) => m.type === "chat");
  if (loaded.length > 0) {
    const free = (m: (typeof loaded)[number]) => m.parallel - m.running;
    const best = loaded.reduce((a, b) => (free(b) > free(a) ? b : a));
    return { id: best.id, reason: `loaded chat model with the most free sequences (${free(best)} of ${best.parallel})` };
  }
  if (defaultModel) return { id: defaultModel, reason: "agents.default_model (no chat model loaded)" };
  const first = (await ctx.inventory.list()).find((m) => m.type === "chat");
  if (first) return { id: first.id, reason: "first available chat model (none loaded, no agents.default_model)" };
  throw new LmxError("model_not_found", "model 'auto' found no chat model: none is loaded, configured or available", { param: "model" });
}
