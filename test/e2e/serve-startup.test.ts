/**
 * `lmx serve` that cannot start says why in one line and exits 2 (a setting to change), leaves no runner socket
 * folder behind, and a start clears the socket folders of gateways that died without cleaning up (kill -9).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { PROJECT_ROOT } from "../helpers/models.js";
import { alive } from "../helpers/processes.js";
import { getJson } from "../helpers/server.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
/** Only a hang detector: every start here ends in about a second. */
const HANG_MS = 60_000;
const root = mkdtempSync(path.join(os.tmpdir(), "lmx-startup-"));
after(() => rmSync(root, { recursive: true, force: true }));

interface Place {
  home: string;
  /** The gateway's private TMPDIR, where its runner socket folders go. */
  tmp: string;
}

function place(): Place {
  const home = mkdtempSync(path.join(root, "home-"));
  const tmp = path.join(home, "tmp");
  mkdirSync(tmp);
  return { home, tmp };
}

function env(where: Place): NodeJS.ProcessEnv {
  return { ...process.env, LMX_CONFIG: "", HOME: where.home, TMPDIR: where.tmp, LMX_DEMO_MODEL: "false", LMX_LOG_LEVEL: "info" };
}

async function failedStart(where: Place, args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [CLI, "serve", "--state-dir", path.join(where.home, "state"), ...args], {
    env: env(where),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const hang = setTimeout(() => child.kill("SIGKILL"), HANG_MS);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  clearTimeout(hang);
  return { code, stderr, stdout };
}

/** One line, `lmx: ...`, no stack frames. */
function assertOneLine(result: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(result.code, 2, `exit 2 (a setting to change), got ${result.code}: ${result.stderr}`);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line on stderr:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
  assert.match(lines[0]!, /^lmx: /);
  assert.match(lines[0]!, pattern);
}

function socketFolders(where: Place): string[] {
  return readdirSync(where.tmp).filter((name) => name.startsWith("lmx-"));
}

test("a taken port: exit 2, one line naming the port, who holds it and the setting to change; no socket folder left", async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const port = (holder.address() as net.AddressInfo).port;
  try {
    const where = place();
    const result = await failedStart(where, ["--port", String(port)]);
    assertOneLine(result, new RegExp(`port ${port} is already in use`));
    assert.match(result.stderr, /--port/);
    // best effort on Linux (/proc): this test process holds it
    if (process.platform === "linux") assert.match(result.stderr, new RegExp(`\\(pid ${process.pid}\\)`));
    assert.deepEqual(socketFolders(where), []);
  } finally {
    holder.close();
  }
});

test("a host that is not an address of this machine: exit 2, one line, no admin_key warning for a server that never listened", async () => {
  const where = place();
  // TEST-NET-3 (RFC 5737): never configured on a real machine
  const result = await failedStart(where, ["--host", "203.0.113.1", "--port", "0"]);
  assertOneLine(result, /203\.0\.113\.1 is not an address of this machine.*--host/);
  assert.doesNotMatch(result.stdout, /beyond loopback/);
  assert.deepEqual(socketFolders(where), []);
});

test("a host name that does not resolve: exit 2, one line", async () => {
  const where = place();
  // .invalid never resolves (RFC 2606)
  const result = await failedStart(where, ["--host", "no-such-host.invalid", "--port", "0"]);
  assertOneLine(result, /no-such-host\.invalid does not resolve/);
  assert.deepEqual(socketFolders(where), []);
});

test("a log_file that cannot be written: exit 2, one line naming log_file", async () => {
  const where = place();
  const blocker = path.join(where.home, "a-file");
  writeFileSync(blocker, "x");
  const config = path.join(where.home, "lmx.yaml");
  writeFileSync(config, `log_file: ${path.join(blocker, "lmx.log")}\n`);
  const result = await failedStart(where, ["--config", config, "--port", "0"]);
  assertOneLine(result, /log_file .*a-file\/lmx\.log cannot be written/);
  assert.deepEqual(socketFolders(where), []);
});

test("a state_dir under /proc: exit 2 with one line instead of hanging", { skip: process.platform !== "linux" && "needs /proc" }, async () => {
  const where = place();
  const child = await failedStart(where, ["--port", "0", "--state-dir", `/proc/lmx-state-${process.pid}`]);
  assertOneLine(child, /state_dir \/proc\/lmx-state-\d+ cannot be created/);
  assert.deepEqual(socketFolders(where), []);
});

async function started(
  where: Place,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ pid: number; url: string; exit: Promise<number | null>; kill: () => void }> {
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--state-dir", path.join(where.home, "state")], {
    env: { ...env(where), ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), HANG_MS);
    // where it listens is said once: the JSON log line at info, or one plain line at quieter levels
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)".*opta-lmx listening/.exec(output) ?? /opta-lmx listening on (\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stderr.on("data", look);
    child.stdout.on("data", look);
  });
  return { pid: child.pid!, url, exit, kill: () => child.kill("SIGKILL") };
}

test("a start removes the socket folders of dead gateways (kill -9 included) and keeps live and foreign ones", async () => {
  const where = place();
  const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
  assert.ok(!alive(dead));
  const stale = path.join(where.tmp, `lmx-${dead}-AbC123`);
  const live = path.join(where.tmp, `lmx-${process.pid}-XyZ789`);
  const foreign = path.join(where.tmp, "lmx-e2e-notOurs");
  for (const folder of [stale, live, foreign]) mkdirSync(folder);
  writeFileSync(path.join(stale, "r-00000000.sock"), "");

  const first = await started(where);
  try {
    assert.ok(!existsSync(stale), "the folder of a dead gateway was removed");
    assert.ok(existsSync(live), "the folder of a live process was kept");
    assert.ok(existsSync(foreign), "a folder not named like ours was kept");
    const own = socketFolders(where).filter((name) => name.startsWith(`lmx-${first.pid}-`));
    assert.equal(own.length, 1, `the gateway's own folder carries its pid: ${socketFolders(where).join(", ")}`);
    assert.equal((await getJson<{ status: string }>(`${first.url}/healthz`)).body.status, "ok");
  } finally {
    first.kill();
  }
  await first.exit;
  assert.ok(
    socketFolders(where).some((name) => name.startsWith(`lmx-${first.pid}-`)),
    "kill -9 leaves its folder",
  );

  const second = await started(where);
  try {
    assert.ok(!socketFolders(where).some((name) => name.startsWith(`lmx-${first.pid}-`)), "the killed gateway's folder is gone");
    assert.ok(existsSync(live));
  } finally {
    second.kill();
  }
  await second.exit;
});

test("/healthz and the runbook's /admin/health name the service and its version, without the admin key", async () => {
  const version = (JSON.parse(readFileSync(path.join(PROJECT_ROOT, "package.json"), "utf8")) as { version: string }).version;
  const server = await started(place(), { LMX_ADMIN_KEY: "secret-admin-key" });
  try {
    for (const route of ["/healthz", "/admin/health"]) {
      const health = await getJson<Record<string, unknown>>(`${server.url}${route}`);
      assert.equal(health.status, 200, route);
      assert.deepEqual(health.body, { status: "ok", service: "opta-lmx", version }, route);
    }
    assert.equal((await fetch(`${server.url}/admin/status`)).status, 401, "the rest of /admin still needs the key");
  } finally {
    server.kill();
  }
  await server.exit;
});
