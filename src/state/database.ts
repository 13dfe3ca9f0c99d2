/**
 * The server's durable state: one SQLite file (WAL) in the state directory. Writes are single transactions,
 * so a gateway killed mid-write leaves the last committed state. If the file cannot be opened or written
 * (read-only volume, full disk) or is corrupt, the server keeps running on an in-memory database and says so
 * in /admin/status instead of crashing: losing history beats losing the service.
 */
import { existsSync, renameSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { makeDirSync } from "../util/make-dir.js";

export interface StateHealth {
  component: string;
  error: string;
  at: string;
}

export interface StateDatabase {
  db: Database.Database;
  /** The file in use, or null when running in memory after a failure. */
  file: string | null;
  /** Problems met since start: surfaced in /admin/status. */
  problems: StateHealth[];
  /** Runs a write; a failure (ENOSPC, read-only) is recorded, logged and swallowed. */
  write<T>(component: string, action: () => T): T | null;
}

export function openStateDatabase(stateDir: string, log: (message: string, fields: Record<string, unknown>) => void): StateDatabase {
  const problems: StateHealth[] = [];
  const note = (component: string, error: unknown) => {
    const entry = { component, error: (error as Error)?.message ?? String(error), at: new Date().toISOString() };
    problems.push(entry);
    if (problems.length > 50) problems.shift();
    log("state storage problem", entry);
  };
  const file = path.join(stateDir, "lmx.db");
  let db: Database.Database | null = null;
  try {
    makeDirSync(stateDir);
    db = openChecked(file);
  } catch (error) {
    if (isCorrupt(error) && existsSync(file)) {
      // keep the bad file for a post-mortem and start clean
      const aside = `${file}.corrupt-${Date.now()}`;
      try {
        renameSync(file, aside);
        note("database", new Error(`${file} was corrupt (${(error as Error).message}); moved to ${aside}, starting empty`));
        db = openChecked(file);
      } catch (second) {
        note("database", second);
      }
    } else {
      note("database", error);
    }
  }
  const inMemory = db === null;
  if (!db) {
    db = new Database(":memory:");
    note("database", new Error(`state is kept in memory only: ${file} is not writable; history and quarantine reset at restart`));
  }
  return {
    db,
    file: inMemory ? null : file,
    problems,
    write<T>(component: string, action: () => T): T | null {
      try {
        return action();
      } catch (error) {
        note(component, error);
        return null;
      }
    },
  };
}

function openChecked(file: string): Database.Database {
  const db = new Database(file);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 2000");
    const check = db.pragma("quick_check", { simple: true });
    if (check !== "ok") throw new Error(`database disk image is malformed: ${String(check)}`);
    // a real write up front, so a read-only or full volume is found now, not at the first failure to record
    db.exec("CREATE TABLE IF NOT EXISTS lmx_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db.prepare("INSERT OR REPLACE INTO lmx_meta (key, value) VALUES ('opened_at', ?)").run(new Date().toISOString());
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

function isCorrupt(error: unknown): boolean {
  const code = (error as { code?: string })?.code ?? "";
  return code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB" || /malformed|not a database/i.test((error as Error)?.message ?? "");
}
