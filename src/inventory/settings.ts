import type { RunnerSettingsInput } from "../config/schema.js";
import type { GpuChoice, ResolvedRunnerSettings } from "../config/runner-settings.js";
import { autoThreads, resolveLoadSettings } from "../tuning/precedence.js";

export { autoThreads };

/** Per-model settings win over server defaults, which win over built-in defaults (the full order: src/tuning/precedence.ts). */
export function resolveRunnerSettings(
  model: RunnerSettingsInput,
  defaults: RunnerSettingsInput,
  gpu: GpuChoice,
  modelBytes: number,
): ResolvedRunnerSettings {
  return resolveLoadSettings({ model, defaults }, gpu, modelBytes).settings;
}
