/**
 * One explicit state per model and the only moves between them. Every move is checked against one table and
 * announced as one event, so the admin event stream, metrics and logs see the same history. (llama-swap's
 * ProcessState and llama.cpp's server_model_status do the same for their child servers.)
 *
 *   unloaded ──load──▶ loading ──ok──▶ ready ──unload/evict/reload──▶ draining ──stopped──▶ unloaded
 *       ▲                 │  │            │
 *       │     refused ◀───┘  └─failed──▶ failed ◀──crashed──┘      failed/quarantined ──load──▶ loading
 *       └──(memory, shutdown)   └──all candidates quarantined──▶ quarantined ──unquarantine──▶ unloaded
 */
import { EventEmitter } from "node:events";

export type ModelPhase = "unloaded" | "loading" | "ready" | "draining" | "failed" | "quarantined";

const NEXT: Readonly<Record<ModelPhase, readonly ModelPhase[]>> = {
  unloaded: ["loading"],
  // back to unloaded when the load was refused for a reason that is not the model's (memory, shutdown)
  loading: ["ready", "failed", "quarantined", "unloaded"],
  ready: ["draining", "failed"],
  draining: ["unloaded"],
  failed: ["loading", "unloaded"],
  quarantined: ["loading", "unloaded"],
};

export function isLegalTransition(from: ModelPhase, to: ModelPhase): boolean {
  return NEXT[from].includes(to);
}

export interface ModelTransition {
  model: string;
  from: ModelPhase;
  to: ModelPhase;
  /** Why, in words an operator reads (e.g. "idle past keep_alive", "evicted to make room for 'b'"). */
  reason: string;
  /** The error code behind a move to failed, quarantined or a refused load. */
  code: string | null;
  backend: string | null;
  at: string;
}

export class IllegalTransitionError extends Error {
  constructor(model: string, from: ModelPhase, to: ModelPhase) {
    super(`model '${model}' cannot move from ${from} to ${to}`);
    this.name = "IllegalTransitionError";
  }
}

/** Emits "transition" (ModelTransition) for every move, in the order the moves happen. */
export class ModelLifecycle extends EventEmitter {
  private readonly phases = new Map<string, ModelPhase>();

  phase(model: string): ModelPhase {
    return this.phases.get(model) ?? "unloaded";
  }

  /** Moves a model to `to`; an illegal move is a bug in the scheduler and throws. */
  move(model: string, to: ModelPhase, reason: string, extra: { code?: string | null; backend?: string | null } = {}): ModelTransition {
    const from = this.phase(model);
    if (!isLegalTransition(from, to)) throw new IllegalTransitionError(model, from, to);
    this.phases.set(model, to);
    const transition: ModelTransition = {
      model,
      from,
      to,
      reason,
      code: extra.code ?? null,
      backend: extra.backend ?? null,
      at: new Date().toISOString(),
    };
    this.emit("transition", transition);
    return transition;
  }

  all(): Array<{ model: string; phase: ModelPhase }> {
    return [...this.phases].map(([model, phase]) => ({ model, phase }));
  }
}
