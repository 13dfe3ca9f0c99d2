/**
 * Entry point of a runner process (one per loaded model). Started by the gateway with an IPC channel:
 * it receives `init`, loads the model, listens on a Unix socket, answers `ready` (or `load_failed`).
 * If the gateway goes away the IPC channel closes and the runner exits, so no orphan keeps a model in memory.
 */
import { rmSync } from "node:fs";
import { LmxError } from "../errors/codes.js";
import type { GatewayToRunner, MemoryEstimate, RunnerToGateway } from "./protocol.js";
import type { RunnerHttpServer } from "./internal-http.js";
import { startEngine, type LoadedEngine } from "./engines.js";
import { faultPlan, faultTarget, injectLoadFault } from "./fault-injection.js";

function send(message: RunnerToGateway): void {
  process.send?.(message);
}

function log(line: string): void {
  process.stderr.write(line.endsWith("\n") ? line : `${line}\n`);
}

let engine: LoadedEngine | null = null;
let http: RunnerHttpServer | null = null;
let socketPath: string | null = null;
let stopping = false;
let admitted: (() => void) | null = null;

/** Sends the estimate and waits for the gateway's admission; a refusal arrives as the end of this process. */
function askAdmission(estimate: MemoryEstimate): Promise<void> {
  return new Promise((resolve) => {
    admitted = resolve;
    send({ type: "estimate", estimate });
  });
}

async function init(message: Extract<GatewayToRunner, { type: "init" }>): Promise<void> {
  const faults = faultPlan();
  try {
    await injectLoadFault(faultTarget(message), faults);
    // imported here, not at the top, so a runner that fails before loading costs a Node start, not an engine's
    socketPath = message.socketPath;
    engine = await startEngine({ init: message, log, admit: askAdmission, testTokenDelayMs: faults.tokenDelayMs });
    rmSync(socketPath, { force: true });
    http = await engine.listen(socketPath);
    send({ type: "ready", info: engine.info });
    if (faults.load[faultTarget(message)] === "crash_after_ready") setTimeout(() => process.kill(process.pid, "SIGKILL"), 200);
  } catch (error) {
    const lmx = error instanceof LmxError ? error : new LmxError("model_loader_crashed", (error as Error)?.message ?? String(error));
    log(`load failed: ${lmx.code}: ${lmx.message}`);
    send({ type: "load_failed", code: lmx.code, message: lmx.message });
    // give the IPC message time to leave before the process ends
    setTimeout(() => process.exit(1), 50);
  }
}

async function shutdown(graceMs: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await http?.drain(graceMs);
    await engine?.dispose();
  } finally {
    if (socketPath) rmSync(socketPath, { force: true });
    process.exit(0);
  }
}

process.on("message", (message: GatewayToRunner) => {
  if (message.type === "init") void init(message);
  else if (message.type === "shutdown") void shutdown(message.graceMs);
  else if (message.type === "admit") admitted?.();
});
process.on("disconnect", () => {
  engine?.killNow?.();
  if (socketPath) rmSync(socketPath, { force: true });
  process.exit(0);
});
// The gateway owns signals: a Ctrl-C in the terminal reaches the whole process group, and the gateway
// decides how runners stop (drain first). Ignoring SIGINT here keeps that order.
process.on("SIGINT", () => {});
