/** What to do about a failed or quarantined model, by error code (the long form is docs/reliability.md). */
const HINTS = {
  model_file_invalid: "The file is damaged or not a model this llama.cpp reads: download it again or pick another quantization.",
  model_probe_failed: "The weights give non-finite output on this backend: try another backend or quantization.",
  model_load_timeout: "Loading took longer than loader_timeout_sec: raise it, or lower context_size / gpu_layers.",
  model_loader_crashed: "The backend crashed while loading: try another backend (backends.order) or fewer GPU layers.",
  model_crashed: "The runner died while serving: see the runner's log lines in the server log; reload to try again.",
  model_quarantined: "Loads are refused after repeated failures: fix the cause, then Unquarantine to allow loads again.",
  insufficient_memory: "The model does not fit the memory budget: unload others, lower context_size, or raise memory.max_percent.",
  backend_unavailable: "No backend can open this file: check its format and the configured backends.",
  download_required: "Files are missing: complete the download on the Downloads page.",
};

export function hintFor(code) {
  return HINTS[code] ?? "See docs/reliability.md for this code; the compatibility page shows every attempt.";
}
