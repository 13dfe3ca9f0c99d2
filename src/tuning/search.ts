/**
 * The bounded search: every axis's values one at a time from the model's current settings (a coarse grid
 * around them), measured briefly; then successive halving: the better half (at most three), the current
 * settings and a candidate combining every axis's best value are measured on the full workload, and the best
 * of those wins. The time budget is checked before each candidate; what does not fit is skipped, saying so.
 *
 * Candidates that fail to load, crash, or do not fit the memory budget are skipped with their reason (the
 * caller records failures in the compatibility registry); the search always completes.
 */
import type { RunnerSettingsInput } from "../config/schema.js";
import type { ResolvedRunnerSettings } from "../config/runner-settings.js";
import type { Workload } from "../bench/types.js";
import { canonicalJson } from "../bench/store.js";
import { clampThreads, type Tunable, type TuneContext } from "./tunables.js";
import { compareCandidates, scoreV1, type CandidateMetrics } from "./score.js";
import { quickRung } from "./workloads.js";

export type CandidateOutcome = "ok" | "failed" | "skipped";

export interface CandidateRecord {
  /** 1-based, in the order candidates ran. */
  n: number;
  rung: 0 | 1;
  label: string;
  /** The settings this candidate changes, by config name. */
  settings: RunnerSettingsInput;
  outcome: CandidateOutcome;
  reason: string | null;
  metrics: CandidateMetrics | null;
  score: number | null;
}

export interface SearchProgress {
  /** Candidate n of (an estimate of) total. */
  n: number;
  total: number;
  rung: 0 | 1;
  candidate: CandidateRecord | null;
  best: { label: string; settings: RunnerSettingsInput; score: number } | null;
  elapsedMs: number;
  message: string;
}

export interface SearchPlan {
  tunables: readonly Tunable[];
  context: TuneContext;
  workload: Workload;
  budgetMs: number;
  /** Extra candidates an operator asked for, tried in the first rung like the grid's. */
  extra?: RunnerSettingsInput[];
}

/** Thrown by a measurement that did not run through no fault of the candidate (no room in the memory budget). */
export class CandidateSkipped extends Error {}

/** Measures one candidate; throws when it cannot load or crashes (the message is the reason). */
export type MeasureCandidate = (settings: RunnerSettingsInput, workload: Workload, label: string) => Promise<CandidateMetrics>;

export interface SearchResult {
  candidates: CandidateRecord[];
  /** The winner of the last complete rung (the defaults when nothing beat them); null when none ran. */
  winner: CandidateRecord | null;
  /** The current settings' own measurement, on the winner's rung. */
  baseline: CandidateRecord | null;
  /** Every setting the search varied, with the winner's value (what a profile stores). */
  winnerSettings: RunnerSettingsInput;
  stoppedEarly: boolean;
}

/** The coarse grid may use this share of the budget: the rest is kept for the finalists' longer runs. */
const FIRST_RUNG_SHARE = 0.6;

interface Planned {
  label: string;
  axis: string | null;
  settings: RunnerSettingsInput;
}

/** The base's own value for each setting a tunable varies, so a profile states the whole winning choice. */
function baseValues(base: ResolvedRunnerSettings): RunnerSettingsInput {
  return {
    threads: base.threads,
    threads_batch: base.threadsBatch ?? base.threads,
    parallel: base.parallel,
    batch_size: base.batchSize,
    ubatch_size: base.ubatchSize ?? base.batchSize,
    flash_attention: base.flashAttention,
    cache_type_k: base.cacheTypeK,
    cache_type_v: base.cacheTypeV,
    gpu_layers: base.gpuLayers,
    ...(base.draftModel ? { draft_max: base.draftMax ?? 3 } : {}),
  };
}

function describe(settings: RunnerSettingsInput): string {
  const parts = Object.entries(settings).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length === 0 ? "current settings" : parts.join(" ");
}

