/**
 * Where a load may go: a pure decision over a snapshot of the memory budget and the loaded models, so the
 * policy is unit-tested without processes. The scheduler takes the snapshot, asks, and carries out the answer
 * (evictions first, then the reservation) while no other placement runs.
 */

export interface Resident {
  model: string;
  /** What the model holds of the budget now. */
  bytes: number;
  /** What it holds on each GPU (in the order of PlacementSnapshot.gpus); absent or [] when none. */
  vramBytes?: readonly number[];
  pinned: boolean;
  /** Requests running or waiting for it, or a load/unload under way: such a model is never evicted. */
  busy: boolean;
  /** Milliseconds since epoch of its last finished request (or of its load). */
  lastUsed: number;
  /**
   * What evicting it would cost: its load time × its recent demand (0 when unknown). Idle models go cheapest
   * first, then least recently used: a big model in steady use is not evicted for a small one nobody asks for.
   */
  cost?: number;
}

export interface GpuBudgetView {
  /** nvidia-smi's index, for the messages. */
  index: number;
  budgetBytes: number;
  usedBytes: number;
}

export interface PlacementSnapshot {
  budgetBytes: number;
  usedBytes: number;
  /** Each GPU's budget and what is reserved on it; absent or [] on a machine without GPU budget. */
  gpus?: readonly GpuBudgetView[];
  maxLoadedModels: number | null;
  eviction: boolean;
  /** Models that hold a runner or are loading, the one being placed excluded. */
  residents: readonly Resident[];
}

export interface PlacementRequest {
  model: string;
  /** What the load needs on top of what it already holds. */
  needBytes: number;
  /** What it needs on each GPU on top of what it already holds there (the device where its layers go). */
  needVram?: readonly number[];
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
 * Fits the request as things are, or after evicting idle, unpinned models, cheapest to bring back first (load
 * time × recent demand), then least recently used, taking only as many as needed and only models that free room
 * where room is short (RAM, or the GPU its layers go to). Refuses with the numbers otherwise.
 */
export function decidePlacement(snapshot: PlacementSnapshot, request: PlacementRequest): PlacementDecision {
  const { budgetBytes, maxLoadedModels, eviction } = snapshot;
  const gpus = snapshot.gpus ?? [];
  const needVram = gpus.map((_, i) => request.needVram?.[i] ?? 0);
  if (request.needBytes > budgetBytes) {
    return {
      kind: "refused",
      never: true,
      blockers: [],
      reason: `it needs an estimated ${mib(request.needBytes)} and the whole memory budget is ${mib(budgetBytes)} (memory.max_percent / memory.budget_bytes)`,
    };
  }
  const tooBigForGpu = gpus.findIndex((g, i) => needVram[i]! > g.budgetBytes);
  if (tooBigForGpu >= 0) {
    const gpu = gpus[tooBigForGpu]!;
    return {
      kind: "refused",
      never: true,
      blockers: [],
      reason: `it needs an estimated ${mib(needVram[tooBigForGpu]!)} on GPU ${gpu.index} and that GPU's whole budget is ${mib(gpu.budgetBytes)} (memory.gpu_max_percent / memory.gpu_budget_bytes)`,
    };
  }
  let used = snapshot.usedBytes;
  const usedVram = gpus.map((g) => g.usedBytes);
  let count = snapshot.residents.length;
  const tooMany = () => maxLoadedModels !== null && count >= maxLoadedModels;
  const ramShort = () => used + request.needBytes > budgetBytes;
  const gpuShort = (i: number) => needVram[i]! > 0 && usedVram[i]! + needVram[i]! > gpus[i]!.budgetBytes;
  const fits = () => !ramShort() && !tooMany() && gpus.every((_, i) => !gpuShort(i));
  // evicting a model helps only if it frees something that is short now (shortages only shrink as models go)
  const helps = (r: Resident) => tooMany() || (ramShort() && r.bytes > 0) || gpus.some((_, i) => gpuShort(i) && (r.vramBytes?.[i] ?? 0) > 0);
  const remove = (r: Resident) => {
    used -= r.bytes;
    gpus.forEach((_, i) => (usedVram[i] = usedVram[i]! - (r.vramBytes?.[i] ?? 0)));
    count--;
  };
  const evict: string[] = [];
  if (fits()) return { kind: "fits", evict };
  const victims = eviction
    ? snapshot.residents.filter((r) => !r.pinned && !r.busy).sort((a, b) => (a.cost ?? 0) - (b.cost ?? 0) || a.lastUsed - b.lastUsed)
    : [];
  for (const victim of victims) {
    if (!helps(victim)) continue;
    evict.push(victim.model);
    remove(victim);
    if (fits()) return { kind: "fits", evict };
  }
  // what is still short with every useful idle model gone: that is what the refusal names
  const shortGpu = gpus.findIndex((_, i) => gpuShort(i));
  // would it fit once busy, unpinned models finished and went too? Then it is a matter of waiting for them
  const blockers: string[] = [];
  if (eviction) {
    for (const busy of snapshot.residents.filter((r) => !r.pinned && r.busy).sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (fits()) break;
      if (!helps(busy)) continue;
      blockers.push(busy.model);
      remove(busy);
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
  if (shortGpu >= 0) {
    const gpu = gpus[shortGpu]!;
    return {
      kind: "refused",
      never,
      blockers: never ? [] : blockers,
      reason: `it needs an estimated ${mib(needVram[shortGpu]!)} on GPU ${gpu.index}; ${mib(Math.max(0, gpu.budgetBytes - gpu.usedBytes))} of that GPU's ${mib(gpu.budgetBytes)} budget is free and no idle, unpinned model on it can be evicted${evictionNote}`,
    };
  }
  return {
    kind: "refused",
    never,
    blockers: never ? [] : blockers,
    reason: `it needs an estimated ${mib(request.needBytes)}; ${mib(budgetBytes - snapshot.usedBytes)} of the ${mib(budgetBytes)} budget is free and no idle, unpinned model can be evicted${evictionNote}`,
  };
}
