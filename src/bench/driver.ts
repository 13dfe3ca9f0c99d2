/**
 * The workload driver: prepares each target (model, prompt calibration, ignore_eos detection, warm-up), runs
 * concurrency levels with a fixed number of requests each, alternates targets level by level when comparing,
 * and summarises what it saw. Knows nothing of our server's internals: everything goes over HTTP.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Dispatcher } from "undici";
import {
  apiPath,
  createDispatcher,
  errorMessage,
  getJson,
  outputTokens,
  postJson,
  streamOnce,
  generationBody,
  type ChatTurn,
  type GenerationShape,
  type RequestSample,
  type TargetConnection,
} from "./client.js";
import { INITIAL_CHARS_PER_TOKEN, USER_TURNS, uniquePrompt } from "./prompt.js";
import { distribution, mean, median, medianOfPresent, percentile, ratio } from "./stats.js";
import {
  conversationsFor,
  requestsFor,
  type BenchReport,
  type ComparisonRow,
  type LevelResult,
  type MultiTurnResult,
  type TargetInfo,
  type TargetReport,
  type TargetSpec,
  type TurnResult,
  type Workload,
} from "./types.js";
import { gitCommit } from "./meta.js";

/** The benchmark cannot run at all (server unreachable, model unknown, the probe refused): not a slow result. */
export class BenchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BenchError";
  }
}

