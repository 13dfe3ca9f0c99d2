/**
 * The perf gate: this run's average output tok/s against the stored baseline for the same model and settings.
 * More than `thresholdPct` below the baseline fails. A run with failed requests fails too: its tok/s means
 * nothing.
 */
import type { StoredResult } from "./store.js";

/** `lmx bench` exit codes (docs/benchmarks.md lists them too). */
export const BENCH_EXIT = {
  /** The run finished; with --gate, within the threshold of the baseline. */
  ok: 0,
  /** --gate: slower than the baseline by more than the threshold. */
  regression: 1,
  /** Bad flags or configuration. */
  usage: 2,
  /** --gate: no baseline stored for this model and these settings (record one with --update-baseline). */
  noBaseline: 3,
  /** The benchmark could not run, or (with --gate) some of its requests failed. */
  failed: 4,
} as const;

export const DEFAULT_GATE_THRESHOLD_PCT = 15;

export type GateStatus = "pass" | "regression" | "no_baseline" | "errors";

export interface GateOutcome {
  status: GateStatus;
  threshold_pct: number;
  current_tok_s: number | null;
  baseline_tok_s: number | null;
  baseline_id: number | null;
  baseline_commit: string | null;
  baseline_date: string | null;
  /** (current − baseline) / baseline × 100; negative is slower. */
  change_pct: number | null;
  message: string;
}

export function evaluateGate(
  current: number | null,
  errors: number,
  baseline: StoredResult | null,
  thresholdPct = DEFAULT_GATE_THRESHOLD_PCT,
): GateOutcome {
  const base = {
    threshold_pct: thresholdPct,
    current_tok_s: current,
    baseline_tok_s: baseline?.avg_tok_s ?? null,
    baseline_id: baseline?.id ?? null,
    baseline_commit: baseline?.git_commit ?? null,
    baseline_date: baseline?.created_at ?? null,
  };
  if (errors > 0) {
    return { ...base, status: "errors", change_pct: null, message: `${errors} request(s) failed during the run; its tok/s is not comparable` };
  }
  if (!baseline || baseline.avg_tok_s === null || baseline.avg_tok_s <= 0) {
    return {
      ...base,
      status: "no_baseline",
      change_pct: null,
      message: "no baseline for this model and these settings: record one with --update-baseline",
    };
  }
  if (current === null) {
    return { ...base, status: "errors", change_pct: null, message: "the run produced no throughput figure" };
  }
  const change = ((current - baseline.avg_tok_s) / baseline.avg_tok_s) * 100;
  const detail = `${current.toFixed(1)} tok/s vs baseline ${baseline.avg_tok_s.toFixed(1)} tok/s (${change >= 0 ? "+" : ""}${change.toFixed(1)}%, baseline #${baseline.id}${baseline.git_commit ? ` at ${baseline.git_commit}` : ""}, ${baseline.created_at})`;
  if (change < -thresholdPct)
    return { ...base, status: "regression", change_pct: change, message: `perf gate FAILED: ${detail}; more than ${thresholdPct}% slower` };
  return { ...base, status: "pass", change_pct: change, message: `perf gate passed: ${detail}` };
}

export function exitCodeFor(outcome: GateOutcome): number {
  switch (outcome.status) {
    case "pass":
      return BENCH_EXIT.ok;
    case "regression":
      return BENCH_EXIT.regression;
    case "no_baseline":
      return BENCH_EXIT.noBaseline;
    case "errors":
      return BENCH_EXIT.failed;
  }
}
