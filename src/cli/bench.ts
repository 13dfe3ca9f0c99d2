/**
 * `lmx bench`: drives an OpenAI-compatible server (ours by default) with a fixed workload, optionally against a
 * second one (`--compare`, e.g. llama.cpp's llama-server), prints a table or one JSON document, stores results
 * and runs the perf gate. Exit codes are BENCH_EXIT (src/bench/gate.ts) and are listed in docs/benchmarks.md.
 */
import { runPriorityScenario } from "../bench/scenarios/priority.js";
import { runSwapScenario } from "../bench/scenarios/swap.js";
import path from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import { ConfigError, loadConfig } from "../config/load.js";
import { BenchError, runBenchmark } from "../bench/driver.js";
import { BENCH_EXIT, DEFAULT_GATE_THRESHOLD_PCT, evaluateGate, exitCodeFor, tunedBaseline, type GateOutcome } from "../bench/gate.js";
import { readProfileFile } from "../tuning/profiles.js";
import { workloadKey } from "../tuning/workloads.js";
import { renderReport } from "../bench/render.js";
import { BenchStore, benchDbPath, recordReport, settingsKey } from "../bench/store.js";
import { DEFAULT_WORKLOAD, type BenchReport, type Scenario, type TargetSpec, type Workload } from "../bench/types.js";
import type { Endpoint } from "../bench/client.js";
import { RESPONSE_FORMATS, isResponseFormatKind, type ResponseFormatKind } from "../bench/response-format.js";

export interface BenchCommandOptions {
  url: string;
  model?: string;
  apiKey?: string;
  adminKey?: string;
  compare?: string;
  compareModel?: string;
  compareApiKey?: string;
  /** Chat only: the response_format sent to --url's server and to the --compare server (default text: none). */
  responseFormat?: string;
  compareResponseFormat?: string;
  scenario: string;
  /** The scheduler scenarios' knobs (priority, swap); commander fills the defaults. */
  batchStreams?: number;
  interactive?: number;
  gap?: number;
  priorityHeaders?: boolean;
  clients?: number;
  seconds?: number;
  alternate?: boolean;
  endpoint?: string;
  concurrency?: number[];
  requests?: number;
  warmup: number;
  rounds: number;
  promptTokens: number;
  maxTokens?: number;
  temperature?: number;
  ignoreEos: boolean;
  systemTokens: number;
  turns: number;
  conversations?: number;
  timeout: number;
  json: boolean;
  quiet: boolean;
  store: boolean;
  gate: boolean;
  updateBaseline: boolean;
  threshold: number;
  db?: string;
  stateDir?: string;
  config?: string;
}

/** The `--json` document: the report, what the gate said, and the ids of the rows stored. */
export type BenchOutput = BenchReport & { gate: GateOutcome | null; stored_ids: number[] };

export interface BenchIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("not an integer");
  return n;
}

function positiveInteger(value: string): number {
  const n = integer(value);
  if (n < 1) throw new InvalidArgumentError("must be 1 or more");
  return n;
}

function number(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError("not a number");
  return n;
}

function integerList(value: string): number[] {
  const list = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1))
    throw new InvalidArgumentError("expected positive integers separated by commas, e.g. 1,2,4,8");
  return list;
}

