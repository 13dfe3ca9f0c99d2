/**
 * llama.cpp RPC: one model's layers on `rpc-server` workers on other machines, driven by a llama-server built with
 * GGML_RPC (`lmx engines build rpc-server`, its own build folder). The protocol has no authentication and no
 * encryption: anyone who reaches a worker's port can run graphs on it and read its memory. Private networks only
 * (docs/scale-out.md).
 *
 * Here: where the RPC build lives, a worker check before a load (llama-server aborts at once on a worker it cannot
 * reach, and a TCP connect names the dead one first), and how a worker's death reads in llama-server's output.
 */
import { existsSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { LmxError } from "../../errors/codes.js";
import { describeLlamaServer, userCacheLlamaServerDir, type LlamaServerBinary } from "./binary.js";

const CONNECT_TIMEOUT_MS = 3_000;

/** The machine's RPC build: beside the plain llama-server build, never in its tree. */
export function userCacheRpcDir(): string {
  return path.join(path.dirname(userCacheLlamaServerDir()), "llama-rpc");
}

export function rpcBinaryPaths(dir = userCacheRpcDir()): { llamaServer: string; rpcServer: string } {
  return { llamaServer: path.join(dir, "bin", "llama-server"), rpcServer: path.join(dir, "bin", "rpc-server") };
}

/**
 * The RPC-enabled llama-server for `backends.llama_server_rpc`: "auto" the user-cache build (else nothing), a path
 * that binary, false none. Null when absent or when the binary does not accept `--rpc` (a build without GGML_RPC).
 */
export function findRpcLlamaServer(setting: string | false, log?: (message: string) => void): LlamaServerBinary | null {
  if (setting === false) return null;
  const candidate = setting === "auto" ? rpcBinaryPaths().llamaServer : setting;
  if (!existsSync(candidate)) {
    if (setting !== "auto") log?.(`backends.llama_server_rpc: ${candidate} does not exist; models with rpc.workers cannot load`);
    return null;
  }
  try {
    const binary = describeLlamaServer(candidate);
    return { ...binary, version: `${binary.version} +rpc` };
  } catch (error) {
    log?.(`the RPC llama-server at ${candidate} does not run (${(error as Error).message.split("\n")[0]})`);
    return null;
  }
}

/** "host:port" or "[v6]:port" → connect options. */
export function parseWorker(worker: string): { host: string; port: number } {
  const at = worker.lastIndexOf(":");
  const host = worker.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(worker.slice(at + 1)) };
}

/** Whether something accepts TCP connections at `worker` within the timeout; the reason when not. */
export function probeWorker(worker: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<string | null> {
  const { host, port } = parseWorker(worker);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (why: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once("connect", () => done(null));
    socket.once("error", (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

/** Every worker must accept a connection before the load starts; the error names each one that does not. */
export async function checkRpcWorkers(modelId: string, workers: readonly string[], timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
  const results = await Promise.all(workers.map(async (worker) => ({ worker, why: await probeWorker(worker, timeoutMs) })));
  const dead = results.filter((r) => r.why !== null);
  if (dead.length === 0) return;
  throw new LmxError(
    "rpc_worker_unavailable",
    `'${modelId}' is split over llama.cpp RPC workers and ${dead.map((d) => `${d.worker} (${d.why})`).join(", ")} ${dead.length === 1 ? "does" : "do"} not accept connections; start rpc-server there or remove it from rpc.workers`,
    { retryAfterSec: 5, details: { workers: results } },
  );
}

/** llama.cpp's own lines when a worker is unreachable, gone or speaks another protocol version (ggml-rpc.cpp). */
const RPC_FAILURE =
  /Remote RPC server crashed or returned malformed response|Failed to connect to \S+|RPC handshake failed for \S+|RPC server version mismatch|RPC transport initialization failed/;

/** The line in a dead llama-server's output that says an RPC worker failed it; null when none does. */
export function rpcFailureLine(outputTail: readonly string[]): string | null {
  for (let i = outputTail.length - 1; i >= 0; i--) if (RPC_FAILURE.test(outputTail[i]!)) return outputTail[i]!.trim();
  return null;
}

export function rpcWorkerLost(modelId: string, workers: readonly string[], line: string, loading: boolean): LmxError {
  return new LmxError(
    "rpc_worker_unavailable",
    `'${modelId}' ${loading ? "could not load" : "stopped"}: an RPC worker (${workers.join(", ")}) failed it (llama.cpp: ${line}); it loads again on the next request once every worker is up`,
    { retryAfterSec: 5, details: { workers: [...workers], line } },
  );
}
