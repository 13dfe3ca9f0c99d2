/**
 * Where a load may go: a pure decision over a snapshot of the memory budget and the loaded models, so the
 * policy is unit-tested without processes. The scheduler takes the snapshot, asks, and carries out the answer
 * (evictions first, then the reservation) while no other placement runs.
 */

export interface Resident {
  model: string;
  /** What the model holds of the budget now. */
  bytes: number;
  pinned: boolean;
  /** Requests running or waiting for it, or a load/unload under way: such a model is never evicted. */
  busy: boolean;
  /** Milliseconds since epoch of its last finished request (or of its load). */
  lastUsed: number;
}

export interface PlacementSnapshot {
  budgetBytes: number;
  usedBytes: number;
  maxLoadedModels: number | null;
  eviction: boolean;
  /** Models that hold a runner or are loading, the one being placed excluded. */
  residents: readonly Resident[];
}

export interface PlacementRequest {
  model: string;
  /** What the load needs on top of what it already holds. */
  needBytes: number;
}

export type PlacementDecision =
  | { kind: "fits"; evict: string[] }
  /**
   * `never`: waiting cannot help (too big for the budget, pinned models in the way, or eviction off); otherwise
   * it fits once `blockers` (busy, unpinned; least recently used first, just enough) have gone.
   */
  | { kind: "refused"; never: boolean; reason: string; blockers: string[] };

const mib = (bytes: number) => `${Math.ceil(bytes / 1048576)} MiB`;

/**
 * Fits the request as things are, or after evicting idle, unpinned models, least recently used first, taking
 * only as many as needed. Refuses with the numbers otherwise.
 */
export function decidePlacement(snapshot: PlacementSnapshot, request: PlacementRequest): PlacementDecision {
  const { budgetBytes, maxLoadedModels, eviction } = snapshot;
  if (request.needBytes > budgetBytes) {
    return {
      kind: "refused",
      never: true,
      blockers: [],
      reason: `it needs an estimated ${mib(request.needBytes)} and the whole memory budget is ${mib(budgetBytes)} (memory.max_percent / memory.budget_bytes)`,
    };
  }
  let used = snapshot.usedBytes;
  let count = snapshot.residents.length;
  const tooMany = () => maxLoadedModels !== null && count >= maxLoadedModels;
  const fits = () => used + request.needBytes <= budgetBytes && !tooMany();
  const evict: string[] = [];
  if (fits()) return { kind: "fits", evict };
  const victims = eviction
    ? snapshot.residents.filter((r) => !r.pinned && !r.busy).sort((a, b) => a.lastUsed - b.lastUsed)
    : [];
  for (const victim of victims) {
    evict.push(victim.model);
    used -= victim.bytes;
    count--;
    if (fits()) return { kind: "fits", evict };
  }
  // would it fit once busy, unpinned models finished and went too? Then it is a matter of waiting for them
  const blockers: string[] = [];
  if (eviction) {
    for (const busy of snapshot.residents.filter((r) => !r.pinned && r.busy).sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (fits()) break;
      blockers.push(busy.model);
      used -= busy.bytes;
      count--;
    }
  }
  const never = !eviction || !fits();
  const evictionNote = eviction ? "" : " (memory.eviction is off)";
  if (maxLoadedModels !== null && snapshot.residents.length - evict.length >= maxLoadedModels) {
    return {
      kind: "refused",
      never,
      blockers: never ? [] : blockers,
      reason: `max_loaded_models (${maxLoadedModels}) are loaded and none is idle and unpinned${evictionNote}`,
    };
  }
  return {
    kind: "refused",
    never,
    blockers: never ? [] : blockers,
    reason: `it needs an estimated ${mib(request.needBytes)}; ${mib(budgetBytes - snapshot.usedBytes)} of the ${mib(budgetBytes)} budget is free and no idle, unpinned model can be evicted${evictionNote}`,
  };
}
