/**
 * The `lmx` client commands as a user runs them: the real CLI in a child process, against a real server with
 * keys set, a loaded chat model, a model only on disk, and a local stand-in for the Hugging Face hub.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { startFakeHub, type FakeHub } from "../helpers/fake-hub.js";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
const ADMIN_KEY = "admin-key-for-tests";
const API_KEY = "api-key-for-tests";

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as it arrived, with the time of each piece relative to the start. */
  chunks: Array<{ at: number; text: string }>;
  exitAt: number;
}

interface CliOptions {
  env?: Record<string, string>;
  /** Called with each stderr piece; may signal the child. */
  onStderr?: (text: string, child: ReturnType<typeof spawn>) => void;
  timeoutMs?: number;
}

/** Runs `lmx` with a clean environment: no LMX_* variable of the machine leaks in. */
function lmx(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("LMX_")) env[k] = v;
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  const run: CliRun = { code: null, stdout: "", stderr: "", chunks: [], exitAt: 0 };
  child.stdout.on("data", (b: Buffer) => {
    run.stdout += b.toString();
    run.chunks.push({ at: performance.now() - started, text: b.toString() });
  });
  child.stderr.on("data", (b: Buffer) => {
    run.stderr += b.toString();
    options.onStderr?.(b.toString(), child);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      run.code = code;
      run.exitAt = performance.now() - started;
      resolve(run);
    }),
  );
}

let server: TestServer;
let hub: FakeHub;
let modelDir: string;
let cache: string;
let auth: string[];

before(async () => {
  const chat = await testModel("stories260K-chatml.gguf");
  const plain = await testModel("stories260K.gguf");
  modelDir = mkdtempSync(path.join(os.tmpdir(), "lmx-cli-models-"));
  copyFileSync(plain.path, path.join(modelDir, "stories260K.gguf"));
  cache = mkdtempSync(path.join(os.tmpdir(), "lmx-cli-hf-"));
  const gguf = readFileSync(plain.path);
  hub = await startFakeHub({
    repos: {
      "tiny/stories-GGUF": { files: { "stories260K.gguf": gguf, "config.json": Buffer.from("{}") } },
      "tiny/slow-GGUF": { files: { "slow.gguf": readFileSync(chat.path) } },
    },
    faults: {
      // cut once mid-file (the server resumes it), and slow enough that progress is visible
      "tiny/stories-GGUF": { "stories260K.gguf": { cutAfterBytes: 300_000, cutTimes: 1, chunkBytes: 64 * 1024, chunkDelayMs: 40 } },
      "tiny/slow-GGUF": { "slow.gguf": { chunkBytes: 32 * 1024, chunkDelayMs: 100 } },
    },
  });
  // runners inherit the gateway's environment: a small per-token delay makes streaming observable
  process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
  process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ tokenDelayMs: 15 });
  server = await startTestServer({
    models: [{ id: "chat", path: chat.path }],
    model_dirs: [modelDir],
    auto_load: ["chat"],
    demo_model: false,
    admin_key: ADMIN_KEY,
    api_keys: [API_KEY],
    discovery: { hf_cache: cache, lmstudio: false, ollama: false },
    downloads: { hub_url: hub.url, min_free_bytes: 0 },
  });
  await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, 20_000, "auto_load of the chat model");
  auth = ["--url", server.url, "--admin-key", ADMIN_KEY, "--api-key", API_KEY];
});

after(async () => {
  await server?.stop();
  await hub?.close();
  for (const dir of [modelDir, cache]) if (dir) rmSync(dir, { recursive: true, force: true });
});

test("lmx models shows the loaded model and the one only on disk in one table; --json parses", async () => {
  const table = await lmx(["models", ...auth]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split("\n");
  assert.match(lines[0]!, /^ID\s+TYPE\s+FORMAT\s+SIZE\s+QUANT\s+STATUS\s+BACKEND\s+MEMORY$/);
  const chatRow = lines.find((l) => l.startsWith("chat "));
  const diskRow = lines.find((l) => l.startsWith("stories260K "));
  assert.match(chatRow ?? "", /\bchat\s+gguf\s+.*\bloaded\s+llama\.cpp\s+\d+(\.\d+)? MiB$/, table.stdout);
  assert.match(diskRow ?? "", /\bcompletion\s+gguf\s+.*\bavailable\s+-\s+-$/, table.stdout);

  const json = await lmx(["models", "--json", ...auth]);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as {
    locations: Array<{ path: string }>;
    data: Array<{ id: string; status: string; backend: string | null; memory_bytes: number | null }>;
  };
  const byId = new Map(parsed.data.map((m) => [m.id, m]));
  assert.equal(byId.get("chat")?.status, "loaded");
  assert.equal(byId.get("chat")?.backend, "llama.cpp");
  assert.ok((byId.get("chat")?.memory_bytes ?? 0) > 0);
  assert.equal(byId.get("stories260K")?.status, "available");
  assert.ok(parsed.locations.some((l) => l.path === modelDir));
});

test("lmx do streams the answer to stdout in several pieces before it exits", async () => {
  const run = await lmx(["do", "Once upon a time", "--model", "chat", "--max-tokens", "24", "--temperature", "0", ...auth]);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.stdout.trim().length > 0);
  assert.ok(run.chunks.length >= 3, `stdout arrived in ${run.chunks.length} piece(s)`);
  assert.ok(run.exitAt - run.chunks[0]!.at > 100, `the first text came ${Math.round(run.exitAt - run.chunks[0]!.at)} ms before exit`);
});

