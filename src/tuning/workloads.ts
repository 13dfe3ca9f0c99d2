/**
 * Named workloads a search measures candidates on, as bench driver workloads (src/bench). A search runs a
 * short rung first (one wave of requests per level) and the full workload for the few that go on.
 */
import { z } from "zod";
import { DEFAULT_WORKLOAD, type Workload } from "../bench/types.js";
import { LmxError } from "../errors/codes.js";
import { canonicalJson } from "../bench/store.js";

export const WORKLOADS: Readonly<Record<string, Partial<Workload>>> = {
  /** Eight chat-length completions at once: a shared server's or an agent fleet's load. */
  "streams-8": { concurrency: [8], promptTokens: 128, maxTokens: 64, requests: 16 },
  /** Thirty-two at once: a GPU's batch, where slots and batch shapes decide throughput. */
  "streams-32": { concurrency: [32], promptTokens: 128, maxTokens: 64, requests: 64 },
  /** One person, then eight at once. */
  chat: { concurrency: [1, 8], promptTokens: 128, maxTokens: 64, requests: 8 },
  /** One long prompt at a time: prompt processing dominates. */
  "long-prompt": { concurrency: [1], promptTokens: 1024, maxTokens: 32, requests: 3 },
};

export const workloadSchema = z.union([
  z.string().min(1),
  z.strictObject({
    name: z.string().min(1).max(64).optional(),
    concurrency: z.array(z.number().int().min(1).max(256)).min(1).max(4).optional(),
    prompt_tokens: z.number().int().min(1).max(32768).optional(),
    max_tokens: z.number().int().min(1).max(4096).optional(),
    requests: z.number().int().min(1).max(1024).optional(),
  }),
]);
export type WorkloadInput = z.infer<typeof workloadSchema>;

export interface NamedWorkload {
  name: string;
  workload: Workload;
  /** What must match for two measurements to compare (the perf gate's check against a tuned profile). */
  key: string;
}

export function resolveWorkload(input: WorkloadInput | undefined): NamedWorkload {
  const given = input ?? "streams-8";
  const base = typeof given === "string" ? given : (given.name ?? "custom");
  const preset = WORKLOADS[typeof given === "string" ? given : "streams-8"];
  if (!preset) throw new LmxError("invalid_value", `unknown workload '${base}'; known: ${Object.keys(WORKLOADS).join(", ")}`, { param: "workload" });
  const custom = typeof given === "string" ? {} : given;
  const workload: Workload = {
    ...DEFAULT_WORKLOAD,
    ...preset,
    ...(custom.concurrency ? { concurrency: custom.concurrency } : {}),
    ...(custom.prompt_tokens ? { promptTokens: custom.prompt_tokens } : {}),
    ...(custom.max_tokens ? { maxTokens: custom.max_tokens } : {}),
    ...(custom.requests ? { requests: custom.requests } : {}),
    warmup: 1,
    rounds: 1,
    timeoutMs: 120_000,
  };
  return { name: base, workload, key: workloadKey(workload) };
}

/** The shape that decides tok/s: endpoint, prompt and answer lengths, levels, requests per level. */
export function workloadKey(w: Workload): string {
  return canonicalJson({
    scenario: w.scenario,
    endpoint: w.endpoint,
    prompt_tokens: w.promptTokens,
    max_tokens: w.maxTokens,
    concurrency: w.concurrency,
    requests: w.requests,
    temperature: w.temperature,
  });
}

/**
 * The short rung: one wave per level (as many requests as streams) after one warm-up request. Without it the
 * first candidate of a search paid for a cold start (500M model, 2 cores: 15 tok/s cold, 45 warm, same settings).
 */
export function quickRung(w: Workload): Workload {
  const requests = Math.max(...w.concurrency);
  return { ...w, requests: Math.min(w.requests ?? requests, requests), warmup: 1 };
}
