/**
 * Finding and describing a llama-server binary. We never download one: it is built on this machine from the
 * llama.cpp source that ships inside node-llama-cpp (`lmx engines build`, `npm test`), or named by the user.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface LlamaServerBinary {
  path: string;
  /** e.g. "llama-server 0.5.0-dev (build 1, commit de3ff81)". */
  version: string;
  /** Offload devices the binary sees (e.g. ["CUDA0: NVIDIA H100 …"]); empty for a CPU-only build. */
  devices: string[];
}

/** An older default of `lmx engines build`, still looked at: a service's own build may live there. */
export function defaultLlamaServerDir(stateDir: string): string {
  return path.join(stateDir, "engines", "llama-server");
}

/**
 * Where a llama-server binary is looked for, in order: an explicit path (the setting, else LMX_LLAMA_SERVER) alone;
 * otherwise <state_dir>/engines/llama-server, then the machine's one build in the user cache, which both
 * `lmx engines build` and `npm test` write (one ~10-minute build per machine, not one per tool).
 */
export function llamaServerCandidates(setting: string | false, stateDir: string): { paths: string[]; explicit: boolean } {
  if (setting === false) return { paths: [], explicit: false };
  const explicit = setting !== "auto" ? setting : process.env["LMX_LLAMA_SERVER"] || null;
  if (explicit) return { paths: [explicit], explicit: true };
  const dirs = [defaultLlamaServerDir(stateDir), userCacheLlamaServerDir()];
  return { paths: [...new Set(dirs)].map((dir) => path.join(dir, "bin", "llama-server")), explicit: false };
}

/**
 * The binary to use: the first of llamaServerCandidates that exists. Null when there is none or it does not run
 * (then the node-llama-cpp engine serves alone).
 */
export function findLlamaServer(setting: string | false, stateDir: string, log?: (message: string) => void): LlamaServerBinary | null {
  const { paths, explicit } = llamaServerCandidates(setting, stateDir);
  const candidate = paths.find((p) => existsSync(p));
  if (!candidate) {
    if (explicit) log?.(`llama-server not found at ${paths[0]}; serving with node-llama-cpp only`);
    return null;
  }
  try {
    accessSync(candidate, constants.X_OK);
    return describeLlamaServer(candidate);
  } catch (error) {
    log?.(`llama-server at ${candidate} does not run (${(error as Error).message.split("\n")[0]}); serving with node-llama-cpp only`);
    return null;
  }
}

/** Runs the binary twice (`--version`, `--list-devices`); both print and exit without loading anything. */
export function describeLlamaServer(binary: string): LlamaServerBinary {
  const versionOutput = runMerged(binary, "--version");
  const match = /version:\s*(.+)/.exec(versionOutput);
  if (!match) throw new Error(`unexpected --version output: ${versionOutput.slice(0, 200)}`);
  const devices = runMerged(binary, "--list-devices")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => /^[A-Za-z]+\d*:/.test(line) && !line.startsWith("Available devices"));
  return { path: binary, version: `llama-server ${match[1]!.trim()}`, devices };
}

/** llama-server prints parts of these answers on stderr: read both streams. */
function runMerged(binary: string, flag: string): string {
  const result = spawnSync(binary, [flag], { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "pipe"] });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${flag} exited with ${result.status ?? result.signal}: ${result.stderr.slice(-300)}`);
  return `${result.stdout}\n${result.stderr}`;
}

/**
 * The machine's (the user's) llama-server build: `lmx engines build` and `npm test` both build here, outside any
 * repository, under scripts/build-llama-server.sh's lock.
 */
export function userCacheLlamaServerDir(): string {
  const base = process.env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache");
  return path.join(base, "opta-lmx", "llama-server");
}
