/**
 * Presets: named runner settings an operator assigns to a model entry (`preset:`) or picks per load. The
 * built-ins below cover the usual shapes; `presets:` in the config adds more or replaces one of these by name.
 */
import type { RunnerSettingsInput } from "../config/schema.js";
import { LmxError } from "../errors/codes.js";

export interface Preset {
  name: string;
  description: string;
  builtIn: boolean;
  settings: RunnerSettingsInput;
}

export const BUILT_IN_PRESETS: readonly Preset[] = [
  {
    name: "fast-chat",
    description: "one person chatting: few slots, flash attention, the full context per slot",
    builtIn: true,
    settings: { parallel: 2, flash_attention: "auto" },
  },
  {
    name: "long-context",
    description: "long documents: one slot with a large context, the KV cache in q8_0 to fit it",
    builtIn: true,
    settings: { parallel: 1, context_size: 32768, flash_attention: true, cache_type_k: "q8_0", cache_type_v: "q8_0" },
  },
  {
    name: "batch",
    description: "many streams at once (agents, bulk jobs): more slots, a larger batch",
    builtIn: true,
    settings: { parallel: 8, batch_size: 1024, ubatch_size: 512 },
  },
  {
    name: "low-memory",
    description: "small machines: one slot, a short context, a q4_0 KV cache, no prompt cache",
    builtIn: true,
    settings: { parallel: 1, context_size: 2048, flash_attention: true, cache_type_k: "q4_0", cache_type_v: "q4_0", prompt_cache_mb: 0 },
  },
];

/** Built-ins overlaid by the config's own (a config preset of the same name replaces the built-in). */
export function allPresets(configured: Record<string, RunnerSettingsInput>): Preset[] {
  const byName = new Map<string, Preset>(BUILT_IN_PRESETS.map((p) => [p.name, p]));
  for (const [name, settings] of Object.entries(configured)) byName.set(name, { name, description: "from the config", builtIn: false, settings });
  return [...byName.values()];
}

export function presetNames(configured: Record<string, RunnerSettingsInput>): string[] {
  return allPresets(configured).map((p) => p.name);
}

/** The preset of that name, or a 400 naming `param` and the presets there are. */
export function presetNamed(configured: Record<string, RunnerSettingsInput>, name: string, param = "preset"): Preset {
  const preset = allPresets(configured).find((p) => p.name === name);
  if (!preset) throw new LmxError("invalid_value", `unknown preset '${name}'; known: ${presetNames(configured).join(", ")}`, { param });
  return preset;
}
