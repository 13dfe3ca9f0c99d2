/**
 * A child server as it runs inside a runner process, for any recipe: the runner keeps everything the gateway
 * relies on — the IPC handshake, memory admission before any weights are read, the canary, classified
 * failures, health, stats — and the child does the inference (in the spirit of llama-swap's Process, plus
 * the guarantees llama-swap leaves out).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { type LmxError } from "../../errors/codes.js";
import type { MemoryEstimate, RunnerInfo, RunnerInitMessage, RunnerStats } from "../../runner/protocol.js";
import { defaultContextSize } from "../context-size.js";
import type { ChildServerRecipe, ChildServerSpec, ChildStartContext, RelayCounters } from "./recipe.js";
import { Upstream, type ChildAddress } from "./upstream.js";

const HEALTH_POLL_MS = 50;
const CONTROL_TIMEOUT_MS = 10_000;
const STDERR_KEEP = 60;
const STOP_GRACE_MS = 5_000;

export class ChildServerEngine {
  readonly counters: RelayCounters = { requestsServed: 0, requestsActive: 0 };
  private stopping = false;

  private constructor(
    readonly recipe: ChildServerRecipe,
    private readonly child: ChildProcess,
    private readonly spec: ChildServerSpec,
    readonly upstream: Upstream,
    readonly info: RunnerInfo,
    /** Only from test fault injection (src/runners/fault-injection.ts); 0 otherwise. */
    readonly testTokenDelayMs: number,
  ) {}

  static async start(
    recipe: ChildServerRecipe,
    init: RunnerInitMessage,
    log: (line: string) => void,
    admit: (estimate: MemoryEstimate) => Promise<void>,
    testTokenDelayMs = 0,
  ): Promise<ChildServerEngine> {
    const started = performance.now();
    const spec = init.engine as ChildServerSpec;
    const estimated = await recipe.estimate(init, spec);
    const estimate = estimated?.estimate ?? null;
    if (estimate) await admit(estimate);
    const trainContextSize = estimated?.trainContextSize ?? 0;

    const contextSize = defaultContextSize(init.settings.contextSize, trainContextSize);
    const address = await childAddress(recipe, init);
    const context: ChildStartContext = { init, spec, address, contextSize };
    const child = spawnTied(spec.binary, recipe.args(context));
    const tail: string[] = [];
    forwardOutput(child, tail);
    const upstream = new Upstream(address, init.settings.parallel * 2 + 4);

    // until ready, an exit is a failed load; the promise below races every step of the start against it
    let exitedEarly: ((error: LmxError) => void) | null = null;
    const earlyExit = new Promise<never>((_, reject) => (exitedEarly = reject));
    earlyExit.catch(() => {});
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null) =>
      exitedEarly?.(recipe.classifyLoadExit(code, signal, tail, init.modelPath));
    child.once("exit", onEarlyExit);
    try {
      await Promise.race([waitUntilHealthy(upstream, healthPath(recipe, spec)), earlyExit]);
      const canary = await Promise.race([recipe.canary(upstream), earlyExit]);
      const facts = await Promise.race([recipe.describe(upstream, context), earlyExit]);
      child.off("exit", onEarlyExit);
      const noEstimate: MemoryEstimate = { ram: 0, vram: 0, modelRam: 0, contextRam: 0, modelVram: 0, contextVram: 0 };
      const used = estimate ?? noEstimate;
      const info: RunnerInfo = {
        pid: process.pid,
        backend: init.backend,
        backendVersion: spec.version,
        gpu: spec.gpuOffload && init.settings.gpu !== "cpu" ? "gpu" : false,
        contextSize: facts.contextSize,
        trainContextSize,
        parallel: facts.parallel,
        threads: init.settings.threads,
        batchSize: init.settings.batchSize,
        gpuLayers: typeof init.settings.gpuLayers === "number" ? init.settings.gpuLayers : spec.gpuOffload ? -1 : 0,
        chatWrapper: facts.chatTemplate,
        template: facts.template,
        embeddingSize: null,
        // a child server does not report what it allocated; the estimate is what the gateway budgeted
        memory: { modelRam: used.modelRam, modelVram: used.modelVram, contextRam: used.contextRam, contextVram: used.contextVram },
        estimate: used,
        canary,
        loadMs: Math.round(performance.now() - started),
        details: {
          engine: "child-server",
          recipe: recipe.name,
          childPid: child.pid ?? null,
          modelId: init.modelId,
          // the gateway may send requests straight to the child (src/engines/child-server/direct.ts); not while a
          // test slows tokens down in this relay, nor when the relay rewrites the child's answers
          ...(testTokenDelayMs > 0 || recipe.translatesRaw ? {} : { direct: { recipe: recipe.name, address } }),
        },
      };
      log(`${recipe.name} ready: pid ${child.pid}, ${info.parallel} slots × ${facts.contextSize} tokens`);
      const engine = new ChildServerEngine(recipe, child, spec, upstream, info, testTokenDelayMs);
      child.once("exit", (code, signal) => engine.childExited(code, signal));
      return engine;
    } catch (error) {
      child.kill("SIGKILL");
      upstream.close();
      throw error;
    }
  }

  /** The child died on its own after the load: end the runner the same way, so the gateway classifies it. */
  private childExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping) return;
    process.stderr.write(`${this.recipe.name} exited (${signal ? `signal ${signal}` : `code ${code}`}); the runner ends with it\n`);
    if (signal) process.kill(process.pid, signal);
    process.exit(code === 0 || code === null ? 1 : code);
  }

  healthy(timeoutMs: number): Promise<boolean> {
    return answersHealth(this.upstream, healthPath(this.recipe, this.spec), timeoutMs);
  }

  async stats(): Promise<RunnerStats> {
    const own = await this.recipe.stats(this.upstream, this.counters, this.info);
    return { ...own, rssBytes: process.memoryUsage.rss() + rssOf(this.child.pid) };
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
    this.removeSocket();
  }

  /** Synchronous last resort when the runner itself is going away (gateway gone). */
  killNow(): void {
    this.stopping = true;
    this.child.kill("SIGKILL");
    this.removeSocket();
  }

  private removeSocket(): void {
    if (this.upstream.socketPath) rmSync(this.upstream.socketPath, { force: true });
  }
}

