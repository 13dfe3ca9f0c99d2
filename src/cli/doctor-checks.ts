/**
 * `lmx doctor`'s judgements, as pure functions of facts gathered elsewhere (commands/doctor.ts), so each rule
 * can be tested on any machine: thread counts, memory budget, disks, model folders, the port, GPUs, exposure.
 */
import type { LlamaServerBinary } from "../engines/llama-server/binary.js";
import type { ServerConfig } from "../config/load.js";
import { fail, ok, warn, type Check } from "./checks.js";
import { formatBytes } from "./format.js";
import { compareVersions, type GpuFacts } from "./gpu-info.js";
import type { PlatformFacts, PythonEngine } from "../engines/openai-child/detect.js";

export const BUILD_CUDA_FROM_SOURCE = "npx --no node-llama-cpp source download --gpu cuda";
const LOW_DISK_BYTES = 1024 ** 3;
const LOW_FREE_MEMORY_BYTES = 512 * 1024 ** 2;

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

export function nodeCheck(version: string): Check {
  const major = Number(/^v?(\d+)/.exec(version)?.[1] ?? 0);
  return major >= 20 ? ok("node", `Node.js ${version}`) : fail("node", `Node.js ${version} is too old`, "install Node.js 20 or newer");
}

export function configCheck(configPath: string | null, error: string | null): Check {
  if (error)
    return fail("config", error.split("\n").slice(0, 4).join(" "), "fix the setting named above (the rest of this report uses the defaults)");
  return ok("config", configPath ? `${configPath} is valid` : "no config file (LMX_CONFIG / --config): defaults and environment");
}

/** Explicit thread counts above the core count are the classic llama.cpp slowdown; auto is always safe. */
export function threadsCheck(cores: number, config: Pick<ServerConfig, "defaults" | "models">): Check {
  const explicit = [
    ...(typeof config.defaults.threads === "number" ? [{ where: "defaults.threads", threads: config.defaults.threads }] : []),
    ...config.models.filter((m) => typeof m.threads === "number").map((m) => ({ where: `threads of model ${m.id}`, threads: m.threads as number })),
  ];
  const over = explicit.filter((e) => e.threads > cores);
  if (over.length > 0) {
    return warn(
      "threads",
      `${over.map((e) => `${e.where} is ${e.threads}`).join(", ")} but this machine has ${cores} core(s): llama.cpp slows down badly when threads outnumber cores`,
      `set threads: auto (= ${cores} here)`,
    );
  }
  const note =
    cores < 4
      ? `; node-llama-cpp's own default would run 4 threads on these ${cores} cores, so lmx always passes threads explicitly — keep threads: auto`
      : "";
  return ok("threads", `${cores} core(s); threads: auto uses ${cores} (1 for models under 64 MB)${note}`);
}

export function memoryCheck(totalBytes: number, freeBytes: number, memory: ServerConfig["memory"]): Check {
  const budget = memory.budget_bytes ?? Math.floor((totalBytes * memory.max_percent) / 100);
  if (memory.budget_bytes !== null && memory.budget_bytes > totalBytes) {
    return warn(
      "memory",
      `memory.budget_bytes ${formatBytes(memory.budget_bytes)} is more than the ${formatBytes(totalBytes)} of RAM: loads that fit the budget can still swap`,
      "lower memory.budget_bytes, or use memory.max_percent",
    );
  }
  const overhead = memory.runner_overhead_mb * 1024 * 1024;
  if (budget < overhead * 2) {
    return warn(
      "memory",
      `the budget (${formatBytes(budget)}) leaves room for little more than one runner's overhead (${formatBytes(overhead)})`,
      "raise memory.max_percent or memory.budget_bytes",
    );
  }
  const detail = `budget ${formatBytes(budget)} of ${formatBytes(totalBytes)} RAM (${memory.budget_bytes !== null ? "budget_bytes" : `${memory.max_percent}%`}), ${formatBytes(freeBytes)} free now`;
  if (freeBytes < LOW_FREE_MEMORY_BYTES)
    return warn("memory", detail, "little memory is free right now: close other programs, or expect loads to be refused (507) or evictions");
  return ok("memory", detail);
}

