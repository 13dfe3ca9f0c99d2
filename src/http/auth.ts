/** Key checks for the admin and API routes (OpenAI's and Anthropic's), in constant time. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { LmxError } from "../errors/codes.js";

/** Hashing first makes both sides the same length, so the comparison time says nothing about the key. */
export function sameKey(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function bearerToken(request: FastifyRequest): string | null {
  const auth = request.headers.authorization;
  return typeof auth === "string" && auth.startsWith("Bearer ") ? auth.slice(7).trim() : null;
}

/**
 * The API key a client sent: `Authorization: Bearer` (OpenAI's clients) or `x-api-key` (Anthropic's). A bearer
 * token wins when both are present, so an OpenAI client behind a proxy that adds x-api-key is judged by its own.
 */
export function apiKeyOf(request: FastifyRequest): string | null {
  const bearer = bearerToken(request);
  if (bearer) return bearer;
  const header = request.headers["x-api-key"];
  return typeof header === "string" && header.trim() !== "" ? header.trim() : null;
}

/** True when `key` matches one of `keys`; every key is compared so timing does not reveal which. */
export function matchesAny(key: string, keys: readonly string[]): boolean {
  let found = false;
  for (const candidate of keys) found = sameKey(key, candidate) || found;
  return found;
}

/**
 * The admin rule for every operator route (/admin/*, /metrics): when `adminKey` is set the request must carry it
 * in X-Admin-Key or as a bearer token, or come from a dashboard session (`session`, checked only when no key was
 * sent: a wrong key is an error even from a logged-in browser); the error names the header and the setting to fix.
 */
export function requireAdminKey(adminKey: string | null, request: FastifyRequest, session?: (request: FastifyRequest) => boolean): void {
  if (!adminKey) return;
  const header = request.headers["x-admin-key"];
  const key = typeof header === "string" && header ? header : bearerToken(request);
  if (!key && session?.(request)) return;
  if (!key || !sameKey(key, adminKey)) {
    throw new LmxError(
      "unauthorized",
      key
        ? "the admin key is wrong: send the value of admin_key (or LMX_ADMIN_KEY) in the X-Admin-Key header"
        : "this route needs the admin key: send the value of admin_key (or LMX_ADMIN_KEY) in the X-Admin-Key header or as Authorization: Bearer",
    );
  }
}