function healthPath(recipe: ChildServerRecipe, spec: ChildServerSpec): string {
  return spec.healthPath ?? recipe.healthPath;
}

/** A socket file beside the runner's own, or a free loopback port picked now. */
async function childAddress(recipe: ChildServerRecipe, init: RunnerInitMessage): Promise<ChildAddress> {
  if (recipe.listen === "unix") {
    const socketPath = `${init.socketPath}.child.sock`;
    rmSync(socketPath, { force: true });
    return { socketPath };
  }
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const free = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(free));
    });
  });
  return { host: "127.0.0.1", port };
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p)) ?? null;

/**
 * Starts the child so that it cannot outlive its runner: on Linux through `setpriv --pdeathsig SIGKILL`
 * (the kernel kills it when the runner dies, even by SIGKILL from the gateway's hang detection); elsewhere the
 * runner kills it on every exit path it controls.
 */
function spawnTied(binary: string, args: string[]): ChildProcess {
  const [command, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", binary, ...args]] : [binary, args];
  return spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
}

/** The child's log goes to the runner's stderr (the gateway keeps the tail for failure reports). */
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

async function answersHealth(upstream: Upstream, path: string, timeoutMs: number): Promise<boolean> {
  try {
    return (await upstream.call("GET", path, undefined, AbortSignal.timeout(timeoutMs))).status === 200;
  } catch {
    return false;
  }
}

async function waitUntilHealthy(upstream: Upstream, path: string): Promise<void> {
  // the supervisor's loader timeout bounds this wait
  while (!(await answersHealth(upstream, path, CONTROL_TIMEOUT_MS))) await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
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
