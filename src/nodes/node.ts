/**
 * One remote node: its connection pool, its last health check (up or down, and why), the models it lists with
 * their status and load, and the relay target requests to it go through. A node is a whole server with its own
 * scheduler: we only read its public API (and, for LMX nodes, /admin/status when a key allows).
 */
import { Pool, type Dispatcher } from "undici";
import type { DirectRoute } from "../engines/child-server/direct.js";
import type { RelayTarget } from "../serving/relay.js";
import type { NodeConfig } from "./config.js";
import { classifyConnectionError, nodeAnswerError, nodeUnavailable, type NodeProblem } from "./errors.js";

/** Where a model is on a node: LMX nodes say loaded, loading or available; an OpenAI server serves what it lists. */
export type NodeModelStatus = "loaded" | "loading" | "available" | "unavailable";

export interface NodeModel {
  id: string;
  status: NodeModelStatus;
  ownedBy: string | null;
  /** From the node's /admin/status (LMX with a key that allows it); null when unknown. */
  running: number | null;
  waiting: number | null;
}

/** Sent with every proxied request: a node never routes a request another node sent it (no loops, one hop). */
export const VIA_HEADER = "x-lmx-via";

export interface NodeSnapshot {
  name: string;
  url: string;
  kind: NodeConfig["kind"];
  /** null until the first check ended. */
  up: boolean | null;
  checkedAt: number | null;
  lastUpAt: number | null;
  error: NodeProblem | null;
  /** Requests this gateway has in flight to the node now, and has sent it since start. */
  inFlight: number;
  served: number;
  /** Whether the node's queue is known (LMX node whose /admin/status answered). */
  loadKnown: boolean;
  models: NodeModel[];
}

interface ModelListEntry {
  id?: unknown;
  owned_by?: unknown;
  status?: unknown;
  node?: unknown;
}

const STATUSES = new Set<NodeModelStatus>(["loaded", "loading", "available", "unavailable"]);

export class RemoteNode {
  readonly pool: Pool;
  readonly route: DirectRoute;
  readonly target: RelayTarget;
  /** The path the API lives under ("" or e.g. "/proxy"), without the trailing /v1. */
  private readonly basePath: string;
  private readonly origin: string;
  up: boolean | null = null;
  checkedAt: number | null = null;
  lastUpAt: number | null = null;
  error: NodeProblem | null = null;
  loadKnown = false;
  models: NodeModel[] = [];

  constructor(readonly config: NodeConfig) {
    const url = new URL(config.url);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
    // generation pauses between tokens as long as the node needs, and a non-streamed answer's headers come after
    // its whole generation: only connecting is timed (health checks have their own deadline)
    this.pool = new Pool(this.origin, { connectTimeout: config.timeout_sec * 1000, headersTimeout: 0, bodyTimeout: 0 });
    const retryAfter = () => this.retryAfterSec;
    const name = config.name;
    const basePath = this.basePath;
    this.route = {
      dispatcher: this.pool,
      prepare: (path, body) => ({ path: basePath + path, body, check: null }),
      mapError: (status, json, text) => nodeAnswerError(name, status, json, text, retryAfter()),
      served: 0,
      active: 0,
      close: () => void this.pool.close().catch(() => {}),
    };
    this.target = {
      dispatcher: this.pool,
      direct: this.route,
      // never settles: a node has no process whose exit could explain a broken connection (brokenError does)
      exited: new Promise(() => {}),
      brokenError: (cause) => nodeUnavailable(name, classifyConnectionError(cause), retryAfter()),
    };
  }

  get name(): string {
    return this.config.name;
  }

  /** When a client may try again: the next health check may have found the node back. */
  get retryAfterSec(): number {
    return Math.max(1, Math.ceil(this.config.health_interval_sec));
  }

  /** Headers every request to the node carries (its key, and the loop guard). */
  requestHeaders(): Record<string, string> {
    return { [VIA_HEADER]: "1", ...(this.config.api_key ? { authorization: `Bearer ${this.config.api_key}` } : {}) };
  }