export interface RunOptions {
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

type Input = { prompt: string } | { messages: ChatTurn[] };

interface PreparedTarget {
  spec: TargetSpec;
  conn: TargetConnection;
  close: () => Promise<void>;
  shape: GenerationShape;
  promptChars: number;
  promptTokensActual: number | null;
  systemChars: number;
  systemTokensActual: number | null;
}

const MAX_ERROR_SAMPLES = 5;

export async function runBenchmark(specs: TargetSpec[], workload: Workload, options: RunOptions = {}): Promise<BenchReport> {
  validateWorkload(workload);
  validateTargets(specs, workload);
  const progress = options.onProgress ?? (() => {});
  const startedAt = new Date().toISOString();
  // a tag per run keeps prompts unique across runs too, so a server's cache from the last run cannot help this one
  const runTag = randomBytes(3).toString("hex");
  let serial = 0;
  const nextSerial = () => ++serial;
  const prepared: PreparedTarget[] = [];
  try {
    for (const spec of specs) prepared.push(await prepareTarget(spec, workload, runTag, progress));
    for (const target of prepared) await warmUp(target, workload, runTag, nextSerial, progress);

    const rounds = new Map<string, LevelResult[][]>(prepared.map((t) => [t.spec.label, []]));
    const multiturn = new Map<string, MultiTurnResult[][]>(prepared.map((t) => [t.spec.label, []]));
    for (let round = 0; round < workload.rounds; round++) {
      // alternate who goes first each round, so neither side always runs on a machine the other just warmed
      const order = round % 2 === 0 ? prepared : [...prepared].reverse();
      const roundLevels = new Map<string, LevelResult[]>(prepared.map((t) => [t.spec.label, []]));
      const roundTurns = new Map<string, MultiTurnResult[]>(prepared.map((t) => [t.spec.label, []]));
      for (const concurrency of workload.concurrency) {
        for (const target of order) {
          if (options.signal?.aborted) throw new BenchError("the benchmark was cancelled");
          if (workload.scenario === "multiturn") {
            const n = conversationsFor(workload, concurrency);
            progress(
              `${target.spec.label} round ${round + 1}/${workload.rounds}: multiturn, ${n} conversations × ${workload.turns} turns at concurrency ${concurrency}`,
            );
            roundTurns.get(target.spec.label)!.push(await runMultiTurnLevel(target, workload, concurrency, n, runTag, nextSerial));
          } else {
            const n = requestsFor(workload, concurrency);
            progress(`${target.spec.label} round ${round + 1}/${workload.rounds}: ${n} requests at concurrency ${concurrency}`);
            const level = await runLevel(target, workload, concurrency, n, runTag, nextSerial);
            progress(
              `  ${level.output_tok_s.toFixed(1)} tok/s, ${fmt(level.completion_tokens_mean)} tokens/request, TTFT p50 ${fmt(level.ttft_ms.p50)} ms, ITL p50 ${fmt(level.itl_ms.p50)} ms, errors ${level.errors}`,
            );
            roundLevels.get(target.spec.label)!.push(level);
          }
        }
      }
      for (const t of prepared) {
        rounds.get(t.spec.label)!.push(roundLevels.get(t.spec.label)!);
        multiturn.get(t.spec.label)!.push(roundTurns.get(t.spec.label)!);
      }
    }

    const targets: TargetReport[] = [];
    for (const target of prepared) {
      const targetRounds = rounds.get(target.spec.label)!;
      const levels = workload.scenario === "throughput" ? workload.concurrency.map((_, i) => medianLevel(targetRounds.map((r) => r[i]!))) : [];
      const turns = workload.scenario === "multiturn" ? mergeMultiTurnRounds(multiturn.get(target.spec.label)!) : null;
      targets.push({
        label: target.spec.label,
        url: target.spec.url,
        model: target.conn.model,
        info: await describeTarget(target),
        ignore_eos: target.shape.ignoreEos,
        response_format: target.shape.responseFormat,
        prompt_tokens_actual: target.promptTokensActual,
        system_tokens_actual: target.systemTokensActual,
        levels,
        rounds: workload.scenario === "throughput" ? targetRounds : [],
        multiturn: turns,
        avg_output_tok_s: mean(levels.map((l) => l.output_tok_s)),
      });
    }
    return {
      schema: "lmx-bench/1",
      started_at: startedAt,
      finished_at: new Date().toISOString(),
      git_commit: gitCommit(),
      workload,
      targets,
      comparison: targets.length === 2 && workload.scenario === "throughput" ? compareLevels(targets[0]!, targets[1]!) : null,
      multiturn_comparison: targets.length === 2 && workload.scenario === "multiturn" ? compareTurns(targets[0]!, targets[1]!) : null,
    };
  } finally {
    await Promise.all(prepared.map((t) => t.close()));
  }
}

function validateWorkload(w: Workload): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new BenchError(`${name} must be a positive integer, got ${v}`);
  };
  if (w.concurrency.length === 0) throw new BenchError("at least one concurrency level is needed");
  w.concurrency.forEach((c) => positive("concurrency", c));
  positive("prompt tokens", w.promptTokens);
  positive("max tokens", w.maxTokens);
  positive("rounds", w.rounds);
  positive("turns", w.turns);
  positive("system tokens", w.systemTokens);
  if (w.requests !== null) positive("requests", w.requests);
  if (w.conversations !== null) positive("conversations", w.conversations);
  if (!Number.isInteger(w.warmup) || w.warmup < 0) throw new BenchError(`warmup must be 0 or more, got ${w.warmup}`);
  if (w.scenario === "multiturn" && w.endpoint !== "chat") throw new BenchError("the multiturn scenario needs the chat endpoint");
}

/** A response_format is a chat request field, measured on the throughput scenario only. */
function validateTargets(specs: readonly TargetSpec[], w: Workload): void {
  for (const spec of specs) {
    const format = spec.responseFormat ?? "text";
    if (format === "text") continue;
    if (w.endpoint !== "chat" || w.scenario !== "throughput")
      throw new BenchError(`response_format ${format} (target ${spec.label}) needs the throughput scenario on the chat endpoint`);
  }
}

function fmt(v: number | null): string {
  return v === null ? "-" : v.toFixed(1);
}

// ---------------------------------------------------------------------------
// Preparing a target
// ---------------------------------------------------------------------------

function rootUrl(url: string): string {
  return url.replace(/\/+$/, "").replace(/\/v1$/, "");
}

