/**
 * What the gateway and a runner process say to each other.
 * Control (load, ready, shutdown) goes over the IPC channel of the child process;
 * requests go over HTTP on a Unix socket so the gateway stays the only network listener.
 */
import type { ErrorCode } from "../errors/codes.js";
import type { ModelType } from "../config/schema.js";
import type { ResolvedRunnerSettings } from "../config/runner-settings.js";

// the settings types live with the config they are resolved from; runners and the gateway both use them
export type { GpuChoice, ResolvedRunnerSettings } from "../config/runner-settings.js";
import type { ChildServerSpec } from "../engines/child-server/recipe.js";
import type { TemplateInfo } from "../chat/types.js";

/**
 * What a runner process drives: llama.cpp inside it through node-llama-cpp (prebuilt binaries, works everywhere),
 * or a supervised child server by recipe (llama.cpp's own llama-server today: built from source where a
 * compiler exists; faster under load).
 */
export type RunnerEngine = { kind: "node-llama-cpp" } | ChildServerSpec;

export interface RunnerInitMessage {
  type: "init";
  engine: RunnerEngine;
  modelId: string;
  /** Which backend started this runner (fault injection and logs key on it). */
  backend: string;
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

/** The gateway's answer to an estimate: the load may go on (anything else ends the runner). */
export interface RunnerAdmitMessage {
  type: "admit";
}

export type GatewayToRunner = RunnerInitMessage | RunnerShutdownMessage | RunnerAdmitMessage;

/** What a load will take, from llama.cpp's own estimators, before any weights are read. */
export interface MemoryEstimate {
  ram: number;
  vram: number;
  modelRam: number;
  contextRam: number;
  modelVram: number;
  contextVram: number;
}

export interface RunnerEstimateMessage {
  type: "estimate";
  estimate: MemoryEstimate;
}

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
  /** What the chat layer renders prompts with (the GGUF's template, BOS/EOS text, whether BOS is added). */
  template: TemplateInfo;
  embeddingSize: number | null;
  /** The generation (or embedding) that ran after load, before the runner was declared ready. */
  canary: { tokens: number; ms: number; tokensPerSec: number };
  /** Measured after load (llama.cpp's own accounting of what it allocated). */
  memory: { modelRam: number; modelVram: number; contextRam: number; contextVram: number };
  estimate: MemoryEstimate;
  loadMs: number;
  /** Engine-specific facts (a child server's recipe and pid...), shown in admin views as they are. */
  details?: Record<string, unknown>;
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

export type RunnerToGateway = RunnerReadyMessage | RunnerLoadFailedMessage | RunnerEstimateMessage;

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
  /** Requests inside the runner waiting for a sequence (the gateway admitted them before one was free). */
  requestsWaiting: number;
  /** Resident memory of the runner process as the OS sees it. */
  rssBytes: number;
}

export const RUNNER_REQUEST_ID_HEADER = "x-lmx-request-id";
/** The request's priority class (interactive, normal, batch); engines that schedule by priority read it. */
export const RUNNER_PRIORITY_HEADER = "x-lmx-priority";