export interface DiskFact {
  /** state_dir, model_dir, download cache. */
  role: string;
  path: string;
  exists: boolean;
  /** Writable, or for a folder that does not exist yet: its nearest existing parent is. */
  writable: boolean;
  freeBytes: number | null;
  error: string | null;
}

export function diskChecks(disks: readonly DiskFact[], minFreeForDownloads: number): Check[] {
  return disks.map((d) => {
    const name = `disk ${d.role}`;
    if (d.error) return warn(name, `${d.path}: ${d.error}`, null);
    if (!d.writable && d.role !== "model_dir") {
      return fail(
        name,
        `${d.path} is not writable${d.exists ? "" : " (and cannot be created)"}`,
        d.role === "state_dir"
          ? "choose a writable state_dir (or LMX_STATE_DIR), or fix the folder's owner"
          : "choose a writable downloads.cache_dir, or fix the folder's owner",
      );
    }
    const free = d.freeBytes === null ? "?" : formatBytes(d.freeBytes);
    const detail = `${d.path}${d.exists ? "" : " (created on start)"}: ${free} free`;
    if (d.role === "download cache" && d.freeBytes !== null && d.freeBytes < minFreeForDownloads) {
      return warn(
        name,
        `${detail}, below downloads.min_free_bytes (${formatBytes(minFreeForDownloads)}): downloads are refused with 507`,
        "free space there, or lower downloads.min_free_bytes",
      );
    }
    if (d.freeBytes !== null && d.freeBytes < LOW_DISK_BYTES) return warn(name, `${detail}: low`, "free some space");
    return ok(name, detail);
  });
}

export interface ModelDirFact {
  path: string;
  exists: boolean;
  ggufModels: number;
}

export interface ModelFacts {
  dirs: ModelDirFact[];
  configured: Array<{ id: string; path: string; exists: boolean }>;
  /** Other stores the server reads (HF cache, LM Studio, Ollama) that exist here. */
  discovery: Array<{ source: string; path: string }>;
  /** Models found but not servable, with why. */
  problems: Array<{ id: string; problem: string }>;
  servable: number;
  demoModel: boolean;
}

export function modelChecks(facts: ModelFacts): Check[] {
  const checks: Check[] = [];
  for (const dir of facts.dirs) {
    if (!dir.exists)
      checks.push(fail("models", `model_dirs entry ${dir.path} does not exist`, "create it, or remove it from model_dirs (or LMX_MODEL_DIRS)"));
    else if (dir.ggufModels === 0)
      checks.push(warn("models", `${dir.path} holds no .gguf files`, "put GGUF models there, or `lmx pull org/repo` into the HF cache"));
    else checks.push(ok("models", `${dir.path}: ${dir.ggufModels} GGUF model(s)`));
  }
  for (const m of facts.configured.filter((c) => !c.exists)) {
    checks.push(fail("models", `model ${m.id}: ${m.path} does not exist`, "fix its path in the config, or remove the entry"));
  }
  if (facts.problems.length > 0) {
    const shown = facts.problems
      .slice(0, 5)
      .map((p) => `${p.id} (${p.problem})`)
      .join("; ");
    checks.push(
      warn(
        "models",
        `${facts.problems.length} model(s) cannot be served: ${shown}${facts.problems.length > 5 ? "; …" : ""}`,
        "`lmx models` shows each with its fix (re-download, complete, or use a GGUF)",
      ),
    );
  }
  const discovered = facts.discovery.map((d) => `${d.source} ${d.path}`).join(", ");
  if (facts.servable === 0) {
    checks.push(
      facts.demoModel
        ? warn(
            "models",
            "no servable model found: the server will serve its generated demo model (gibberish by design)",
            "add model_dirs or models to the config, or `lmx pull org/repo`",
          )
        : fail(
            "models",
            "no servable model found and demo_model is off: the server will have nothing to serve",
            "add model_dirs or models to the config, or `lmx pull org/repo`",
          ),
    );
  } else {
    checks.push(ok("models", `${facts.servable} servable model(s)${discovered ? `; also reading ${discovered}` : ""}`));
  }
  return checks;
}

