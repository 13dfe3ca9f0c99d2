import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/load.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

test("defaults: loopback, port 1234, JIT on, demo model on", () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.port, 1234);
  assert.equal(c.jit_load, true);
  assert.equal(c.demo_model, true);
  assert.equal(c.admin_key, null);
  assert.ok(path.isAbsolute(c.state_dir));
});

test("YAML file, then environment, then flags; relative paths resolve against the file", () => {
  const p = file(
    "a.yaml",
    "port: 9000\nmodel_dirs: [models]\nmodels:\n  - id: m\n    path: ./m.gguf\n    parallel: 2\n    threads: 1\nqueue_size: 3\n",
  );
  const c = loadConfig({ configPath: p, env: { LMX_PORT: "9100", LMX_QUEUE_SIZE: "7" }, overrides: { port: 9200 } });
  assert.equal(c.port, 9200);
  assert.equal(c.queue_size, 7);
  assert.deepEqual(c.model_dirs, [path.join(dir, "models")]);
  assert.equal(c.models[0]?.path, path.join(dir, "m.gguf"));
  assert.equal(c.models[0]?.parallel, 2);
  assert.equal(loadConfig({ configPath: p, env: { LMX_CONFIG: "/nonexistent" } }).port, 9000, "an explicit path wins over LMX_CONFIG");
});

test("LMX_CONFIG names the file when no flag does", () => {
  const p = file("b.yaml", "port: 4321\n");
  assert.equal(loadConfig({ env: { LMX_CONFIG: p } }).port, 4321);
});

test("invalid settings fail with a message naming the setting", () => {
  const p = file("bad.yaml", "port: 70000\nmodels:\n  - id: m\n    path: x.gguf\n    parallel: 0\nbogus: 1\n");
  assert.throws(
    () => loadConfig({ configPath: p, env: {} }),
    (e: Error) => e instanceof ConfigError && /port/.test(e.message) && /parallel/.test(e.message) && /bogus/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ env: { LMX_JIT_LOAD: "maybe" } }),
    (e: Error) => e instanceof ConfigError && /jit_load/.test(e.message),
  );
  assert.throws(() => loadConfig({ configPath: file("c.yaml", "- a\n- b\n"), env: {} }), /mapping/);
  assert.throws(() => loadConfig({ configPath: file("d.yaml", "port: [\n"), env: {} }), /not valid YAML/);
  assert.throws(() => loadConfig({ configPath: path.join(dir, "missing.yaml"), env: {} }), /cannot read/);
});

test("model ids: duplicates and path traversal are refused", () => {
  const dup = file("dup.yaml", "models:\n  - {id: a, path: x.gguf}\n  - {id: b, path: y.gguf, aliases: [a]}\n");
  assert.throws(() => loadConfig({ configPath: dup, env: {} }), /used twice/);
  const traversal = file("trav.yaml", "models:\n  - {id: ../etc, path: x.gguf}\n");
  assert.throws(() => loadConfig({ configPath: traversal, env: {} }), ConfigError);
});
