/**
 * Agent runs in SQLite (docs/agents.md): one row per run, one per step, and the run's events (what
 * GET /v1/agents/runs/{id}/events replays). Every write is one statement or one transaction, so a gateway killed
 * mid-run leaves the last committed state; at start-up runs left queued or running are ended as failed with
 * reason `interrupted`. At most `keep` runs are kept: the oldest finished ones are removed as new ones arrive.
 */
import type { StateDatabase } from "./database.js";

export type RunStatus = "queued" | "running" | "completed" | "failed" | "cancelled" | "timed_out";
export const TERMINAL_STATUSES: readonly RunStatus[] = ["completed", "failed", "cancelled", "timed_out"];
export const RUN_STATUSES: readonly RunStatus[] = ["queued", "running", ...TERMINAL_STATUSES];
export type StepStatus = "running" | "completed" | "failed" | "cancelled";

export interface ErrorRecord {
  code: string;
  message: string;
}

export interface RunRecord {
  id: string;
  status: RunStatus;
  strategy: string;
  prompt: string;
  roles: string[];
  /** The model the request named ("auto" or an id). */
  model: string;
  /** The model "auto" chose, and why; null until resolved. */
  resolvedModel: string | null;
  modelReason: string | null;
  maxParallelism: number;
  timeoutSec: number;
  priority: string;
  traceparent: string;
  /** The strategy's own options (reducer, classifier, judge, samples). */
  options: Record<string, unknown>;
  metadata: Record<string, unknown>;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Why it ended other than completed: interrupted, timeout, cancelled, or the failing step's message. */
  reason: string | null;
  error: ErrorRecord | null;
  output: string | null;
  /** What the strategy decided (router's role, vote's winner), if anything. */
  decision: Record<string, unknown> | null;
}

export interface StepRecord {
  runId: string;
  index: number;
  /** What the step does in its strategy: answer, reduce, route, judge, handoff. */
  kind: string;
  role: string;
  model: string | null;
  status: StepStatus;
  input: string;
  output: string | null;
  promptTokens: number;
  completionTokens: number;
  toolCalls: unknown[];
  error: ErrorRecord | null;
  traceparent: string;
  startedAt: number;
  finishedAt: number | null;
}

export interface StoredEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

export interface RunQuery {
  limit: number;
  status?: RunStatus | undefined;
  /** Runs created at or after this time (ms since the epoch). */
  since?: number | undefined;
}

interface RunRow {
  id: string;
  status: string;
  created_at: number;
  body: string;
}

interface StepRow {
  body: string;
}

const PRUNE_EVERY = 20;

export class AgentRunStore {
  private writesSincePrune = 0;

  constructor(
    private readonly state: StateDatabase,
    private readonly keep: number,
  ) {
    state.write("agent-runs", () => {
      state.db.exec(`CREATE TABLE IF NOT EXISTS agent_runs (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at INTEGER NOT NULL, body TEXT NOT NULL)`);
      state.db.exec("CREATE INDEX IF NOT EXISTS agent_runs_created_at ON agent_runs (created_at)");
      state.db.exec(`CREATE TABLE IF NOT EXISTS agent_steps (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, step))`);
      state.db.exec(`CREATE TABLE IF NOT EXISTS agent_run_events (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, seq))`);
    });
  }

  /**
   * Ends what a previous gateway left unfinished (it was killed, or stopped mid-run): runs queued or running,
   * and their running steps, become failed with reason `interrupted`. Returns the ids of the runs it ended.
   */
  interruptUnfinished(now: number): string[] {
    const rows = this.state.db.prepare("SELECT id, status, created_at, body FROM agent_runs WHERE status IN ('queued', 'running')").all() as RunRow[];
    const ended: string[] = [];
    for (const row of rows) {
      const run = JSON.parse(row.body) as RunRecord;
      const error = { code: "interrupted", message: "the gateway stopped while this run was unfinished" };
      this.state.write("agent-runs", () =>
        this.state.db.transaction(() => {
          for (const step of this.steps(run.id)) {
            if (step.status === "running") this.saveStep({ ...step, status: "failed", error, finishedAt: now });
          }
          this.saveRun({ ...run, status: "failed", reason: "interrupted", error, finishedAt: now });
          this.appendEvent(run.id, "run.failed", { id: run.id, status: "failed", reason: "interrupted" });
        })(),
      );
      ended.push(run.id);
    }
    return ended;
  }

