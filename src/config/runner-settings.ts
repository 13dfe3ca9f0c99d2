/**
 * Runner settings after defaults are applied: what a runner is started with. Resolved from the config by the
 * inventory, changed by admin loads, read by every engine; kept here so that none of those imports another's types.
 */
export type GpuChoice = "auto" | "cuda" | "metal" | "vulkan" | "cpu";
export type KvCacheType = "f16" | "q8_0" | "q4_0";

/** Settings after defaults are applied: what a runner is actually started with. */
export interface ResolvedRunnerSettings {
  contextSize: number | null;
  parallel: number;
  threads: number;
  batchSize: number;
  gpuLayers: "auto" | "max" | number;
  flashAttention: "auto" | boolean;
  gpu: GpuChoice;
  /** Speculative decoding's draft model (llama-server engine only), and tokens drafted per step. */
  draftModel: string | null;
  draftMax: number | null;
  /** Prompt-processing threads and physical batch (llama-server engine); null: the same as threads / batchSize. */
  threadsBatch: number | null;
  ubatchSize: number | null;
  /** KV-cache element types (llama-server engine). */
  cacheTypeK: KvCacheType;
  cacheTypeV: KvCacheType;
  /** llama-server's prompt cache outside the KV cache, MiB (0: none). */
  promptCacheMb: number;
  /** llama.cpp rpc-server workers ("host:port") that hold this model's layers; empty: all on this machine. */
  rpcWorkers: string[];
}
