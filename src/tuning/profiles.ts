/**
 * Tuned profiles in SQLite (`tuning_profiles` in lmx.db), one row per autotune result, keyed by model, backend,
 * backend version and machine signature; nothing is overwritten, so the history stays. The current profile of
 * a key is its newest `applied` row; rolling back marks that row `rolled_back`, which makes the applied row
 * before it current again (the last known good), or none (the settings below profiles apply again).
 */
import Database from "better-sqlite3";
import type { RunnerSettingsInput } from "../config/schema.js";
import type { StateDatabase } from "../state/database.js";
import type { CandidateMetrics } from "./score.js";

export type ProfileStatus = "applied" | "dry_run" | "rolled_back";

export interface ProfileKey {
  modelId: string;
  backend: string;
  backendVersion: string;
  machine: string;
}

export interface TunedProfile extends ProfileKey {
  id: number;
  createdAt: string;
  status: ProfileStatus;
  /** The winning settings, by config name (only what the search set). */
  settings: RunnerSettingsInput;
  metrics: CandidateMetrics;
  score: number;
  scoreVersion: number;
  /** The workload's name and shape (what the gate compares against). */
  workload: { name: string; key: string; spec: Record<string, unknown> };
  /** The defaults' measurement in the same search, for "how much better". */
  baseline: { metrics: CandidateMetrics; score: number } | null;
  /** Every candidate of the search: settings, outcome, metrics, score, reason. */
  candidates: unknown[];
  jobId: string;
}

interface Row {
  id: number;
  created_at: string;
  model_id: string;
  backend: string;
  backend_version: string;
  machine: string;
  status: ProfileStatus;
  settings: string;
  metrics: string;
  score: number;
  score_version: number;
  workload: string;
  baseline: string;
  candidates: string;
  job_id: string;
}

export type NewProfile = Omit<TunedProfile, "id" | "createdAt">;

export class ProfileStore {
  /** Current applied profile per model and machine, for the load path (one read per model, not per request). */
  private readonly cache = new Map<string, TunedProfile | null>();

  constructor(private readonly state: StateDatabase) {
    state.write("profiles", () =>
      state.db.exec(`
        CREATE TABLE IF NOT EXISTS tuning_profiles (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          created_at TEXT NOT NULL,
          model_id TEXT NOT NULL,
          backend TEXT NOT NULL,
          backend_version TEXT NOT NULL,
          machine TEXT NOT NULL,
          status TEXT NOT NULL CHECK (status IN ('applied', 'dry_run', 'rolled_back')),
          settings TEXT NOT NULL,
          metrics TEXT NOT NULL,
          score REAL NOT NULL,
          score_version INTEGER NOT NULL,
          workload TEXT NOT NULL,
          baseline TEXT NOT NULL,
          candidates TEXT NOT NULL,
          job_id TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tuning_profiles_key ON tuning_profiles (model_id, machine, backend, backend_version, id);
      `),
    );
  }

  record(profile: NewProfile): TunedProfile | null {
    this.cache.clear();
    const id = this.state.write("profiles", () =>
      Number(
        this.state.db
          .prepare(
            `INSERT INTO tuning_profiles (created_at, model_id, backend, backend_version, machine, status, settings, metrics, score, score_version, workload, baseline, candidates, job_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            new Date().toISOString(),
            profile.modelId,
            profile.backend,
            profile.backendVersion,
            profile.machine,
            profile.status,
            JSON.stringify(profile.settings),
            JSON.stringify(profile.metrics),
            profile.score,
            profile.scoreVersion,
            JSON.stringify(profile.workload),
            JSON.stringify(profile.baseline),
            JSON.stringify(profile.candidates),
            profile.jobId,
          ).lastInsertRowid,
      ),
    );
    return id === null ? null : this.get(id);
  }

  get(id: number): TunedProfile | null {
    const row = this.read(() => this.state.db.prepare("SELECT * FROM tuning_profiles WHERE id = ?").get(id) as Row | undefined, undefined);
    return row ? fromRow(row) : null;
  }

  /** Every profile of a model on this machine, newest first. */
  history(modelId: string, machine: string, limit = 50): TunedProfile[] {
    return this.read(
      () =>
        (
          this.state.db
            .prepare("SELECT * FROM tuning_profiles WHERE model_id = ? AND machine = ? ORDER BY id DESC LIMIT ?")
            .all(modelId, machine, limit) as Row[]
        ).map(fromRow),
      [],
    );
  }

  /**
   * The profile a load of this model uses here: the newest applied one among the backends (name and version)
   * this server has, in their preference order.
   */
  current(modelId: string, machine: string, backends: () => ReadonlyArray<{ name: string; version: string }>): TunedProfile | null {
    const cacheKey = `${modelId}\u0000${machine}`;
    if (this.cache.has(cacheKey)) return this.cache.get(cacheKey) ?? null;
    let found: TunedProfile | null = null;
    for (const backend of backends()) {
      const row = this.read(
        () =>
          this.state.db
            .prepare(
              "SELECT * FROM tuning_profiles WHERE model_id = ? AND machine = ? AND backend = ? AND backend_version = ? AND status = 'applied' ORDER BY id DESC LIMIT 1",
            )
            .get(modelId, machine, backend.name, backend.version) as Row | undefined,
        undefined,
      );
      if (row) {
        found = fromRow(row);
        break;
      }
    }
    this.cache.set(cacheKey, found);
    return found;
  }

  /** Marks the current profile rolled back; the answer is what is current now (null: no profile applies). */
  rollback(current: TunedProfile, backends: () => ReadonlyArray<{ name: string; version: string }>): TunedProfile | null {
    this.state.write("profiles", () => this.state.db.prepare("UPDATE tuning_profiles SET status = 'rolled_back' WHERE id = ?").run(current.id));
    this.cache.clear();
    return this.current(current.modelId, current.machine, backends);
  }

  private read<T>(query: () => T, fallback: T): T {
    try {
      return query();
    } catch {
      return fallback;
    }
  }
}

/** One profile read straight from a state database file (`lmx bench --gate`); null when there is none. */
export function readProfileFile(file: string, id: number): TunedProfile | null {
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const row = db.prepare("SELECT * FROM tuning_profiles WHERE id = ?").get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  } catch {
    // no database, or one from before profiles: no tuned baseline
    return null;
  } finally {
    db?.close();
  }
}

function parse<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

function fromRow(row: Row): TunedProfile {
  return {
    id: row.id,
    createdAt: row.created_at,
    modelId: row.model_id,
    backend: row.backend,
    backendVersion: row.backend_version,
    machine: row.machine,
    status: row.status,
    settings: parse(row.settings, {}),
    metrics: parse(row.metrics, { tok_s: 0, ttft_ms: 0, error_rate: 1, total_ms: 0, queue_ms: 0, requests: 0 }),
    score: row.score,
    scoreVersion: row.score_version,
    workload: parse(row.workload, { name: "unknown", key: "", spec: {} }),
    baseline: parse(row.baseline, null),
    candidates: parse(row.candidates, []),
    jobId: row.job_id,
  };
}