export function planGrid(plan: Pick<SearchPlan, "tunables" | "context" | "extra">): Planned[] {
  const { context } = plan;
  const base = baseValues(context.base);
  // the current settings, held to the real cores: a config asking for more threads than cores is the trap itself
  const baseline: RunnerSettingsInput = {};
  if (typeof base.threads === "number" && base.threads > context.cores) baseline.threads = context.cores;
  if (typeof base.threads_batch === "number" && base.threads_batch > context.cores) baseline.threads_batch = context.cores;
  const planned: Planned[] = [{ label: "current settings", axis: null, settings: baseline }];
  const seen = new Set<string>([canonicalJson({ ...base, ...baseline })]);
  const add = (axis: string | null, settings: RunnerSettingsInput) => {
    const clamped = clampThreads({ ...baseline, ...settings }, context.cores);
    const key = canonicalJson({ ...base, ...clamped });
    if (seen.has(key)) return;
    seen.add(key);
    planned.push({ label: describe(settings), axis, settings: clamped });
  };
  for (const tunable of plan.tunables) for (const values of tunable.values(context)) add(tunable.name, values);
  for (const extra of plan.extra ?? []) add(null, extra);
  return planned;
}

export async function runSearch(
  plan: SearchPlan,
  measure: MeasureCandidate,
  onProgress: (p: SearchProgress) => void,
  signal?: AbortSignal,
): Promise<SearchResult> {
  const started = Date.now();
  const grid = planGrid(plan);
  const records: CandidateRecord[] = [];
  const base = baseValues(plan.context.base);
  let stoppedEarly = false;
  let best: CandidateRecord | null = null;
  // the first rung's candidates plus (at most) the second rung's five
  let total = grid.length + Math.min(5, grid.length);
  const costs: number[] = [];

  const run = async (p: Planned, rung: 0 | 1, workload: Workload): Promise<CandidateRecord> => {
    const record: CandidateRecord = {
      n: records.length + 1,
      rung,
      label: p.label,
      settings: p.settings,
      outcome: "ok",
      reason: null,
      metrics: null,
      score: null,
    };
    const elapsed = Date.now() - started;
    const typical = costs.length > 0 ? costs.reduce((a, b) => a + b, 0) / costs.length : 0;
    // rung 1 runs longer than rung 0: a rough 2× of the measured rung-0 cost
    const expected = typical * (rung === 1 ? 2 : 1);
    if (signal?.aborted) {
      record.outcome = "skipped";
      record.reason = "cancelled";
    } else if (records.length > 0 && elapsed + expected > (rung === 0 ? plan.budgetMs * FIRST_RUNG_SHARE : plan.budgetMs)) {
      record.outcome = "skipped";
      record.reason = `budget: ${Math.round(elapsed / 1000)} s used of ${Math.round(plan.budgetMs / 1000)} s, a candidate takes about ${Math.round(expected / 1000)} s`;
      stoppedEarly = true;
    } else {
      onProgress({
        n: record.n,
        total,
        rung,
        candidate: null,
        best: bestView(best),
        elapsedMs: elapsed,
        message: `candidate ${record.n} of ${total}: ${p.label}`,
      });
      const t0 = Date.now();
      try {
        record.metrics = await measure(p.settings, workload, p.label);
        record.score = Math.round(scoreV1(record.metrics) * 100) / 100;
      } catch (error) {
        record.outcome = error instanceof CandidateSkipped ? "skipped" : "failed";
        record.reason = (error as Error).message;
      }
      if (rung === 0) costs.push(Date.now() - t0);
    }
    records.push(record);
    if (record.outcome === "ok" && rung === 1 && (best === null || compareCandidates(asRanked(record), asRanked(best)) < 0)) best = record;
    if (record.outcome === "ok" && rung === 0 && best === null) best = record;
    onProgress({
      n: record.n,
      total,
      rung,
      candidate: record,
      best: bestView(best),
      elapsedMs: Date.now() - started,
      message: `candidate ${record.n} of ${total}: ${p.label}: ${record.outcome === "ok" ? `${record.metrics!.tok_s} tok/s, score ${record.score}` : `${record.outcome} (${record.reason})`}`,
    });
    return record;
  };

  // rung 0: the coarse grid, one wave per level
  const quick = quickRung(plan.workload);
  const first: Array<{ planned: Planned; record: CandidateRecord }> = [];
  for (const p of grid) first.push({ planned: p, record: await run(p, 0, quick) });
  const measured = first.filter((f) => f.record.outcome === "ok").sort((a, b) => compareCandidates(asRanked(a.record), asRanked(b.record)));
  const baselineFirst = first[0]!.record;

  // rung 1: the current settings, the better half (at most three), and every axis's best value together
  const finalists: Planned[] = [grid[0]!];
  for (const f of measured.slice(0, Math.min(3, Math.ceil(measured.length / 2)))) if (f.planned !== grid[0]) finalists.push(f.planned);
  const combined = combine(grid, first, baselineFirst);
  if (combined && !finalists.some((f) => canonicalJson(f.settings) === canonicalJson(combined.settings))) finalists.push(combined);
  total = records.length + finalists.length;
  best = null;
  const second: Array<{ planned: Planned; record: CandidateRecord }> = [];
  if (measured.length > 0) for (const p of finalists) second.push({ planned: p, record: await run(p, 1, plan.workload) });

  const rung1 = second.filter((s) => s.record.outcome === "ok");
  const fromRung = rung1.length > 0 ? rung1 : measured;
  const ranked = [...fromRung].sort((a, b) => compareCandidates(asRanked(a.record), asRanked(b.record)));
  const winner = ranked[0] ?? null;
  const baseline = (rung1.length > 0 ? second : first).find((s) => s.planned === grid[0] && s.record.outcome === "ok")?.record ?? null;
  return {
    candidates: records,
    winner: winner?.record ?? null,
    baseline,
    winnerSettings: winner ? winnerSettings(plan, base, winner.planned.settings) : {},
    stoppedEarly,
  };
}

