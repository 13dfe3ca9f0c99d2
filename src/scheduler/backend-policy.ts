/**
 * Which backends may try a model, in which order, and what an attempt's outcome means for them. Pure
 * functions over the backends, the registry's latest records and the error table's `fault` column.
 */
import type { Backend } from "../engines/backend.js";
import type { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import { machineKey, type CompatibilityKey } from "../state/compatibility-registry.js";

/** Architecture and quantization family (Q4_K_M → Q4_K), the part of a model that decides what a backend must support. */
export function runtimeSignature(model: ModelDescriptor): string {
  const family = model.quantization ? model.quantization.replace(/_(XXS|XS|S|M|L|XL)$/i, "") : "unknown";
  return `${model.architecture ?? "unknown"}/${family}`;
}

export function compatibilityKey(descriptor: ModelDescriptor, backend: Pick<Backend, "name" | "version">): CompatibilityKey {
  return {
    modelId: descriptor.id,
    backend: backend.name,
    backendVersion: backend.version,
    runtimeSignature: runtimeSignature(descriptor),
    ...machineKey(),
  };
}

export interface LatestAttempt {
  backend: string;
  outcome: string;
  reason: string | null;
}

/**
 * Backends that can open the model, in configured order. Unless told to allow anything, a backend whose last
 * load failed goes last; a crash after a good load does not demote it (one OOM kill of the fast engine must
 * not leave a model on the slower one for good; crashes still count toward quarantine).
 */
export function orderCandidates(
  backends: readonly Backend[],
  descriptor: ModelDescriptor,
  order: readonly string[],
  latest: readonly LatestAttempt[],
  allowUnsupported: boolean,
): Backend[] {
  const rank = (b: Backend) => {
    const index = order.indexOf(b.name);
    return index === -1 ? order.length : index;
  };
  const able = backends.filter((b) => b.canServe(descriptor)).sort((a, b) => rank(a) - rank(b));
  if (allowUnsupported) return able;
  const failedLoad = new Set(latest.filter((r) => r.outcome === "failure" && r.reason !== "model_crashed").map((r) => r.backend));
  return [...able.filter((b) => !failedLoad.has(b.name)), ...able.filter((b) => failedLoad.has(b.name))];
}

/** How an attempt is recorded: only the backend's or the file's fault counts toward quarantine. */
export function attemptOutcome(error: LmxError): "failure" | "refused" {
  return error.fault === "backend" || error.fault === "model_file" ? "failure" : "refused";
}

/** Whether the next candidate backend may do better: only when this one was at fault. */
export function fallsThrough(error: LmxError): boolean {
  return error.fault === "backend";
}