async function prepareTarget(spec: TargetSpec, workload: Workload, runTag: string, progress: (line: string) => void): Promise<PreparedTarget> {
  const maxConcurrency = Math.max(...workload.concurrency);
  // an in-process caller (autotune) may hand its own connection to a runner; that one is the caller's to close
  const own = spec.dispatcher ? null : createDispatcher(maxConcurrency + 2, workload.timeoutMs);
  const agent: Dispatcher = spec.dispatcher ?? own!;
  const close = () => (own ? own.close().catch(() => {}) : Promise.resolve());
  try {
    const model = spec.model ?? (await defaultModel(spec, agent));
    const conn: TargetConnection = { url: spec.url, model, apiKey: spec.apiKey, dispatcher: agent };
    const shape: GenerationShape = {
      endpoint: workload.endpoint,
      maxTokens: workload.maxTokens,
      ignoreEos: workload.ignoreEos,
      temperature: workload.temperature,
      seed: null,
      timeoutMs: workload.timeoutMs,
      responseFormat: spec.responseFormat ?? "text",
    };
    progress(`${spec.label}: ${spec.url}, model ${model}: calibrating the prompt (the first request may load the model)`);
    // the first probe assumes the fewest characters per token, so it never overshoots a small context
    let promptChars = workload.promptTokens * INITIAL_CHARS_PER_TOKEN;
    let promptTokensActual: number | null = null;
    let systemChars = workload.systemTokens * INITIAL_CHARS_PER_TOKEN;
    let systemTokensActual: number | null = null;
    if (workload.scenario === "throughput") {
      const c = await calibrate(
        conn,
        shape,
        (chars) => throughputInput(workload, uniquePrompt(0, runTag, chars)),
        workload.promptTokens,
        promptChars,
      );
      promptChars = c.chars;
      promptTokensActual = c.tokens;
    } else {
      const c = await calibrate(
        conn,
        shape,
        (chars) => ({ messages: [systemTurn(0, runTag, chars), { role: "user", content: USER_TURNS[0]! }] }),
        workload.systemTokens,
        systemChars,
      );
      systemChars = c.chars;
      systemTokensActual = c.tokens;
    }
    progress(
      `${spec.label}: prompt ≈ ${promptTokensActual ?? systemTokensActual ?? "?"} tokens; response_format ${shape.responseFormat}; ignore_eos ${shape.ignoreEos ? "sent" : workload.ignoreEos ? "not accepted, relying on max_tokens" : "not sent"}`,
    );
    return { spec, conn, close, shape, promptChars, promptTokensActual, systemChars, systemTokensActual };
  } catch (error) {
    await close();
    if (error instanceof BenchError) throw error;
    throw new BenchError(`${spec.label} (${spec.url}): ${(error as Error).message}`, { cause: error });
  }
}

function throughputInput(workload: Workload, text: string): Input {
  return workload.endpoint === "chat" ? { messages: [{ role: "user", content: text }] } : { prompt: text };
}

function systemTurn(serial: number, runTag: string, chars: number): ChatTurn {
  // the unique part first: conversations must not share a cached system prompt, or turn 1 would not be cold
  return { role: "system", content: `${uniquePrompt(serial, runTag, chars)} You are a helpful assistant: answer questions about this story.` };
}

async function defaultModel(spec: TargetSpec, agent: Dispatcher): Promise<string> {
  const auth: Record<string, string> = spec.apiKey ? { authorization: `Bearer ${spec.apiKey}` } : {};
  const answer = await getJson(apiPath(spec.url, "/v1/models"), agent, auth);
  if (answer.status !== 200) throw new BenchError(`${spec.url}: GET /v1/models answered ${errorMessage(answer)}; pass --model`);
  const data = (answer.body as { data?: Array<{ id?: unknown; status?: unknown; type?: unknown }> } | null)?.data ?? [];
  const usable = data.filter((m) => typeof m.id === "string" && m.type !== "embedding");
  const pick = usable.find((m) => m.status === "loaded") ?? usable[0];
  if (!pick) throw new BenchError(`${spec.url} lists no model; pass --model`);
  return pick.id as string;
}

/**
 * Finds how many characters of the fixed text make `target` tokens on this server, with max_tokens 1 probes;
 * the first probe also finds out whether the server accepts ignore_eos (ours answers 400 naming it).
 */