export type PortState = "free" | "lmx" | "in_use" | "denied" | "bad_host" | "error";

export function portCheck(host: string, port: number, state: PortState, detail: string | null): Check {
  const where = `${host}:${port}`;
  switch (state) {
    case "free":
      return ok("port", `${where} is free for \`lmx serve\``);
    case "lmx":
      return ok("port", `an Opta LMX server already answers on ${where}`);
    case "in_use":
      return fail(
        "port",
        `${where} is taken by another program${detail ? ` (${detail})` : ""}`,
        "stop that program, or set port: (or LMX_PORT, --port) to a free port",
      );
    case "denied":
      return fail("port", `no permission to listen on ${where}`, "ports below 1024 need root: use a higher port (default 1234)");
    case "bad_host":
      return fail(
        "port",
        `${host} is not an address of this machine${detail ? ` (${detail})` : ""}`,
        "set host: to 127.0.0.1 (local only), 0.0.0.0 (all interfaces) or one of this machine's addresses",
      );
    default:
      return warn("port", `could not check ${where}: ${detail ?? "unknown error"}`, null);
  }
}

export function gpuChecks(gpu: GpuFacts, setting: string): Check[] {
  if (gpu.supported === null) {
    return [fail("gpu", `node-llama-cpp cannot be loaded: ${gpu.supportedError ?? "unknown error"}`, "reinstall dependencies: npm install")];
  }
  const types = gpu.supported.filter((t): t is string => t !== false);
  const checks: Check[] = [];
  if (setting !== "auto" && setting !== "cpu" && !types.includes(setting)) {
    checks.push(
      fail(
        "gpu",
        `gpu: ${setting}, but node-llama-cpp finds no usable ${setting} here (usable: ${types.join(", ") || "none"})`,
        "set gpu: auto (uses what works, else CPU), or install the drivers",
      ),
    );
  }
  const smi = gpu.nvidiaSmi;
  if (smi.found && smi.error) {
    checks.push(
      warn("gpu", `nvidia-smi fails: ${smi.error}`, "the NVIDIA driver is not working: reinstall it or reboot; until then models run on CPU"),
    );
  } else if (smi.found && !types.includes("cuda")) {
    checks.push(
      warn(
        "gpu",
        `an NVIDIA GPU is here (driver ${smi.driverVersion ?? "?"}, CUDA ${smi.cudaVersion ?? "?"}) but node-llama-cpp cannot use CUDA (runtime libraries missing?)`,
        `install the CUDA runtime, or build for this machine: ${BUILD_CUDA_FROM_SOURCE}`,
      ),
    );
  } else if (types.includes("cuda")) {
    const toolkit = gpu.prebuiltCudaToolkit;
    if (!smi.found) {
      checks.push(
        warn(
          "gpu",
          "CUDA libraries are present but nvidia-smi is not, so the driver cannot be checked",
          "install the NVIDIA driver utilities (nvidia-smi)",
        ),
      );
    } else if (toolkit && smi.cudaVersion && compareVersions(smi.cudaVersion, toolkit) < 0 && !gpu.localCudaBuild) {
      checks.push(
        warn(
          "gpu",
          `the NVIDIA driver ${smi.driverVersion ?? "?"} supports CUDA ${smi.cudaVersion}, older than the CUDA ${toolkit} node-llama-cpp's prebuilt binary was built with: GPU loads fail ("PTX was compiled with an unsupported toolchain") and fall back to CPU`,
          `update the NVIDIA driver, or build for this driver: lmx engines build llama-server --cuda (the llama-server engine), or ${BUILD_CUDA_FROM_SOURCE} (node-llama-cpp)`,
        ),
      );
    } else {
      const built = gpu.localCudaBuild ? "a local CUDA build" : toolkit ? `prebuilt for CUDA ${toolkit}` : "prebuilt";
      checks.push(ok("gpu", `CUDA: driver ${smi.driverVersion ?? "?"} (CUDA ${smi.cudaVersion ?? "?"}), node-llama-cpp ${built}`));
    }
  }
  for (const other of types.filter((t) => t !== "cuda")) checks.push(ok("gpu", `${other} is usable`));
  if (types.length === 0 && !smi.found && checks.length === 0) checks.push(ok("gpu", "no GPU found: models run on the CPU"));
  if (setting === "cpu" && types.length > 0) checks.push(ok("gpu", `gpu: cpu — ${types.join(", ")} stays unused`));
  return checks;
}

