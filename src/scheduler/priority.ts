/**
 * Priority classes: people at a keyboard (interactive) before the fleet's ordinary traffic (normal) before bulk
 * jobs (batch). A waiting request climbs one class per `agingMs` it has waited, and among equals the older one
 * goes first, so a batch request under a constant interactive stream ranks interactive after 2 × agingMs and
 * then waits only for the requests that were already ahead of it when it arrived: nothing starves.
 */
export const PRIORITIES = ["interactive", "normal", "batch"] as const;
export type Priority = (typeof PRIORITIES)[number];

export function isPriority(value: unknown): value is Priority {
  return typeof value === "string" && (PRIORITIES as readonly string[]).includes(value);
}

const RANK: Readonly<Record<Priority, number>> = { interactive: 0, normal: 1, batch: 2 };

/** Lower runs first. Never below 0: ageing makes a request as urgent as interactive, not more. */
export function effectiveRank(priority: Priority, waitedMs: number, agingMs: number): number {
  const climbed = agingMs > 0 ? Math.floor(waitedMs / agingMs) : 0;
  return Math.max(0, RANK[priority] - climbed);
}
