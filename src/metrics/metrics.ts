/**
 * The server's Prometheus metrics: one registry per gateway, named after vLLM's (`vllm:` → `lmx:`) so
 * dashboards and habits carry over. Request metrics are recorded as requests pass (see RequestRecorder);
 * queue, memory, runner and disk state is read from its owners when Prometheus scrapes, so nothing here can
 * drift from what /admin/status shows.
 */
import { statfs } from "node:fs/promises";
import path from "node:path";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DownloadManager } from "../inventory/downloads/download-manager.js";
import type { RunnerStats } from "../runner/protocol.js";
import type { AdmissionQueue, AdmittedEvent } from "../scheduler/admission.js";
import { PRIORITIES } from "../scheduler/priority.js";
import type { MemoryBudget } from "../scheduler/memory-budget.js";
import type { ModelLoadEvent, ModelUnloadEvent } from "../scheduler/scheduler.js";
import { RequestRecorder } from "./request.js";

/** The part of the ModelManager metrics use. */
export interface MetricsModelSource {
  on(event: "load", listener: (event: ModelLoadEvent) => void): unknown;
  on(event: "unload", listener: (event: ModelUnloadEvent) => void): unknown;
  loaded(): ReadonlyArray<{ id: string }>;
  runnerFor(id: string): { stats(): Promise<RunnerStats | null> } | null;
}

/** What the scrape-time metrics are read from; narrow so tests can pass stand-ins. */
export interface MetricsSources {
  /** The Scheduler. */
  models: MetricsModelSource;
  admission: Pick<AdmissionQueue, "snapshot"> & { on(event: "admitted", listener: (event: AdmittedEvent) => void): unknown };
  memory: Pick<MemoryBudget, "snapshot">;
  downloads: Pick<DownloadManager, "list">;
  /** Folders whose volume's free space is exported as lmx:disk_free_bytes{path} (state dir, model dirs, download cache). */
  diskPaths: readonly string[];
  /** Models refused after repeated failed loads; lmx:quarantined_models is 0 without it. */
  quarantinedModels?: () => number;
  /** Remote nodes (src/nodes/) for lmx:node_up and lmx:node_requests_in_flight; none without it. */
  nodes?: () => ReadonlyArray<{ name: string; up: boolean | null; inFlight: number }>;
}

// vLLM's buckets, extended below 10 ms: a small model on a CPU answers faster than vLLM's GPUs ever wait.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640];
const ITL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 20];
const E2E_BUCKETS = [0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920];
const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
const SKILL_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const LOAD_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

/** Runner stats are fetched once per scrape, however many gauges read them. */
const RUNNER_STATS_TTL_MS = 1_000;

let processRegistry: Registry | null = null;

/**
 * Process metrics (CPU, memory, event loop lag, GC) once per process: prom-client's collectors start monitors
 * that are never stopped, and a process running several gateways (the tests) must not stack them up.
 */
function defaultMetricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: "lmx_" });
  }
  return processRegistry;
}

export class LmxMetrics {
  /** Everything /metrics serves: the lmx: metrics and the lmx_ process metrics. */
  readonly registry: Registry;

  readonly timeToFirstToken: Histogram<"model">;
  readonly interTokenLatency: Histogram<"model">;
  readonly e2eLatency: Histogram<"model">;
  readonly queueTime: Histogram<"model">;
  readonly promptTokens: Counter<"model">;
  readonly generationTokens: Counter<"model">;
  readonly prefixCacheHitTokens: Counter<"model">;
  readonly requests: Counter<"model" | "status" | "code">;
  readonly modelLoads: Counter<"model" | "outcome" | "code">;
  readonly modelUnloads: Counter<"model" | "reason">;
  readonly modelLoadDuration: Histogram<"model" | "outcome">;
  readonly streamWriteTimeouts: Counter<"model">;
  readonly toolCalls: Counter<"model" | "family" | "outcome">;
  readonly structuredOutputs: Counter<"model" | "outcome">;
  readonly skillExecutions: Counter<"skill" | "outcome">;
  readonly skillDuration: Histogram<"skill" | "outcome">;
  readonly nodeRequests: Counter<"node" | "outcome">;
  readonly nodeFailures: Counter<"node" | "kind">;

  private runnerStatsCache: { at: number; stats: Promise<Map<string, RunnerStats>> } | null = null;
  /** bytesDone last seen per download job, for lmx:download_bytes_total. */
  private readonly downloadSeen = new Map<string, number>();