export function registerBenchCommand(program: Command): void {
  program
    .command("bench")
    .description(
      "benchmark an OpenAI-compatible server (this one by default); --compare runs a second one alternately; --gate checks for regressions",
    )
    .option("--url <url>", "base URL of the server under test", "http://127.0.0.1:1234")
    .option("--model <id>", "model to request (default: the first one the server lists, loaded ones first)")
    .option("--api-key <key>", "bearer key for /v1/* (when the server has api_keys)")
    .option("--admin-key <key>", "admin key, to read runner settings and RSS from /admin/models/loaded (or LMX_ADMIN_KEY)")
    .option("--compare <url>", "a second server (e.g. llama-server) run alternately, level by level; ratios are ours/peer")
    .option("--compare-model <id>", "model name for the --compare server (default: the same as --model)")
    .option("--compare-api-key <key>", "bearer key for the --compare server")
    .option(
      "--response-format <kind>",
      `${RESPONSE_FORMATS.join(" | ")}: the response_format sent with every request (chat endpoint only; json_schema asks for {"story": string}, so generation runs to max_tokens)`,
    )
    .option(
      "--compare-response-format <kind>",
      "the response_format for the --compare server (default text); --compare may be the same URL as --url, for constrained ÷ plain on one server",
    )
    .option(
      "--scenario <name>",
      "throughput | multiturn (a ~1,000-token system prompt and 5 turns of a growing chat) | priority (interactive TTFT under a batch backlog) | swap (clients alternating between models that do not fit together; --model a,b)",
      "throughput",
    )
    .option("--batch-streams <n>", "priority: batch streams kept busy", positiveInteger, 32)
    .option("--interactive <n>", "priority: interactive requests measured under load", positiveInteger, 12)
    .option("--gap <ms>", "priority: time between interactive arrivals", positiveInteger, 1500)
    .option("--no-priority-headers", "priority: send no x-priority (our FIFO figure)")
    .option("--clients <n>", "swap: clients alternating between the models", positiveInteger, 8)
    .option("--seconds <n>", "swap: how long to run", positiveInteger, 60)
    .option("--alternate", "swap: every client switches model with every request (default: client i sticks to model i mod n)")
    .option("--endpoint <name>", "completions | chat (default: completions; multiturn always uses chat)")
    .option("--concurrency <list>", "concurrency levels, e.g. 1,2,4,8,16 (default 1,4; multiturn: 1)", integerList)
    .option("--requests <n>", "requests per level (default max(8, 2 × concurrency))", positiveInteger)
    .option("--warmup <n>", "warm-up requests per server before measuring", integer, DEFAULT_WORKLOAD.warmup)
    .option("--rounds <n>", "repeat every level this many times (reported: the median)", positiveInteger, DEFAULT_WORKLOAD.rounds)
    .option(
      "--prompt-tokens <n>",
      "prompt length in the server's tokens (calibrated, the actual count is reported)",
      positiveInteger,
      DEFAULT_WORKLOAD.promptTokens,
    )
    .option("--max-tokens <n>", "output tokens per request (default 128; multiturn 64)", positiveInteger)
    .option("--temperature <t>", "sampling temperature (default: the server's own default)", number)
    .option("--no-ignore-eos", "never send ignore_eos (by default it is sent to servers that accept it)")
    .option("--system-tokens <n>", "multiturn: system prompt length in tokens", positiveInteger, DEFAULT_WORKLOAD.systemTokens)
    .option("--turns <n>", "multiturn: turns per conversation", positiveInteger, DEFAULT_WORKLOAD.turns)
    .option("--conversations <n>", "multiturn: conversations per level (default max(3, concurrency))", positiveInteger)
    .option("--timeout <sec>", "per-request timeout in seconds", positiveInteger, DEFAULT_WORKLOAD.timeoutMs / 1000)
    .option("--json", "print one JSON document instead of tables", false)
    .option("--quiet", "no progress lines on stderr", false)
    .option("--store", "store the results (SQLite, table bench_results in <state_dir>/lmx.db)", false)
    .option("--gate", `compare the average tok/s with the stored baseline; exit ${BENCH_EXIT.regression} when more than --threshold % slower`, false)
    .option("--update-baseline", "record this run as the new baseline for its model and settings", false)
    .option("--threshold <pct>", "perf gate tolerance in percent", number, DEFAULT_GATE_THRESHOLD_PCT)
    .option("--db <file>", "results database (default <state_dir>/lmx.db)")
    .option("--state-dir <dir>", "state directory whose lmx.db holds results (default: the server's, from config/env)")
    .option("-c, --config <file>", "server config file, to find state_dir (or LMX_CONFIG)")
    .addHelpText(
      "after",
      `\nExit codes: ${BENCH_EXIT.ok} ok (gate passed) · ${BENCH_EXIT.regression} gate: regression · ${BENCH_EXIT.usage} bad flags/config · ${BENCH_EXIT.noBaseline} gate: no baseline · ${BENCH_EXIT.failed} the benchmark failed (or, with --gate, some requests failed)`,
    )
    .action(async (options: BenchCommandOptions) => {
      process.exitCode = await runBenchCommand(options, {
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      });
    });
}

