/**
 * What autotune may change, per backend, declared once: each setting's range, what it costs in memory, and
 * the values a search tries on this machine. Threads never go above the cores this process may really use
 * (affinity and cgroup quota, src/util/cores.ts): more threads than cores only contend, the known trap.
 */
import type { RunnerSettingsInput } from "../config/schema.js";
import type { ResolvedRunnerSettings } from "../config/runner-settings.js";
import type { SettingName } from "./precedence.js";

export interface TuneContext {
  /** Cores this process may use. */
  cores: number;
  /** Whether layers can go to a GPU here. */
  gpu: boolean;
  /** The most streams the workload runs at once. */
  concurrency: number;
  /** The settings the model loads with today (the search's starting point). */
  base: ResolvedRunnerSettings;
}

/** One axis of the search: a setting, or settings that only make sense together (a quantized V cache needs flash attention). */
export interface Tunable {
  name: string;
  settings: readonly SettingName[];
  range: string;
  memory: string;
  /** Values the search tries here; [] when this axis is not searched on this machine. */
  values(ctx: TuneContext): RunnerSettingsInput[];
}

const uniqueSorted = (values: number[]) => [...new Set(values)].sort((a, b) => a - b);

/** Thread counts worth trying: 1, half the cores, all of them; never more than the cores. */
export function threadCandidates(cores: number): number[] {
  const n = Math.max(1, Math.floor(cores));
  return uniqueSorted([1, Math.max(1, Math.ceil(n / 2)), n]).filter((t) => t <= n);
}

const threads: Tunable = {
  name: "threads",
  settings: ["threads"],
  range: "1 … cores",
  memory: "none",
  values: (ctx) => threadCandidates(ctx.cores).map((t) => ({ threads: t })),
};

const threadsBatch: Tunable = {
  name: "threads_batch",
  settings: ["threads_batch"],
  range: "1 … cores (prompt processing)",
  memory: "none",
  values: (ctx) => threadCandidates(ctx.cores).map((t) => ({ threads_batch: t })),
};

const parallel: Tunable = {
  name: "parallel",
  settings: ["parallel"],
  range: "1 … 256 slots",
  memory: "one context's KV cache per slot",
  values: (ctx) =>
    uniqueSorted([Math.max(1, Math.ceil(ctx.concurrency / 2)), ctx.concurrency, Math.min(256, ctx.concurrency * 2)]).map((p) => ({ parallel: p })),
};

const batch: Tunable = {
  name: "batch",
  settings: ["batch_size", "ubatch_size"],
  range: "batch 32 … 8192, ubatch ≤ batch",
  memory: "compute buffers grow with ubatch",
  values: () => [
    { batch_size: 256, ubatch_size: 256 },
    { batch_size: 512, ubatch_size: 512 },
    { batch_size: 2048, ubatch_size: 512 },
  ],
};

const flashAttention: Tunable = {
  name: "flash_attention",
  settings: ["flash_attention"],
  range: "auto | on | off",
  memory: "on: smaller attention buffers",
  values: () => [{ flash_attention: true }, { flash_attention: false }],
};

const kvCache: Tunable = {
  name: "kv_cache",
  settings: ["cache_type_k", "cache_type_v", "flash_attention"],
  range: "f16 | q8_0 | q4_0 for K and V (a quantized V needs flash attention)",
  memory: "KV cache × 1 (f16), × 0.53 (q8_0), × 0.28 (q4_0)",
  values: () => [
    { cache_type_k: "q8_0", cache_type_v: "q8_0", flash_attention: true },
    { cache_type_k: "q4_0", cache_type_v: "q4_0", flash_attention: true },
  ],
};

const gpuLayers: Tunable = {
  name: "gpu_layers",
  settings: ["gpu_layers"],
  range: "0 … all layers",
  memory: "weights and KV of offloaded layers move to VRAM",
  values: (ctx) => (ctx.gpu ? [{ gpu_layers: "max" }, { gpu_layers: 0 }] : []),
};

const contextSize: Tunable = {
  name: "context_size",
  settings: ["context_size"],
  range: "tokens per slot, up to the model's training context",
  memory: "KV cache grows linearly",
  // the workload decides how much context a request needs: not searched, declared so presets and loads can set it
  values: () => [],
};

const draft: Tunable = {
  name: "draft",
  settings: ["draft_model", "draft_max"],
  range: "a same-vocabulary GGUF; 1 … 64 tokens per step",
  memory: "the draft model's weights and its own KV cache",
  // drafting pays off per model pair: searched over draft_max only when the model already has a draft model
  values: (ctx) => (ctx.base.draftModel ? [{ draft_max: 2 }, { draft_max: 4 }, { draft_max: 8 }] : []),
};

const promptCache: Tunable = {
  name: "prompt_cache",
  settings: ["prompt_cache_mb"],
  range: "0 … MiB (llama-server --cache-ram)",
  memory: "exactly that much RAM, budgeted",
  // only multi-turn work returns to an evicted prefix; a single-turn workload cannot tell the difference
  values: () => [],
};

/** Per backend name: what it exposes. llama-server reads them all; node-llama-cpp has no KV types, prompt cache or draft. */
export const TUNABLES: Readonly<Record<string, readonly Tunable[]>> = {
  // in the order a short budget should try them: what usually matters most first
  "llama-server": [parallel, threads, kvCache, gpuLayers, flashAttention, batch, threadsBatch, draft, contextSize, promptCache],
  "llama.cpp": [
    parallel,
    threads,
    { ...batch, values: () => [{ batch_size: 256 }, { batch_size: 512 }, { batch_size: 2048 }] },
    flashAttention,
    gpuLayers,
    contextSize,
  ],
  "llama.cpp-cpu": [
    parallel,
    threads,
    { ...batch, values: () => [{ batch_size: 256 }, { batch_size: 512 }, { batch_size: 2048 }] },
    flashAttention,
    contextSize,
  ],
};

export function tunablesFor(backend: string): readonly Tunable[] {
  return TUNABLES[backend] ?? [threads, parallel];
}

/** A candidate's threads (and prompt threads) held to the cores, whatever the base or an operator asked for. */
export function clampThreads(settings: RunnerSettingsInput, cores: number): RunnerSettingsInput {
  const out = { ...settings };
  const limit = Math.max(1, Math.floor(cores));
  if (typeof out.threads === "number" && out.threads > limit) out.threads = limit;
  if (typeof out.threads_batch === "number" && out.threads_batch > limit) out.threads_batch = limit;
  return out;
}
