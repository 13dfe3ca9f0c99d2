/**
 * What stops a web page the user happens to visit from driving the server: DNS rebinding (a foreign Host),
 * cross-site requests (a foreign Origin on a state-changing request) and CORS, which is off unless origins are
 * configured. JSON bodies are only parsed as application/json (app.ts), so a page cannot send one without a
 * preflight; this module answers the preflight.
 */
import net from "node:net";
import os from "node:os";
import type { FastifyReply, FastifyRequest } from "fastify";
import { LmxError } from "../errors/codes.js";

export interface SecurityPolicy {
  /** Does the Host header name this server (loopback, an IP, the bind host, allowed_hosts)? */
  hostAllowed(hostHeader: string | undefined): boolean;
  /** Is `origin` one of cors_origins? */
  corsAllowed(origin: string): boolean;
}

const STATE_CHANGING = new Set(["POST", "PUT", "DELETE", "PATCH"]);
const ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS = "authorization, content-type, x-admin-key, x-request-id, x-priority, traceparent, tracestate";
const EXPOSE_HEADERS = "x-lmx-backend, x-request-id, retry-after";
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:\d{1,5})?$/;

/** The name part of a Host header, lower-cased, without port, brackets or a trailing dot; null if malformed. */
export function hostName(hostHeader: string): string | null {
  const match = HOST_HEADER.exec(hostHeader.trim().toLowerCase());
  if (!match?.[1]) return null;
  const name = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1];
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

/** An origin as browsers send it (`scheme://host[:port]`), normalised; null for "null" or anything else. */
export function normalizeOrigin(origin: string): string | null {
  if (origin === "*") return "*";
  try {
    const url = new URL(origin);
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.origin;
  } catch {
    return null;
  }
}

function isWildcardAddress(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]";
}

export function createSecurityPolicy(config: { host: string; allowed_hosts: readonly string[]; cors_origins: readonly string[] }): SecurityPolicy {
  const names = new Set<string>(["localhost"]);
  const suffixes: string[] = [".localhost"];
  let anyHost = false;
  const bind = config.host.toLowerCase();
  if (!net.isIP(bind) && !isWildcardAddress(bind)) names.add(bind);
  // on every interface the machine's own name is how other machines reach it
  if (isWildcardAddress(bind)) {
    const self = os.hostname().toLowerCase();
    names.add(self);
    names.add(`${self}.local`);
  }
  for (const entry of config.allowed_hosts) {
    const value = entry.trim().toLowerCase();
    if (value === "*") anyHost = true;
    else if (value.startsWith(".")) {
      suffixes.push(value);
      names.add(value.slice(1));
    } else names.add(value.endsWith(".") ? value.slice(0, -1) : value);
  }
  const origins = new Set(config.cors_origins.map(normalizeOrigin).filter((o): o is string => o !== null));
  const anyOrigin = origins.has("*");
  return {
    hostAllowed(hostHeader) {
      // HTTP/1.0 without Host: no browser sends that, and nothing to rebind
      if (hostHeader === undefined || hostHeader === "") return true;
      if (anyHost) return true;
      const name = hostName(hostHeader);
      if (name === null) return false;
      // DNS rebinding needs a name the attacker controls; an IP address cannot be rebound
      if (net.isIP(name)) return true;
      return names.has(name) || suffixes.some((suffix) => name.endsWith(suffix));
    },
    corsAllowed(origin) {
      if (anyOrigin) return true;
      const normalized = normalizeOrigin(origin);
      return normalized !== null && origins.has(normalized);
    },
  };
}

/** A page served by this server itself: its origin names the same host and port the request was sent to. */
export function sameOrigin(origin: string, hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  const normalized = normalizeOrigin(origin);
  if (normalized === null || normalized === "*") return false;
  try {
    return new URL(normalized).host === new URL(`http://${hostHeader}`).host;
  } catch {
    return false;
  }
}

/**
 * The onRequest check for every route. Order matters: Host first, because with a rebound name the attacker's
 * page is same-origin and its Origin header would pass.
 */
export function enforceSecurity(policy: SecurityPolicy, request: FastifyRequest, reply: FastifyReply): boolean {
  const host = request.headers.host;
  if (!policy.hostAllowed(host)) {
    throw new LmxError(
      "forbidden_host",
      `the Host header '${(host ?? "").slice(0, 100)}' is not a name of this server (a DNS rebinding guard); to reach the server by that name, add it to allowed_hosts (LMX_ALLOWED_HOSTS)`,
    );
  }
  const originHeader = request.headers.origin;
  if (typeof originHeader !== "string") return false;
  const own = sameOrigin(originHeader, host);
  const cors = !own && policy.corsAllowed(originHeader);
  if (cors) {
    // set on the raw response so streamed (hijacked) answers and error answers carry them too
    reply.raw.setHeader("access-control-allow-origin", originHeader);
    reply.raw.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
  }
  reply.raw.setHeader("vary", "Origin");
  if (request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined) {
    if (!cors && !own) throw forbiddenOrigin(originHeader);
    reply.raw.setHeader("access-control-allow-methods", ALLOW_METHODS);
    const asked = request.headers["access-control-request-headers"];
    reply.raw.setHeader("access-control-allow-headers", typeof asked === "string" && asked ? asked : ALLOW_HEADERS);
    reply.raw.setHeader("access-control-max-age", "600");
    void reply.code(204).send();
    return true;
  }
  if (STATE_CHANGING.has(request.method) && !own && !cors) throw forbiddenOrigin(originHeader);
  return false;
}

function forbiddenOrigin(origin: string): LmxError {
  return new LmxError(
    "forbidden_origin",
    `requests from the web page at '${origin.slice(0, 100)}' may not change anything here (a cross-site request guard); to let that page use the API, add its origin to cors_origins (LMX_CORS_ORIGINS)`,
  );
}
