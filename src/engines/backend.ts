/**
 * What the gateway needs from an engine: start a runner for a model and get back a handle that speaks
 * OpenAI-shaped HTTP. llama.cpp runs as our own runner process; MLX, vLLM and llama-server will be
 * child servers behind the same handle, so routes and the scheduler never know which engine serves.
 */
import type { Dispatcher } from "undici";
import type { ModelDescriptor } from "../inventory/types.js";
import type { LmxError } from "../errors/codes.js";
import type { MemoryEstimate, RunnerInfo, RunnerStats } from "../runners/protocol.js";

export interface RunnerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why it ended: a planned stop, or the error code a crash is classified as. */
  reason: "stopped" | LmxError;
  stderrTail: string[];
}

export interface RunnerHandle {
  readonly pid: number;
  readonly info: RunnerInfo;
  readonly dispatcher: Dispatcher;
  readonly startedAt: number;
  readonly exit: RunnerExit | null;
  /** Resolves when the process is gone, however it ended. */
  readonly exited: Promise<RunnerExit>;
  stats(): Promise<RunnerStats | null>;
  /** Drain in-flight requests for up to `graceMs`, then end the process. */
  stop(graceMs: number): Promise<void>;
}

export interface StartOptions {
  loaderTimeoutMs: number;
  healthIntervalMs: number;
  logLevel: string;
  socketDir: string;
  log: (level: "debug" | "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
  /** Called with the load's memory estimate before any weights are read; throwing refuses the load. */
  admit?: (estimate: MemoryEstimate) => Promise<void>;
}

export interface Backend {
  readonly name: string;
  /** Part of the compatibility key: a new version is a fresh chance for quarantined models. */
  readonly version: string;
  canServe(model: ModelDescriptor): boolean;
  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle>;
}
