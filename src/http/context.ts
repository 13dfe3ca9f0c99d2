import type { Logger } from "pino";
import type { ServerConfig } from "../config/load.js";
import type { Inventory } from "../inventory/inventory.js";
import type { DownloadManager } from "../inventory/downloads/download-manager.js";
import type { MemoryBudget } from "../scheduler/memory-budget.js";
import type { LmxMetrics } from "../metrics/metrics.js";
import type { StateDatabase } from "../state/database.js";
import type { CompatibilityRegistry } from "../state/compatibility-registry.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { EventHub } from "../events/hub.js";
import type { ServingContext } from "../serving/context.js";
import type { ChatConformanceRegistry } from "../state/chat-conformance.js";
import type { SkillRegistry } from "../skills/registry.js";

/** What routes need from the rest of the server; passed explicitly so each route file stays testable. */
export interface GatewayContext extends ServingContext {
  config: ServerConfig;
  inventory: Inventory;
  scheduler: Scheduler;
  memory: MemoryBudget;
  storage: StateDatabase;
  registry: CompatibilityRegistry;
  /** Tool-calling and structured-output outcomes per model × template family × backend. */
  conformance: ChatConformanceRegistry;
  downloads: DownloadManager;
  /** Lifecycle transitions, download progress and queue depth, for GET /admin/events. */
  events: EventHub;
  metrics: LmxMetrics;
  /** Skills the server runs itself (/v1/skills, /mcp, the server-side tool loop). */
  skills: SkillRegistry;
  log: Logger;
  startedAt: number;
  version: string;
  state: { ready: boolean; shuttingDown: boolean };
}
