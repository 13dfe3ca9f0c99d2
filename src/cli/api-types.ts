/**
 * The parts of the server's JSON answers the CLI reads (see the routes in src/server/routes/). Declared here,
 * not imported from the server, because the CLI speaks to servers of other versions too: every field a command
 * prints is optional or nullable where an older or newer server might leave it out.
 */

export interface ModelLocation {
  source: string;
  path: string;
  exists: boolean;
}

/** GET /admin/models/available → data[] */
export interface AvailableModel {
  id: string;
  aliases?: string[];
  source?: string;
  format?: string;
  type?: string;
  architecture?: string | null;
  parameter_count?: number | null;
  quantization?: string | null;
  context_length?: number | null;
  size_bytes?: number | null;
  path?: string;
  local_path?: string;
  complete?: boolean;
  missing?: string[];
  problem?: string | null;
  servable?: boolean;
  quarantined?: boolean;
  status?: string;
}

export interface AvailableList {
  object: "list";
  locations?: ModelLocation[];
  data: AvailableModel[];
}

export interface RunnerMemory {
  modelRam: number;
  modelVram: number;
  contextRam: number;
  contextVram: number;
}

export interface RunnerStats {
  requestsServed?: number;
  promptTokensEvaluated?: number;
  promptTokensCached?: number;
  generatedTokens?: number;
  slotsBusy?: number;
  slotsTotal?: number;
  requestsWaiting?: number;
  rssBytes?: number;
}

/** GET /admin/models/loaded → data[] */
export interface LoadedModel {
  id: string;
  pid?: number;
  backend?: string;
  backendVersion?: string;
  type?: string;
  contextSize?: number;
  parallel?: number;
  threads?: number;
  gpu?: string | false;
  loadMs?: number;
  uptimeSec?: number;
  idleSec?: number;
  requestsServed?: number;
  memory?: RunnerMemory | null;
  reservedBytes?: number;
  pinned?: boolean;
  keepAliveSec?: number | null;
  stats?: RunnerStats | null;
}

export interface LoadedList {
  object: "list";
  data: LoadedModel[];
}

/** GET /v1/models → data[] */
export interface V1Model {
  id: string;
  status?: string;
  type?: string;
  aliases?: string[];
  source?: string;
  size_bytes?: number;
  context_size?: number | null;
  last_error?: { code?: string; message?: string } | null;
}

export interface DiskReport {
  path: string;
  free_bytes?: number;
  total_bytes?: number;
  error?: string;
}

/** GET /admin/status */
export interface ServerStatus {
  version?: string;
  uptime_sec?: number;
  ready?: boolean;
  queue?: { running: number; waiting: number; perModel?: Record<string, { running: number; waiting: number }> };
  memory?: {
    total_bytes: number;
    available_bytes: number;
    budget_bytes: number;
    used_bytes: number;
    runner_overhead_bytes?: number;
    models?: Record<string, { bytes: number; kind: string }>;
  };
  disk?: DiskReport[];
  downloads?: DownloadSnapshot[];
  models_available?: number;
  models_loaded?: LoadedModel[];
  quarantined?: Array<{ modelId: string; backend: string; consecutiveFailures?: number; lastReasons?: string[] }>;
  storage?: { file: string | null; degraded: boolean; problems: Array<{ component: string; error: string; at: string }> };
}

/** POST /admin/models/download and GET /admin/models/downloads/{id} */
export interface DownloadSnapshot {
  id: string;
  repo: string;
  revision?: string;
  commit?: string | null;
  status: "queued" | "running" | "completed" | "failed" | "cancelled" | string;
  files?: Array<{ path: string; size: number; downloaded: number; status: string }>;
  bytesTotal: number;
  bytesDone: number;
  bytesPerSec?: number;
  etaSec?: number | null;
  error?: { code: string; message: string } | null;
  localPath?: string | null;
  createdAt?: string;
  finishedAt?: string | null;
}

/** POST /admin/models/load */
export interface LoadAnswer {
  status: "loaded" | "download_required" | string;
  model_id: string;
  reloaded?: boolean;
  pid?: number;
  missing?: string[];
  local_path?: string;
  hint?: string;
  info?: {
    backend?: string;
    backendVersion?: string;
    gpu?: string | false;
    contextSize?: number;
    parallel?: number;
    threads?: number;
    batchSize?: number;
    gpuLayers?: number;
    loadMs?: number;
    memory?: RunnerMemory;
    canary?: { tokensPerSec?: number };
  };
}

/** POST /admin/models/probe */
export interface ProbeAnswer {
  model_id: string;
  recommended_backend: string | null;
  results: Array<{
    backend: string;
    backendVersion?: string;
    outcome: "success" | "failure" | "skipped" | string;
    reason: string | null;
    message: string | null;
    loadMs: number | null;
    canaryTokensPerSec: number | null;
  }>;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}