test("lmx do without --model says which model it picked; --json prints the completion object", async () => {
  const run = await lmx(["do", "Hello", "--max-tokens", "4", "--json", ...auth]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /using chat \(the first loaded chat model\)/);
  const body = JSON.parse(run.stdout) as { object: string; choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
  assert.equal(body.object, "chat.completion");
  assert.ok(body.usage.completion_tokens > 0);
});

test("lmx status and load/unload speak to the admin API", async () => {
  const status = await lmx(["status", ...auth]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^server\s+http:\/\/127\.0\.0\.1:\d+ · v\d+\.\d+\.\d+ · up \d+s · ready$/m);
  assert.match(status.stdout, /^memory\s+.* used of a .* budget/m);
  assert.match(status.stdout, /^loaded\s+chat\s+llama\.cpp\s+ctx \d+×\d+/m);
  assert.match(status.stdout, /^storage\s+ok/m);
  const load = await lmx(["load", "stories260K", "--ctx", "256", "--parallel", "1", ...auth]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /loaded stories260K on llama\.cpp/);
  assert.match(load.stdout, /context 256 × 1 sequences/);
  const unload = await lmx(["unload", "stories260K", "--json", ...auth]);
  assert.equal(unload.code, 0, unload.stderr);
  assert.deepEqual(JSON.parse(unload.stdout), { status: "unloaded", model_id: "stories260K" });
  const missing = await lmx(["load", "no-such-model", ...auth]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /model_not_found \(HTTP 404\)/);
});

test("lmx connect: a wrong admin key is a 401 naming the setting (exit 4); a missing API key too", async () => {
  const wrongAdmin = await lmx(["connect", server.url, "--admin-key", "not-the-key", "--api-key", API_KEY]);
  assert.equal(wrongAdmin.code, 4, wrongAdmin.stdout + wrongAdmin.stderr);
  assert.match(wrongAdmin.stdout, /^OK\s+reachable/m);
  assert.match(wrongAdmin.stdout, /^FAIL\s+admin\s+unauthorized \(HTTP 401\)/m);
  assert.match(wrongAdmin.stdout, /fix: the admin key from --admin-key was refused: set LMX_ADMIN_KEY or --admin-key to the server's admin_key/);
  assert.match(wrongAdmin.stdout, /^OK\s+api/m);

  const noApiKey = await lmx(["connect", server.url], { env: { LMX_ADMIN_KEY: ADMIN_KEY } });
  assert.equal(noApiKey.code, 4);
  assert.match(noApiKey.stdout, /^OK\s+admin\s+admin key accepted \(from LMX_ADMIN_KEY\)/m);
  assert.match(noApiKey.stdout, /^FAIL\s+api\s+invalid_api_key \(HTTP 401\)/m);
  assert.match(noApiKey.stdout, /fix: set LMX_API_KEY or --api-key/);

  const good = await lmx(["connect", "--json", ...auth]);
  assert.equal(good.code, 0, good.stdout);
  assert.deepEqual(
    (JSON.parse(good.stdout) as { checks: Array<{ status: string }> }).checks.map((c) => c.status),
    ["ok", "ok", "ok", "ok"],
  );
});

test("lmx connect and lmx status against a closed port say nothing listens there (exit 3)", async () => {
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const connect = await lmx(["connect", `http://127.0.0.1:${port}`]);
  assert.equal(connect.code, 3);
  assert.match(
    connect.stdout,
    new RegExp(
      `^FAIL\\s+reachable\\s+cannot reach http://127\\.0\\.0\\.1:${port}: nothing listens on 127\\.0\\.0\\.1:${port} — is \`lmx serve\` running\\?`,
      "m",
    ),
  );
  const status = await lmx(["status", "--url", `127.0.0.1:${port}`]);
  assert.equal(status.code, 3);
  assert.match(status.stderr, /nothing listens on 127\.0\.0\.1:\d+/);
  assert.equal(status.stdout, "", "no empty report hides the error");
});

test("lmx pull shows progress and completes a download the server had to resume", async () => {
  const run = await lmx(["pull", "tiny/stories-GGUF", "--progress-every", "0", ...auth]);
  assert.equal(run.code, 0, run.stderr);
  const progress = run.stderr.split("\n").filter((l) => /^tiny\/stories-GGUF: \d+% \(/.test(l));
  assert.ok(progress.length >= 2, `progress lines:\n${run.stderr}`);
  assert.match(progress.at(-1)!, /: 100% /);
  assert.match(run.stdout, /^done tiny\/stories-GGUF: 2 file\(s\)/m);
  assert.match(run.stdout, /model id: tiny\/stories-GGUF — `lmx load tiny\/stories-GGUF`/);
  assert.ok(
    hub.requests.some((r) => r.includes("stories260K.gguf") && r.includes("range=bytes=")),
    "the cut file was resumed",
  );
});

test("Ctrl-C stops watching a pull; --cancel stops it; the next pull resumes from the partial file", async () => {
  let interrupted = false;
  const watched = await lmx(["pull", "tiny/slow-GGUF", "--progress-every", "0", ...auth], {
    onStderr: (text, child) => {
      // Ctrl-C once some bytes have arrived
      if (!interrupted && /tiny\/slow-GGUF: [1-9]\d*% \(/.test(text)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    },
  });
  assert.equal(watched.code, 130, watched.stderr);
  assert.match(watched.stderr, /The download continues on the server/);
  assert.match(watched.stderr, /`lmx pull --cancel tiny\/slow-GGUF` stops it/);

  const cancelled = await lmx(["pull", "--cancel", "tiny/slow-GGUF", ...auth]);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.match(cancelled.stdout, /^cancelled tiny\/slow-GGUF at .* the partial file stays/m);
  const blobs = path.join(cache, "models--tiny--slow-GGUF", "blobs");
  assert.ok(
    readdirSync(blobs).some((b) => b.endsWith(".incomplete")),
    "a partial file is left for the resume",
  );

  hub.faults["tiny/slow-GGUF"]!["slow.gguf"] = {};
  const before = hub.requests.length;
  const resumed = await lmx(["pull", "tiny/slow-GGUF", ...auth]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /^done tiny\/slow-GGUF/m);
  const ranged = hub.requests.slice(before).find((r) => r.includes("slow.gguf") && /range=bytes=[1-9]\d*-/.test(r));
  assert.ok(ranged, `the second pull asked only for the rest: ${hub.requests.slice(before).join("\n")}`);
  assert.ok(readdirSync(blobs).every((b) => !b.endsWith(".incomplete")));
});

test("lmx pull of an unknown repo is the server's 404, with its code", async () => {
  const run = await lmx(["pull", "tiny/nothing-here", ...auth]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /download_not_found \(HTTP 404\)/);
  const usage = await lmx(["pull", "not a repo", ...auth]);
  assert.equal(usage.code, 2);
});

test("lmx doctor checks a config: the port is taken by this lmx server, the models are there; a missing folder fails", async () => {
  const port = new URL(server.url).port;
  const good = path.join(cache, "doctor.yaml");
  writeFileSync(
    good,
    `port: ${port}\nstate_dir: ${JSON.stringify(modelDir)}\nmodel_dirs: [${JSON.stringify(modelDir)}]\ndiscovery: {hf_cache: false, lmstudio: false, ollama: false}\n`,
  );
  const ok = await lmx(["doctor", "--json", "--config", good]);
  assert.equal(ok.code, 0, ok.stdout);
  const report = JSON.parse(ok.stdout) as { checks: Array<{ name: string; status: string; detail: string }>; fail: number };
  assert.equal(report.fail, 0);
  assert.match(report.checks.find((c) => c.name === "port")!.detail, /an Opta LMX server already answers on 127\.0\.0\.1:\d+/);
  assert.ok(report.checks.some((c) => c.name === "models" && c.status === "ok" && /1 GGUF model/.test(c.detail)));
  assert.ok(report.checks.some((c) => c.name === "gpu"));

  const bad = path.join(cache, "doctor-bad.yaml");
  writeFileSync(bad, `port: ${port}\nmodel_dirs: [/nonexistent/lmx-models]\n`);
  const failed = await lmx(["doctor", "--config", bad]);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /^FAIL\s+models\s+model_dirs entry \/nonexistent\/lmx-models does not exist$/m);
  assert.match(failed.stdout, /fix: create it, or remove it from model_dirs/);
});
