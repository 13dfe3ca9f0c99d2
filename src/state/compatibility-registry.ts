/**
 * Every load attempt, append-only, keyed by (model, backend, backend version, runtime signature, machine arch,
 * OS), so the server remembers what works where. Quarantine is derived from it: after `quarantineAfter`
 * consecutive failures of one key (since its last success or unquarantine), loads of that key are refused
 * fast until an operator unquarantines it or the backend version changes (a new version is a new key).
 */
import os from "node:os";
import type { StateDatabase } from "./database.js";

export interface CompatibilityKey {
  modelId: string;
  backend: string;
  backendVersion: string;
  /** Architecture and quantization family from the GGUF metadata, e.g. "llama/Q4_K". */
  runtimeSignature: string;
  arch: string;
  os: string;
}

export type AttemptOutcome = "success" | "failure" | "refused";

export interface AttemptRecord extends CompatibilityKey {
  id: number;
  at: string;
  outcome: AttemptOutcome;
  reason: string | null;
  message: string | null;
  durationMs: number | null;
  metadata: Record<string, unknown>;
}

export interface AttemptFilter {
  modelId?: string;
  backend?: string;
  outcome?: AttemptOutcome;
  since?: string;
  limit?: number;
}

export interface QuarantineState {
  quarantined: boolean;
  consecutiveFailures: number;
  lastReasons: string[];
}

export function machineKey(): { arch: string; os: string } {
  return { arch: process.arch, os: `${process.platform}-${os.release().split(".").slice(0, 2).join(".")}` };
}

interface Row {
  id: number;
  at: string;
  model_id: string;
  backend: string;
  backend_version: string;
  runtime_signature: string;
  arch: string;
  os: string;
  outcome: AttemptOutcome;
  reason: string | null;
  message: string | null;
  duration_ms: number | null;
  metadata: string;
}

/** The compatibility key, as columns: attempts and quarantine releases are both keyed by it. */
const KEY_COLUMNS =
  "model_id TEXT NOT NULL, backend TEXT NOT NULL, backend_version TEXT NOT NULL, runtime_signature TEXT NOT NULL, arch TEXT NOT NULL, os TEXT NOT NULL";
/**
 * Attempts of autotune candidates (metadata.trial set) are kept as history but say nothing about the model on
 * that backend: a candidate's settings failed, not the model. They neither quarantine it nor reorder backends.
 */
const NOT_TRIAL = "json_extract(metadata, '$.trial') IS NULL";
const KEY_WHERE = "model_id = ? AND backend = ? AND backend_version = ? AND runtime_signature = ? AND arch = ? AND os = ?";

export class CompatibilityRegistry {
  constructor(
    private readonly state: StateDatabase,
    private readonly quarantineAfter: number,
  ) {
    state.write("registry", () =>
      state.db.exec(`
        CREATE TABLE IF NOT EXISTS compatibility_attempts (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          at TEXT NOT NULL,
          ${KEY_COLUMNS},
          outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'refused')),
          reason TEXT,
          message TEXT,
          duration_ms INTEGER,
          metadata TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX IF NOT EXISTS compatibility_by_key ON compatibility_attempts (model_id, backend, backend_version, runtime_signature, arch, os, id);
        CREATE TABLE IF NOT EXISTS quarantine_releases (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          at TEXT NOT NULL,
          ${KEY_COLUMNS},
          last_attempt_id INTEGER NOT NULL
        );
      `),
    );
  }

