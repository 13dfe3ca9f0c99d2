/**
 * Every skill execution as one row in the state database: which skill, who asked, a digest of the arguments
 * (never the arguments: they may hold secrets or documents), how long it took and how it ended. Pruned to the
 * newest `keep` rows so a fleet of bots cannot grow the file without bound.
 */
import { createHash } from "node:crypto";
import type { StateDatabase } from "../state/database.js";

export type SkillOutcome = "ok" | "error" | "timeout" | "invalid" | "forbidden" | "not_found" | "aborted";

export interface SkillAuditRow {
  id: number;
  skill: string;
  caller: string;
  arguments_sha256: string;
  duration_ms: number;
  outcome: SkillOutcome;
  error_code: string | null;
  at: string;
}

const PRUNE_EVERY = 500;

export class SkillAuditLog {
  private writes = 0;

  constructor(
    private readonly state: StateDatabase,
    private readonly keep: number,
  ) {
    state.write("skill_audit", () =>
      state.db.exec(`CREATE TABLE IF NOT EXISTS skill_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, skill TEXT NOT NULL, caller TEXT NOT NULL, arguments_sha256 TEXT NOT NULL,
        duration_ms REAL NOT NULL, outcome TEXT NOT NULL, error_code TEXT, at TEXT NOT NULL)`),
    );
  }

  record(row: Omit<SkillAuditRow, "id" | "at">): void {
    this.state.write("skill_audit", () => {
      this.state.db
        .prepare("INSERT INTO skill_audit (skill, caller, arguments_sha256, duration_ms, outcome, error_code, at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .run(row.skill, row.caller, row.arguments_sha256, row.duration_ms, row.outcome, row.error_code, new Date().toISOString());
      if (++this.writes % PRUNE_EVERY === 0) this.prune();
    });
  }

  /** The newest rows first. */
  recent(limit = 100): SkillAuditRow[] {
    return (
      this.state.write(
        "skill_audit",
        () => this.state.db.prepare("SELECT * FROM skill_audit ORDER BY id DESC LIMIT ?").all(limit) as SkillAuditRow[],
      ) ?? []
    );
  }

  private prune(): void {
    this.state.db.prepare("DELETE FROM skill_audit WHERE id <= (SELECT MAX(id) FROM skill_audit) - ?").run(this.keep);
  }
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
