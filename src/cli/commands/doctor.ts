/** `lmx doctor`: checks this machine and the server's config, each OK/WARN/FAIL with a fix; exit 1 on any FAIL. */
import { accessSync, constants, existsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { ConfigError, loadConfig, type ServerConfig } from "../../config/load.js";
import { isGguf } from "../../engines/llama-cpp/backend.js";
import { Inventory } from "../../inventory/inventory.js";
import { defaultHfCacheDir } from "../../inventory/sources/hf-cache.js";
import { scanGgufFolder } from "../../inventory/sources/gguf-folders.js";
import { realCoreCount } from "../../util/cores.js";
import { renderChecks, summarize, type Check } from "../checks.js";
import { printJson, run, type Io } from "../command-kit.js";
import {
  configCheck,
  diskChecks,
  exposureCheck,
  gpuChecks,
  memoryCheck,
  modelChecks,
  nodeCheck,
  portCheck,
  threadsCheck,
  type DiskFact,
  type ModelFacts,
  type PortState,
  llamaServerCheck,
  pythonEngineChecks,
  rpcBuildCheck,
} from "../doctor-checks.js";
import { findLlamaServer, llamaServerCandidates } from "../../engines/llama-server/binary.js";
import { EXIT } from "../exit.js";
import { gatherGpuFacts } from "../gpu-info.js";
import { urlForListenAddress } from "../target.js";
import { findRpcLlamaServer } from "../../engines/llama-server/rpc.js";
import { detectPythonEngines, platformFacts } from "../../engines/openai-child/detect.js";

interface DoctorOptions {
  config?: string;
  json?: boolean;
}

function nearestExisting(dir: string): string {
  let current = path.resolve(dir);
  while (!existsSync(current) && path.dirname(current) !== current) current = path.dirname(current);
  return current;
}

async function diskFact(role: string, dir: string): Promise<DiskFact> {
  const exists = existsSync(dir);
  const probe = exists ? dir : nearestExisting(dir);
  let writable = true;
  try {
    accessSync(probe, constants.W_OK);
  } catch {
    writable = false;
  }
  try {
    const s = await statfs(probe);
    return { role, path: dir, exists, writable, freeBytes: s.bavail * s.bsize, error: null };
  } catch (error) {
    return { role, path: dir, exists, writable, freeBytes: null, error: (error as Error).message };
  }
}

async function modelFacts(config: ServerConfig): Promise<ModelFacts> {
  // the doctor does not start engines: what the bundled llama.cpp engines open (GGUF) is what it can check
  const inventory = new Inventory(config, isGguf);
  const all = await inventory.available().catch(() => []);
  return {
    dirs: config.model_dirs.map((dir) => ({
      path: dir,
      exists: existsSync(dir),
      ggufModels: existsSync(dir) ? scanGgufFolder(dir, "model_dir").length : 0,
    })),
    configured: config.models.map((m) => ({ id: m.id, path: m.path, exists: existsSync(m.path) })),
    discovery: inventory.locations().filter((l) => l.source !== "model_dir" && l.exists),
    problems: all
      // a configured file that does not exist is reported on its own line
      .filter((m) => (m.problem !== null || m.missing.length > 0) && !(m.source === "config" && !existsSync(m.path)))
      .map((m) => ({ id: m.id, problem: m.problem ?? `missing ${m.missing.join(", ")}` })),
    servable: all.filter((m) => m.format === "gguf" && m.problem === null && m.missing.length === 0).length,
    demoModel: config.demo_model,
  };
}

/** Binding tells the truth about a port (in use, no permission, not our address); /healthz tells whose it is. */
async function portState(host: string, port: number): Promise<{ state: PortState; detail: string | null }> {
  if (port === 0) return { state: "free", detail: null };
  const bound = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const server = net.createServer();
    server.once("error", (error) => resolve(error as NodeJS.ErrnoException));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
  if (!bound) return { state: "free", detail: null };
  if (bound.code === "EACCES") return { state: "denied", detail: null };
  if (bound.code === "EADDRNOTAVAIL" || bound.code === "ENOTFOUND") return { state: "bad_host", detail: bound.code };
  if (bound.code !== "EADDRINUSE") return { state: "error", detail: bound.message };
  try {
    const res = await fetch(`${urlForListenAddress(host, port)}/healthz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json().catch(() => null)) as { status?: string } | null;
    return res.status === 200 && body?.status === "ok"
      ? { state: "lmx", detail: null }
      : { state: "in_use", detail: `it answers HTTP ${res.status} on /healthz` };
  } catch {
    return { state: "in_use", detail: "it does not speak HTTP" };
  }
}

export async function doctorChecks(options: DoctorOptions, env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const configPath = options.config ?? (env["LMX_CONFIG"] || null);
  let config: ServerConfig;
  let configError: string | null = null;
  try {
    config = loadConfig({ configPath: configPath ?? undefined, env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    configError = error.message;
    config = loadConfig({ env: {} });
  }
  // where downloads land, chosen exactly as the server chooses it (src/gateway/start.ts)
  const hfCache = config.downloads.cache_dir ?? new Inventory(config, isGguf).hfCacheDir() ?? defaultHfCacheDir(env);
  const [disks, models, port, gpu] = await Promise.all([
    Promise.all([
      diskFact("state_dir", config.state_dir),
      ...config.model_dirs.filter(existsSync).map((d) => diskFact("model_dir", d)),
      diskFact("download cache", hfCache),
    ]),
    modelFacts(config),
    portState(config.host, config.port),
    gatherGpuFacts(),
  ]);
  const facts = platformFacts();
  return [
    nodeCheck(process.version),
    configCheck(configPath, configError),
    threadsCheck(realCoreCount(), config),
    memoryCheck(os.totalmem(), os.freemem(), config.memory),
    ...diskChecks(disks, config.downloads.min_free_bytes),
    ...modelChecks(models),
    portCheck(config.host, config.port, port.state, port.detail),
    ...gpuChecks(gpu, config.gpu),
    llamaServerCheck(
      findLlamaServer(config.backends.llama_server, config.state_dir),
      config.backends.llama_server,
      gpu.nvidiaSmi.found && !gpu.nvidiaSmi.error,
      llamaServerCandidates(config.backends.llama_server, config.state_dir).paths,
    ),
    ...(config.backends.python_engines === false ? [] : pythonEngineChecks(detectPythonEngines(facts), facts)),
    ...[rpcBuildCheck(rpcModels(config), findRpcLlamaServer(config.backends.llama_server_rpc) !== null)].filter((c) => c !== null),
    exposureCheck(config),
  ];
}

/** Models whose layers go to llama.cpp RPC workers (per model, or every model through defaults). */
function rpcModels(config: ServerConfig): string[] {
  const global = (config.defaults.rpc?.workers.length ?? 0) > 0;
  const named = config.models.filter((m) => (m.rpc?.workers.length ?? (global ? 1 : 0)) > 0).map((m) => m.id);
  return global && named.length === 0 ? ["every model (defaults.rpc)"] : named;
}

async function doctor(options: DoctorOptions, io: Io): Promise<number> {
  const checks = await doctorChecks(options);
  const counts = summarize(checks);
  const exitCode = counts.fail > 0 ? EXIT.failed : EXIT.ok;
  if (options.json) {
    printJson(io, { checks, ...counts, exit_code: exitCode });
  } else {
    io.out(renderChecks(checks, io.style));
    io.out(`\n${counts.ok} ok, ${counts.warn} warning(s), ${counts.fail} failure(s)\n`);
  }
  return exitCode;
}

export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("check this machine and the server's config: cores and threads, memory, disks, model folders, port, GPU, access")
    .option("-c, --config <file>", "the server's config file (or LMX_CONFIG)")
    .option("--json", "print the checks as JSON")
    .action((options: DoctorOptions) => run((io) => doctor(options, io)));
}
