/**
 * A run's events, in order: stored (so a follower that connects late, or after a restart, replays what happened)
 * and handed to live followers. Token deltas are live only: they would make the table grow by a row per token,
 * and the finished step's output holds the same text.
 */
import type { AgentRunStore } from "../state/agent-runs.js";

export interface AgentEvent {
  /** The event's place in its run's stored sequence; null for live-only events (token deltas). */
  seq: number | null;
  type: string;
  data: Record<string, unknown>;
}

export const TERMINAL_EVENTS = new Set(["run.completed", "run.failed", "run.cancelled", "run.timed_out"]);

type Follower = (event: AgentEvent) => void;

export class AgentEventBus {
  private readonly followers = new Map<string, Set<Follower>>();
  private readonly closers = new Set<() => void>();

  constructor(private readonly store: AgentRunStore) {}

  publish(runId: string, type: string, data: Record<string, unknown>, durable = true): void {
    const seq = durable ? this.store.appendEvent(runId, type, data) : null;
    for (const follower of this.followers.get(runId) ?? []) follower({ seq, type, data });
  }

  /**
   * Replays the run's stored events, then follows live ones. Reading the store and subscribing happen in one
   * synchronous step (better-sqlite3 is synchronous), so no event falls between the replay and the live part.
   */
  follow(runId: string, follower: Follower): () => void {
    for (const event of this.store.events(runId)) follower(event);
    let set = this.followers.get(runId);
    if (!set) this.followers.set(runId, (set = new Set()));
    set.add(follower);
    return () => {
      set.delete(follower);
      if (set.size === 0) this.followers.delete(runId);
    };
  }

  /** Called when the server stops: followers end their streams instead of holding the shutdown. */
  onClose(closer: () => void): () => void {
    this.closers.add(closer);
    return () => this.closers.delete(closer);
  }

  close(): void {
    for (const closer of [...this.closers]) closer();
    this.closers.clear();
  }
}
