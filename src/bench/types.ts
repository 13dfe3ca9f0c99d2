/** The shapes of a benchmark: what is run (Workload) and what comes out (BenchReport, the `--json` document). */
import type { Dispatcher } from "undici";
import type { Distribution } from "./stats.js";
import type { Endpoint } from "./client.js";
import type { ResponseFormatKind } from "./response-format.js";

export type Scenario = "throughput" | "multiturn";

export interface Workload {
  scenario: Scenario;
  endpoint: Endpoint;
  /** Prompt length aimed at, in the server's own tokens (calibrated per target). */
  promptTokens: number;
  maxTokens: number;
  concurrency: number[];
  /** Requests per level; null: max(8, 2 × concurrency). */
  requests: number | null;
  warmup: number;
  rounds: number;
  temperature: number | null;
  /** Ask for ignore_eos where a server accepts it (llama-server does, ours refuses unknown fields). */
  ignoreEos: boolean;
  timeoutMs: number;
  /** multiturn: system prompt length in tokens, turns per conversation, conversations per level (null: max(3, c)). */
  systemTokens: number;
  turns: number;
  conversations: number | null;
}

export const DEFAULT_WORKLOAD: Workload = {
  scenario: "throughput",
  endpoint: "completions",
  promptTokens: 128,
  maxTokens: 128,
  concurrency: [1, 4],
  requests: null,
  warmup: 2,
  rounds: 1,
  temperature: null,
  ignoreEos: true,
  timeoutMs: 600_000,
  systemTokens: 1000,
  turns: 5,
  conversations: null,
};

export function requestsFor(workload: Workload, concurrency: number): number {
  return workload.requests ?? Math.max(8, 2 * concurrency);
}

export function conversationsFor(workload: Workload, concurrency: number): number {
  return workload.conversations ?? Math.max(3, concurrency);
}

export interface TargetSpec {
  /** "A" is the server under test (ours); "B" the peer in a comparison. */
  label: string;
  url: string;
  /** null: the first model the server lists (a loaded one first). */
  model: string | null;
  apiKey: string | null;
  /** For our own server's /admin/models/loaded (runner settings, RSS); optional. */
  adminKey: string | null;
  /** Chat only: the `response_format` sent to this target; absent means `text` (none sent). */
  responseFormat?: ResponseFormatKind;
  /**
   * In-process callers only (autotune): the connection to use instead of one of the driver's own, e.g. a
   * candidate runner's socket; the caller closes it. `url` then only names the origin.
   */
  dispatcher?: Dispatcher;
}

/** What the harness could learn about a server: part of the stored record and of the gate's settings key. */
export interface TargetInfo {
  backend: string;
  backend_version: string | null;
  /** Runner settings that change speed (parallel, threads, context...), as the server reports them. */
  runner: Record<string, unknown> | null;
  /** Resident memory of the process that runs the model, where the server reports it. */
  runner_rss_bytes: number | null;
  runner_pid: number | null;
  /** The tuned profile the model runs with (our server's settings_source), for the perf gate; not part of the settings key. */
  tuned_profile_id?: number | null;
}

export interface LevelResult {
  concurrency: number;
  requests: number;
  errors: number;
  error_samples: string[];
  completion_tokens: number;
  /** Completion tokens per successful request: below max_tokens when requests stop early (EOS, a closed grammar). */
  completion_tokens_mean: number | null;
  content_chunks: number;
  wall_s: number;
  /** Aggregate: all completion tokens of the level / its wall time. */
  output_tok_s: number;
  requests_per_s: number;
  ttft_ms: Distribution;
  itl_ms: Distribution;
  e2e_ms: Distribution;
  /** Per request: (e2e − ttft) / (tokens − 1), averaged. */
  tpot_ms_mean: number | null;
  prompt_tokens_mean: number | null;
  cached_tokens_mean: number | null;
  server_prompt_ms_p50: number | null;
  server_predicted_tok_s_p50: number | null;
  /** Accepted / drafted tokens, where the server reports speculative decoding; null otherwise. */
  spec_accept_rate: number | null;
  finish_reasons: Record<string, number>;
}

export interface TurnResult {
  turn: number;
  conversations: number;
  errors: number;
  ttft_ms_p50: number | null;
  ttft_ms_p95: number | null;
  e2e_ms_p50: number | null;
  prompt_tokens_p50: number | null;
  cached_tokens_p50: number | null;
}

export interface MultiTurnResult {
  concurrency: number;
  conversations: number;
  turns: TurnResult[];
  /** TTFT p50 of the last turn over the first (target ≤ 1.2 with prefix reuse). */
  last_over_first_ttft: number | null;
}

export interface TargetReport {
  label: string;
  url: string;
  model: string;
  info: TargetInfo;
  ignore_eos: boolean;
  /** The response_format sent (`text`: none); part of the gate's settings key (stored reports before it have none: text). */
  response_format: ResponseFormatKind;
  /** The prompt length the server actually counted for the calibrated prompt. */
  prompt_tokens_actual: number | null;
  system_tokens_actual: number | null;
  /** One entry per level: the median of each metric over the rounds. */
  levels: LevelResult[];
  /** Every round's raw level results, rounds[round][level]. */
  rounds: LevelResult[][];
  multiturn: MultiTurnResult[] | null;
  /** Mean of output_tok_s over the levels: the perf gate's number. */
  avg_output_tok_s: number | null;
}

export interface ComparisonRow {
  concurrency: number;
  /** A / B for each metric; for latencies lower is better, for tok/s higher is better. */
  output_tok_s: number | null;
  ttft_ms_p50: number | null;
  ttft_ms_p95: number | null;
  itl_ms_p50: number | null;
  e2e_ms_p50: number | null;
}

export interface BenchReport {
  schema: "lmx-bench/1";
  started_at: string;
  finished_at: string;
  git_commit: string | null;
  workload: Workload;
  targets: TargetReport[];
  comparison: ComparisonRow[] | null;
  multiturn_comparison: Array<{ concurrency: number; turn: number; ttft_ms_p50: number | null }> | null;
}