/** The llama-server engine: built or not, and whether it can use the GPU this machine has. */
export function llamaServerCheck(found: LlamaServerBinary | null, setting: string | false, nvidiaGpu: boolean, lookedAt: string[]): Check {
  const build = `lmx engines build llama-server${nvidiaGpu ? " --cuda" : ""}`;
  if (setting === false) return ok("engine", "llama-server engine off (backends.llama_server: false): node-llama-cpp serves every model");
  if (!found) {
    return warn(
      "engine",
      `no llama-server engine (looked at ${lookedAt.join(", ")}): node-llama-cpp serves, 2-4x slower under concurrency (docs/benchmarks.md)`,
      `${build} (needs git, cmake, make, a C++ compiler${nvidiaGpu ? ", the CUDA toolkit" : ""})`,
    );
  }
  if (nvidiaGpu && found.devices.length === 0) {
    return warn("engine", `llama-server at ${found.path} is CPU-only, but an NVIDIA GPU is here`, `${build} (then restart the server)`);
  }
  const devices = found.devices.length > 0 ? `, offloads to ${found.devices.join("; ")}` : ", CPU";
  return ok("engine", `${found.version} at ${found.path}${devices}`);
}

/**
 * The Python engines (mlx_lm.server, vllm-mlx, vLLM): found or not, and whether this platform can run them. Only
 * an engine that fits the platform and is missing is worth a warning; all are marked not verified on real hardware.
 */
export function pythonEngineChecks(engines: readonly PythonEngine[], facts: PlatformFacts): Check[] {
  return engines.map((engine) => {
    const label = `${engine.name} (not verified on real hardware)`;
    if (engine.available) return ok("engine", `${label}: ${engine.version ?? ""} via ${engine.note}`);
    const fits = engine.name === "vllm" ? facts.platform === "linux" && facts.cuda : facts.appleSilicon;
    if (fits && !engine.installed) {
      return warn("engine", `${label}: ${engine.note}`, engine.name === "vllm" ? "pip install vllm" : `pip install ${engine.name}`);
    }
    return ok("engine", `${label}: ${engine.note}`);
  });
}

/** The llama.cpp RPC build: only worth mentioning when a model names rpc.workers and the build is missing. */
export function rpcBuildCheck(rpcModels: readonly string[], found: boolean): Check | null {
  if (rpcModels.length === 0) return null;
  if (found)
    return ok("engine", `llama.cpp RPC build present for ${rpcModels.join(", ")} (rpc.workers); RPC is unauthenticated: private networks only`);
  return fail("engine", `${rpcModels.join(", ")} name rpc.workers, but no llama-server built with RPC is here`, "lmx engines build rpc-server");
}

export function exposureCheck(config: Pick<ServerConfig, "host" | "admin_key" | "api_keys">): Check {
  if (isLoopback(config.host)) return ok("access", `listens on ${config.host}: only this machine can connect`);
  if (!config.admin_key) {
    return fail(
      "access",
      `host ${config.host} listens beyond loopback without admin_key: anyone who can reach the port can load, unload and download models`,
      "set admin_key (or LMX_ADMIN_KEY) to a secret of 8+ characters, or host: 127.0.0.1",
    );
  }
  if (config.api_keys.length === 0) {
    return warn(
      "access",
      `host ${config.host} listens beyond loopback; /admin needs the admin key, but /v1 is open to anyone who can reach it`,
      "set api_keys (or LMX_API_KEYS) if that is not intended",
    );
  }
  return ok("access", `host ${config.host}: admin_key and api_keys are set`);
}
