/**
 * Benchmark results kept in SQLite (`<state_dir>/lmx.db`, table `bench_results`, WAL so the server and a CLI
 * run can write at once). One row per target and run: model, backend and its version, the settings that
 * decide speed (canonical JSON), date, git commit, and the whole report. Baselines are rows marked as such.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import type { BenchReport, TargetReport, Workload } from "./types.js";
import { requestsFor } from "./types.js";

export const BENCH_DB_FILE = "lmx.db";

export interface StoredResult {
  id: number;
  created_at: string;
  model: string;
  backend: string;
  backend_version: string | null;
  settings: string;
  git_commit: string | null;
  source: string;
  baseline: boolean;
  avg_tok_s: number | null;
  /** The response_format the target was sent; rows stored before the column existed read `text`. */
  response_format: string;
  report: string;
}

export interface NewResult {
  model: string;
  backend: string;
  backend_version: string | null;
  settings: string;
  git_commit: string | null;
  source: "cli" | "admin";
  baseline: boolean;
  avg_tok_s: number | null;
  response_format?: string;
  report: unknown;
  created_at?: string;
}

/** SQLite stores the baseline flag as 0/1. */
type Row = Omit<StoredResult, "baseline"> & { baseline: number };

export function benchDbPath(stateDir: string): string {
  return path.join(stateDir, BENCH_DB_FILE);
}

/** JSON with keys sorted at every depth: the same settings always give the same string, whatever built them. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v as Record<string, unknown>).sort()) {
        const inner = (v as Record<string, unknown>)[key];
        if (inner !== undefined) out[key] = sort(inner);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(sort(value));
}

/**
 * What must match for two runs' tok/s to be comparable: the workload and the runner's settings. Warm-up and
 * rounds are left out (they change noise, not the expected figure); so are backend versions, since catching
 * what a new version does to speed is the point of the gate. A constrained run (response_format other than
 * text) gets its own key, so it is never gated against a plain one; plain runs keep the key they always had,
 * so baselines stored before response_format existed still apply to them.
 */
export function settingsKey(workload: Workload, target: TargetReport): string {
  const base: Record<string, unknown> = {
    scenario: workload.scenario,
    endpoint: workload.endpoint,
    prompt_tokens: workload.promptTokens,
    max_tokens: workload.maxTokens,
    concurrency: workload.concurrency,
    requests: workload.concurrency.map((c) => requestsFor(workload, c)),
    temperature: workload.temperature,
    ignore_eos: target.ignore_eos,
    runner: target.info.runner,
  };
  const format = target.response_format ?? "text";
  if (format !== "text") base["response_format"] = format;
  if (workload.scenario === "multiturn") {
    base["system_tokens"] = workload.systemTokens;
    base["turns"] = workload.turns;
  }
  return canonicalJson(base);
}

export class BenchStore {
  private constructor(private readonly db: Database.Database) {}

  static open(file: string): BenchStore {
    mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    // another writer (the server, a second CLI run) holds the lock only briefly: wait rather than fail
    db.pragma("busy_timeout = 5000");
    db.exec(`
      CREATE TABLE IF NOT EXISTS bench_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        model TEXT NOT NULL,
        backend TEXT NOT NULL,
        backend_version TEXT,
        settings TEXT NOT NULL,
        git_commit TEXT,
        source TEXT NOT NULL,
        baseline INTEGER NOT NULL DEFAULT 0,
        avg_tok_s REAL,
        report TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS bench_results_key ON bench_results (model, settings, baseline, id);
    `);
    migrate(db);
    return new BenchStore(db);
  }

  record(result: NewResult): StoredResult {
    const createdAt = result.created_at ?? new Date().toISOString();
    const info = this.db
      .prepare(
        `INSERT INTO bench_results (created_at, model, backend, backend_version, settings, git_commit, source, baseline, avg_tok_s, response_format, report)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        createdAt,
        result.model,
        result.backend,
        result.backend_version,
        result.settings,
        result.git_commit,
        result.source,
        result.baseline ? 1 : 0,
        result.avg_tok_s,
        result.response_format ?? "text",
        JSON.stringify(result.report),
      );
    return this.get(Number(info.lastInsertRowid))!;
  }

  get(id: number): StoredResult | null {
    const row = this.db.prepare("SELECT * FROM bench_results WHERE id = ?").get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** The newest baseline recorded for this model and these settings. */
  baseline(model: string, settings: string): StoredResult | null {
    const row = this.db
      .prepare("SELECT * FROM bench_results WHERE model = ? AND settings = ? AND baseline = 1 ORDER BY id DESC LIMIT 1")
      .get(model, settings) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(filter: { model?: string; limit?: number } = {}): StoredResult[] {
    const limit = filter.limit ?? 50;
    const rows = (
      filter.model
        ? this.db.prepare("SELECT * FROM bench_results WHERE model = ? ORDER BY id DESC LIMIT ?").all(filter.model, limit)
        : this.db.prepare("SELECT * FROM bench_results ORDER BY id DESC LIMIT ?").all(limit)
    ) as Row[];
    return rows.map(fromRow);
  }

  close(): void {
    this.db.close();
  }
}

/**
 * Columns added after the table's first release, each with a default that describes the old rows: a database
 * written by an older version opens, and its rows read as what they were (plain, unconstrained runs).
 */
function migrate(db: Database.Database): void {
  const columns = new Set((db.prepare("PRAGMA table_info(bench_results)").all() as Array<{ name: string }>).map((c) => c.name));
  if (!columns.has("response_format")) db.exec("ALTER TABLE bench_results ADD COLUMN response_format TEXT NOT NULL DEFAULT 'text'");
}

function fromRow(row: Row): StoredResult {
  return { ...row, baseline: row.baseline === 1 };
}

/** One stored row per target of a report; `baselineFor` marks the targets whose row becomes the new baseline. */
export function recordReport(
  store: BenchStore,
  report: BenchReport,
  source: "cli" | "admin",
  baselineFor: ReadonlySet<string> = new Set(),
): StoredResult[] {
  return report.targets.map((target) =>
    store.record({
      model: target.model,
      backend: target.info.backend,
      backend_version: target.info.backend_version,
      settings: settingsKey(report.workload, target),
      git_commit: report.git_commit,
      source,
      baseline: baselineFor.has(target.label),
      avg_tok_s: target.avg_output_tok_s,
      response_format: target.response_format ?? "text",
      created_at: report.finished_at,
      report: { ...report, targets: [target], comparison: report.comparison },
    }),
  );
}
