/**
 * `lmx engines`: which engines this machine can run, and `lmx engines build llama-server`, which compiles
 * llama.cpp's own server from the source bundled inside node-llama-cpp (the same llama.cpp release) into
 * <state_dir>/engines/llama-server, where the server finds it at its next start.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { loadConfig } from "../../config/load.js";
import { nodeLlamaCppVersion } from "../../engines/llama-cpp/backend.js";
import { defaultLlamaServerDir, findLlamaServer } from "../../engines/llama-server/binary.js";
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
}

function settingsFor(options: EnginesOptions): { stateDir: string; setting: string | false } {
  const config = loadConfig({ configPath: options.config, overrides: options.stateDir ? { state_dir: options.stateDir } : {} });
  return { stateDir: config.state_dir, setting: config.backends.llama_server };
}

async function list(options: EnginesOptions, io: Io): Promise<number> {
  const { stateDir, setting } = settingsFor(options);
  const found = findLlamaServer(setting, stateDir, (message) => io.err(`${message}\n`));
  const engines = [
    { name: "llama-server", available: found !== null, version: found?.version ?? null, path: found?.path ?? null, devices: found?.devices ?? [], how: found ? null : `lmx engines build llama-server (→ ${defaultLlamaServerDir(stateDir)})` },
    { name: "llama.cpp", available: true, version: `node-llama-cpp ${nodeLlamaCppVersion()}`, path: null, devices: [], how: null },
  ];
  if (options.json) {
    printJson(io, { engines });
    return EXIT.ok;
  }
  for (const e of engines) {
    const state = e.available ? io.style.green("available") : io.style.yellow("not built");
    io.out(`${e.name.padEnd(14)} ${state}  ${e.version ?? ""}${e.path ? `  ${e.path}` : ""}${e.devices.length ? `  devices: ${e.devices.join("; ")}` : ""}\n`);
    if (e.how) io.out(`${"".padEnd(14)} build it: ${e.how}\n`);
  }
  return EXIT.ok;
}

async function build(options: BuildOptions, io: Io): Promise<number> {
  const out = path.resolve(options.out ?? defaultLlamaServerDir(settingsFor(options).stateDir));
  if (!existsSync(BUILD_SCRIPT)) {
    io.err(`the build script is missing (${BUILD_SCRIPT}); this install does not ship it\n`);
    return EXIT.failed;
  }
  io.err(`building llama-server into ${out} (a few minutes per core count; output follows)\n`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (options.jobs) env["JOBS"] = options.jobs;
  if (options.portable) env["NATIVE"] = "OFF";
  if (options.cuda) env["CMAKE_EXTRA"] = `${env["CMAKE_EXTRA"] ?? ""} -DGGML_CUDA=ON`.trim();
  const code = await new Promise<number>((resolve) => {
    const child = spawn("bash", [BUILD_SCRIPT, out], { stdio: ["ignore", "inherit", "inherit"], env });
    child.on("error", (error) => {
      io.err(`cannot run bash: ${error.message}\n`);
      resolve(1);
    });
    child.on("exit", (status) => resolve(status ?? 1));
  });
  if (code !== 0) {
    io.err(`the build failed (exit ${code}); the server keeps serving with node-llama-cpp\n`);
    return EXIT.failed;
  }
  io.out(`built ${path.join(out, "bin", "llama-server")}; restart the server to use it (backends.llama_server: auto)\n`);
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
    .argument("<engine>", "llama-server")
    .description("compile llama.cpp's llama-server from the source bundled in node-llama-cpp (needs git, cmake, a C++ compiler)")
    .option("--out <dir>", "install folder (default: <state_dir>/engines/llama-server)")
    .option("--jobs <n>", "parallel compile jobs (default: all cores)")
    .option("--portable", "no -march=native (a binary for other CPUs of the same architecture)")
    .option("--cuda", "with the CUDA backend (needs the CUDA toolkit)")
    .action((engine: string, _options: BuildOptions, command: Command) =>
      run(async (io) => {
        if (engine !== "llama-server") {
          io.err(`unknown engine '${engine}': only llama-server is built from source\n`);
          return EXIT.usage;
        }
        return build({ ...command.parent?.opts<EnginesOptions>(), ...command.opts<BuildOptions>() }, io);
      }),
    );
}
