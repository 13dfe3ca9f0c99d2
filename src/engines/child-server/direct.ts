/**
 * The gateway's direct line to a child server, past the runner process: the runner stays the child's
 * supervisor (start, health, canary, exits, stats) and the gateway sends generation requests straight to the
 * child's socket, preparing them with the same recipe the runner's relay uses. One Node.js hop per token
 * instead of two, as llama-swap and Ollama do (measured in docs/benchmarks.md).
 */
import { Pool, type Dispatcher } from "undici";
import type { LmxError } from "../../errors/codes.js";
import type { RunnerInfo } from "../../runner/protocol.js";
import type { PreparedRequest } from "./recipe.js";
import { recipeNamed } from "./recipes.js";
import { Upstream, type ChildAddress } from "./upstream.js";

export interface DirectRoute {
  /**
   * Send each request with `reset: true` (a fresh connection): llama-server closes kept-alive connections idle
   * for 5 s, and a pooled socket reused as it closes fails the request (docs/benchmarks.md).
   */
  readonly dispatcher: Dispatcher;
  /** Our validated request as the child reads it, with the check to await before answering (see the recipe). */
  prepare(path: string, body: Record<string, unknown>, signal: AbortSignal): PreparedRequest;
  mapError(status: number, json: unknown, text: string): LmxError;
  /** Requests sent this way, for the runner's stats (the runner does not see them). */
  served: number;
  active: number;
  close(): void;
}

/** What a child-server runner puts in `info.details` when the gateway may reach its child directly. */
export interface DirectDetails {
  recipe: string;
  address: ChildAddress;
}

export function directDetails(info: RunnerInfo): DirectDetails | null {
  const direct = info.details?.["direct"];
  if (!direct || typeof direct !== "object") return null;
  const { recipe, address } = direct as Partial<DirectDetails>;
  return typeof recipe === "string" && address && typeof address === "object" ? { recipe, address } : null;
}

export function openDirectRoute(info: RunnerInfo): DirectRoute | null {
  const details = directDetails(info);
  if (!details) return null;
  const recipe = recipeNamed(details.recipe);
  const control = new Upstream(details.address, 4);
  const address = details.address;
  // generation pauses between tokens as long as the machine needs: never time a body out mid-stream
  const options = { connections: info.parallel * 2 + 4, bodyTimeout: 0, headersTimeout: 0 };
  const dispatcher =
    "socketPath" in address
      ? new Pool("http://child", { ...options, socketPath: address.socketPath })
      : new Pool(`http://${address.host}:${address.port}`, options);
  return {
    dispatcher,
    prepare: (path, body, signal) => recipe.prepare(path, body, control, info, signal),
    mapError: (status, json, text) => recipe.mapError(status, json, text),
    served: 0,
    active: 0,
    close: () => {
      control.close();
      void dispatcher.close().catch(() => {});
    },
  };
}
