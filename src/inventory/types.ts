import type { ModelType } from "../config/schema.js";
import type { ResolvedRunnerSettings } from "../config/runner-settings.js";
import type { SettingsSources } from "../tuning/precedence.js";

import type { ModelFormat } from "./sources/types.js";

export type ModelSource = "config" | "model_dir" | "hf_cache" | "lmstudio" | "ollama" | "demo";

/** A model the server can serve: where it is and how a runner for it is started. */
export interface ModelDescriptor {
  id: string;
  aliases: string[];
  path: string;
  type: ModelType;
  source: ModelSource;
  sizeBytes: number;
  settings: ResolvedRunnerSettings;
  /** Which layer each setting came from (src/tuning/precedence.ts); absent for descriptors built elsewhere. */
  settingsSource?: SettingsSources;
  /** Idle time before unloading; null = never. */
  keepAliveMs: number | null;
  pinned: boolean;
  /** Per-model load deadline; null = the server's loader_timeout_sec. */
  loaderTimeoutMs: number | null;
  format: ModelFormat;
  /** The folder to point other tools at (the snapshot directory for the HF cache). */
  localPath: string;
  architecture: string | null;
  parameterCount: number | null;
  quantization: string | null;
  contextLength: number | null;
  /** Files the model needs that are not on disk. */
  missing: string[];
  /** Why the file cannot be loaded as it is (truncated, unreadable header), if it cannot. */
  problem: string | null;
}
