/**
 * The llama-server engine as it runs inside a runner process: llama.cpp's own server as a child of the runner,
 * listening on a private Unix socket. The runner keeps everything the gateway relies on — the IPC handshake,
 * memory admission before any weights are read, the canary, classified failures, health, stats — and relays
 * requests (src/engines/llama-server/proxy.ts). llama-server schedules and batches sequences in C++, which is
 * where the node-llama-cpp runner loses under concurrency (docs/benchmarks.md).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { LmxError } from "../../errors/codes.js";
import type { MemoryEstimate, RunnerInfo, RunnerInitMessage, RunnerStats } from "../../runners/protocol.js";
import { llamaServerArgs } from "./args.js";
import { Upstream } from "./upstream.js";
import { defaultContextSize } from "../context-size.js";
import { parsePrometheus } from "./prometheus.js";

const ESTIMATE_ENTRY = fileURLToPath(new URL("../llama-cpp/estimate-main.js", import.meta.url));
const HEALTH_POLL_MS = 50;
const CONTROL_TIMEOUT_MS = 10_000;
const CANARY_TOKENS = 4;
const STDERR_KEEP = 60;
const STOP_GRACE_MS = 5_000;

type EngineSpec = Extract<RunnerInitMessage["engine"], { kind: "llama-server" }>;

/** Counters only the runner knows (llama-server's /metrics has the rest). */
export interface ProxyCounters {
  requestsServed: number;
  requestsActive: number;
}

