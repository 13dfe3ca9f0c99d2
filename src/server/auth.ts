/** Key checks for the admin and OpenAI routes, in constant time. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";

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

/** True when `key` matches one of `keys`; every key is compared so timing does not reveal which. */
export function matchesAny(key: string, keys: readonly string[]): boolean {
  let found = false;
  for (const candidate of keys) found = sameKey(key, candidate) || found;
  return found;
}
