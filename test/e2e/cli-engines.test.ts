/**
 * One llama-server build per machine: the one `npm test` and `lmx engines build` put in the user cache is the one
 * the server and `lmx engines` use, without a second build into the state directory.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { findLlamaServer, llamaServerCandidates } from "../../src/engines/llama-server/binary.js";
import { PROJECT_ROOT } from "../helpers/models.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-engines-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in that answers the two questions describeLlamaServer asks. */
function fakeLlamaServer(folder: string, commit: string): string {
  const binary = path.join(folder, "bin", "llama-server");
  mkdirSync(path.dirname(binary), { recursive: true });
  writeFileSync(binary, `#!/bin/sh\n[ "$1" = --version ] && echo "version: 1 (${commit})"\nexit 0\n`);
  chmodSync(binary, 0o755);
  return binary;
}

function withCache<T>(cache: string, fn: () => T): T {
  const saved = { xdg: process.env["XDG_CACHE_HOME"], env: process.env["LMX_LLAMA_SERVER"] };
  process.env["XDG_CACHE_HOME"] = cache;
  delete process.env["LMX_LLAMA_SERVER"];
  try {
    return fn();
  } finally {
    if (saved.xdg === undefined) delete process.env["XDG_CACHE_HOME"];
    else process.env["XDG_CACHE_HOME"] = saved.xdg;
    if (saved.env !== undefined) process.env["LMX_LLAMA_SERVER"] = saved.env;
  }
}

test("the server finds the user cache's build (npm test's) when the state directory has none; a state-directory build wins", () => {
  const cache = path.join(dir, "cache");
  const state = path.join(dir, "state");
  const cached = fakeLlamaServer(path.join(cache, "opta-lmx", "llama-server"), "cache1");
  withCache(cache, () => {
    assert.deepEqual(llamaServerCandidates("auto", state).paths, [path.join(state, "engines", "llama-server", "bin", "llama-server"), cached]);
    assert.equal(findLlamaServer("auto", state)?.path, cached);
    const own = fakeLlamaServer(path.join(state, "engines", "llama-server"), "state1");
    assert.equal(findLlamaServer("auto", state)?.path, own);
    assert.deepEqual(llamaServerCandidates(false, state).paths, []);
    assert.deepEqual(llamaServerCandidates("/x/llama-server", state).paths, ["/x/llama-server"]);
  });
});

test("lmx engines reports the cached build as available, and says where it looked when there is none", () => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("LMX_")) env[k] = v;
  const state = path.join(dir, "state-cli");
  const engines = (cache: string) =>
    spawnSync(process.execPath, [CLI, "engines", "--state-dir", state, "--json"], {
      env: { ...env, XDG_CACHE_HOME: cache, LMX_CONFIG: "", HOME: dir },
      encoding: "utf8",
    });
  const cache = path.join(dir, "cache-cli");
  const binary = fakeLlamaServer(path.join(cache, "opta-lmx", "llama-server"), "abc1234");
  const found = JSON.parse(engines(cache).stdout) as { engines: Array<{ name: string; available: boolean; path: string | null }> };
  const llamaServer = found.engines.find((e) => e.name === "llama-server");
  assert.equal(llamaServer?.available, true);
  assert.equal(llamaServer?.path, binary);

  const none = JSON.parse(engines(path.join(dir, "empty-cache")).stdout) as {
    engines: Array<{ name: string; available: boolean; lookedAt: string[]; how: string }>;
  };
  const engine = none.engines.find((e) => e.name === "llama-server")!;
  assert.equal(engine.available, false);
  assert.deepEqual(engine.lookedAt, [
    path.join(state, "engines", "llama-server", "bin", "llama-server"),
    path.join(dir, "empty-cache", "opta-lmx", "llama-server", "bin", "llama-server"),
  ]);
  assert.match(engine.how, /lmx engines build llama-server \(→ .*empty-cache\/opta-lmx\/llama-server\)/);
});
