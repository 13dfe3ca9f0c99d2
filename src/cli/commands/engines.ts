/**
 * `lmx engines`: which engines this machine can run, and `lmx engines build llama-server`, which compiles
 * llama.cpp's own server from the source bundled inside node-llama-cpp (the same llama.cpp release) into the
 * machine's one build folder (~/.cache/opta-lmx/llama-server, which `npm test` builds too), where the server
 * finds it at its next start.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { loadConfig } from "../../config/load.js";
import { nodeLlamaCppVersion } from "../../engines/llama-cpp/backend.js";
import { findLlamaServer, llamaServerCandidates, userCacheLlamaServerDir } from "../../engines/llama-server/binary.js";
import { runLlamaServerBuild } from "../../engines/llama-server/build.js";
import { findRpcLlamaServer, rpcBinaryPaths, userCacheRpcDir } from "../../engines/llama-server/rpc.js";
import { detectPythonEngines, platformFacts } from "../../engines/openai-child/detect.js";
import { buildProgressPrinter } from "../build-progress.js";
import { printJson, run, type Io } from "../command-kit.js";
import { EXIT } from "../exit.js";

const BUILD_SCRIPT = fileURLToPath(new URL("../../../../scripts/build-llama-server.sh", import.meta.url));

interface EnginesOptions {
  config?: string;
  stateDir?: string;
  json?: boolean;
}

interface BuildOptions extends EnginesOptions {
  out?: string;
  jobs?: string;
  portable?: boolean;
  cuda?: boolean;
  force?: boolean;
}

function settingsFor(options: EnginesOptions): { stateDir: string; setting: string | false; config: ReturnType<typeof loadConfig> } {
  const config = loadConfig({ configPath: options.config, overrides: options.stateDir ? { state_dir: options.stateDir } : {} });
  return { stateDir: config.state_dir, setting: config.backends.llama_server, config };
}

interface EngineRow {
  name: string;
  available: boolean;
  version: string | null;
  path: string | null;
  devices: string[];
  lookedAt: string[];
  how: string | null;
  /** False for engines nobody has run on the hardware they are for (MLX, vLLM). */
  verified: boolean;
  note: string | null;
}

async function list(options: EnginesOptions, io: Io): Promise<number> {
  const { stateDir, setting, config } = settingsFor(options);
  const found = findLlamaServer(setting, stateDir, (message) => io.err(`${message}\n`));
  const rpcSetting = config.backends.llama_server_rpc;
  const rpc = findRpcLlamaServer(rpcSetting, (message) => io.err(`${message}\n`));
  const rpcPaths = rpcBinaryPaths();
  const rpcWorker = existsSync(rpcPaths.rpcServer) ? rpcPaths.rpcServer : null;
  const engines: EngineRow[] = [
    {
      name: "llama-server",
      available: found !== null,
      version: found?.version ?? null,
      path: found?.path ?? null,
      devices: found?.devices ?? [],
      lookedAt: llamaServerCandidates(setting, stateDir).paths,
      how: found ? null : `lmx engines build llama-server (→ ${userCacheLlamaServerDir()})`,
      verified: true,
      note: null,
    },
    {
      name: "llama.cpp-rpc",
      available: rpc !== null && rpcWorker !== null,
      version: rpc?.version ?? null,
      path: rpc?.path ?? null,
      devices: [],
      lookedAt: rpcSetting === false ? [] : [rpcSetting === "auto" ? rpcPaths.llamaServer : rpcSetting, rpcPaths.rpcServer],
      how: rpc && rpcWorker ? null : `lmx engines build rpc-server (→ ${userCacheRpcDir()})`,
      verified: true,
      note: rpcWorker ? `workers: ${rpcWorker} -H <private address> -p 50052 (UNAUTHENTICATED: private networks only)` : null,
    },
    {
      name: "llama.cpp",
      available: true,
      version: `node-llama-cpp ${nodeLlamaCppVersion()}`,
      path: null,
      devices: [],
      lookedAt: [],
      how: null,
      verified: true,
      note: null,
    },
  ];
  const facts = platformFacts();
  if (config.backends.python_engines !== false) {
    for (const engine of detectPythonEngines(facts)) {
      engines.push({
        name: engine.name,
        available: engine.available,
        version: engine.version,
        path: engine.binary ? [engine.binary, ...engine.launcher].join(" ") : null,
        devices: [],
        lookedAt: [],
        how: engine.installed ? null : engine.name === "vllm" ? "pip install vllm (Linux + CUDA)" : `pip install ${engine.name} (Apple Silicon)`,
        verified: false,
        note: engine.note,
      });
    }
  }
  for (const entry of config.backends.openai_compatible) {
    engines.push({
      name: entry.name,
      available: true,
      version: null,
      path: entry.command.join(" "),
      devices: [],
      lookedAt: [],
      how: null,
      verified: false,
      note: `backends.openai_compatible, serves ${entry.formats.join(", ")}`,
    });
  }
  if (options.json) {
    printJson(io, { platform: facts, order: config.backends.order, engines });
    return EXIT.ok;
  }
  for (const e of engines) {
    const state = e.available ? io.style.green("available") : io.style.yellow(e.how?.startsWith("lmx engines build") ? "not built" : "not available");
    const unverified = e.verified ? "" : `  ${io.style.yellow("(not verified on real hardware)")}`;
    io.out(
      `${e.name.padEnd(14)} ${state}  ${e.version ?? ""}${e.path ? `  ${e.path}` : ""}${e.devices.length ? `  devices: ${e.devices.join("; ")}` : ""}${unverified}\n`,
    );
    if (e.note) io.out(`${"".padEnd(14)} ${e.note}\n`);
    if (e.how) io.out(`${e.lookedAt.length ? `${"".padEnd(14)} looked at: ${e.lookedAt.join(", ")}\n` : ""}${"".padEnd(14)} get it: ${e.how}\n`);
  }
  io.out(`order: ${config.backends.order.join(" → ")} (backends.order; ${facts.platform}/${facts.arch}${facts.cuda ? ", CUDA" : ""})\n`);
  return EXIT.ok;
}

