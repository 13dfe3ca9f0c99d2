/**
 * Runner settings after defaults are applied: what a runner is started with. Resolved from the config by the
 * inventory, changed by admin loads, read by every engine; kept here so that none of those imports another's types.
 */
export type GpuChoice = "auto" | "cuda" | "metal" | "vulkan" | "cpu";

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
  /** llama.cpp rpc-server workers ("host:port") that hold this model's layers; empty: all on this machine. */
  rpcWorkers: string[];
}
