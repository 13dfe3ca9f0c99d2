import type { ModelType } from "../config/schema.js";
import type { ResolvedRunnerSettings } from "../runners/protocol.js";

export type ModelSource = "config" | "model_dir" | "demo";

/** A model the server can serve: where it is and how a runner for it is started. */
export interface ModelDescriptor {
  id: string;
  aliases: string[];
  path: string;
  type: ModelType;
  source: ModelSource;
  sizeBytes: number;
  settings: ResolvedRunnerSettings;
  /** Idle time before unloading; null = never. */
  keepAliveMs: number | null;
  pinned: boolean;
}
