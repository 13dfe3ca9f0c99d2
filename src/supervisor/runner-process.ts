/**
 * Starts and watches one runner process: handshake with a deadline, health pings, and a classification of
 * every way it can end. The gateway never trusts a runner to report its own death: it watches the process.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { RunnerExit, RunnerHandle, StartOptions } from "../engines/backend.js";
import { openDirectRoute, type DirectRoute } from "../engines/child-server/direct.js";
import type { ResolvedRunnerSettings, RunnerEngine, RunnerInfo, RunnerInitMessage, RunnerStats, RunnerToGateway } from "../runner/protocol.js";
import { rpcFailureLine, rpcWorkerLost } from "../engines/llama-server/rpc.js";

const RUNNER_ENTRY = fileURLToPath(new URL("../runner/main.js", import.meta.url));

/** What every backend starts: the one runner entry point, told which engine to drive for which model. */
export function startModelRunner(
  model: ModelDescriptor,
  backend: string,
  engine: RunnerEngine,
  settings: ResolvedRunnerSettings,
  options: StartOptions,
): Promise<RunnerProcess> {
  // Unix socket paths are limited to ~104 bytes, so sockets live in a short per-gateway folder.
  const socketPath = path.join(options.socketDir, `r-${randomBytes(4).toString("hex")}.sock`);
  return RunnerProcess.start({
    ...options,
    entry: RUNNER_ENTRY,
    init: {
      type: "init",
      engine,
      modelId: model.id,
      modelPath: model.path,
      modelType: model.type,
      settings,
      backend,
      socketPath,
      logLevel: options.logLevel,
    },
  });
}

const STDERR_TAIL_LINES = 40;
const HEALTH_TIMEOUT_MS = 5_000;
const STATS_TIMEOUT_MS = 5_000;
/** Consecutive missed pings before a runner is declared hung and killed. */
const HEALTH_MISSES_ALLOWED = 3;
const KILL_GRACE_MS = 2_000;

export interface SpawnRunnerOptions extends StartOptions {
  entry: string;
  init: RunnerInitMessage;
  env?: NodeJS.ProcessEnv;
}

export class RunnerProcess implements RunnerHandle {
  readonly startedAt = Date.now();
  readonly dispatcher: Pool;
  readonly exited: Promise<RunnerExit>;
  exit: RunnerExit | null = null;
  direct: DirectRoute | null = null;
  private infoValue: RunnerInfo | null = null;
  private readonly stderrTail: string[] = [];
  private stderrPartial = "";
  private stopping = false;
  private killedForTimeout = false;
  private killedAsHung = false;
  /** llama.cpp's line saying an RPC worker failed this runner's llama-server (models with rpc.workers only). */
  private rpcFailure: string | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private resolveExit!: (exit: RunnerExit) => void;

  private constructor(
    private readonly child: ChildProcess,
    private readonly options: SpawnRunnerOptions,
  ) {
    this.dispatcher = new Pool("http://runner", {
      socketPath: options.init.socketPath,
      connections: options.init.settings.parallel * 2 + 2,
      // generation can pause for a long time between tokens on a slow machine: never time out a body mid-stream
      bodyTimeout: 0,
      headersTimeout: 0,
    });
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get info(): RunnerInfo {
    if (!this.infoValue) throw new Error("runner is not ready");
    return this.infoValue;
  }

  /** Spawns the runner and resolves once it is ready to serve, or rejects with a classified error. */
  static start(options: SpawnRunnerOptions): Promise<RunnerProcess> {
    const child = fork(options.entry, [], {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: options.env ?? process.env,
      // the gateway may run under flags (a test runner, an inspector) that must not leak into runners
      execArgv: [],
      serialization: "json",
    });
    const runner = new RunnerProcess(child, options);
    return runner.handshake();
  }

  private handshake(): Promise<RunnerProcess> {
    const { child, options } = this;
    const modelId = options.init.modelId;
    child.stdout?.on("data", (chunk: Buffer) => this.captureOutput(chunk));
    child.stderr?.on("data", (chunk: Buffer) => this.captureOutput(chunk));
    return new Promise<RunnerProcess>((resolve, reject) => {
      let settled = false;
      const settle = (error: LmxError | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(this);
      };
      const timer = setTimeout(() => {
        this.killedForTimeout = true;
        child.kill("SIGKILL");
        settle(
          new LmxError(
            "model_load_timeout",
            `loading '${modelId}' took longer than ${Math.round(options.loaderTimeoutMs / 1000)}s (loader_timeout_sec); the runner was killed`,
            { details: { timeoutMs: options.loaderTimeoutMs, stderrTail: this.stderrTail.slice(-10) }, retryAfterSec: 5 },
          ),
        );
      }, options.loaderTimeoutMs);
      child.on("message", (message: RunnerToGateway) => {
        if (message.type === "ready") {
          this.infoValue = message.info;
          this.direct = options.directToChild === false ? null : openDirectRoute(message.info);
          this.startHealthPings();
          options.log("info", "runner ready", { model: modelId, pid: this.pid, loadMs: message.info.loadMs });
          settle(null);
        } else if (message.type === "estimate") {
          const admit = options.admit ?? (async () => {});
          admit(message.estimate).then(
            () => {
              if (!settled) child.send({ type: "admit" });
            },
            (error: unknown) => {
              settle(error instanceof LmxError ? error : new LmxError("internal_error", String(error)));
              this.stopping = true;
              child.kill("SIGKILL");
            },
          );
        } else if (message.type === "load_failed") {
          settle(new LmxError(message.code, message.message, { details: { pid: this.pid } }));
          setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS).unref();
        }
      });
      child.on("error", (error) => {
        settle(new LmxError("model_loader_crashed", `could not start a runner for '${modelId}': ${error.message}`));
      });
      child.on("exit", (code, signal) => {
        this.stopHealthPings();
        this.flushOutput();
        const reason = this.classifyExit(code, signal, this.infoValue !== null);
        this.exit = { code, signal, reason, stderrTail: this.stderrTail.slice() };
        void this.dispatcher.destroy().catch(() => {});
        this.direct?.close();
        if (reason !== "stopped" && this.infoValue !== null) {
          options.log("warn", "runner exited", { model: modelId, pid: this.pid, code, signal, reason: reason.code });
        }
        this.resolveExit(this.exit);
        if (reason !== "stopped") settle(reason);
      });
      child.send(options.init);
    });
  }