  /** A request to the node failed to connect or broke: down until the next health check finds it back. */
  markDown(problem: Omit<NodeProblem, "at">): void {
    this.up = false;
    this.error = { ...problem, at: Date.now() };
  }

  /** GET /v1/models (and /admin/status on LMX nodes); the node is up when its model list answered. */
  async check(): Promise<void> {
    const signal = AbortSignal.timeout(this.config.timeout_sec * 1000);
    const at = Date.now();
    try {
      const listed = await this.getJson("/v1/models", this.config.api_key, signal);
      if (listed.status !== 200) {
        const error = nodeAnswerError(this.name, listed.status, listed.json, listed.text, this.retryAfterSec);
        const kind = listed.status === 401 || listed.status === 403 ? "auth" : "http";
        throw Object.assign(new Error(error.message), { nodeKind: kind });
      }
      const data = (listed.json as { data?: unknown } | null)?.data;
      if (!Array.isArray(data)) throw Object.assign(new Error("GET /v1/models did not answer a model list"), { nodeKind: "bad_answer" });
      const load = this.config.kind === "lmx" ? await this.readLoad(signal) : null;
      this.loadKnown = load !== null;
      this.models = (data as ModelListEntry[])
        // an LMX node lists its own nodes' models too: only what it serves itself is reachable in one hop
        .filter((m) => typeof m.id === "string" && (m.node === undefined || m.node === null))
        .map((m) => {
          const status = this.config.kind === "lmx" && STATUSES.has(m.status as NodeModelStatus) ? (m.status as NodeModelStatus) : "loaded";
          const queue = load?.[m.id as string];
          return {
            id: m.id as string,
            status,
            ownedBy: typeof m.owned_by === "string" ? m.owned_by : null,
            running: load ? (queue?.running ?? 0) : null,
            waiting: load ? (queue?.waiting ?? 0) : null,
          };
        });
      this.up = true;
      this.error = null;
      this.lastUpAt = at;
    } catch (error) {
      const kind = (error as { nodeKind?: NodeProblem["kind"] }).nodeKind;
      this.up = false;
      this.error = kind ? { kind, message: (error as Error).message, at } : { ...classifyConnectionError(error), at };
    } finally {
      this.checkedAt = at;
    }
  }

  /** Per-model running and waiting from an LMX node's /admin/status; null when its key does not allow it. */
  private async readLoad(signal: AbortSignal): Promise<Record<string, { running: number; waiting: number }> | null> {
    const answer = await this.getJson("/admin/status", this.config.admin_key, signal);
    if (answer.status !== 200) return null;
    const perModel = (answer.json as { queue?: { per_model?: unknown } } | null)?.queue?.per_model;
    if (!perModel || typeof perModel !== "object") return null;
    const out: Record<string, { running: number; waiting: number }> = {};
    for (const [id, counts] of Object.entries(perModel as Record<string, { running?: unknown; waiting?: unknown }>)) {
      out[id] = { running: Number(counts.running) || 0, waiting: Number(counts.waiting) || 0 };
    }
    return out;
  }

  private async getJson(path: string, key: string | null, signal: AbortSignal): Promise<{ status: number; json: unknown; text: string }> {
    const res: Dispatcher.ResponseData = await this.pool.request({
      path: this.basePath + path,
      method: "GET",
      headers: { [VIA_HEADER]: "1", ...(key ? { authorization: `Bearer ${key}` } : {}) },
      signal,
    });
    const text = await res.body.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: read as the problem by the caller
    }
    return { status: res.statusCode, json, text };
  }

  /** The model as this node lists it, if it does. */
  model(id: string): NodeModel | undefined {
    return this.models.find((m) => m.id === id);
  }

  snapshot(): NodeSnapshot {
    return {
      name: this.name,
      url: this.config.url,
      kind: this.config.kind,
      up: this.up,
      checkedAt: this.checkedAt,
      lastUpAt: this.lastUpAt,
      error: this.error,
      inFlight: this.route.active,
      served: this.route.served,
      loadKnown: this.loadKnown,
      models: this.models,
    };
  }

  close(): void {
    this.route.close();
  }
}
