/**
 * The perf gate: this run's average output tok/s against the stored baseline for the same model and settings.
 * More than `thresholdPct` below the baseline fails. A run with failed requests fails too: its tok/s means
 * nothing.
 */

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

/** What a run is compared with: a stored baseline run, or the measurement of the tuned profile the model runs with. */
export interface GateBaseline {
  id: number;
  avg_tok_s: number | null;
  git_commit: string | null;
  created_at: string;
  /** Absent: a stored bench baseline. */
  kind?: "bench" | "tuned_profile";
}

/**
 * The tuned profile's own measurement as the baseline, when the model runs with a tuned profile and this run's
 * workload is the one the profile was measured on (otherwise the figures do not compare: null).
 */
export function tunedBaseline(
  profile: { id: number; createdAt: string; metrics: { tok_s: number }; workload: { key: string } } | null,
  workloadKey: string,
): GateBaseline | null {
  if (!profile || profile.workload.key !== workloadKey) return null;
  return { id: profile.id, avg_tok_s: profile.metrics.tok_s, git_commit: null, created_at: profile.createdAt, kind: "tuned_profile" };
}

export type GateStatus = "pass" | "regression" | "no_baseline" | "errors";

export interface GateOutcome {
  status: GateStatus;
  threshold_pct: number;
  current_tok_s: number | null;
  baseline_tok_s: number | null;
  baseline_id: number | null;
  /** "tuned_profile" when the baseline is the tuned profile the model runs with (its id is the profile's). */
  baseline_kind: "bench" | "tuned_profile" | null;
  baseline_commit: string | null;
  baseline_date: string | null;
  /** (current − baseline) / baseline × 100; negative is slower. */
  change_pct: number | null;
  message: string;
}

export function evaluateGate(
  current: number | null,
  errors: number,
  baseline: GateBaseline | null,
  thresholdPct = DEFAULT_GATE_THRESHOLD_PCT,
): GateOutcome {
  const base = {
    threshold_pct: thresholdPct,
    current_tok_s: current,
    baseline_tok_s: baseline?.avg_tok_s ?? null,
    baseline_id: baseline?.id ?? null,
    baseline_kind: baseline ? (baseline.kind ?? "bench") : null,
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
  const what = baseline.kind === "tuned_profile" ? `the tuned profile #${baseline.id}` : `baseline #${baseline.id}`;
  const detail = `${current.toFixed(1)} tok/s vs baseline ${baseline.avg_tok_s.toFixed(1)} tok/s (${change >= 0 ? "+" : ""}${change.toFixed(1)}%, ${what}${baseline.git_commit ? ` at ${baseline.git_commit}` : ""}, ${baseline.created_at})`;
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