  constructor(private readonly sources: MetricsSources) {
    const own = new Registry();
    const registers = [own];
    const histogram = <L extends string>(name: string, help: string, labelNames: L[], buckets: number[]) =>
      new Histogram<L>({ name, help, labelNames, buckets, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) => new Counter<L>({ name, help, labelNames, registers });

    this.timeToFirstToken = histogram(
      "lmx:time_to_first_token_seconds",
      "Streamed requests: time from arrival at the gateway (queue and load included) to the first generated token reaching it.",
      ["model"],
      TTFT_BUCKETS,
    );
    this.interTokenLatency = histogram(
      "lmx:inter_token_latency_seconds",
      "Streamed requests: time between generated tokens reaching the gateway (tokens arriving together share the gap).",
      ["model"],
      ITL_BUCKETS,
    );
    this.e2eLatency = histogram(
      "lmx:e2e_request_latency_seconds",
      "Requests answered completely: time from arrival to the last byte.",
      ["model"],
      E2E_BUCKETS,
    );
    this.queueTime = histogram(
      "lmx:request_queue_time_seconds",
      "Time requests waited in the admission queue for a free sequence.",
      ["model"],
      QUEUE_BUCKETS,
    );
    this.promptTokens = counter("lmx:prompt_tokens_total", "Prompt tokens of answered requests (reused from the KV cache or evaluated).", ["model"]);
    this.generationTokens = counter("lmx:generation_tokens_total", "Generated tokens.", ["model"]);
    this.prefixCacheHitTokens = counter("lmx:prefix_cache_hit_tokens_total", "Prompt tokens reused from a runner's KV cache instead of evaluated.", [
      "model",
    ]);
    this.requests = counter(
      "lmx:requests_total",
      'Requests to /v1/chat/completions, /v1/completions and /v1/embeddings by outcome: HTTP status and error code ("" for success; a stream that failed after its 200 counts with its error\'s status; 499 = the client left).',
      ["model", "status", "code"],
    );
    this.modelLoads = counter("lmx:model_loads_total", 'Model load attempts by outcome and error code ("" for success).', [
      "model",
      "outcome",
      "code",
    ]);
    this.modelUnloads = counter(
      "lmx:model_unloads_total",
      "Runners ended: planned unloads (requested, idle past keep_alive, eviction...) and deaths (model_crashed...).",
      ["model", "reason"],
    );
    this.streamWriteTimeouts = counter(
      "lmx:stream_write_timeouts_total",
      "Answers cut because the client left written bytes unread for stream_write_timeout_sec (its sequence was freed).",
      ["model"],
    );
    this.toolCalls = counter(
      "lmx:tool_calls_total",
      "Answers to requests with tools, by how tool calling went: forced (the grammar wrote the call), parsed (the model wrote a call that parsed), fell_back (call markup that did not parse, returned as content), none (no call).",
      ["model", "family", "outcome"],
    );
    this.structuredOutputs = counter(
      "lmx:structured_outputs_total",
      "Answers with response_format json_object/json_schema, by whether the text parsed and validated (invalid: cut by max_tokens).",
      ["model", "outcome"],
    );
    this.modelLoadDuration = histogram("lmx:model_load_duration_seconds", "Time model loads took, by outcome.", ["model", "outcome"], LOAD_BUCKETS);

    this.scrapeGauges(registers);
    const downloadBytes = new Counter({
      name: "lmx:download_bytes_total",
      help: "Bytes written by model downloads (counted from job progress when scraped).",
      registers,
      collect: () => {
        const delta = this.downloadDelta();
        if (delta > 0) downloadBytes.inc(delta);
      },
    });

    this.skillExecutions = counter(
      "lmx:skill_executions_total",
      "Skill executions by skill and outcome (ok, error, timeout, invalid, forbidden, aborted); unknown names are not counted.",
      ["skill", "outcome"],
    );
    this.skillDuration = histogram(
      "lmx:skill_execution_duration_seconds",
      "Time skills took, validation to result, by skill and outcome.",
      ["skill", "outcome"],
      SKILL_BUCKETS,
    );

    this.nodeRequests = counter(
      "lmx:node_requests_total",
      "Requests relayed to remote nodes, by node and outcome (answered, failed after the answer started, refused by the node, unreachable, client_left).",
      ["node", "outcome"],
    );
    this.nodeFailures = counter(
      "lmx:node_failures_total",
      "Health checks and relayed requests that could not reach a node, by kind (refused, timeout, unreachable, reset, auth, http, bad_answer).",
      ["node", "kind"],
    );
    const nodes = sources.nodes;
    if (nodes) {
      // series that exist from the start, so rate() and increase() see a node's first answer and first failure
      for (const node of nodes()) for (const outcome of ["answered", "unreachable"]) this.nodeRequests.inc({ node: node.name, outcome }, 0);
      new Gauge({
        name: "lmx:node_up",
        help: "1 when the remote node's last health check (or relayed request) reached it, 0 when not; absent before its first check.",
        labelNames: ["node"],
        registers,
        collect() {
          this.reset();
          for (const node of nodes()) if (node.up !== null) this.set({ node: node.name }, node.up ? 1 : 0);
        },
      });
      new Gauge({
        name: "lmx:node_requests_in_flight",
        help: "Requests this gateway is relaying to each remote node now.",
        labelNames: ["node"],
        registers,
        collect() {
          this.reset();
          for (const node of nodes()) this.set({ node: node.name }, node.inFlight);
        },
      });
    }

    sources.models.on("load", (event: ModelLoadEvent) => {
      this.modelLoads.inc({ model: event.model, outcome: event.outcome, code: event.code ?? "" });
      this.modelLoadDuration.observe({ model: event.model, outcome: event.outcome }, event.durationMs / 1000);
      // A counter series that first appears at 1 hides that increment from rate()/increase(): start the
      // crash counter of every model that runs at 0, so the crash-loop alert sees the first crash too.
      if (event.outcome === "success") this.modelUnloads.inc({ model: event.model, reason: "model_crashed" }, 0);
    });
    sources.models.on("unload", (event: ModelUnloadEvent) => {
      this.modelUnloads.inc({ model: event.model, reason: event.reason });
    });
    const admitted = counter("lmx:requests_admitted_total", "Requests granted a sequence, by priority class.", ["priority"]);
    const classWait = histogram("lmx:queue_wait_seconds", "Time requests waited for a sequence, by priority class.", ["priority"], QUEUE_BUCKETS);
    for (const priority of PRIORITIES) {
      // every class's series exists from the start, so rate() sees the first admission too
      admitted.inc({ priority }, 0);
    }
    sources.admission.on("admitted", (event: AdmittedEvent) => {
      admitted.inc({ priority: event.priority });
      classWait.observe({ priority: event.priority }, event.waitedMs / 1000);
    });

    this.registry = Registry.merge([defaultMetricsRegistry(), own]);
  }

  /** Starts the record of one generation request; `arrivalMs` is its arrival on performance.now()'s clock. */
  startRequest(arrivalMs: number): RequestRecorder {
    return new RequestRecorder(this, arrivalMs);
  }

  /** The Prometheus text exposition of every metric, collected now. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private scrapeGauges(registers: Registry[]): void {
    const sources = this.sources;
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], collect: (g: Gauge<L>) => void | Promise<void>) => {
      const g: Gauge<L> = new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          // models come and go: series of unloaded models must disappear, not freeze at their last value
          g.reset();
          return collect(g);
        },
      });
      return g;
    };
    const queue = (field: "running" | "waiting") => (g: Gauge<"model">) => {
      const perModel = sources.admission.snapshot().per_model;
      // loaded models report 0 rather than no series, so graphs and alerts see an idle queue as idle
      for (const view of sources.models.loaded()) g.set({ model: view.id }, 0);
      for (const [model, counts] of Object.entries(perModel)) g.set({ model }, counts[field]);
    };
    gauge("lmx:num_requests_running", "Requests holding a sequence of a model's runner.", ["model"], queue("running"));
    gauge("lmx:num_requests_waiting", "Requests waiting in the admission queue for a model.", ["model"], queue("waiting"));
    gauge("lmx:num_requests_waiting_by_priority", "Requests waiting in the admission queue, by priority class.", ["priority"], (g) => {
      for (const [priority, counts] of Object.entries(sources.admission.snapshot().per_priority)) g.set({ priority }, counts.waiting);
    });
    gauge("lmx:memory_budget_bytes", "Memory that loaded models may use (memory.max_percent or memory.budget_bytes).", [], (g) => {
      g.set(sources.memory.snapshot().budget_bytes);
    });
    gauge("lmx:memory_used_bytes", "Memory reserved by loaded and loading models against the budget (estimates, then measured).", [], (g) => {
      g.set(sources.memory.snapshot().used_bytes);
    });
    // one series per GPU nvidia-smi listed at start; none on a machine without GPU budget
    gauge(
      "lmx:gpu_memory_budget_bytes",
      "Memory of each GPU that loaded models may use (memory.gpu_max_percent or gpu_budget_bytes).",
      ["gpu"],
      (g) => {
        for (const gpu of sources.memory.snapshot().gpus) g.set({ gpu: String(gpu.index) }, gpu.budget_bytes);
      },
    );
    gauge(
      "lmx:gpu_memory_used_bytes",
      "GPU memory reserved by loaded and loading models (estimate plus memory.gpu_runner_overhead_mb).",
      ["gpu"],
      (g) => {
        for (const gpu of sources.memory.snapshot().gpus) g.set({ gpu: String(gpu.index) }, gpu.used_bytes);
      },
    );
    gauge("lmx:models_loaded", "Models with a running runner.", [], (g) => {
      g.set(sources.models.loaded().length);
    });
    gauge("lmx:quarantined_models", "Models whose loads are refused after repeated failures.", [], (g) => {
      g.set(sources.quarantinedModels?.() ?? 0);
    });
    const fromRunners = (read: (stats: RunnerStats) => number) => async (g: Gauge<"model">) => {
      for (const [model, stats] of await this.runnerStats()) g.set({ model }, read(stats));
    };
    gauge(
      "lmx:runner_rss_bytes",
      "Resident memory of each runner process.",
      ["model"],
      fromRunners((s) => s.rssBytes),
    );
    gauge(
      "lmx:kv_cache_slots_in_use",
      "Sequences (KV cache slots) of each runner that hold a running request.",
      ["model"],
      fromRunners((s) => s.slotsBusy),
    );
    // not "_total": that suffix promises a counter, and rate() over a gauge named so would mislead
    gauge(
      "lmx:kv_cache_slots",
      "Sequences (KV cache slots) of each runner: its parallel setting.",
      ["model"],
      fromRunners((s) => s.slotsTotal),
    );
    gauge(
      "lmx:runner_requests_waiting",
      "Requests inside each runner waiting for a free sequence.",
      ["model"],
      fromRunners((s) => s.requestsWaiting),
    );
    const disks = async (g: Gauge<"path">, read: (s: { bavail: number; blocks: number; bsize: number }) => number) => {
      const paths = [...new Set(sources.diskPaths.map((p) => path.resolve(p)))];
      await Promise.all(
        paths.map(async (p) => {
          try {
            g.set({ path: p }, read(await statfs(p)));
          } catch {
            // a model folder that does not exist (yet) has no volume to report
          }
        }),
      );
    };
    gauge("lmx:disk_free_bytes", "Free space available to the server on the volume of each state, model and download folder.", ["path"], (g) =>
      disks(g, (s) => s.bavail * s.bsize),
    );
    gauge("lmx:disk_total_bytes", "Size of the volume of each state, model and download folder.", ["path"], (g) =>
      disks(g, (s) => s.blocks * s.bsize),
    );
  }

  private runnerStats(): Promise<Map<string, RunnerStats>> {
    const now = Date.now();
    if (this.runnerStatsCache && now - this.runnerStatsCache.at < RUNNER_STATS_TTL_MS) return this.runnerStatsCache.stats;
    const stats = (async () => {
      const ids = this.sources.models.loaded().map((view) => view.id);
      // a runner that does not answer (busy, dying) is left out of this scrape; its stats() has its own timeout
      const answers = await Promise.all(ids.map(async (id) => [id, await this.sources.models.runnerFor(id)?.stats()] as const));
      const byModel = new Map<string, RunnerStats>();
      for (const [id, answer] of answers) if (answer) byModel.set(id, answer);
      return byModel;
    })();
    this.runnerStatsCache = { at: now, stats };
    return stats;
  }

  /** Bytes the download jobs wrote since the last scrape; a job's first sighting counts all it has. */
  private downloadDelta(): number {
    let delta = 0;
    const live = new Set<string>();
    for (const job of this.sources.downloads.list()) {
      const { id, bytesDone } = job.snapshot();
      live.add(id);
      const before = this.downloadSeen.get(id) ?? 0;
      // bytesDone drops when a file failed its checksum and starts over: those bytes are written again, and counted again
      if (bytesDone > before) delta += bytesDone - before;
      this.downloadSeen.set(id, bytesDone);
    }
    for (const id of this.downloadSeen.keys()) if (!live.has(id)) this.downloadSeen.delete(id);
    return delta;
  }
}
