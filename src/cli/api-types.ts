/**
 * The parts of the server's JSON answers the CLI reads (see the routes in src/http/routes/). Declared here,
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
  model_ram: number;
  model_vram: number;
  context_ram: number;
  context_vram: number;
}

export interface RunnerStats {
  requests_served?: number;
  prompt_tokens_evaluated?: number;
  prompt_tokens_cached?: number;
  generated_tokens?: number;
  slots_busy?: number;
  slots_total?: number;
  requests_waiting?: number;
  rss_bytes?: number;
}

/** GET /admin/models/loaded → data[] */
export interface LoadedModel {
  id: string;
  pid?: number;
  backend?: string;
  backend_version?: string;
  type?: string;
  context_size?: number;
  parallel?: number;
  threads?: number;
  gpu?: string | false;
  load_ms?: number;
  uptime_sec?: number;
  idle_sec?: number;
  requests_served?: number;
  memory?: RunnerMemory | null;
  reserved_bytes?: number;
  pinned?: boolean;
  keep_alive_sec?: number | null;
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
  queue?: { running: number; waiting: number; per_model?: Record<string, { running: number; waiting: number }> };
  memory?: {
    total_bytes: number;
    available_bytes: number;
    budget_bytes: number;
    used_bytes: number;
    runner_overhead_bytes?: number;
    /** One per GPU the server budgets (nvidia-smi); absent from older servers, [] without GPUs. */
    gpus?: Array<{ index: number; total_bytes: number; budget_bytes: number; used_bytes: number }>;
    models?: Record<string, { bytes: number; kind: string }>;
  };
  disk?: DiskReport[];
  downloads?: DownloadSnapshot[];
  models_available?: number;
  models_loaded?: LoadedModel[];
  quarantined?: Array<{ model_id: string; backend: string; consecutive_failures?: number; last_reasons?: string[] }>;
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
  bytes_total: number;
  bytes_done: number;
  bytes_per_sec?: number;
  eta_sec?: number | null;
  error?: { code: string; message: string } | null;
  local_path?: string | null;
  created_at?: string;
  finished_at?: string | null;
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
    backend_version?: string;
    gpu?: string | false;
    context_size?: number;
    parallel?: number;
    threads?: number;
    batch_size?: number;
    gpu_layers?: number;
    load_ms?: number;
    memory?: RunnerMemory;
    canary?: { tokens_per_sec?: number };
  };
}

/** POST /admin/models/probe */
export interface ProbeAnswer {
  model_id: string;
  recommended_backend: string | null;
  results: Array<{
    backend: string;
    backend_version?: string;
    outcome: "success" | "failure" | "skipped" | string;
    reason: string | null;
    message: string | null;
    load_ms: number | null;
    canary_tokens_per_sec: number | null;
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
