/**
 * Test-only fault injection for runners, so tests can force the failures users hit (a loader that aborts,
 * hangs or exits; a slower token loop) through the real code paths.
 *
 * Two environment variables, both required, so no configuration file or request can turn it on:
 *   LMX_ENABLE_FAULT_INJECTION=1
 *   LMX_FAULT_INJECTION='{"tokenDelayMs": 2, "load": {"model-id" or "model-id@backend": "abort" | "hang" | "exit" | "crash_after_ready"}}'
 * Runners inherit the gateway's environment, so setting both on the gateway reaches every runner.
 */
export type LoadFault = "abort" | "hang" | "exit" | "crash_after_ready";

export interface FaultPlan {
  /** Extra delay per generated token, to simulate a slower build in perf-gate tests. */
  tokenDelayMs: number;
  load: Record<string, LoadFault>;
}

const NONE: FaultPlan = { tokenDelayMs: 0, load: {} };

export function faultPlan(env: NodeJS.ProcessEnv = process.env): FaultPlan {
  if (env["LMX_ENABLE_FAULT_INJECTION"] !== "1") return NONE;
  const raw = env["LMX_FAULT_INJECTION"];
  if (!raw) return NONE;
  try {
    const parsed = JSON.parse(raw) as Partial<FaultPlan>;
    return {
      tokenDelayMs: typeof parsed.tokenDelayMs === "number" && parsed.tokenDelayMs > 0 ? parsed.tokenDelayMs : 0,
      load: typeof parsed.load === "object" && parsed.load !== null ? (parsed.load as Record<string, LoadFault>) : {},
    };
  } catch {
    return NONE;
  }
}

/** Faults are keyed by "model@backend" (one backend of a fallback chain) or by model id (every backend). */
export function faultTarget(init: { modelId: string; backend: string }, plan: FaultPlan = faultPlan()): string {
  const specific = `${init.modelId}@${init.backend}`;
  return specific in plan.load ? specific : init.modelId;
}

/** Runs the load fault planned for a model, if any: called by the runner before it loads anything. */
export async function injectLoadFault(modelId: string, plan: FaultPlan): Promise<void> {
  switch (plan.load[modelId]) {
    case "abort":
      process.abort(); // SIGABRT, like a native GGML_ASSERT
      break;
    case "hang":
      await new Promise(() => {}); // never settles: the loader timeout must catch it
      break;
    case "exit":
      process.exit(3);
      break;
    default:
      break;
  }
}