export class LlamaServerEngine {
  readonly counters: ProxyCounters = { requestsServed: 0, requestsActive: 0 };
  private stopping = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly upstream: Upstream,
    readonly info: RunnerInfo,
    /** Only from test fault injection (src/runners/fault-injection.ts); 0 otherwise. */
    readonly testTokenDelayMs: number,
  ) {}

  static async start(
    init: RunnerInitMessage,
    log: (line: string) => void,
    admit: (estimate: MemoryEstimate) => Promise<void>,
    testTokenDelayMs = 0,
  ): Promise<LlamaServerEngine> {
    const started = performance.now();
    const spec = init.engine as EngineSpec;
    const { estimate, trainContextSize } = await runEstimate(init, spec.gpuOffload);
    await admit(estimate);

    const contextSize = defaultContextSize(init.settings.contextSize, trainContextSize);
    const socketPath = `${init.socketPath}.ls.sock`;
    rmSync(socketPath, { force: true });
    const args = llamaServerArgs({ modelPath: init.modelPath, alias: init.modelId, socketPath, settings: init.settings, contextSize });
    const child = spawnTied(spec.binary, args);
    const tail: string[] = [];
    forwardOutput(child, tail);
    const upstream = new Upstream(socketPath, init.settings.parallel * 2 + 4);

    // until ready, an exit is a failed load; the promise below races every step of the start against it
    let exitedEarly: ((error: LmxError) => void) | null = null;
    const earlyExit = new Promise<never>((_, reject) => (exitedEarly = reject));
    earlyExit.catch(() => {});
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null) => exitedEarly?.(classifyLoadExit(code, signal, tail, init.modelPath));
    child.once("exit", onEarlyExit);
    try {
      await Promise.race([waitUntilHealthy(upstream), earlyExit]);
      const canary = await Promise.race([runCanary(upstream), earlyExit]);
      const props = (await Promise.race([upstream.call("GET", "/props", undefined, AbortSignal.timeout(CONTROL_TIMEOUT_MS)), earlyExit])).json as Props;
      child.off("exit", onEarlyExit);
      const perSequence = props.default_generation_settings?.n_ctx ?? contextSize;
      const info: RunnerInfo = {
        pid: process.pid,
        backend: init.backend,
        backendVersion: spec.version,
        gpu: spec.gpuOffload && init.settings.gpu !== "cpu" ? "gpu" : false,
        contextSize: perSequence,
        trainContextSize,
        parallel: props.total_slots ?? init.settings.parallel,
        threads: init.settings.threads,
        batchSize: init.settings.batchSize,
        gpuLayers: typeof init.settings.gpuLayers === "number" ? init.settings.gpuLayers : spec.gpuOffload ? -1 : 0,
        chatWrapper: props.chat_template ? "jinja (llama-server)" : null,
        embeddingSize: null,
        // llama-server does not report what it allocated; the estimate is what the gateway budgeted
        memory: { modelRam: estimate.modelRam, modelVram: estimate.modelVram, contextRam: estimate.contextRam, contextVram: estimate.contextVram },
        estimate,
        canary,
        loadMs: Math.round(performance.now() - started),
      };
      log(`llama-server ready: pid ${child.pid}, ${info.parallel} slots × ${perSequence} tokens`);
      const engine = new LlamaServerEngine(child, upstream, info, testTokenDelayMs);
      child.once("exit", (code, signal) => engine.childExited(code, signal));
      return engine;
    } catch (error) {
      child.kill("SIGKILL");
      upstream.close();
      throw error;
    }
  }

  /** llama-server died on its own after the load: end the runner the same way, so the gateway classifies it. */
  private childExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping) return;
    process.stderr.write(`llama-server exited (${signal ? `signal ${signal}` : `code ${code}`}); the runner ends with it\n`);
    if (signal) process.kill(process.pid, signal);
    process.exit(code === 0 || code === null ? 1 : code);
  }

  /** Whether llama-server answers its own health check (it does so from its HTTP threads, even while decoding). */
  healthy(timeoutMs: number): Promise<boolean> {
    return answersHealth(this.upstream, timeoutMs);
  }

  async stats(): Promise<RunnerStats> {
    const metrics = parsePrometheus((await this.upstream.call("GET", "/metrics", undefined, AbortSignal.timeout(CONTROL_TIMEOUT_MS))).text);
    const busy = metrics.get("llamacpp:requests_processing") ?? 0;
    return {
      requestsServed: this.counters.requestsServed,
      requestsActive: this.counters.requestsActive,
      decodeCalls: metrics.get("llamacpp:n_decode_total") ?? 0,
      promptTokensEvaluated: metrics.get("llamacpp:prompt_tokens_total") ?? 0,
      promptTokensCached: metrics.get("llamacpp:prompt_tokens_cached_total") ?? 0,
      generatedTokens: metrics.get("llamacpp:tokens_predicted_total") ?? 0,
      slotsBusy: busy,
      slotsTotal: this.info.parallel,
      requestsWaiting: metrics.get("llamacpp:requests_deferred") ?? 0,
      rssBytes: process.memoryUsage.rss() + rssOf(this.child.pid),
    };
  }

  async dispose(): Promise<void> {
    this.stopping = true;
    this.upstream.close();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), STOP_GRACE_MS);
    await gone;
    clearTimeout(timer);
    rmSync(this.upstream.socketPath, { force: true });
  }

  /** Synchronous last resort when the runner itself is going away (gateway gone). */
  killNow(): void {
    this.stopping = true;
    this.child.kill("SIGKILL");
    rmSync(this.upstream.socketPath, { force: true });
  }
}

interface Props {
  total_slots?: number;
  chat_template?: string;
  default_generation_settings?: { n_ctx?: number };
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p)) ?? null;

/**
 * Starts llama-server so that it cannot outlive its runner: on Linux through `setpriv --pdeathsig SIGKILL`
 * (the kernel kills it when the runner dies, even by SIGKILL from the gateway's hang detection); elsewhere the
 * runner kills it on every exit path it controls.
 */
function spawnTied(binary: string, args: string[]): ChildProcess {
  const [command, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", binary, ...args]] : [binary, args];
  return spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
}

/** llama-server's log goes to the runner's stderr (the gateway keeps the tail for failure reports). */
function forwardOutput(child: ChildProcess, tail: string[]): void {
  const keep = (chunk: Buffer) => {
    process.stderr.write(chunk);
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > STDERR_KEEP) tail.shift();
    }
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
}

