/** Starts a real gateway (in this process) whose runners are real child processes. */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { startServer, type RunningServer } from "../../src/server/server.js";

export interface TestServer extends RunningServer {
  stateDir: string;
  /** The JSON log lines the server wrote to stdout, kept out of the test output (see quietLogs). */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A test that turns logging on (to test the log file, say) would fill the test report with JSON lines; they are
 * held here instead and shown only when the test fails (`showLogsOnFailure`). LMX_TEST_LOG_LEVEL, set by a
 * person debugging, still prints everything.
 */
const held: string[] = [];
let holders = 0;
let originalWrite: typeof process.stdout.write | null = null;

function holdLogs(): () => void {
  if (holders++ === 0) {
    originalWrite = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      if (text.startsWith('{"level":')) {
        held.push(text);
        const callback = rest.find((r) => typeof r === "function") as (() => void) | undefined;
        callback?.();
        return true;
      }
      return (originalWrite as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0 && originalWrite) {
      process.stdout.write = originalWrite;
      originalWrite = null;
    }
  };
}

/** Runs `body`; when it throws, prints the server's held logs (on stderr) before rethrowing. */
export async function showLogsOnFailure<T>(server: TestServer, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    process.stderr.write(`--- server logs of the failed test ---\n${server.logs()}--- end of server logs ---\n`);
    throw error;
  }
}

export async function startTestServer(config: Partial<ConfigInput>): Promise<TestServer> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "lmx-test-state-"));
  const resolved = loadConfig({
    env: {},
    overrides: {
      host: "127.0.0.1",
      port: 0,
      state_dir: stateDir,
      log_level: process.env["LMX_TEST_LOG_LEVEL"] ?? "silent",
      // tests see only the models they configure, never the machine's own HF cache, LM Studio or Ollama stores
      discovery: { hf_cache: false, lmstudio: false, ollama: false },
      ...config,
      // the machine's llama-server build (~/.cache/opta-lmx, which npm test makes) is found by "auto": tests that
      // want that engine name the binary; the others run node-llama-cpp whatever this machine has built
      backends: { llama_server: false, ...config.backends },
    },
  });
  const hold = resolved.log_level !== "silent" && !process.env["LMX_TEST_LOG_LEVEL"];
  const release = hold ? holdLogs() : () => {};
  const firstLog = held.length;
  let server: RunningServer;
  try {
    server = await startServer(resolved);
  } catch (error) {
    release();
    throw error;
  }
  return {
    ...server,
    stateDir,
    logs: () => held.slice(firstLog).join(""),
    stop: async () => {
      try {
        await server.close();
      } finally {
        release();
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function getJson<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T, headers: res.headers };
}