  record(
    key: CompatibilityKey,
    outcome: AttemptOutcome,
    details: { reason?: string | null; message?: string | null; durationMs?: number | null; metadata?: Record<string, unknown> },
  ): void {
    this.state.write("registry", () =>
      this.state.db
        .prepare(
          `INSERT INTO compatibility_attempts (at, model_id, backend, backend_version, runtime_signature, arch, os, outcome, reason, message, duration_ms, metadata)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          new Date().toISOString(),
          key.modelId,
          key.backend,
          key.backendVersion,
          key.runtimeSignature,
          key.arch,
          key.os,
          outcome,
          details.reason ?? null,
          details.message ?? null,
          details.durationMs === undefined || details.durationMs === null ? null : Math.round(details.durationMs),
          JSON.stringify(details.metadata ?? {}),
        ),
    );
  }

  list(filter: AttemptFilter = {}): AttemptRecord[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.modelId) {
      where.push("model_id = ?");
      params.push(filter.modelId);
    }
    if (filter.backend) {
      where.push("backend = ?");
      params.push(filter.backend);
    }
    if (filter.outcome) {
      where.push("outcome = ?");
      params.push(filter.outcome);
    }
    if (filter.since) {
      where.push("at >= ?");
      params.push(filter.since);
    }
    const sql = `SELECT * FROM compatibility_attempts ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`;
    params.push(Math.min(Math.max(filter.limit ?? 100, 1), 10_000));
    return this.read(() => (this.state.db.prepare(sql).all(...params) as Row[]).map(toRecord), []);
  }

  count(): number {
    return this.read(() => (this.state.db.prepare("SELECT COUNT(*) AS n FROM compatibility_attempts").get() as { n: number }).n, 0);
  }

  /** The newest record per (model, backend). */
  latest(modelId?: string): AttemptRecord[] {
    const sql = `SELECT a.* FROM compatibility_attempts a
      JOIN (SELECT MAX(id) AS id FROM compatibility_attempts WHERE outcome != 'refused' AND ${NOT_TRIAL} ${modelId ? "AND model_id = ?" : ""} GROUP BY model_id, backend) m ON a.id = m.id
      ORDER BY a.model_id, a.backend`;
    return this.read(() => (this.state.db.prepare(sql).all(...(modelId ? [modelId] : [])) as Row[]).map(toRecord), []);
  }

  summary(): Array<{ modelId: string; attempts: number; successes: number; failures: number; refused: number; lastAt: string }> {
    const sql = `SELECT model_id AS modelId, COUNT(*) AS attempts,
        SUM(outcome = 'success') AS successes, SUM(outcome = 'failure') AS failures, SUM(outcome = 'refused') AS refused, MAX(at) AS lastAt
      FROM compatibility_attempts GROUP BY model_id ORDER BY model_id`;
    return this.read(() => this.state.db.prepare(sql).all() as ReturnType<CompatibilityRegistry["summary"]>, []);
  }

  /** Consecutive failures of this key since its last success or unquarantine. */
  quarantine(key: CompatibilityKey): QuarantineState {
    return this.read(
      () => {
        const args = keyArgs(key);
        const release = this.state.db.prepare(`SELECT MAX(last_attempt_id) AS id FROM quarantine_releases WHERE ${KEY_WHERE}`).get(...args) as {
          id: number | null;
        };
        const rows = this.state.db
          .prepare(
            `SELECT outcome, reason FROM compatibility_attempts WHERE ${KEY_WHERE} AND id > ? AND outcome != 'refused' AND ${NOT_TRIAL} ORDER BY id DESC LIMIT 50`,
          )
          .all(...args, release.id ?? 0) as Array<{ outcome: AttemptOutcome; reason: string | null }>;
        let failures = 0;
        const reasons: string[] = [];
        for (const row of rows) {
          if (row.outcome !== "failure") break;
          failures++;
          if (reasons.length < this.quarantineAfter) reasons.push(row.reason ?? "unknown");
        }
        return { quarantined: failures >= this.quarantineAfter, consecutiveFailures: failures, lastReasons: reasons };
      },
      { quarantined: false, consecutiveFailures: 0, lastReasons: [] },
    );
  }

  /** Lifts quarantine for every key of a model (optionally one backend); returns how many keys it released. */
  unquarantine(modelId: string, backend?: string): number {
    return (
      this.state.write("registry", () => {
        const keys = this.state.db
          .prepare(
            `SELECT model_id, backend, backend_version, runtime_signature, arch, os, MAX(id) AS last FROM compatibility_attempts
             WHERE model_id = ? ${backend ? "AND backend = ?" : ""} GROUP BY model_id, backend, backend_version, runtime_signature, arch, os`,
          )
          .all(...(backend ? [modelId, backend] : [modelId])) as Array<Omit<Row, "id"> & { last: number }>;
        const insert = this.state.db.prepare(
          `INSERT INTO quarantine_releases (at, model_id, backend, backend_version, runtime_signature, arch, os, last_attempt_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        const at = new Date().toISOString();
        this.state.db.transaction(() => {
          for (const k of keys) insert.run(at, k.model_id, k.backend, k.backend_version, k.runtime_signature, k.arch, k.os, k.last);
        })();
        return keys.length;
      }) ?? 0
    );
  }

  /** Keys currently quarantined (for /admin/status and the inventory). */
  quarantined(): Array<CompatibilityKey & QuarantineState> {
    const keys = this.read(
      () =>
        this.state.db
          .prepare(
            `SELECT DISTINCT model_id, backend, backend_version, runtime_signature, arch, os FROM compatibility_attempts WHERE outcome = 'failure'`,
          )
          .all() as Array<Omit<Row, "id">>,
      [],
    );
    return keys
      .map((k) => {
        const key: CompatibilityKey = {
          modelId: k.model_id,
          backend: k.backend,
          backendVersion: k.backend_version,
          runtimeSignature: k.runtime_signature,
          arch: k.arch,
          os: k.os,
        };
        return { ...key, ...this.quarantine(key) };
      })
      .filter((k) => k.quarantined);
  }

  private read<T>(query: () => T, fallback: T): T {
    try {
      return query();
    } catch {
      return fallback;
    }
  }
}

function keyArgs(key: CompatibilityKey): string[] {
  return [key.modelId, key.backend, key.backendVersion, key.runtimeSignature, key.arch, key.os];
}

function toRecord(row: Row): AttemptRecord {
  let metadata: Record<string, unknown> = {};
  try {
    metadata = JSON.parse(row.metadata) as Record<string, unknown>;
  } catch {
    metadata = {};
  }
  return {
    id: row.id,
    at: row.at,
    modelId: row.model_id,
    backend: row.backend,
    backendVersion: row.backend_version,
    runtimeSignature: row.runtime_signature,
    arch: row.arch,
    os: row.os,
    outcome: row.outcome,
    reason: row.reason,
    message: row.message,
    durationMs: row.duration_ms,
    metadata,
  };
}
