/** Where service files go, which commands install and remove them, and carrying a plan out (with a stand-in for systemctl). */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { applyPlan, type CommandResult } from "../../src/service/install.js";
import { installPlan, statusCommands, uninstallPlan } from "../../src/service/plan.js";
import { buildServiceSpec, serviceFilePath, ServiceError, type ServiceSpecInput } from "../../src/service/spec.js";

const base: ServiceSpecInput = {
  platform: "linux",
  scope: "user",
  nodePath: "/usr/bin/node",
  cliPath: "/opt/lmx/dist/src/cli/main.js",
  homeDir: "/home/ann",
};
const runs = (plan: ReturnType<typeof installPlan>) => plan.steps.flatMap((s) => (s.kind === "run" ? [s.argv.join(" ")] : []));

test("service files live where each manager looks for them", () => {
  assert.equal(serviceFilePath(buildServiceSpec(base)), "/home/ann/.config/systemd/user/opta-lmx.service");
  assert.equal(serviceFilePath(buildServiceSpec({ ...base, xdgConfigHome: "/cfg" })), "/cfg/systemd/user/opta-lmx.service");
  assert.equal(serviceFilePath(buildServiceSpec({ ...base, scope: "system" })), "/etc/systemd/system/opta-lmx.service");
  assert.equal(serviceFilePath(buildServiceSpec({ ...base, platform: "darwin" })), "/home/ann/Library/LaunchAgents/ai.opta.lmx.plist");
  assert.equal(serviceFilePath(buildServiceSpec({ ...base, platform: "darwin", scope: "system" })), "/Library/LaunchDaemons/ai.opta.lmx.plist");
});

test("install, reinstall, uninstall and status commands for systemd and launchd", () => {
  const user = buildServiceSpec(base);
  assert.deepEqual(runs(installPlan(user, false)), ["systemctl --user daemon-reload", "systemctl --user enable --now opta-lmx.service"]);
  assert.deepEqual(runs(installPlan(user, true)), [
    "systemctl --user daemon-reload",
    "systemctl --user enable --now opta-lmx.service",
    "systemctl --user restart opta-lmx.service",
  ]);
  assert.ok(installPlan(user, false).notes.some((n) => n.includes("loginctl enable-linger")));
  assert.deepEqual(runs(uninstallPlan(user)), ["systemctl --user disable --now opta-lmx.service", "systemctl --user daemon-reload"]);
  assert.deepEqual(
    statusCommands(user).map((a) => a.join(" ")),
    ["systemctl --user is-enabled opta-lmx.service", "systemctl --user is-active opta-lmx.service"],
  );
  const system = buildServiceSpec({ ...base, scope: "system" });
  assert.deepEqual(runs(installPlan(system, false)), ["systemctl daemon-reload", "systemctl enable --now opta-lmx.service"]);
  const mac = buildServiceSpec({ ...base, platform: "darwin" });
  const macPlan = installPlan(mac, true);
  assert.deepEqual(runs(macPlan), [`launchctl unload ${macPlan.file}`, `launchctl load -w ${macPlan.file}`]);
  assert.ok(
    macPlan.steps.some((s) => s.kind === "mkdir" && s.path === "/home/ann/Library/Logs/opta-lmx"),
    "launchd does not create log folders",
  );
  assert.deepEqual(runs(uninstallPlan(mac)), [`launchctl unload -w ${macPlan.file}`]);
});

test("a spec with relative paths, line breaks or bad variable names is refused", () => {
  assert.throws(() => buildServiceSpec({ ...base, nodePath: "node" }), ServiceError);
  assert.throws(() => buildServiceSpec({ ...base, configPath: "lmx.yaml" }), ServiceError);
  assert.throws(() => buildServiceSpec({ ...base, configPath: "/etc/lmx\n[Service]" }), ServiceError);
  assert.throws(() => buildServiceSpec({ ...base, environment: { "BAD-NAME": "x" } }), ServiceError);
  assert.throws(() => buildServiceSpec({ ...base, environment: { OK: "a\nExecStart=/bin/sh" } }), ServiceError);
});

test("applying a plan writes the file and runs the commands in order; a failing command stops it", () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "lmx-plan-"));
  try {
    const spec = buildServiceSpec({ ...base, homeDir: home, configPath: "/etc/lmx.yaml" });
    const calls: string[] = [];
    const ok = (argv: readonly string[]): CommandResult => {
      calls.push(argv.join(" "));
      return { status: 0, stdout: "", stderr: "", error: null };
    };
    const plan = installPlan(spec, false);
    applyPlan(plan, undefined, ok);
    assert.match(
      readFileSync(plan.file, "utf8"),
      /^ExecStart=\/usr\/bin\/node \/opt\/lmx\/dist\/src\/cli\/main\.js serve --config \/etc\/lmx\.yaml$/m,
    );
    assert.deepEqual(calls, ["systemctl --user daemon-reload", "systemctl --user enable --now opta-lmx.service"]);

    const failing = (argv: readonly string[]): CommandResult =>
      argv.includes("disable")
        ? { status: 1, stdout: "", stderr: "Unit opta-lmx.service not loaded.", error: null }
        : argv.includes("daemon-reload")
          ? { status: 1, stdout: "", stderr: "Failed to connect to bus", error: null }
          : ok(argv);
    // disable may fail (nothing running); the file is still removed; a failed daemon-reload is reported
    assert.throws(
      () => applyPlan(uninstallPlan(spec), undefined, failing),
      (e: unknown) => e instanceof ServiceError && /daemon-reload failed: Failed to connect to bus/.test(e.message),
    );
    assert.equal(existsSync(plan.file), false);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
