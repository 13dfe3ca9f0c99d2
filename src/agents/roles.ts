/**
 * Roles: named profiles a step runs as (system prompt, model, sampling, allowed skills). The built-ins cover the
 * usual multi-agent work; `agents.roles` in the config adds more, or replaces a built-in of the same name.
 */
import type { RoleConfig } from "./config.js";

export interface Role extends RoleConfig {
  name: string;
  builtin: boolean;
}

const builtin = (system_prompt: string, description: string): RoleConfig => ({ description, system_prompt, model: "auto", sampling: {}, skills: [] });

/** The roles every server has. `summarizer`, `classifier` and `judge` are also what the strategies use by default. */
export const BUILTIN_ROLES: Readonly<Record<string, RoleConfig>> = {
  researcher: builtin(
    "You are a researcher. Gather the facts, risks and open questions that bear on the task. Be specific and cite what you rely on.",
    "collects facts, risks and open questions",
  ),
  reviewer: builtin(
    "You are a critical reviewer. Find weaknesses, mistakes and missing cases in the task or in the work given to you, and say how to fix them.",
    "finds weaknesses and says how to fix them",
  ),
  planner: builtin(
    "You are a planner. Break the task into a short ordered plan of concrete steps, each with what it produces.",
    "turns a task into an ordered plan",
  ),
  coder: builtin(
    "You are a software engineer. Write the code the task or plan calls for, complete and runnable, with brief notes on choices made.",
    "writes the code a plan calls for",
  ),
  summarizer: builtin(
    "You are a summarizer. Merge the answers given to you into one concise, well-organized answer to the original task, keeping every distinct point and resolving disagreements.",
    "merges several answers into one (parallel_map's reducer)",
  ),
  classifier: builtin(
    "You route tasks. Answer with the name of the one role best suited to handle the task.",
    "picks the role that handles a task (router)",
  ),
  judge: builtin(
    "You are a judge. Several candidate answers to a task are given to you, numbered. Answer with the number of the best one.",
    "picks the best of several answers (vote)",
  ),
};

export class RoleCatalog {
  private readonly roles = new Map<string, Role>();

  constructor(configured: Readonly<Record<string, RoleConfig>>) {
    for (const [name, role] of Object.entries(BUILTIN_ROLES)) this.roles.set(name, { ...role, name, builtin: true });
    for (const [name, role] of Object.entries(configured)) this.roles.set(name, { ...role, name, builtin: false });
  }

  get(name: string): Role | undefined {
    return this.roles.get(name);
  }

  names(): string[] {
    return [...this.roles.keys()];
  }

  all(): Role[] {
    return [...this.roles.values()];
  }
}
