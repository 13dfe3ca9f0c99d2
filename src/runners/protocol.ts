/**
 * What the gateway and a runner process say to each other.
 * Control (load, ready, shutdown) goes over the IPC channel of the child process;
 * requests go over HTTP on a Unix socket so the gateway stays the only network listener.
 */
import type { ErrorCode } from "../errors/codes.js";
import type { ModelType } from "../config/schema.js";

export type GpuChoice = "auto" | "cuda" | "metal" | "vulkan" | "cpu";

/** Settings after defaults are applied: what a runner is actually started with. */
export interface ResolvedRunnerSettings {
  contextSize: number | null;
  parallel: number;
  threads: number;
  batchSize: number;
  gpuLayers: "auto" | "max" | number;
  flashAttention: boolean;
  gpu: GpuChoice;
}

export interface RunnerInitMessage {
  type: "init";
  modelId: string;
  modelPath: string;
  modelType: ModelType;
  settings: ResolvedRunnerSettings;
  socketPath: string;
  logLevel: string;
}

export interface RunnerShutdownMessage {
  type: "shutdown";
  /** In-flight requests get this long to finish before they are aborted. */
  graceMs: number;
}

export type GatewayToRunner = RunnerInitMessage | RunnerShutdownMessage;

export interface RunnerInfo {
  pid: number;
  backend: string;
  backendVersion: string;
  gpu: string | false;
  contextSize: number;
  trainContextSize: number;
  parallel: number;
  threads: number;
  batchSize: number;
  gpuLayers: number;
  chatWrapper: string | null;
  embeddingSize: number | null;
  memory: { modelRam: number; modelVram: number; contextRam: number; contextVram: number };
  loadMs: number;
}

export interface RunnerReadyMessage {
  type: "ready";
  info: RunnerInfo;
}

export interface RunnerLoadFailedMessage {
  type: "load_failed";
  code: ErrorCode;
  message: string;
}

export type RunnerToGateway = RunnerReadyMessage | RunnerLoadFailedMessage;

/** Counters a runner reports on `GET /stats`: enough to show batching and prefix reuse happen. */
export interface RunnerStats {
  requestsServed: number;
  requestsActive: number;
  decodeCalls: number;
  promptTokensEvaluated: number;
  promptTokensCached: number;
  generatedTokens: number;
  slotsBusy: number;
  slotsTotal: number;
}

export const RUNNER_REQUEST_ID_HEADER = "x-lmx-request-id";
