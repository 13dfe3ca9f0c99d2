/**
 * Score v1 of a candidate (the operators' plan): throughput, less a price on the time to the first token and a
 * heavy one on failed requests. Equal scores go to the lower total time, then the lower queue wait.
 */
import type { LevelResult } from "../bench/types.js";

export interface CandidateMetrics {
  /** Aggregate output tokens per second, averaged over the workload's levels. */
  tok_s: number;
  /** Median time to first token, averaged over the levels. */
  ttft_ms: number;
  /** Failed requests / requests. */
  error_rate: number;
  /** Wall time of the measured levels. */
  total_ms: number;
  /** Time to first token not spent on the prompt (ttft − the server's prompt time): waiting for a slot. */
  queue_ms: number;
  requests: number;
}

export const SCORE_VERSION = 1;

export function scoreV1(m: Pick<CandidateMetrics, "tok_s" | "ttft_ms" | "error_rate">): number {
  return m.tok_s - 0.015 * m.ttft_ms - 50 * m.error_rate;
}

/** Negative when `a` ranks before `b`: higher score, then lower total time, then lower queue wait. */
export function compareCandidates(a: { score: number; metrics: CandidateMetrics }, b: { score: number; metrics: CandidateMetrics }): number {
  if (a.score !== b.score) return b.score - a.score;
  if (a.metrics.total_ms !== b.metrics.total_ms) return a.metrics.total_ms - b.metrics.total_ms;
  return a.metrics.queue_ms - b.metrics.queue_ms;
}

export function metricsOf(levels: readonly LevelResult[]): CandidateMetrics {
  const avg = (values: number[]) => (values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length);
  const requests = levels.reduce((n, l) => n + l.requests, 0);
  const errors = levels.reduce((n, l) => n + l.errors, 0);
  return {
    tok_s: round(avg(levels.map((l) => l.output_tok_s))),
    ttft_ms: round(avg(levels.map((l) => l.ttft_ms.p50 ?? 0))),
    error_rate: requests === 0 ? 1 : errors / requests,
    total_ms: Math.round(levels.reduce((n, l) => n + l.wall_s * 1000, 0)),
    queue_ms: round(avg(levels.map((l) => Math.max(0, (l.ttft_ms.p50 ?? 0) - (l.server_prompt_ms_p50 ?? 0))))),
    requests,
  };
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}
