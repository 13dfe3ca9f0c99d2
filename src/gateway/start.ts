/**
 * Assembles and runs the gateway: config → inventory → backends → scheduler → HTTP.
 * Owns start-up (auto_load) and shutdown (stop accepting, drain, stop runners, exit 0).
 */
import { readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import type { ServerConfig } from "../config/load.js";
import { LmxError } from "../errors/codes.js";
import { LlamaCppBackend } from "../engines/llama-cpp/backend.js";
import { LlamaServerBackend } from "../engines/llama-server/backend.js";
import { findRpcLlamaServer } from "../engines/llama-server/rpc.js";
import { detectPythonEngines, platformFacts } from "../engines/openai-child/detect.js";
import { commandBackend, pythonEngineBackend } from "../engines/openai-child/backend.js";
import { findLlamaServer } from "../engines/llama-server/binary.js";
import { Inventory } from "../inventory/inventory.js";
import { DownloadManager } from "../inventory/downloads/download-manager.js";
import { defaultHfCacheDir } from "../inventory/sources/hf-cache.js";
import { MemoryBudget } from "../scheduler/memory-budget.js";
import { detectGpus } from "../scheduler/gpu-devices.js";
import { Scheduler } from "../scheduler/scheduler.js";
import { EventHub } from "../events/hub.js";
import { LmxMetrics } from "../metrics/metrics.js";
import { NodeRegistry } from "../nodes/registry.js";
import { openStateDatabase } from "../state/database.js";
import { CompatibilityRegistry } from "../state/compatibility-registry.js";
import { ChatConformanceRegistry } from "../state/chat-conformance.js";
import type { Backend } from "../engines/backend.js";
import { buildApp } from "../http/app.js";
import { createSkillRegistry } from "../skills/setup.js";
import { countTokensSkill } from "../skills/builtin/count-tokens.js";
import type { GatewayContext } from "../http/context.js";
import { createLogger } from "./logger.js";
import { createSocketDir, removeStaleSocketDirs } from "./socket-dir.js";
import { listenError, reasonOf, StartupError } from "./startup.js";
import { makeDirSync } from "../util/make-dir.js";
import { listenForOllama, type OllamaListener } from "./ollama-listener.js";

export interface RunningServer {
  app: FastifyInstance;
  ctx: GatewayContext;
  url: string;
  /** The Ollama port's listener (ollama.port), or null when off or it could not listen. */
  ollamaUrl: string | null;
  close(): Promise<void>;
}

function packageVersion(): string {
  const file = fileURLToPath(new URL("../../../package.json", import.meta.url));
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const log = await createLogger(
    config.log_level,
    config.log_file ? { file: config.log_file, rotateSize: config.log_rotate_size, keep: config.log_keep } : null,
  );
  try {
    makeDirSync(config.state_dir);
  } catch (error) {
    // ENOENT with the parent present: a file system that holds no folders (/proc, /sys); nothing could ever be kept
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      const startup = new StartupError(
        `state_dir ${config.state_dir} cannot be created: ${reasonOf(error)}; set state_dir (or LMX_STATE_DIR, --state-dir) to a writable folder`,
      );
      log.error(startup.message);
      throw startup;
    }
    // a read-only or full volume must not stop the server: state degrades to memory (see src/state/database.ts)
    log.warn({ state_dir: config.state_dir, err: (error as Error).message }, "state directory is not writable");
  }
  for (const folder of removeStaleSocketDirs()) log.info({ folder }, "removed the runner socket folder of a gateway that is gone");
  const socketDir = createSocketDir();
  const { backends, gpuPresent } = await backendsFor(config, (message) => log.warn(message));
  const inventory = new Inventory(config, (model) => backends.some((b) => b.canServe(model)));
  await inventory.init();
  const runnerLog = log.child({ component: "runner" });
  const memory = new MemoryBudget({
    maxPercent: config.memory.max_percent,
    budgetBytes: config.memory.budget_bytes,
    runnerOverheadBytes: Math.round(config.memory.runner_overhead_mb * 1024 * 1024),
    // a GPU budget only where layers can go to a GPU that nvidia-smi lists (CUDA); elsewhere GPU memory is RAM or absent
    gpus: gpuPresent && config.gpu !== "cpu" ? await detectGpus() : [],
    gpuMaxPercent: config.memory.gpu_max_percent,
    gpuBudgetBytes: config.memory.gpu_budget_bytes,
    gpuRunnerOverheadBytes: Math.round(config.memory.gpu_runner_overhead_mb * 1024 * 1024),
  });
  const state = openStateDatabase(config.state_dir, (message, fields) => log.warn(fields, message));
  const registry = new CompatibilityRegistry(state, config.quarantine_after);
  const scheduler = new Scheduler(backends, {
    registry,
    quarantineAfter: config.quarantine_after,
    backendOrder: config.backends.order,
    allowUnsupportedRuntime: config.backends.allow_unsupported_runtime,
    memory,
    eviction: config.memory.eviction,
    maxLoadedModels: config.max_loaded_models,
    maxConcurrentLoads: config.max_concurrent_loads,
    gpuPresent,
    unloadGraceMs: config.shutdown_timeout_sec * 1000,
    jitLoad: config.jit_load,
    queue: {
      maxConcurrent: config.max_concurrent_requests,
      queueSize: config.queue_size,
      queueTimeoutMs: config.queue_timeout_sec * 1000,
      agingMs: config.priority.aging_sec * 1000,
      classQueueSize: Object.fromEntries(Object.entries(config.priority.queue_size).filter(([, limit]) => limit !== null)),
    },
    interactiveSlots: config.priority.interactive_slots,
    affinity: config.affinity.enabled
      ? { maxWaitMs: config.affinity.max_wait_sec * 1000, minResidentMs: config.affinity.min_resident_sec * 1000 }
      : null,
    start: {
      loaderTimeoutMs: config.loader_timeout_sec * 1000,
      healthIntervalMs: config.health_interval_sec * 1000,
      logLevel: config.log_level,
      socketDir,
      directToChild: config.backends.child_path === "direct",
    },
    log: (level, message, fields) => runnerLog[level](fields ?? {}, message),
  });
  const downloads = new DownloadManager({
    cacheDir: config.downloads.cache_dir ?? inventory.hfCacheDir() ?? defaultHfCacheDir(),
    hubUrl: config.downloads.hub_url,
    token: config.downloads.token,
    minFreeBytes: config.downloads.min_free_bytes,
  });
  const events = new EventHub(downloads);
  scheduler.on("transition", (transition) => events.modelMoved(transition));
  scheduler.admission.on("depth", (depth) => events.queueChanged(depth));
  const nodes = new NodeRegistry(config.nodes, {
    onChange: (node, previous) => {
      if (node.up) log.info({ node: node.name, models: node.models.length }, previous === null ? "node reachable" : "node is back");
      else log.warn({ node: node.name, kind: node.error?.kind, err: node.error?.message }, "node unavailable");
    },
    onFailure: (node, kind) => metrics.nodeFailures.inc({ node, kind }),
    onRequest: (node, outcome) => metrics.nodeRequests.inc({ node, outcome }),
  });
  const metrics = new LmxMetrics({
    nodes: () => nodes.snapshots(),
    models: scheduler,
    admission: scheduler.admission,
    memory,
    downloads,
    diskPaths: [config.state_dir, ...config.model_dirs, downloads.cacheDir],
    quarantinedModels: () => new Set(registry.quarantined().map((key) => key.modelId)).size,
  });
  const skills = await createSkillRegistry(config, {
    storage: state,
    metrics,
    log,
    countTokens: countTokensSkill({ inventory, scheduler }),
  });
  const ctx: GatewayContext = {
    storage: state,
    skills,
    conformance: new ChatConformanceRegistry(state),
    events,
    registry,
    memory,
    downloads,
    config,
    inventory,
    scheduler,
    nodes,
    // listens to model load/unload events from here on: built before auto_load starts
    metrics,
    log,
    startedAt: Date.now(),
    version: packageVersion(),
    state: { ready: false, shuttingDown: false },
  };
  const app = buildApp(ctx);
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    // nothing was loaded yet: give back what start-up took, so a failed start leaves nothing behind
    await app.close().catch(() => undefined);
    await downloads.close().catch(() => undefined);
    await skills.close().catch(() => undefined);
    nodes.close();
    rmSync(socketDir, { recursive: true, force: true });
    closeQuietly(state);
    const startup = listenError(error, config.host, config.port);
    if (startup) log.error(startup.message);
    log.flush?.();
    throw startup ?? error;
  }
  let ollamaListener: OllamaListener | null = null;
  if (config.ollama.port !== null) {
    try {
      ollamaListener = await listenForOllama(app, config.host, config.ollama.port, config.request_timeout_sec * 1000);
    } catch (error) {
      // the main port serves; a taken Ollama port (Ollama itself running) is said, not fatal
      log.error(
        { port: config.ollama.port, err: reasonOf(error) },
        "the Ollama API listener (ollama.port) could not listen; /api/* is served on the main port only",
      );
    }
  }
  // only now: a start that fails should say why it failed, not warn about a server that never listened
  if (!isLoopback(config.host) && !config.admin_key) {
    log.warn({ host: config.host }, "listening beyond loopback without admin_key: anyone who can reach this port can load and unload models");
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url, models: (await inventory.list()).map((m) => m.id), state_dir: config.state_dir }, "opta-lmx listening");

  // ready once auto_load ended and every node was checked once (up or down), so /v1/models lists their models
  void Promise.all([autoLoad(ctx), nodes.start()]).finally(() => {
    ctx.state.ready = true;
  });

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      ctx.state.shuttingDown = true;
      const graceMs = config.shutdown_timeout_sec * 1000;
      scheduler.admission.rejectAll(new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 }));
      events.close();
      // stop accepting and let in-flight HTTP requests finish (bounded by the grace period), then stop runners
      const drained = Promise.all([app.close(), ollamaListener?.close()]);
      await Promise.race([drained, new Promise((r) => setTimeout(r, graceMs).unref())]);
      await scheduler.stopAll(1_000);
      await downloads.close();
      await skills.close().catch(() => undefined);
      nodes.close();
      app.server.closeAllConnections();
      rmSync(socketDir, { recursive: true, force: true });
      closeQuietly(state);
      log.info("opta-lmx stopped");
      log.flush?.();
    })();
    return closing;
  };
  const ollamaUrl = ollamaListener ? `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${ollamaListener.port}` : null;
  return { app, ctx, url, ollamaUrl, close };
}

