/**
 * How tool calling and structured output went, per model × template family × backend: beside the compatibility
 * registry, so an operator sees which models call tools reliably (GET /admin/models/available). One counter row
 * per outcome, updated in place: a fleet's traffic must not grow the file per request.
 */
import type { StateDatabase } from "./database.js";

export type ConformanceOutcome = "forced" | "parsed" | "fell_back" | "none" | "json_valid" | "json_invalid";
export const CONFORMANCE_OUTCOMES: readonly ConformanceOutcome[] = ["forced", "parsed", "fell_back", "none", "json_valid", "json_invalid"];

export interface ConformanceEntry {
  family: string;
  backend: string;
  counts: Record<ConformanceOutcome, number>;
  lastAt: string;
}

interface Row {
  model_id: string;
  family: string;
  backend: string;
  outcome: ConformanceOutcome;
  count: number;
  last_at: string;
}

export class ChatConformanceRegistry {
  constructor(private readonly state: StateDatabase) {
    state.write("chat_conformance", () =>
      state.db.exec(`CREATE TABLE IF NOT EXISTS chat_conformance (
        model_id TEXT NOT NULL, family TEXT NOT NULL, backend TEXT NOT NULL, outcome TEXT NOT NULL,
        count INTEGER NOT NULL, last_at TEXT NOT NULL,
        PRIMARY KEY (model_id, family, backend, outcome))`),
    );
  }

  record(modelId: string, family: string, backend: string, outcome: ConformanceOutcome): void {
    this.state.write("chat_conformance", () =>
      this.state.db
        .prepare(
          `INSERT INTO chat_conformance (model_id, family, backend, outcome, count, last_at) VALUES (?, ?, ?, ?, 1, ?)
           ON CONFLICT (model_id, family, backend, outcome) DO UPDATE SET count = count + 1, last_at = excluded.last_at`,
        )
        .run(modelId, family, backend, outcome, new Date().toISOString()),
    );
  }

  /** Every model's entries, keyed by model id. */
  all(): Map<string, ConformanceEntry[]> {
    const rows = this.state.write("chat_conformance", () => this.state.db.prepare("SELECT * FROM chat_conformance").all() as Row[]) ?? [];
    const byModel = new Map<string, Map<string, ConformanceEntry>>();
    for (const row of rows) {
      const entries = byModel.get(row.model_id) ?? new Map<string, ConformanceEntry>();
      byModel.set(row.model_id, entries);
      const key = `${row.family}\u0000${row.backend}`;
      let entry = entries.get(key);
      if (!entry) {
        entry = { family: row.family, backend: row.backend, counts: emptyCounts(), lastAt: row.last_at };
        entries.set(key, entry);
      }
      entry.counts[row.outcome] = row.count;
      if (row.last_at > entry.lastAt) entry.lastAt = row.last_at;
    }
    return new Map([...byModel].map(([model, entries]) => [model, [...entries.values()]]));
  }
}

function emptyCounts(): Record<ConformanceOutcome, number> {
  return Object.fromEntries(CONFORMANCE_OUTCOMES.map((o) => [o, 0])) as Record<ConformanceOutcome, number>;
}