function classifyLoadExit(code: number | null, signal: NodeJS.Signals | null, tail: string[], modelPath: string): LmxError {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  const text = tail.join("\n");
  const last = tail.slice(-5).join(" | ");
  if (!signal && /failed to load model|invalid magic|gguf_init|failed to read|unknown model architecture|tensor .* data is not within/i.test(text)) {
    return new LmxError("model_file_invalid", `llama-server cannot load ${modelPath}: ${last}`);
  }
  return new LmxError("model_loader_crashed", `llama-server ${how} while loading ${modelPath}: ${last}`);
}

/** llama-server answers 200 on /health once the model is loaded (503 while loading, nothing before it listens). */
async function answersHealth(upstream: Upstream, timeoutMs: number): Promise<boolean> {
  try {
    return (await upstream.call("GET", "/health", undefined, AbortSignal.timeout(timeoutMs))).status === 200;
  } catch {
    return false;
  }
}

async function waitUntilHealthy(upstream: Upstream): Promise<void> {
  // the supervisor's loader timeout bounds this wait
  while (!(await answersHealth(upstream, CONTROL_TIMEOUT_MS))) await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
}

/**
 * A few greedy tokens with their probabilities before the runner says ready. NaN/inf weights load fine and then
 * sample garbage: their probabilities come back non-finite (JSON null), and such a load fails here.
 */
async function runCanary(upstream: Upstream): Promise<RunnerInfo["canary"]> {
  const started = performance.now();
  const fail = (why: string) => new LmxError("model_probe_failed", `the model loaded but failed its canary generation: ${why}`);
  const res = await upstream.call(
    "POST",
    "/completion",
    { prompt: "Hello", n_predict: CANARY_TOKENS, temperature: 0, n_probs: 1, cache_prompt: false },
    AbortSignal.timeout(CONTROL_TIMEOUT_MS * 6),
  );
  if (res.status !== 200) throw fail(`llama-server answered ${res.status}: ${res.text.slice(0, 300)}`);
  const body = (res.json ?? {}) as { tokens_predicted?: number; completion_probabilities?: Array<{ logprob?: number | null; prob?: number | null }> };
  const probs = body.completion_probabilities ?? [];
  if (probs.length === 0) throw fail("no tokens were generated");
  for (const p of probs) {
    const value = p.logprob ?? p.prob;
    if (typeof value !== "number" || !Number.isFinite(value)) throw fail("it produces non-finite logits (NaN or infinite weights?)");
  }
  const ms = performance.now() - started;
  const tokens = body.tokens_predicted ?? probs.length;
  return { tokens, ms: Math.round(ms), tokensPerSec: Math.round((tokens * 1000) / Math.max(ms, 0.001)) };
}

/** The estimate from a short-lived node-llama-cpp process (see estimate-main.ts for why not in this one). */
function runEstimate(init: RunnerInitMessage, gpuOffload: boolean): Promise<{ estimate: MemoryEstimate; trainContextSize: number }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ESTIMATE_ENTRY, JSON.stringify({ init, gpuOffload })], { maxBuffer: 1024 * 1024 }, (error, stdout) => {
      const line = stdout.trim().split("\n").pop() ?? "";
      let answer: { ok: boolean; estimate?: MemoryEstimate; trainContextSize?: number; code?: string; message?: string } | null = null;
      try {
        answer = JSON.parse(line);
      } catch {
        // handled below
      }
      if (answer?.ok && answer.estimate) return resolve({ estimate: answer.estimate, trainContextSize: answer.trainContextSize ?? 0 });
      if (answer && !answer.ok) return reject(new LmxError((answer.code ?? "model_loader_crashed") as LmxError["code"], answer.message ?? "estimate failed"));
      reject(new LmxError("model_loader_crashed", `the memory estimate process failed: ${error?.message ?? line}`));
    });
  });
}

function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0; // not Linux, or already gone
  }
}
