/** Starts a real gateway (in this process) whose runners are real child processes. */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { startServer, type RunningServer } from "../../src/gateway/start.js";

export interface TestServer extends RunningServer {
  stateDir: string;
  stop(): Promise<void>;
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
    },
  });
  const server = await startServer(resolved);
  return {
    ...server,
    stateDir,
    stop: async () => {
      await server.close();
      rmSync(stateDir, { recursive: true, force: true });
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
