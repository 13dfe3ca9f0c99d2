/**
 * Messages name a command that works where the user is: `lmx …` through the bin link (npm link), else
 * `node dist/src/cli/main.js …` — never `npx lmx`, which outside the repository fetches an unrelated package.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { lmxCommand, withLmxCommand } from "../../src/cli/self-command.js";
import { PROJECT_ROOT } from "../helpers/models.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-self-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the command is lmx through a bin link, else node and the script's path (relative inside the current folder)", () => {
  assert.equal(lmxCommand("/usr/local/bin/lmx", "/home/u"), "lmx");
  assert.equal(lmxCommand("/repo/dist/src/cli/main.js", "/repo"), "node dist/src/cli/main.js");
  assert.equal(lmxCommand("/repo/dist/src/cli/main.js", "/elsewhere"), "node /repo/dist/src/cli/main.js");
  assert.equal(withLmxCommand("start it with `lmx serve`, or `lmx models`", "node x.js"), "start it with `node x.js serve`, or `node x.js models`");
  assert.equal(withLmxCommand("start it with `lmx serve`", "lmx"), "start it with `lmx serve`");
});

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("'no server' tells how to start one with the command that was typed", async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const env = { ...process.env, LMX_CONFIG: "", LMX_URL: "", HOME: dir };
  const direct = spawnSync(process.execPath, [CLI, "status", "--url", url], { cwd: PROJECT_ROOT, env, encoding: "utf8" });
  assert.equal(direct.status, 3);
  assert.match(direct.stderr, /start it with `node dist\/src\/cli\/main\.js serve`/);
  const link = path.join(dir, "lmx");
  symlinkSync(CLI, link);
  const linked = spawnSync(process.execPath, [link, "status", "--url", url], { cwd: dir, env, encoding: "utf8" });
  assert.equal(linked.status, 3);
  assert.match(linked.stderr, /start it with `lmx serve`/);
});
