/**
 * The `agents` section of the configuration (docs/agents.md): roles beyond the built-ins (a role named like a
 * built-in replaces it), the model `"auto"` falls back to, step defaults, and how many runs the database keeps.
 */
import { z } from "zod";

export const ROLE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
export const roleName = z.string().regex(ROLE_NAME, "role names use lowercase letters, digits, _ and -, and start with a letter (at most 64)");

export const roleSamplingSchema = z.strictObject({
  max_tokens: z.number().int().positive().max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  seed: z.number().int().optional(),
  /** Generate until max_tokens even past the end-of-text token (benchmarks, tests). */
  ignore_eos: z.boolean().optional(),
});

export const roleSchema = z.strictObject({
  description: z.string().min(1).max(500).optional(),
  system_prompt: z.string().min(1).max(32_000),
  /** A model id or alias, or "auto" (the run's model). */
  model: z.string().min(1).default("auto"),
  sampling: roleSamplingSchema.default({}),
  /** Skills this role's steps may call through the server-side tool loop (docs/skills.md). */
  skills: z.array(z.string().min(1)).default([]),
});

export type RoleConfig = z.output<typeof roleSchema>;

export const agentsConfigSchema = z
  .strictObject({
    /** More roles, by name; a name of a built-in replaces it. */
    roles: z.record(roleName, roleSchema).default({}),
    /** What `model: "auto"` uses when no chat model is loaded; null: the first available chat model. */
    default_model: z.string().min(1).nullable().default(null),
    /** max_tokens of a step whose role sets none. */
    step_max_tokens: z.number().int().positive().default(512),
    /** timeout_sec of a run that names none. */
    default_timeout_sec: z.number().positive().max(86_400).default(600),
    /** Runs kept in the database (with their steps and events); the oldest finished ones go first. */
    max_runs_kept: z.number().int().positive().default(1000),
  })
  .prefault({});

export type AgentsConfig = z.output<typeof agentsConfigSchema>;
