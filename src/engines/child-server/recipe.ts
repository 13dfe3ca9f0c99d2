/**
 * What it takes to run one kind of OpenAI-compatible server as a supervised child of a runner process: its
 * command line, where it listens, its health path, a readiness probe (a canary generation), how its failures
 * are classified, how our validated requests become its requests, and its counters. The generic engine
 * (./engine.ts) and relay (./relay.ts) do everything else the same way for every server: memory admission
 * before weights are read, start with a deadline, health, drain, classified exits.
 *
 * A new server (mlx_lm.server, vllm-mlx, vLLM) is one recipe file, registered in ./recipes.ts, plus a Backend
 * that decides which models it can serve (see src/engines/llama-server/backend.ts).
 */
import type { LmxError } from "../../errors/codes.js";
import type { MemoryEstimate, RunnerInfo, RunnerInitMessage, RunnerStats } from "../../runner/protocol.js";
import type { ChildAddress, Upstream } from "./upstream.js";
import type { TemplateInfo } from "../../chat/types.js";

/** The runner engine spec for a child server, as the gateway sends it in `init`. */
export interface ChildServerSpec {
  kind: "child-server";
  /** The recipe's name (./recipes.ts). */
  recipe: string;
  binary: string;
  /** As the binary reports it: part of the compatibility key. */
  version: string;
  /** Whether the binary offloads to a GPU: decides the memory estimate's layer placement. */
  gpuOffload: boolean;
  /** Arguments before the recipe's own (a Python module: binary python3, launcher ["-m", "mlx_lm.server"]). */
  launcher?: string[];
  /** The operator's command line with {placeholders} (the openai-compatible recipe). */
  command?: string[];
  /** Overrides the recipe's health path (the operator's server may answer 200 elsewhere). */
  healthPath?: string;
}

export interface ChildStartContext {
  init: RunnerInitMessage;
  spec: ChildServerSpec;
  address: ChildAddress;
  /** Tokens per sequence the runner asks for. */
  contextSize: number;
}

export interface PreparedRequest {
  path: string;
  body: Record<string, unknown>;
  /** Rejects with our error when the request must be refused; null when nothing needs checking. */
  check: Promise<void> | null;
  /** The answer is OpenAI's streamed `/v1/completions` and goes back as `/completion` events (../openai-child/translate.ts). */
  translate?: "completion";
}

/** What the server says about itself once it is up. */
export interface ChildFacts {
  parallel: number;
  /** Tokens per sequence, as the server applies it. */
  contextSize: number;
  chatTemplate: string | null;
  /** The template facts the chat layer renders prompts with, as the server applies them. */
  template: TemplateInfo;
}

/** Counters only the runner knows (requests it relayed); the server's own counters come from `stats`. */
export interface RelayCounters {
  requestsServed: number;
  requestsActive: number;
}

export interface ChildServerRecipe {
  readonly name: string;
  /** "unix" where the server can listen on a socket file (private to the runner), else a free loopback port. */
  readonly listen: "unix" | "tcp";
  /** Answers 200 once the model is loaded. */
  readonly healthPath: string;
  /** Its answers are rewritten in the runner's relay (`translate`), so the gateway may not reach it directly. */
  readonly translatesRaw?: boolean;
  /**
   * The memory the load will take, before any weights are read, and the model's training context; null when
   * this recipe cannot tell (then the gateway budgets what the file proves).
   */
  estimate(init: RunnerInitMessage, spec: ChildServerSpec): Promise<{ estimate: MemoryEstimate; trainContextSize: number } | null>;
  /** The command line (without the binary). */
  args(context: ChildStartContext): string[];
  /** A few greedy tokens that prove the weights produce finite logits. */
  canary(upstream: Upstream): Promise<RunnerInfo["canary"]>;
  describe(upstream: Upstream, context: ChildStartContext): Promise<ChildFacts>;
  /** An exit before ready: a bad file, or the server's crash. */
  classifyLoadExit(code: number | null, signal: NodeJS.Signals | null, outputTail: string[], modelPath: string): LmxError;
  /**
   * Our validated request (OpenAI shape) for `url` as the server reads it. Refusals that need no server are
   * thrown; those that need control calls to the server (e.g. counting the prompt's tokens: no silent
   * truncation) come back as `check`, already running, so a caller may start the generation meanwhile and must
   * await the check before the first byte of the answer goes out.
   */
  prepare(url: string, body: Record<string, unknown>, upstream: Upstream, info: RunnerInfo, signal: AbortSignal): PreparedRequest;
  /** The server's error answer as one of our codes. */
  mapError(status: number, json: unknown, text: string): LmxError;
  stats(upstream: Upstream, counters: RelayCounters, info: RunnerInfo): Promise<Omit<RunnerStats, "rssBytes">>;
}
