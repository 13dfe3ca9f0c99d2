import type { ServerConfig } from "../config/load.js";
import type { Inventory } from "../inventory/inventory.js";
import type { Scheduler } from "../scheduler/scheduler.js";

/** What the use-cases need: no HTTP framework in sight (src/http passes its context, a superset). */
export interface ServingContext {
  config: ServerConfig;
  inventory: Inventory;
  scheduler: Scheduler;
  state: { ready: boolean; shuttingDown: boolean };
}