async function calibrate(
  conn: TargetConnection,
  shape: GenerationShape,
  build: (chars: number) => Input,
  target: number,
  initialChars: number,
): Promise<{ chars: number; tokens: number | null }> {
  let chars = Math.max(1, Math.round(initialChars));
  let tokens: number | null = null;
  const path = shape.endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions";
  for (let attempt = 0; attempt < 8; attempt++) {
    const answer = await postJson(conn, path, generationBody(conn, shape, build(chars), false, 1), shape.timeoutMs);
    if (answer.status === 400 && shape.ignoreEos && /ignore_eos/.test(answer.text)) {
      shape.ignoreEos = false;
      continue;
    }
    if (answer.status !== 200) throw new BenchError(`the probe request was refused: ${errorMessage(answer)}`);
    const usage = (answer.body as { usage?: { prompt_tokens?: unknown } } | null)?.usage;
    tokens = typeof usage?.prompt_tokens === "number" ? usage.prompt_tokens : null;
    if (tokens === null || Math.abs(tokens - target) <= Math.max(2, target * 0.02)) break;
    // scale by the measured characters per token, at most 8× per step
    const next = chars + (target - tokens) * (chars / Math.max(1, tokens));
    chars = Math.max(1, Math.round(Math.min(next, chars * 8)));
  }
  return { chars, tokens };
}

async function warmUp(
  target: PreparedTarget,
  workload: Workload,
  runTag: string,
  nextSerial: () => number,
  progress: (line: string) => void,
): Promise<void> {
  if (workload.warmup === 0) return;
  progress(`${target.spec.label}: ${workload.warmup} warm-up requests`);
  for (let i = 0; i < workload.warmup; i++) {
    const serial = nextSerial();
    const sample = await streamOnce(target.conn, { ...target.shape, seed: serial }, requestInput(target, workload, serial, runTag));
    if (!sample.ok) progress(`${target.spec.label}: warm-up request failed: ${sample.error}`);
  }
}

function requestInput(target: PreparedTarget, workload: Workload, serial: number, runTag: string): Input {
  return throughputInput(workload, uniquePrompt(serial, runTag, target.promptChars));
}

// ---------------------------------------------------------------------------
// Throughput levels
// ---------------------------------------------------------------------------