  private classifyExit(code: number | null, signal: NodeJS.Signals | null, wasReady: boolean): RunnerExit["reason"] {
    const modelId = this.options.init.modelId;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const details = { code, signal, stderrTail: this.stderrTail.slice(-10) };
    if (this.stopping && (code === 0 || signal === "SIGKILL" || signal === "SIGTERM")) return "stopped";
    if (this.killedForTimeout) {
      return new LmxError("model_load_timeout", `loading '${modelId}' exceeded loader_timeout_sec; the runner was killed`, { details });
    }
    if (!wasReady) {
      return new LmxError("model_loader_crashed", `the runner for '${modelId}' ${how} while loading`, { details, retryAfterSec: 5 });
    }
    if (this.rpcFailure) return rpcWorkerLost(modelId, this.options.init.settings.rpcWorkers, this.rpcFailure, false);
    const why = this.killedAsHung ? "stopped answering health checks and was killed" : how;
    return new LmxError("model_crashed", `the runner for '${modelId}' ${why}; it will be reloaded on the next request`, {
      details,
      retryAfterSec: 1,
    });
  }

  private captureOutput(chunk: Buffer): void {
    const text = this.stderrPartial + chunk.toString("utf8");
    const lines = text.split("\n");
    this.stderrPartial = lines.pop() ?? "";
    for (const line of lines) this.pushLine(line);
  }

  private flushOutput(): void {
    if (this.stderrPartial) this.pushLine(this.stderrPartial);
    this.stderrPartial = "";
  }

  private pushLine(line: string): void {
    if (!line.trim()) return;
    // kept apart from the tail: a debugger's backtrace after llama.cpp's abort can push the line out of it
    if (this.rpcFailure === null && this.options.init.settings.rpcWorkers.length > 0) this.rpcFailure = rpcFailureLine([line]);
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    this.options.log("debug", "runner output", { model: this.options.init.modelId, pid: this.pid, line });
  }

  private startHealthPings(): void {
    let misses = 0;
    let inFlight = false;
    this.healthTimer = setInterval(() => {
      if (inFlight || this.exit) return;
      inFlight = true;
      void this.ping()
        .then((ok) => {
          misses = ok ? 0 : misses + 1;
          if (misses >= HEALTH_MISSES_ALLOWED && !this.exit && !this.stopping) {
            this.killedAsHung = true;
            this.options.log("error", "runner missed health checks; killing it", { model: this.options.init.modelId, pid: this.pid });
            this.child.kill("SIGKILL");
          }
        })
        .finally(() => (inFlight = false));
    }, this.options.healthIntervalMs);
    this.healthTimer.unref();
  }

  private stopHealthPings(): void {
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = null;
  }

  private async ping(): Promise<boolean> {
    try {
      // a ping may take at most two intervals (capped), so a hung runner is found within a few intervals
      const timeout = Math.min(HEALTH_TIMEOUT_MS, Math.max(500, this.options.healthIntervalMs * 2));
      const res = await this.dispatcher.request({ path: "/health", method: "GET", signal: AbortSignal.timeout(timeout) });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async stats(): Promise<RunnerStats | null> {
    if (this.exit) return null;
    try {
      const res = await this.dispatcher.request({ path: "/stats", method: "GET", signal: AbortSignal.timeout(STATS_TIMEOUT_MS) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return null;
      }
      const stats = (await res.body.json()) as RunnerStats;
      // requests that went straight to a child server never passed the runner's counters
      if (this.direct)
        return { ...stats, requestsServed: stats.requestsServed + this.direct.served, requestsActive: stats.requestsActive + this.direct.active };
      return stats;
    } catch {
      return null;
    }
  }

  async stop(graceMs: number): Promise<void> {
    if (this.exit) return;
    this.stopping = true;
    this.stopHealthPings();
    try {
      this.child.send({ type: "shutdown", graceMs });
    } catch {
      this.child.kill("SIGKILL");
    }
    const killTimer = setTimeout(() => this.child.kill("SIGKILL"), graceMs + KILL_GRACE_MS);
    await this.exited;
    clearTimeout(killTimer);
  }
}
