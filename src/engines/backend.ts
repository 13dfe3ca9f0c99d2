/**
 * What the gateway needs from an engine: start a runner for a model and get back a handle that speaks
 * OpenAI-shaped HTTP. llama.cpp runs inside our own runner process (node-llama-cpp) or as a supervised child
 * server by recipe (llama-server; MLX and vLLM servers are further recipes, src/engines/child-server); a remote
 * server would be a handle with no local process. Routes and the scheduler never know which engine serves.
 */
import type { Dispatcher } from "undici";
import type { ModelDescriptor } from "../inventory/types.js";
import type { LmxError } from "../errors/codes.js";
import type { DirectRoute } from "./child-server/direct.js";
import type { MemoryEstimate, RunnerInfo, RunnerStats } from "../runner/protocol.js";

export interface RunnerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why it ended: a planned stop, or the error code a crash is classified as. */
  reason: "stopped" | LmxError;
  stderrTail: string[];
}

export interface RunnerHandle {
  /** The local process, if any: a handle on a remote server has none. */
  readonly pid: number | null;
  readonly info: RunnerInfo;
  readonly dispatcher: Dispatcher;
  /** A child server the gateway reaches past the runner process, for generation requests; null otherwise. */
  readonly direct: DirectRoute | null;
  readonly startedAt: number;
  readonly exit: RunnerExit | null;
  /** Resolves when the process is gone, however it ended. */
  readonly exited: Promise<RunnerExit>;
  stats(): Promise<RunnerStats | null>;
  /**
   * Why a connection to this runner broke, where its own exit cannot say (a remote server has no local
   * process to wait for); absent: the relay waits briefly for the process's exit and reads it.
   */
  brokenError?(cause: unknown): LmxError;
  /** Drain in-flight requests for up to `graceMs`, then end the process. */
  stop(graceMs: number): Promise<void>;
}

export interface StartOptions {
  loaderTimeoutMs: number;
  healthIntervalMs: number;
  logLevel: string;
  socketDir: string;
  /** Send generation requests straight to a child server's socket (the runner only supervises it). */
  directToChild?: boolean;
  log: (level: "debug" | "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
  /**
   * Called with the load's memory estimate before any weights are read; throwing refuses the load. Optional
   * for an engine: one that cannot estimate (a remote server) never calls it.
   */
  admit?: (estimate: MemoryEstimate) => Promise<void>;
}

export interface Backend {
  readonly name: string;
  /** Part of the compatibility key: a new version is a fresh chance for quarantined models. */
  readonly version: string;
  /** The backend decides what it can open (format, type, platform); the inventory only reports files and facts. */
  canServe(model: ModelDescriptor): boolean;
  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle>;
}