/** `requests` requests, at most `concurrency` in flight; the wall time runs from the first send to the last end. */
async function runLevel(
  target: PreparedTarget,
  workload: Workload,
  concurrency: number,
  requests: number,
  runTag: string,
  nextSerial: () => number,
): Promise<LevelResult> {
  const samples: RequestSample[] = [];
  let issued = 0;
  const started = performance.now();
  const worker = async () => {
    while (issued < requests) {
      issued++;
      const serial = nextSerial();
      samples.push(await streamOnce(target.conn, { ...target.shape, seed: serial }, requestInput(target, workload, serial, runTag)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, worker));
  return summarizeLevel(concurrency, samples, performance.now() - started);
}

export function summarizeLevel(concurrency: number, samples: readonly RequestSample[], wallMs: number): LevelResult {
  const ok = samples.filter((s) => s.ok);
  const failed = samples.filter((s) => !s.ok);
  const completionTokens = ok.reduce((sum, s) => sum + outputTokens(s), 0);
  const wallS = wallMs / 1000;
  const tpot = ok
    .map((s) => {
      const tokens = outputTokens(s);
      return s.ttftMs !== null && tokens > 1 ? (s.e2eMs - s.ttftMs) / (tokens - 1) : null;
    })
    .filter((v): v is number => v !== null);
  const present = (values: Array<number | null | undefined>) => values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const promptMs = present(ok.map((s) => s.timings?.prompt_ms));
  const predictedRates = present(
    ok.map((s) => {
      const n = s.timings?.predicted_n;
      const ms = s.timings?.predicted_ms;
      return typeof n === "number" && typeof ms === "number" && ms > 0 ? (n / ms) * 1000 : null;
    }),
  );
  const drafted = ok.reduce((sum, s) => sum + (s.timings?.draft_n ?? 0), 0);
  const accepted = ok.reduce((sum, s) => sum + (s.timings?.draft_n_accepted ?? 0), 0);
  const finishReasons: Record<string, number> = {};
  for (const s of ok) {
    const reason = s.finishReason ?? "none";
    finishReasons[reason] = (finishReasons[reason] ?? 0) + 1;
  }
  return {
    concurrency,
    requests: samples.length,
    errors: failed.length,
    error_samples: [...new Set(failed.map((s) => s.error ?? "unknown error"))].slice(0, MAX_ERROR_SAMPLES),
    completion_tokens: completionTokens,
    completion_tokens_mean: ok.length > 0 ? completionTokens / ok.length : null,
    content_chunks: ok.reduce((sum, s) => sum + s.contentChunks, 0),
    wall_s: wallS,
    output_tok_s: wallS > 0 ? completionTokens / wallS : 0,
    requests_per_s: wallS > 0 ? ok.length / wallS : 0,
    ttft_ms: distribution(present(ok.map((s) => s.ttftMs))),
    itl_ms: distribution(ok.flatMap((s) => s.itlMs)),
    e2e_ms: distribution(ok.map((s) => s.e2eMs)),
    tpot_ms_mean: mean(tpot),
    prompt_tokens_mean: mean(present(ok.map((s) => s.promptTokens))),
    cached_tokens_mean: mean(present(ok.map((s) => s.cachedTokens))),
    server_prompt_ms_p50: median(promptMs),
    server_predicted_tok_s_p50: median(predictedRates),
    spec_accept_rate: drafted > 0 ? accepted / drafted : null,
    finish_reasons: finishReasons,
  };
}

/** One level over several rounds: counts add up, every rate and latency is the median of the rounds. */
export function medianLevel(rounds: readonly LevelResult[]): LevelResult {
  const first = rounds[0];
  if (!first) throw new Error("medianLevel needs at least one round");
  if (rounds.length === 1) return first;
  const m = (pick: (l: LevelResult) => number | null) => medianOfPresent(rounds.map(pick));
  const dist = (pick: (l: LevelResult) => LevelResult["ttft_ms"]) => ({
    p50: m((l) => pick(l).p50),
    p95: m((l) => pick(l).p95),
    p99: m((l) => pick(l).p99),
    mean: m((l) => pick(l).mean),
  });
  const finishReasons: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.finish_reasons)) finishReasons[k] = (finishReasons[k] ?? 0) + v;
  const sum = (pick: (l: LevelResult) => number) => rounds.reduce((s, l) => s + pick(l), 0);
  return {
    concurrency: first.concurrency,
    requests: sum((l) => l.requests),
    errors: sum((l) => l.errors),
    error_samples: [...new Set(rounds.flatMap((l) => l.error_samples))].slice(0, MAX_ERROR_SAMPLES),
    completion_tokens: sum((l) => l.completion_tokens),
    completion_tokens_mean: m((l) => l.completion_tokens_mean ?? null),
    content_chunks: sum((l) => l.content_chunks),
    wall_s: m((l) => l.wall_s) ?? 0,
    output_tok_s: m((l) => l.output_tok_s) ?? 0,
    requests_per_s: m((l) => l.requests_per_s) ?? 0,
    ttft_ms: dist((l) => l.ttft_ms),
    itl_ms: dist((l) => l.itl_ms),
    e2e_ms: dist((l) => l.e2e_ms),
    tpot_ms_mean: m((l) => l.tpot_ms_mean),
    prompt_tokens_mean: m((l) => l.prompt_tokens_mean),
    cached_tokens_mean: m((l) => l.cached_tokens_mean),
    server_prompt_ms_p50: m((l) => l.server_prompt_ms_p50),
    server_predicted_tok_s_p50: m((l) => l.server_predicted_tok_s_p50),
    spec_accept_rate: m((l) => l.spec_accept_rate),
    finish_reasons: finishReasons,
  };
}

