/**
 * Which backends can serve a model here, and how fast: each candidate in an isolated runner (never the one
 * that serves requests), recorded in the compatibility registry, stopped again. Probes never evict.
 */
import type { Backend, StartOptions } from "../engines/backend.js";
import { LmxError } from "../errors/codes.js";
import { fileProblem } from "../inventory/inventory.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { MemoryEstimate } from "../runner/protocol.js";
import type { CompatibilityRegistry } from "../state/compatibility-registry.js";
import { attemptOutcome, compatibilityKey } from "./backend-policy.js";

export interface ProbeResult {
  backend: string;
  backendVersion: string;
  outcome: "success" | "failure" | "skipped";
  reason: string | null;
  message: string | null;
  loadMs: number | null;
  canaryTokensPerSec: number | null;
}

export interface ProbeDeps {
  candidates: readonly Backend[];
  registry: CompatibilityRegistry;
  start: Omit<StartOptions, "admit" | "loaderTimeoutMs">;
  /**
   * Reserves memory for the probe's runner (its estimate plus the runner's overheads, in RAM and on the GPU), or
   * throws insufficient_memory; never evicts.
   */
  admit: (token: string, model: string, estimate: MemoryEstimate) => Promise<void>;
  release: (token: string) => void;
}

export async function probeBackends(
  deps: ProbeDeps,
  descriptor: ModelDescriptor,
  options: { timeoutMs: number; allowUnsupported: boolean },
): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  const { registry } = deps;
  for (const backend of deps.candidates) {
    const base = { backend: backend.name, backendVersion: backend.version, loadMs: null, canaryTokensPerSec: null };
    const key = compatibilityKey(descriptor, backend);
    const quarantine = registry.quarantine(key);
    if (quarantine.quarantined && !options.allowUnsupported) {
      registry.record(key, "refused", { reason: "model_quarantined" });
      results.push({ ...base, outcome: "skipped", reason: "model_quarantined", message: quarantine.lastReasons.join(", ") });
      continue;
    }
    const problem = fileProblem(descriptor);
    if (problem) {
      registry.record(key, "failure", { reason: problem.code, message: problem.message, durationMs: 0 });
      results.push({ ...base, outcome: "failure", reason: problem.code, message: problem.message });
      continue;
    }
    const token = `probe:${descriptor.id}:${backend.name}`;
    const started = Date.now();
    try {
      const runner = await backend.start(descriptor, {
        ...deps.start,
        loaderTimeoutMs: options.timeoutMs,
        admit: (estimate) => deps.admit(token, `probe:${descriptor.id}`, estimate),
      });
      const loadMs = Date.now() - started;
      registry.record(key, "success", {
        durationMs: loadMs,
        metadata: { probe: true, timeoutMs: options.timeoutMs, canary: runner.info.canary, memory: runner.info.memory },
      });
      results.push({ ...base, outcome: "success", reason: null, message: null, loadMs, canaryTokensPerSec: runner.info.canary.tokensPerSec });
      await runner.stop(0);
    } catch (error) {
      const lmx = error instanceof LmxError ? error : new LmxError("model_probe_failed", String((error as Error)?.message ?? error));
      const outcome = attemptOutcome(lmx);
      registry.record(key, outcome, {
        reason: lmx.code,
        message: lmx.message,
        durationMs: Date.now() - started,
        metadata: { probe: true, timeoutMs: options.timeoutMs },
      });
      results.push({ ...base, outcome: outcome === "refused" ? "skipped" : "failure", reason: lmx.code, message: lmx.message });
    } finally {
      deps.release(token);
    }
  }
  return results;
}