/**
 * llama-server where a built binary exists, llama.cpp through node-llama-cpp (works everywhere from prebuilt
 * binaries), and a CPU-only llama.cpp after it where a GPU backend exists (or when configured).
 */
async function backendsFor(config: ServerConfig, warn: (message: string) => void): Promise<{ backends: Backend[]; gpuPresent: boolean }> {
  const backends: Backend[] = [new LlamaCppBackend()];
  const llamaServer = findLlamaServer(config.backends.llama_server, config.state_dir, warn);
  // the RPC build only serves models with rpc.workers, and only beside a plain llama-server (llama_server: false means none)
  if (llamaServer) backends.unshift(new LlamaServerBackend(llamaServer, findRpcLlamaServer(config.backends.llama_server_rpc, warn)));
  // the Python servers go before llama-server in the list; the configured order decides which is tried first
  const python = config.backends.python_engines === "auto" ? detectPythonEngines(platformFacts(), "when-useful") : [];
  for (const engine of python) {
    const backend = pythonEngineBackend(engine);
    if (backend) {
      backends.unshift(backend);
      warn(`${engine.name} found (${engine.note}); it is NOT VERIFIED ON REAL HARDWARE`);
    }
  }
  for (const entry of config.backends.openai_compatible) backends.unshift(commandBackend(entry));
  let gpuPresent = (llamaServer?.devices.length ?? 0) > 0;
  if (config.gpu !== "cpu") {
    const { getLlamaGpuTypes } = await import("node-llama-cpp");
    gpuPresent ||= (await getLlamaGpuTypes("supported")).some((type) => type !== false);
  }
  const cpuFallback = config.backends.cpu_fallback === true || (config.backends.cpu_fallback === "auto" && config.gpu !== "cpu" && gpuPresent);
  if (cpuFallback) backends.push(new LlamaCppBackend({ cpuOnly: true }));
  return { backends, gpuPresent };
}

async function autoLoad(ctx: GatewayContext): Promise<void> {
  for (const id of ctx.config.auto_load) {
    try {
      const model = await ctx.inventory.resolve(id);
      const unservable = ctx.scheduler.unservableReason(model);
      if (unservable) throw unservable;
      await ctx.scheduler.ensureLoaded(model);
    } catch (error) {
      // one model that fails to load must not keep the server from serving the others
      ctx.log.error({ model: id, code: (error as LmxError).code, err: (error as Error).message }, "auto_load failed");
    }
  }
}

function closeQuietly(state: { db: { close(): unknown } }): void {
  try {
    state.db.close();
  } catch {
    // closing a database on a failed volume can fail too; nothing is left to save
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