  saveRun(run: RunRecord): void {
    this.state.write("agent-runs", () =>
      this.state.db
        .prepare("INSERT OR REPLACE INTO agent_runs (id, status, created_at, body) VALUES (?, ?, ?, ?)")
        .run(run.id, run.status, run.createdAt, JSON.stringify(run)),
    );
  }

  /** A new run: saved, and the oldest finished runs beyond the retention limit removed now and then. */
  createRun(run: RunRecord): void {
    this.saveRun(run);
    if (++this.writesSincePrune >= PRUNE_EVERY) this.prune();
  }

  saveStep(step: StepRecord): void {
    this.state.write("agent-runs", () =>
      this.state.db
        .prepare("INSERT OR REPLACE INTO agent_steps (run_id, step, status, body) VALUES (?, ?, ?, ?)")
        .run(step.runId, step.index, step.status, JSON.stringify(step)),
    );
  }

  /** Appends one event with the next sequence number of its run; returns that number (0 when not stored). */
  appendEvent(runId: string, type: string, data: Record<string, unknown>): number {
    return (
      this.state.write("agent-runs", () => {
        const last = this.state.db.prepare("SELECT MAX(seq) AS seq FROM agent_run_events WHERE run_id = ?").get(runId) as { seq: number | null };
        const seq = (last.seq ?? 0) + 1;
        this.state.db
          .prepare("INSERT INTO agent_run_events (run_id, seq, type, data) VALUES (?, ?, ?, ?)")
          .run(runId, seq, type, JSON.stringify(data));
        return seq;
      }) ?? 0
    );
  }

  events(runId: string): StoredEvent[] {
    const rows = this.state.db.prepare("SELECT seq, type, data FROM agent_run_events WHERE run_id = ? ORDER BY seq").all(runId) as Array<{
      seq: number;
      type: string;
      data: string;
    }>;
    return rows.map((r) => ({ seq: r.seq, type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  getRun(id: string): RunRecord | null {
    const row = this.state.db.prepare("SELECT body FROM agent_runs WHERE id = ?").get(id) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as RunRecord) : null;
  }

  steps(runId: string): StepRecord[] {
    const rows = this.state.db.prepare("SELECT body FROM agent_steps WHERE run_id = ? ORDER BY step").all(runId) as StepRow[];
    return rows.map((r) => JSON.parse(r.body) as StepRecord);
  }

  /** Newest first. */
  list(query: RunQuery): RunRecord[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (query.status) {
      where.push("status = ?");
      args.push(query.status);
    }
    if (query.since !== undefined) {
      where.push("created_at >= ?");
      args.push(query.since);
    }
    const sql = `SELECT body FROM agent_runs ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, rowid DESC LIMIT ?`;
    const rows = this.state.db.prepare(sql).all(...args, query.limit) as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as RunRecord);
  }

  /** Keeps the newest `keep` runs; older finished ones go with their steps and events (unfinished ones stay). */
  prune(): void {
    this.writesSincePrune = 0;
    this.state.write("agent-runs", () =>
      this.state.db.transaction(() => {
        const old = this.state.db
          .prepare(
            `SELECT id FROM agent_runs WHERE status NOT IN ('queued', 'running')
             AND id NOT IN (SELECT id FROM agent_runs ORDER BY created_at DESC, rowid DESC LIMIT ?)`,
          )
          .all(this.keep) as Array<{ id: string }>;
        for (const { id } of old) {
          this.state.db.prepare("DELETE FROM agent_run_events WHERE run_id = ?").run(id);
          this.state.db.prepare("DELETE FROM agent_steps WHERE run_id = ?").run(id);
          this.state.db.prepare("DELETE FROM agent_runs WHERE id = ?").run(id);
        }
      })(),
    );
  }

  count(): number {
    return (this.state.db.prepare("SELECT COUNT(*) AS n FROM agent_runs").get() as { n: number }).n;
  }
}
