/**
 * The agent runs' wire formats (docs/agents.md): the two request shapes of POST /v1/agents/runs, the list query,
 * and the run object every route answers with. No HTTP framework here.
 */
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { parseRequest } from "../openai/schemas.js";
import { RUN_STATUSES, type RunRecord, type RunStatus, type StepRecord } from "../../state/agent-runs.js";

export const STRATEGIES = ["parallel_map", "handoff", "router", "vote"] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const MAX_PARALLELISM = 32;
export const MAX_TIMEOUT_SEC = 86_400;
const MAX_ROLES = 16;

const roleRef = z.string().min(1).max(64);

/** What to run: the same fields in both request shapes. */
export const runSpecSchema = z.strictObject({
  strategy: z.enum(STRATEGIES),
  prompt: z
    .string()
    .min(1)
    .max(256 * 1024),
  roles: z.array(roleRef).min(1).max(MAX_ROLES),
  model: z.string().min(1).max(256).default("auto"),
  max_parallelism: z.number().int().min(1).max(MAX_PARALLELISM).default(4),
  timeout_sec: z.number().positive().max(MAX_TIMEOUT_SEC).optional(),
  /** parallel_map: the role that merges the answers (default summarizer). */
  reducer: roleRef.optional(),
  /** router: the role that picks who answers (default classifier). */
  classifier: roleRef.optional(),
  /** vote: a role that picks the best answer; without one, the most frequent answer wins. */
  judge: roleRef.optional(),
  /** vote with one role: how many answers it gives (default 3). */
  samples: z.number().int().min(1).max(MAX_ROLES).optional(),
  /** max_tokens of every step, overriding the roles' own and agents.step_max_tokens. */
  max_tokens: z.number().int().positive().max(1_000_000).optional(),
});

export type RunSpec = z.output<typeof runSpecSchema>;

const metadataSchema = z.record(z.string().max(64), z.unknown()).default({});

const requestShape = z.strictObject({ request: runSpecSchema, metadata: metadataSchema });
const agentShape = z.strictObject({
  agent: z.literal("default", { message: "the only agent is 'default'; its roles and strategy are named in input" }).default("default"),
  input: runSpecSchema,
  metadata: metadataSchema,
});

export interface CreateRunRequest {
  spec: RunSpec;
  metadata: Record<string, unknown>;
  /** Where the spec was in the body ("request" or "input"): 400s name params under it. */
  at: "request" | "input";
}

/** `{"request":{...},"metadata":{...}}` or `{"agent":"default","input":{...}}`. */
export function parseCreateRun(body: unknown): CreateRunRequest {
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    if ("request" in body) {
      const parsed = parseRequest(requestShape, body);
      return { spec: parsed.request, metadata: parsed.metadata, at: "request" };
    }
    if ("input" in body || "agent" in body) {
      const parsed = parseRequest(agentShape, body);
      return { spec: parsed.input, metadata: parsed.metadata, at: "input" };
    }
  }
  throw new LmxError("invalid_request", 'the body is {"request": {strategy, prompt, roles, ...}} or {"agent": "default", "input": {...}}', {
    param: "request",
  });
}

export const listQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(20),
  status: z.enum(RUN_STATUSES as [RunStatus, ...RunStatus[]]).optional(),
  /** ISO 8601 time, or seconds since the epoch. */
  since: z
    .string()
    .min(1)
    .transform((value, ctx) => {
      const ms = /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : Date.parse(value);
      if (!Number.isFinite(ms)) {
        ctx.addIssue({ code: "custom", message: "since is an ISO 8601 time or seconds since the epoch" });
        return z.NEVER;
      }
      return ms;
    })
    .optional(),
});

const seconds = (ms: number | null): number | null => (ms === null ? null : Math.round(ms) / 1000);

export interface StepObject {
  index: number;
  kind: string;
  role: string;
  model: string | null;
  status: string;
  input: string;
  output: string | null;
  usage: { prompt_tokens: number; completion_tokens: number };
  tool_calls: unknown[];
  error: { code: string; message: string } | null;
  traceparent: string;
  started_at: number;
  finished_at: number | null;
  duration_ms: number | null;
}

export interface RunObject {
  id: string;
  object: "agent.run";
  status: RunStatus;
  strategy: string;
  prompt: string;
  roles: string[];
  model: string;
  resolved_model: string | null;
  model_reason: string | null;
  max_parallelism: number;
  timeout_sec: number;
  priority: string;
  traceparent: string;
  trace_id: string;
  options: Record<string, unknown>;
  metadata: Record<string, unknown>;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  reason: string | null;
  error: { code: string; message: string } | null;
  output: string | null;
  decision: Record<string, unknown> | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  steps?: StepObject[];
}

export function stepObject(step: StepRecord): StepObject {
  return {
    index: step.index,
    kind: step.kind,
    role: step.role,
    model: step.model,
    status: step.status,
    input: step.input,
    output: step.output,
    usage: { prompt_tokens: step.promptTokens, completion_tokens: step.completionTokens },
    tool_calls: step.toolCalls,
    error: step.error,
    traceparent: step.traceparent,
    started_at: seconds(step.startedAt)!,
    finished_at: seconds(step.finishedAt),
    duration_ms: step.finishedAt === null ? null : Math.round(step.finishedAt - step.startedAt),
  };
}

/** Times are seconds since the epoch (OpenAI's `created_at` convention), with milliseconds as decimals. */
export function runObject(run: RunRecord, steps: StepRecord[] | null): RunObject {
  const promptTokens = steps?.reduce((n, s) => n + s.promptTokens, 0) ?? 0;
  const completionTokens = steps?.reduce((n, s) => n + s.completionTokens, 0) ?? 0;
  return {
    id: run.id,
    object: "agent.run",
    status: run.status,
    strategy: run.strategy,
    prompt: run.prompt,
    roles: run.roles,
    model: run.model,
    resolved_model: run.resolvedModel,
    model_reason: run.modelReason,
    max_parallelism: run.maxParallelism,
    timeout_sec: run.timeoutSec,
    priority: run.priority,
    traceparent: run.traceparent,
    trace_id: run.traceparent.split("-")[1] ?? "",
    options: run.options,
    metadata: run.metadata,
    created_at: seconds(run.createdAt)!,
    started_at: seconds(run.startedAt),
    finished_at: seconds(run.finishedAt),
    reason: run.reason,
    error: run.error,
    output: run.output,
    decision: run.decision,
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    ...(steps ? { steps: steps.map(stepObject) } : {}),
  };
}
