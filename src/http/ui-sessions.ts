/**
 * The dashboard's login sessions: after the operator typed the admin key once, the browser holds a random session
 * id in an HttpOnly, SameSite=Strict cookie and the key itself never leaves the login request (not in a URL, not in
 * page storage a script could read). Sessions live in the gateway's memory: a restart logs everyone out, which is
 * the safe default for a credential equal to the admin key.
 */
import { createHash, randomBytes } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { sameKey } from "./auth.js";
import { sameOrigin } from "./security.js";

export const SESSION_COOKIE = "lmx_session";
const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Only successful logins make sessions, but a script looping over the login must not grow memory forever. */
const MAX_SESSIONS = 256;
const STATE_CHANGING = new Set(["POST", "PUT", "DELETE", "PATCH"]);

interface Session {
  expiresAt: number;
  /** The admin key's hash at login: a session outlives no change of the key. */
  keyHash: string;
}

const keyHash = (key: string) => createHash("sha256").update(key).digest("hex");

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly adminKey: () => string | null) {}

  /** A new session id for an operator who proved the key. */
  create(): string {
    const key = this.adminKey();
    if (!key) throw new Error("sessions need an admin key");
    this.prune();
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString("base64url");
    this.sessions.set(id, { expiresAt: Date.now() + SESSION_TTL_MS, keyHash: keyHash(key) });
    return id;
  }

  valid(id: string | null): boolean {
    if (!id) return false;
    const session = this.sessions.get(id);
    const key = this.adminKey();
    if (!session || !key) return false;
    if (session.expiresAt <= Date.now() || !sameKey(session.keyHash, keyHash(key))) {
      this.sessions.delete(id);
      return false;
    }
    return true;
  }

  destroy(id: string | null): void {
    if (id) this.sessions.delete(id);
  }

  get ttlSec(): number {
    return SESSION_TTL_MS / 1000;
  }

  private prune(): void {
    const now = Date.now();
    for (const [id, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(id);
  }
}

/** The session id from the Cookie header, or null. */
export function sessionId(request: FastifyRequest): string | null {
  const header = request.headers.cookie;
  if (typeof header !== "string") return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

/**
 * Does the request's session cookie authenticate it? SameSite=Strict keeps other sites' pages from sending the
 * cookie, but another port of the same host is the same *site*: a state change made with the cookie must also come
 * from a page of this very origin (an Origin header naming this host and port), so a page the operator opens on
 * localhost:3000 cannot load or unload models through their session. CORS origins (cors_origins) do not widen this.
 */
export function sessionAuthenticates(store: SessionStore, request: FastifyRequest): boolean {
  if (!store.valid(sessionId(request))) return false;
  if (!STATE_CHANGING.has(request.method)) return true;
  const origin = request.headers.origin;
  return typeof origin === "string" && sameOrigin(origin, request.headers.host);
}

/** One store per gateway (tests and embedders run several in one process), without widening GatewayContext. */
const stores = new WeakMap<object, SessionStore>();

export function sessionStoreFor(owner: { config: { admin_key: string | null } }): SessionStore {
  let store = stores.get(owner);
  if (!store) {
    store = new SessionStore(() => owner.config.admin_key);
    stores.set(owner, store);
  }
  return store;
}