async function build(options: BuildOptions, io: Io, rpc = false): Promise<number> {
  // the RPC build has its own folder: flipping GGML_RPC in the plain build's tree would rebuild most of ggml each time
  const out = path.resolve(options.out ?? (rpc ? userCacheRpcDir() : userCacheLlamaServerDir()));
  if (!existsSync(BUILD_SCRIPT)) {
    io.err(`the build script is missing (${BUILD_SCRIPT}); this install does not ship it\n`);
    return EXIT.failed;
  }
  const what = rpc ? "rpc-server and an RPC-enabled llama-server" : "llama-server";
  io.err(`building ${what} into ${out} (about 10 minutes on 2 cores; compiler output: ${path.join(out, "build.log")})\n`);
  const env: NodeJS.ProcessEnv = {};
  if (rpc) env["RPC"] = "ON";
  if (options.jobs) env["JOBS"] = options.jobs;
  if (options.portable) env["NATIVE"] = "OFF";
  if (options.cuda) env["CMAKE_EXTRA"] = `${process.env["CMAKE_EXTRA"] ?? ""} -DGGML_CUDA=ON`.trim();
  if (options.force) env["FORCE"] = "1";
  const printer = buildProgressPrinter((text) => io.err(text), io.stderrTTY);
  const result = await runLlamaServerBuild({
    script: BUILD_SCRIPT,
    outDir: out,
    env,
    onMessage: (line) => printer.message(line),
    onProgress: (progress) => printer.progress(progress),
  });
  printer.done();
  if (!result.ok) {
    if (result.logTail.length > 0) io.err(`${result.logTail.join("\n")}\n`);
    io.err(`the build failed: ${result.reason}; the server keeps serving with node-llama-cpp\n`);
    return EXIT.failed;
  }
  if (rpc) {
    const { rpcServer } = rpcBinaryPaths(out);
    io.out(
      `rpc-server ready: ${rpcServer} (start it on each worker machine: rpc-server -H <private address> -p 50052; UNAUTHENTICATED, private networks only)\n` +
        `llama-server with --rpc: ${result.binary}; models with rpc.workers use it (backends.llama_server_rpc: auto looks there)\n`,
    );
    return EXIT.ok;
  }
  io.out(`llama-server ready: ${result.binary}; a server started from now on uses it (backends.llama_server: auto looks there)\n`);
  return EXIT.ok;
}

export function registerEnginesCommand(program: Command): void {
  const engines = program
    .command("engines")
    .description("the inference engines this machine can run")
    .option("--config <file>", "server config file (default: LMX_CONFIG or the standard places)")
    .option("--state-dir <dir>", "the server's state directory")
    .option("--json", "print JSON")
    .action((options: EnginesOptions) => run((io) => list(options, io)));
  engines
    .command("build")
    .argument("<engine>", "llama-server, or rpc-server (llama.cpp RPC workers plus a llama-server that drives them)")
    .description("compile llama.cpp's llama-server (or rpc-server) from the source bundled in node-llama-cpp (needs git, cmake, a C++ compiler)")
    .option("--out <dir>", "install folder (default: ~/.cache/opta-lmx/llama-server, the machine's one build that npm test uses too)")
    .option("--jobs <n>", "parallel compile jobs (default: all cores)")
    .option("--portable", "no -march=native (a binary for other CPUs of the same architecture)")
    .option("--cuda", "with the CUDA backend (needs the CUDA toolkit)")
    .option("--force", "rebuild even when the folder holds a build of this llama.cpp with these flags")
    .action((engine: string, _options: BuildOptions, command: Command) =>
      run(async (io) => {
        if (engine !== "llama-server" && engine !== "rpc-server") {
          io.err(`unknown engine '${engine}': llama-server and rpc-server are built from source\n`);
          return EXIT.usage;
        }
        return build({ ...command.parent?.opts<EnginesOptions>(), ...command.opts<BuildOptions>() }, io, engine === "rpc-server");
      }),
    );
}
