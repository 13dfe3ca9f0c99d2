/**
 * Stored Responses (store: true, OpenAI's default): the Response object and the input items it answered, so a
 * later request can continue it with previous_response_id, across restarts. Kept for RETENTION_DAYS, as OpenAI
 * keeps them 30 days; older ones are removed as new ones are written.
 */
import type { StateDatabase } from "./database.js";

const RETENTION_DAYS = 30;
/** A chain deeper than this is refused rather than walked (a loop would be a bug; this bounds it anyway). */
export const MAX_CHAIN_DEPTH = 10_000;

/** What the store reads of a Response (the wire shapes are the API layer's: this layer keeps them as JSON). */
export interface StorableResponse<Item> {
  id: string;
  previous_response_id: string | null;
  created_at: number;
  model: string;
  status: string;
  output: Item[];
}

export interface StoredResponse<Item, Response extends StorableResponse<Item>> {
  response: Response;
  input: Item[];
}

interface Row {
  id: string;
  previous_response_id: string | null;
  response: string;
  input_items: string;
}

/** Why a chain could not be read: the id itself is unknown, or a response the chain passes through is gone. */
export type ChainResult<Item> = { kind: "found"; items: Item[] } | { kind: "missing"; id: string };

export class ResponsesStore<Item, Response extends StorableResponse<Item>> {
  private writesSincePrune = 0;

  constructor(private readonly state: StateDatabase) {
    state.write("responses", () => {
      state.db.exec(`CREATE TABLE IF NOT EXISTS responses (
        id TEXT PRIMARY KEY, previous_response_id TEXT, created_at INTEGER NOT NULL, model TEXT NOT NULL,
        status TEXT NOT NULL, response TEXT NOT NULL, input_items TEXT NOT NULL)`);
      state.db.exec("CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at)");
    });
    this.prune();
  }

  save(stored: StoredResponse<Item, Response>): void {
    const { response, input } = stored;
    this.state.write("responses", () =>
      this.state.db
        .prepare(
          `INSERT OR REPLACE INTO responses (id, previous_response_id, created_at, model, status, response, input_items)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          response.id,
          response.previous_response_id,
          response.created_at,
          response.model,
          response.status,
          JSON.stringify(response),
          JSON.stringify(input),
        ),
    );
    if (++this.writesSincePrune >= 100) this.prune();
  }

  get(id: string): StoredResponse<Item, Response> | null {
    const row = this.row(id);
    return row ? { response: JSON.parse(row.response) as Response, input: JSON.parse(row.input_items) as Item[] } : null;
  }

  delete(id: string): boolean {
    return (this.state.write("responses", () => this.state.db.prepare("DELETE FROM responses WHERE id = ?").run(id).changes) ?? 0) > 0;
  }

  /** The conversation up to and including `id`: every response's input items then its output, oldest first. */
  chain(id: string): ChainResult<Item> {
    const rows: Row[] = [];
    let next: string | null = id;
    while (next !== null) {
      if (rows.length >= MAX_CHAIN_DEPTH) break;
      const row = this.row(next);
      if (!row) return { kind: "missing", id: next };
      rows.push(row);
      next = row.previous_response_id;
    }
    const items: Item[] = [];
    for (const row of rows.reverse()) {
      items.push(...(JSON.parse(row.input_items) as Item[]));
      items.push(...(JSON.parse(row.response) as Response).output);
    }
    return { kind: "found", items };
  }

  private row(id: string): Row | null {
    return (
      this.state.write(
        "responses",
        () =>
          (this.state.db.prepare("SELECT id, previous_response_id, response, input_items FROM responses WHERE id = ?").get(id) as Row | undefined) ??
          null,
      ) ?? null
    );
  }

  private prune(): void {
    this.writesSincePrune = 0;
    const cutoff = Math.floor(Date.now() / 1000) - RETENTION_DAYS * 86_400;
    this.state.write("responses", () => this.state.db.prepare("DELETE FROM responses WHERE created_at < ?").run(cutoff));
  }
}