function compareLevels(a: TargetReport, b: TargetReport): ComparisonRow[] {
  return a.levels.map((la, i) => {
    const lb = b.levels[i]!;
    return {
      concurrency: la.concurrency,
      output_tok_s: ratio(la.output_tok_s, lb.output_tok_s),
      ttft_ms_p50: ratio(la.ttft_ms.p50, lb.ttft_ms.p50),
      ttft_ms_p95: ratio(la.ttft_ms.p95, lb.ttft_ms.p95),
      itl_ms_p50: ratio(la.itl_ms.p50, lb.itl_ms.p50),
      e2e_ms_p50: ratio(la.e2e_ms.p50, lb.e2e_ms.p50),
    };
  });
}

// ---------------------------------------------------------------------------
// Multi-turn prefix reuse
// ---------------------------------------------------------------------------

/**
 * `conversations` chats, `concurrency` at a time: a long system prompt, then `turns` user turns, each turn
 * sending the whole history (with the model's real answers). A server that reuses the cached prefix only
 * evaluates the new tail, so the last turn's TTFT stays close to the first's.
 */
async function runMultiTurnLevel(
  target: PreparedTarget,
  workload: Workload,
  concurrency: number,
  conversations: number,
  runTag: string,
  nextSerial: () => number,
): Promise<MultiTurnResult> {
  const perTurn: RequestSample[][] = Array.from({ length: workload.turns }, () => []);
  let started = 0;
  const worker = async () => {
    while (started < conversations) {
      started++;
      const system = systemTurn(nextSerial(), runTag, target.systemChars);
      const history: ChatTurn[] = [system];
      for (let turn = 0; turn < workload.turns; turn++) {
        const user: ChatTurn = { role: "user", content: USER_TURNS[turn % USER_TURNS.length]! };
        const sample = await streamOnce(target.conn, { ...target.shape, endpoint: "chat", seed: nextSerial() }, { messages: [...history, user] });
        perTurn[turn]!.push(sample);
        if (!sample.ok) break;
        history.push(user, { role: "assistant", content: sample.text });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, conversations) }, worker));
  const turns: TurnResult[] = perTurn.map((samples, i) => {
    const ok = samples.filter((s) => s.ok);
    const present = (values: Array<number | null>) => values.filter((v): v is number => v !== null);
    const ttft = present(ok.map((s) => s.ttftMs));
    return {
      turn: i + 1,
      conversations: samples.length,
      errors: samples.length - ok.length,
      ttft_ms_p50: percentile(ttft, 50),
      ttft_ms_p95: percentile(ttft, 95),
      e2e_ms_p50: median(ok.map((s) => s.e2eMs)),
      prompt_tokens_p50: median(present(ok.map((s) => s.promptTokens))),
      cached_tokens_p50: median(present(ok.map((s) => s.cachedTokens))),
    };
  });
  const first = turns[0]?.ttft_ms_p50 ?? null;
  const last = turns[turns.length - 1]?.ttft_ms_p50 ?? null;
  return { concurrency, conversations, turns, last_over_first_ttft: ratio(last, first) };
}

/** Rounds of multi-turn levels: per level and turn, the median of the rounds' figures. */
function mergeMultiTurnRounds(rounds: MultiTurnResult[][]): MultiTurnResult[] {
  const first = rounds[0] ?? [];
  return first.map((level, li) => {
    const same = rounds.map((r) => r[li]!);
    const turns = level.turns.map((t, ti) => {
      const m = (pick: (x: TurnResult) => number | null) => medianOfPresent(same.map((r) => pick(r.turns[ti]!)));
      return {
        turn: t.turn,
        conversations: same.reduce((s, r) => s + r.turns[ti]!.conversations, 0),
        errors: same.reduce((s, r) => s + r.turns[ti]!.errors, 0),
        ttft_ms_p50: m((x) => x.ttft_ms_p50),
        ttft_ms_p95: m((x) => x.ttft_ms_p95),
        e2e_ms_p50: m((x) => x.e2e_ms_p50),
        prompt_tokens_p50: m((x) => x.prompt_tokens_p50),
        cached_tokens_p50: m((x) => x.cached_tokens_p50),
      };
    });
    return {
      concurrency: level.concurrency,
      conversations: same.reduce((s, r) => s + r.conversations, 0),
      turns,
      last_over_first_ttft: ratio(turns[turns.length - 1]?.ttft_ms_p50 ?? null, turns[0]?.ttft_ms_p50 ?? null),
    };
  });
}

