/**
 * .ci/run on a minimal image: every tool the build and the tests need is installed by name (make, python3,
 * chromium, curl and jq included), without recommends, and the script then runs exactly `npm test`. It runs here on a copy of
 * .ci with a PATH that has none of the tools and an apt-get stand-in that records what it was asked for.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { PROJECT_ROOT } from "../helpers/models.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-ci-run-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function which(tool: string): string {
  const found = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
  assert.ok(found, `${tool} is needed by this test`);
  return found;
}

test(".ci/run installs git, cmake, make, g++, python3, tmux, prometheus (promtool), chromium, curl and jq without recommends, then runs npm test", () => {
  const repo = path.join(dir, "repo");
  cpSync(path.join(PROJECT_ROOT, ".ci"), path.join(repo, ".ci"), { recursive: true });
  mkdirSync(path.join(dir, "shared", "models"), { recursive: true });
  for (const model of ["stories260K.gguf", "stories260K-chatml.gguf"]) writeFileSync(path.join(dir, "shared", "models", model), "");
  const bin = path.join(dir, "bin");
  mkdirSync(bin);
  for (const tool of ["dirname", "node", "rm"]) symlinkSync(which(tool), path.join(bin, tool));
  const calls = path.join(dir, "calls");
  // apt-get "installs" by recording; npm records too, so the run ends right after `npm test`
  for (const tool of ["apt-get", "npm"]) {
    writeFileSync(path.join(bin, tool), `#!${which("bash")}\necho "${tool} $*" >> ${JSON.stringify(calls)}\n`);
    chmodSync(path.join(bin, tool), 0o755);
  }
  const result = spawnSync(which("bash"), [path.join(repo, ".ci", "run")], { env: { PATH: bin, HOME: dir }, encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  const lines = readFileSync(calls, "utf8").trim().split("\n");
  const install = lines.find((l) => l.startsWith("apt-get") && l.includes(" install "));
  assert.ok(install, lines.join("\n"));
  assert.match(install, /--no-install-recommends/);
  const packages = install.split(" ").filter((w) => !w.startsWith("-") && !["apt-get", "install"].includes(w));
  assert.deepEqual(packages.sort(), ["chromium", "cmake", "curl", "g++", "git", "jq", "make", "prometheus", "python3", "tmux"]);
  assert.equal(lines.at(-2), "npm run lint", "lint runs in CI, before the tests");
  assert.equal(lines.at(-1), "npm test", "the last step is exactly the README's `npm test`");
});

test("every tool the llama-server build script checks for is one .ci/run installs", () => {
  const table = readFileSync(path.join(PROJECT_ROOT, ".ci", "debian-packages"), "utf8");
  const tools = new Set(
    table
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("#"))
      .map((l) => l.split(/\s+/)[0]),
  );
  const script = readFileSync(path.join(PROJECT_ROOT, "scripts", "build-llama-server.sh"), "utf8");
  const checked =
    /for tool in ([^;]+); do/
      .exec(script)?.[1]
      ?.split(/\s+/)
      .map((t) => (t === '"$generator_tool"' ? "make" : t)) ?? [];
  assert.ok(checked.length >= 4, script);
  for (const tool of checked) assert.ok(tools.has(tool), `${tool} is checked by build-llama-server.sh but not installed by .ci/run`);
});
