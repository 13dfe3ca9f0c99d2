import type { RunnerSettingsInput } from "../config/schema.js";
import type { GpuChoice, ResolvedRunnerSettings } from "../config/runner-settings.js";
import { realCoreCount } from "../util/cores.js";

const BUILT_IN = { parallel: 4, batchSize: 512, gpuLayers: "auto", flashAttention: "auto" } as const;
/**
 * Below this size a model's matrices are so small that thread synchronisation dominates: measured on
 * stories260K (2 cores), 1 thread gave ~1,600 tok/s and 2 threads ~80. Such models get one thread.
 */
const SMALL_MODEL_BYTES = 64 * 1024 * 1024;

export function autoThreads(modelBytes: number, cores = realCoreCount()): number {
  if (modelBytes < SMALL_MODEL_BYTES) return 1;
  return Math.max(1, cores);
}

/** Per-model settings win over server defaults, which win over built-in defaults. */
export function resolveRunnerSettings(
  model: RunnerSettingsInput,
  defaults: RunnerSettingsInput,
  gpu: GpuChoice,
  modelBytes: number,
): ResolvedRunnerSettings {
  const pick = <K extends keyof RunnerSettingsInput>(key: K): RunnerSettingsInput[K] => model[key] ?? defaults[key];
  const threads = pick("threads");
  return {
    contextSize: pick("context_size") ?? null,
    parallel: pick("parallel") ?? BUILT_IN.parallel,
    threads: threads === undefined || threads === "auto" ? autoThreads(modelBytes) : threads,
    batchSize: pick("batch_size") ?? BUILT_IN.batchSize,
    gpuLayers: pick("gpu_layers") ?? BUILT_IN.gpuLayers,
    flashAttention: pick("flash_attention") ?? BUILT_IN.flashAttention,
    gpu,
    draftModel: pick("draft_model") ?? null,
    draftMax: pick("draft_max") ?? null,
    rpcWorkers: pick("rpc")?.workers ?? [],
  };
}