/** The whole command, minus process plumbing: returns the exit code (tests call it directly). */
export async function runBenchCommand(options: BenchCommandOptions, io: BenchIo): Promise<number> {
  if (options.scenario === "priority" || options.scenario === "swap") return runSchedulerScenario(options, io);
  let workload: Workload;
  let targets: TargetSpec[];
  try {
    workload = workloadFrom(options);
    targets = targetsFrom(options, workload);
  } catch (error) {
    io.err(`lmx bench: ${(error as Error).message}\n`);
    return BENCH_EXIT.usage;
  }
  const wantsStore = options.store || options.gate || options.updateBaseline;
  if (options.gate && workload.scenario !== "throughput") {
    io.err("lmx bench: --gate works on the throughput scenario\n");
    return BENCH_EXIT.usage;
  }
  let dbFile: string | null = null;
  if (wantsStore) {
    try {
      dbFile = resolveDbFile(options);
    } catch (error) {
      io.err(`lmx bench: ${(error as Error).message}\n`);
      return BENCH_EXIT.usage;
    }
  }

  let report: BenchReport;
  try {
    report = await runBenchmark(targets, workload, { onProgress: options.quiet ? undefined : (line) => io.err(`${line}\n`) });
  } catch (error) {
    io.err(`lmx bench: ${error instanceof BenchError ? error.message : ((error as Error).stack ?? String(error))}\n`);
    return BENCH_EXIT.failed;
  }

  const primary = report.targets[0]!;
  const primaryErrors =
    primary.levels.reduce((s, l) => s + l.errors, 0) + (primary.multiturn ?? []).reduce((s, l) => s + l.turns.reduce((t, x) => t + x.errors, 0), 0);
  let gate: GateOutcome | null = null;
  const storedIds: number[] = [];
  let code: number = BENCH_EXIT.ok;
  if (dbFile) {
    const store = BenchStore.open(dbFile);
    try {
      if (options.gate) {
        // the tuned profile the model runs with, where this run's workload is the one it was measured on
        const tunedId = primary.info.tuned_profile_id ?? null;
        const tuned = tunedId === null ? null : tunedBaseline(readProfileFile(dbFile, tunedId), workloadKey(workload));
        const baseline = tuned ?? store.baseline(primary.model, settingsKey(workload, primary));
        gate = evaluateGate(primary.avg_output_tok_s, primaryErrors, baseline, options.threshold);
        code = exitCodeFor(gate);
      }
      if (options.updateBaseline && primaryErrors > 0) {
        io.err(`lmx bench: not recording a baseline: ${primaryErrors} request(s) failed\n`);
        code = BENCH_EXIT.failed;
      }
      if (options.store || options.updateBaseline) {
        const baselineFor = new Set(options.updateBaseline && primaryErrors === 0 ? [primary.label] : []);
        for (const row of recordReport(store, report, "cli", baselineFor)) storedIds.push(row.id);
        if (!options.quiet)
          io.err(`stored result(s) ${storedIds.join(", ")} in ${dbFile}${baselineFor.size > 0 ? ` (#${storedIds[0]} is the new baseline)` : ""}\n`);
      }
    } finally {
      store.close();
    }
  }
  const allFailed = report.targets.some((t) => t.levels.length > 0 && t.levels.every((l) => l.errors === l.requests));
  if (code === BENCH_EXIT.ok && allFailed) code = BENCH_EXIT.failed;

  if (options.json) {
    const output: BenchOutput = { ...report, gate, stored_ids: storedIds };
    io.out(`${JSON.stringify(output, null, 2)}\n`);
  } else {
    io.out(renderReport(report, gate));
  }
  return code;
}

/** The scheduler's scenarios: one server at a time (run it again against the peer's URL), JSON out. */
async function runSchedulerScenario(options: BenchCommandOptions, io: BenchIo): Promise<number> {
  try {
    const url = checkUrl(options.url, "--url").replace(/\/$/, "");
    const models = (options.model ?? "").split(",").filter(Boolean);
    if (models.length === 0) throw new Error(`--scenario ${options.scenario} needs --model`);
    const report =
      options.scenario === "priority"
        ? await runPriorityScenario({
            url,
            model: models[0]!,
            batchStreams: options.batchStreams ?? 32,
            interactive: options.interactive ?? 12,
            gapMs: options.gap ?? 1500,
            batchTokens: options.maxTokens ?? 64,
            interactiveTokens: 8,
            priorityHeaders: options.priorityHeaders ?? true,
            apiKey: options.apiKey ?? null,
          })
        : await runSwapScenario({
            url,
            models,
            clients: options.clients ?? 8,
            seconds: options.seconds ?? 60,
            alternate: options.alternate === true,
            maxTokens: options.maxTokens ?? 16,
            apiKey: options.apiKey ?? null,
          });
    io.out(`${JSON.stringify(report, null, 2)}\n`);
    return BENCH_EXIT.ok;
  } catch (error) {
    io.err(`lmx bench: ${(error as Error).message}\n`);
    return BENCH_EXIT.failed;
  }
}

export function workloadFrom(options: BenchCommandOptions): Workload {
  const scenario = options.scenario as Scenario;
  if (scenario !== "throughput" && scenario !== "multiturn") throw new Error(`--scenario must be throughput or multiturn, not '${options.scenario}'`);
  const endpoint = (options.endpoint ?? (scenario === "multiturn" ? "chat" : "completions")) as Endpoint;
  if (endpoint !== "completions" && endpoint !== "chat") throw new Error(`--endpoint must be completions or chat, not '${options.endpoint}'`);
  if (scenario === "multiturn" && endpoint !== "chat") throw new Error("--scenario multiturn needs --endpoint chat");
  if (options.warmup < 0) throw new Error("--warmup must be 0 or more");
  if (!(options.threshold > 0 && options.threshold < 100)) throw new Error("--threshold must be a percentage between 0 and 100");
  return {
    scenario,
    endpoint,
    promptTokens: options.promptTokens,
    maxTokens: options.maxTokens ?? (scenario === "multiturn" ? 64 : DEFAULT_WORKLOAD.maxTokens),
    concurrency: options.concurrency ?? (scenario === "multiturn" ? [1] : DEFAULT_WORKLOAD.concurrency),
    requests: options.requests ?? null,
    warmup: options.warmup,
    rounds: options.rounds,
    temperature: options.temperature ?? null,
    ignoreEos: options.ignoreEos,
    timeoutMs: options.timeout * 1000,
    systemTokens: options.systemTokens,
    turns: options.turns,
    conversations: options.conversations ?? null,
  };
}

function checkUrl(value: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${flag} '${value}' is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`${flag} must be an http(s) URL`);
  return value.replace(/\/+$/, "");
}

function responseFormat(value: string | undefined, flag: string): ResponseFormatKind {
  if (value === undefined) return "text";
  if (!isResponseFormatKind(value)) throw new Error(`${flag} must be one of ${RESPONSE_FORMATS.join(", ")}, not '${value}'`);
  return value;
}

export function targetsFrom(options: BenchCommandOptions, workload: Workload): TargetSpec[] {
  const ours = responseFormat(options.responseFormat, "--response-format");
  const peer = responseFormat(options.compareResponseFormat, "--compare-response-format");
  if (options.compareResponseFormat !== undefined && !options.compare) throw new Error("--compare-response-format needs --compare");
  for (const [format, flag] of [
    [ours, "--response-format"],
    [peer, "--compare-response-format"],
  ] as const) {
    // response_format is a chat request field; the multiturn scenario measures prefix reuse, not decoding
    if (format !== "text" && (workload.endpoint !== "chat" || workload.scenario !== "throughput"))
      throw new Error(`${flag} ${format} needs --endpoint chat and the throughput scenario`);
  }
  const targets: TargetSpec[] = [
    {
      label: "A",
      url: checkUrl(options.url, "--url"),
      model: options.model ?? null,
      apiKey: options.apiKey ?? null,
      adminKey: options.adminKey ?? process.env["LMX_ADMIN_KEY"] ?? null,
      responseFormat: ours,
    },
  ];
  if (options.compare) {
    targets.push({
      label: "B",
      url: checkUrl(options.compare, "--compare"),
      model: options.compareModel ?? options.model ?? null,
      apiKey: options.compareApiKey ?? null,
      adminKey: null,
      responseFormat: peer,
    });
  }
  return targets;
}

function resolveDbFile(options: BenchCommandOptions): string {
  if (options.db) return path.resolve(options.db);
  if (options.stateDir) return benchDbPath(path.resolve(options.stateDir));
  try {
    return benchDbPath(loadConfig({ configPath: options.config }).state_dir);
  } catch (error) {
    if (error instanceof ConfigError)
      throw new Error(`cannot find the state directory: ${error.message} (or pass --db / --state-dir)`, { cause: error });
    throw error;
  }
}