/** Each axis's best first-rung value that beat the current settings, together; null when fewer than two axes improved. */
function combine(grid: Planned[], first: Array<{ planned: Planned; record: CandidateRecord }>, baseline: CandidateRecord): Planned | null {
  if (baseline.outcome !== "ok") return null;
  const bestPerAxis = new Map<string, { planned: Planned; record: CandidateRecord }>();
  for (const f of first) {
    if (f.planned.axis === null || f.record.outcome !== "ok" || compareCandidates(asRanked(f.record), asRanked(baseline)) >= 0) continue;
    const held = bestPerAxis.get(f.planned.axis);
    if (!held || compareCandidates(asRanked(f.record), asRanked(held.record)) < 0) bestPerAxis.set(f.planned.axis, f);
  }
  if (bestPerAxis.size < 2) return null;
  let settings: RunnerSettingsInput = { ...grid[0]!.settings };
  for (const { planned } of bestPerAxis.values()) settings = { ...settings, ...planned.settings };
  return { label: `combined: ${describe(settings)}`, axis: null, settings };
}

/** The winner's value for every setting the search varied here (the base's where the winner left it). */
function winnerSettings(plan: Pick<SearchPlan, "tunables" | "context">, base: RunnerSettingsInput, winner: RunnerSettingsInput): RunnerSettingsInput {
  const out: Record<string, unknown> = {};
  const all = { ...base, ...winner } as Record<string, unknown>;
  for (const t of plan.tunables) {
    if (t.values(plan.context).length === 0) continue;
    for (const name of t.settings) if (all[name] !== undefined) out[name] = all[name];
  }
  return out as RunnerSettingsInput;
}

function asRanked(r: CandidateRecord): { score: number; metrics: CandidateMetrics } {
  return {
    score: r.score ?? -Infinity,
    metrics: r.metrics ?? { tok_s: 0, ttft_ms: 0, error_rate: 1, total_ms: Infinity, queue_ms: Infinity, requests: 0 },
  };
}

function bestView(r: CandidateRecord | null): SearchProgress["best"] {
  return r && r.score !== null ? { label: r.label, settings: r.settings, score: r.score } : null;
}
