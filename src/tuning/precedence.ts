/**
 * The one place where a runner's settings are decided at load. Each setting comes from the highest layer that
 * sets it: explicit load settings > tuned profile > preset > model entry > global defaults > built-in. The
 * answer says which layer each setting came from (`settings_source` in the load answer and the loaded view).
 */
import type { RunnerSettingsInput } from "../config/schema.js";
import type { GpuChoice, ResolvedRunnerSettings } from "../config/runner-settings.js";
import { realCoreCount } from "../util/cores.js";

/** Every setting a layer may set, by its config name. */
export const SETTING_NAMES = [
  "context_size",
  "parallel",
  "threads",
  "threads_batch",
  "batch_size",
  "ubatch_size",
  "gpu_layers",
  "flash_attention",
  "cache_type_k",
  "cache_type_v",
  "prompt_cache_mb",
  "draft_model",
  "draft_max",
  "rpc",
] as const satisfies ReadonlyArray<keyof RunnerSettingsInput>;
export type SettingName = (typeof SETTING_NAMES)[number];

/** Each setting's field in the resolved settings a runner is started with. */
export const RESOLVED_KEY: Readonly<Record<SettingName, keyof ResolvedRunnerSettings>> = {
  context_size: "contextSize",
  parallel: "parallel",
  threads: "threads",
  threads_batch: "threadsBatch",
  batch_size: "batchSize",
  ubatch_size: "ubatchSize",
  gpu_layers: "gpuLayers",
  flash_attention: "flashAttention",
  cache_type_k: "cacheTypeK",
  cache_type_v: "cacheTypeV",
  prompt_cache_mb: "promptCacheMb",
  draft_model: "draftModel",
  draft_max: "draftMax",
  rpc: "rpcWorkers",
};

/** The resolved values of the settings whose source passes `from`, with their sources (what a load overrides). */
export function pickBySource(
  resolved: ResolvedLoadSettings,
  from: (source: SettingSource) => boolean,
): { overrides: Partial<ResolvedRunnerSettings>; sources: Partial<SettingsSources> } {
  const overrides: Record<string, unknown> = {};
  const sources: Partial<SettingsSources> = {};
  for (const name of SETTING_NAMES) {
    if (!from(resolved.sources[name])) continue;
    const key = RESOLVED_KEY[name];
    overrides[key] = resolved.settings[key];
    sources[name] = resolved.sources[name];
  }
  return { overrides: overrides as Partial<ResolvedRunnerSettings>, sources };
}

/** "load" | "profile:<id>" | "preset:<name>" | "model" | "defaults" | "built-in". */
export type SettingSource = string;
export type SettingsSources = Record<SettingName, SettingSource>;

export interface SettingsLayers {
  /** What the operator sent with this load. */
  explicit?: RunnerSettingsInput;
  /** The model's current tuned profile (autotune), when profiles apply. */
  tuned?: { id: number; settings: RunnerSettingsInput } | null;
  /** The load's preset, else the model entry's. */
  preset?: { name: string; settings: RunnerSettingsInput } | null;
  model?: RunnerSettingsInput;
  defaults?: RunnerSettingsInput;
}

export interface ResolvedLoadSettings {
  settings: ResolvedRunnerSettings;
  sources: SettingsSources;
  /** The settings as chosen, by config name, before "auto" is worked out (what a profile stores). */
  chosen: RunnerSettingsInput;
}

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

export function resolveLoadSettings(layers: SettingsLayers, gpu: GpuChoice, modelBytes: number): ResolvedLoadSettings {
  const ordered: Array<[SettingSource, RunnerSettingsInput | undefined]> = [
    ["load", layers.explicit],
    [layers.tuned ? `profile:${layers.tuned.id}` : "profile", layers.tuned?.settings],
    [layers.preset ? `preset:${layers.preset.name}` : "preset", layers.preset?.settings],
    ["model", layers.model],
    ["defaults", layers.defaults],
  ];
  const sources = {} as SettingsSources;
  const chosen: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    sources[name] = "built-in";
    for (const [source, layer] of ordered) {
      const value = layer?.[name];
      if (value === undefined) continue;
      sources[name] = source;
      chosen[name] = value;
      break;
    }
  }
  const c = chosen as RunnerSettingsInput;
  const threads = c.threads === undefined || c.threads === "auto" ? autoThreads(modelBytes) : c.threads;
  return {
    sources,
    chosen: c,
    settings: {
      contextSize: c.context_size ?? null,
      parallel: c.parallel ?? BUILT_IN.parallel,
      threads,
      batchSize: c.batch_size ?? BUILT_IN.batchSize,
      gpuLayers: c.gpu_layers ?? BUILT_IN.gpuLayers,
      flashAttention: c.flash_attention ?? BUILT_IN.flashAttention,
      gpu,
      draftModel: c.draft_model ?? null,
      draftMax: c.draft_max ?? null,
      threadsBatch: c.threads_batch === undefined || c.threads_batch === "auto" ? null : c.threads_batch,
      ubatchSize: c.ubatch_size === undefined || c.ubatch_size === "auto" ? null : c.ubatch_size,
      cacheTypeK: c.cache_type_k ?? "f16",
      cacheTypeV: c.cache_type_v ?? "f16",
      promptCacheMb: c.prompt_cache_mb ?? 0,
      rpcWorkers: c.rpc?.workers ?? [],
    },
  };
}