function compareTurns(a: TargetReport, b: TargetReport): Array<{ concurrency: number; turn: number; ttft_ms_p50: number | null }> {
  const rows: Array<{ concurrency: number; turn: number; ttft_ms_p50: number | null }> = [];
  (a.multiturn ?? []).forEach((level, li) => {
    const other = b.multiturn?.[li];
    level.turns.forEach((t, ti) =>
      rows.push({ concurrency: level.concurrency, turn: t.turn, ttft_ms_p50: ratio(t.ttft_ms_p50, other?.turns[ti]?.ttft_ms_p50 ?? null) }),
    );
  });
  return rows;
}

// ---------------------------------------------------------------------------
// What the server is
// ---------------------------------------------------------------------------

/**
 * Our gateway: /admin/models/loaded (backend, version, runner settings, runner RSS). llama-server: /props
 * (build, slots, context). Anything else: unknown. Read after the run, so RSS is the loaded, used process.
 */
/** The tuned profile named in a loaded model's settings_source ("profile:12"), if any setting came from one. */
function tunedProfileOf(sources: unknown): number | null {
  if (!sources || typeof sources !== "object") return null;
  for (const value of Object.values(sources as Record<string, unknown>)) {
    const match = typeof value === "string" ? /^profile:(\d+)$/.exec(value) : null;
    if (match) return Number(match[1]);
  }
  return null;
}

async function describeTarget(target: PreparedTarget): Promise<TargetInfo> {
  const root = rootUrl(target.spec.url);
  const auth: Record<string, string> = {};
  if (target.spec.adminKey) auth["x-admin-key"] = target.spec.adminKey;
  try {
    const loaded = await getJson(`${root}/admin/models/loaded`, target.conn.dispatcher, auth);
    const data = (loaded.body as { data?: unknown } | null)?.data;
    if (loaded.status === 200 && Array.isArray(data)) {
      const entry = (data as Array<Record<string, unknown>>).find((m) => m["id"] === target.conn.model);
      if (entry) {
        // snake_case since 0.2; servers before it wrote these fields in camelCase
        const stats = entry["stats"] as { rss_bytes?: unknown; rssBytes?: unknown } | null | undefined;
        const version = entry["backend_version"] ?? entry["backendVersion"];
        const rss = stats?.rss_bytes ?? stats?.rssBytes;
        return {
          backend: String(entry["backend"] ?? "opta-lmx"),
          backend_version: typeof version === "string" ? version : null,
          runner: {
            context_size: entry["context_size"] ?? entry["contextSize"] ?? null,
            parallel: entry["parallel"] ?? null,
            threads: entry["threads"] ?? null,
            gpu: entry["gpu"] ?? null,
          },
          runner_rss_bytes: typeof rss === "number" ? rss : null,
          runner_pid: typeof entry["pid"] === "number" ? entry["pid"] : null,
          tuned_profile_id: tunedProfileOf(entry["settings_source"]),
        };
      }
    }
  } catch {
    // not our server, or the admin routes are closed to us: try the next kind
  }
  try {
    const props = await getJson(`${root}/props`, target.conn.dispatcher, target.spec.apiKey ? { authorization: `Bearer ${target.spec.apiKey}` } : {});
    const body = props.body as { build_info?: unknown; total_slots?: unknown; default_generation_settings?: { n_ctx?: unknown } } | null;
    if (props.status === 200 && body && typeof body.build_info === "string") {
      return {
        backend: "llama-server",
        backend_version: body.build_info,
        runner: { parallel: body.total_slots ?? null, context_size: body.default_generation_settings?.n_ctx ?? null },
        runner_rss_bytes: null,
        runner_pid: null,
      };
    }
  } catch {
    // neither kind: the report says unknown
  }
  return { backend: "unknown", backend_version: null, runner: null, runner_rss_bytes: null, runner_pid: null };
}
