/**
 * `lmx service` as a user runs it: --dry-run changes nothing; a real install writes the unit where systemd
 * looks and calls systemctl — a stand-in on PATH that records its arguments, so no service manager is needed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { PROJECT_ROOT } from "../helpers/models.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
let home: string;
let bin: string;
let calls: string;
let config: string;

function lmx(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("LMX_") && k !== "XDG_CONFIG_HOME") env[k] = v;
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...env, HOME: home, PATH: `${bin}${path.delimiter}${env["PATH"] ?? ""}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

const recorded = () => (existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n") : []);

before(() => {
  home = mkdtempSync(path.join(os.tmpdir(), "lmx-service-home-"));
  bin = mkdtempSync(path.join(os.tmpdir(), "lmx-service-bin-"));
  calls = path.join(bin, "calls.log");
  // answers like systemctl for is-enabled/is-active, records everything
  writeFileSync(
    path.join(bin, "systemctl"),
    `#!/bin/sh\necho "$*" >> '${calls}'\ncase "$*" in *is-enabled*) echo enabled;; *is-active*) echo active;; esac\nexit 0\n`,
  );
  chmodSync(path.join(bin, "systemctl"), 0o755);
  const configDir = path.join(home, "lmx config");
  mkdirSync(configDir);
  config = path.join(configDir, "lmx.yaml");
  writeFileSync(config, "port: 1\nshutdown_timeout_sec: 50\n");
});

after(() => {
  for (const dir of [home, bin]) if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  "--dry-run prints the unit and the commands and touches nothing",
  { skip: process.platform !== "linux" && "systemd units are installed on Linux only" },
  async () => {
    const before = readdirSync(home);
    const run = await lmx(["service", "install", "--dry-run", "--config", config]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^# would write ${home}/\\.config/systemd/user/opta-lmx\\.service:$`, "m"));
    assert.match(run.stdout, /^ExecStart=\S+node \S+\/dist\/src\/cli\/main\.js serve --config "[^"]+\/lmx config\/lmx\.yaml"$/m);
    assert.match(run.stdout, /^TimeoutStopSec=60$/m, "the server's drain time plus a margin");
    assert.match(run.stdout, /^systemctl --user enable --now opta-lmx\.service$/m);
    assert.deepEqual(readdirSync(home), before);
    assert.deepEqual(recorded(), []);

    const mac = await lmx(["service", "install", "--dry-run", "--platform", "darwin", "--json"]);
    assert.equal(mac.code, 0, mac.stderr);
    const plan = JSON.parse(mac.stdout) as { file: string; steps: Array<{ kind: string; contents?: string }> };
    assert.equal(plan.file, path.join(home, "Library", "LaunchAgents", "ai.opta.lmx.plist"));
    assert.match(plan.steps.find((s) => s.kind === "write")?.contents ?? "", /<key>KeepAlive<\/key>/);
    const refused = await lmx(["service", "install", "--platform", "darwin"]);
    assert.equal(refused.code, 2, "another OS's file is only previewed");
  },
);

test(
  "install writes the unit and enables it; reinstall restarts; status; uninstall removes it",
  { skip: process.platform !== "linux" && "systemd units are installed on Linux only" },
  async () => {
    const unit = path.join(home, ".config", "systemd", "user", "opta-lmx.service");
    const first = await lmx(["service", "install", "--no-wait", "--config", config, "--env", "HF_TOKEN=secret value"]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(existsSync(unit));
    assert.match(readFileSync(unit, "utf8"), /^Environment="HF_TOKEN=secret value"$/m);
    assert.deepEqual(recorded(), ["--user daemon-reload", "--user enable --now opta-lmx.service"]);
    assert.match(first.stdout, /journalctl --user -u opta-lmx\.service/);

    const second = await lmx(["service", "install", "--no-wait", "--config", config]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(recorded().at(-1), "--user restart opta-lmx.service", "a changed unit reaches the running server");

    const status = await lmx(["service", "status", "--json", "--config", config]);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout), {
      file: unit,
      installed: true,
      running: true,
      manager: ["enabled: enabled", "active: active"],
      url: "http://127.0.0.1:1",
      answers: false,
    });

    const removed = await lmx(["service", "uninstall"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(existsSync(unit), false);
    assert.deepEqual(recorded().slice(-2), ["--user disable --now opta-lmx.service", "--user daemon-reload"]);
  },
);

test("a config the server would reject stops the install with a usage error", async () => {
  const bad = path.join(home, "bad.yaml");
  writeFileSync(bad, "port: lots\n");
  const run = await lmx(["service", "install", "--dry-run", "--config", bad]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /invalid configuration/);
});
