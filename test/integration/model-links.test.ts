/**
 * Symlinks in model folders: a link whose target lies outside the configured folders is listed with its reason,
 * never served and never read (no response carries a byte of it); links that stay inside the folders — another
 * model folder, the HF cache's snapshot → blobs links — keep working.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { testModel } from "../helpers/models.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

/** The outside file: its first bytes are what a bad-magic message used to quote back. */
const SECRET = "SECRET-7f3a root:x:0:0:root:/root:/bin/bash\n";
const LEAKS = /SECR|root:x|7f3a/;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const REFUSED = ["leak", "absolute", "dots", "outside-real", "split", "tiny/linked-out-GGUF"];

let root: string;
let secretPath: string;
let server: TestServer;

interface Available {
  data: Array<{ id: string; servable: boolean; problem: string | null; size_bytes: number }>;
}

async function text(urlPath: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.url}${urlPath}`, init);
  return { status: res.status, text: await res.text() };
}

const post = (urlPath: string, body: unknown) =>
  text(urlPath, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "lmx-links-"));
  const model = (await testModel("stories260K-chatml.gguf")).path;
  const outside = path.join(root, "outside");
  const a = path.join(root, "models-a");
  const b = path.join(root, "models-b");
  for (const dir of [outside, a, b, path.join(a, "nested", "deep")]) mkdirSync(dir, { recursive: true });
  secretPath = path.join(outside, "secret.txt");
  writeFileSync(secretPath, SECRET);
  copyFileSync(model, path.join(outside, "real.gguf"));
  copyFileSync(model, path.join(b, "stories.gguf"));
  copyFileSync(model, path.join(a, "split-00001-of-00002.gguf"));
  // links out of the folders: relative with "..", absolute, from deep inside, to a real GGUF, one part of a split
  symlinkSync("../outside/secret.txt", path.join(a, "leak.gguf"));
  symlinkSync(secretPath, path.join(a, "absolute.gguf"));
  symlinkSync("../../../outside/secret.txt", path.join(a, "nested", "deep", "dots.gguf"));
  symlinkSync(path.join(outside, "real.gguf"), path.join(a, "outside-real.gguf"));
  symlinkSync("../outside/secret.txt", path.join(a, "split-00002-of-00002.gguf"));
  // a link from one model folder to a GGUF in another is fine
  symlinkSync("../models-b/stories.gguf", path.join(a, "linked.gguf"));
  // a plain non-GGUF file with a .gguf name: bad magic, said without its bytes
  writeFileSync(path.join(a, "text.gguf"), SECRET);
  // the HF cache: snapshot links into its own blobs work; one into the outside folder does not
  const cache = path.join(root, "hf");
  const repo = (name: string, target: (repoDir: string) => string) => {
    const repoDir = path.join(cache, `models--${name.replace("/", "--")}`);
    const snapshot = path.join(repoDir, "snapshots", COMMIT);
    mkdirSync(snapshot, { recursive: true });
    mkdirSync(path.join(repoDir, "refs"), { recursive: true });
    writeFileSync(path.join(repoDir, "refs", "main"), COMMIT);
    symlinkSync(target(repoDir), path.join(snapshot, "model-Q8_0.gguf"));
  };
  repo("tiny/cached-GGUF", (repoDir) => {
    mkdirSync(path.join(repoDir, "blobs"));
    copyFileSync(model, path.join(repoDir, "blobs", "b".repeat(64)));
    return `../../blobs/${"b".repeat(64)}`;
  });
  repo("tiny/linked-out-GGUF", () => `../../../../outside/real.gguf`);
  // a hand-edited ref that climbs out of snapshots/ must not make the outside folder a snapshot
  const climbing = path.join(cache, "models--tiny--climbing-GGUF");
  mkdirSync(path.join(climbing, "refs"), { recursive: true });
  writeFileSync(path.join(climbing, "refs", "main"), "../../../outside");
  mkdirSync(path.join(climbing, "snapshots"), { recursive: true });
  copyFileSync(model, path.join(outside, "found-by-climbing.gguf"));
  server = await startTestServer({
    model_dirs: [a, b],
    demo_model: false,
    defaults: { threads: 1, parallel: 1, context_size: 128 },
    discovery: { hf_cache: cache, lmstudio: false, ollama: false },
  });
});

after(async () => {
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

test("links to files outside the configured folders are listed as not servable, with the reason, size 0", async () => {
  const available = await text("/admin/models/available");
  assert.equal(available.status, 200);
  assert.doesNotMatch(available.text, LEAKS);
  const models = (JSON.parse(available.text) as Available).data;
  for (const id of REFUSED) {
    const model = models.find((m) => m.id === id);
    assert.ok(model, `${id} is listed: ${models.map((m) => m.id).join(", ")}`);
    assert.equal(model.servable, false, id);
    assert.match(model.problem ?? "", /outside the configured model folders.*model_dirs/, id);
    assert.equal(model.size_bytes, 0, `${id}: the target's size is not reported`);
  }
  assert.equal(
    models.some((m) => /climbing/.test(m.id)),
    false,
    "a ref climbing out of snapshots/ finds nothing",
  );
  const text_ = models.find((m) => m.id === "text");
  assert.equal(text_?.problem, "not a GGUF file (bad magic)");
  const listed = await text("/v1/models");
  assert.doesNotMatch(listed.text, LEAKS);
  for (const id of REFUSED) assert.equal(listed.text.includes(`"id":"${id}"`), false, `${id} is not offered to clients`);
});

test("loading or chatting with a refused link is a clear error that carries no byte of the target", async () => {
  for (const id of [...REFUSED, "text"]) {
    const load = await post("/admin/models/load", { model_id: id });
    assert.equal(load.status, 422, `${id}: ${load.text}`);
    assert.doesNotMatch(load.text, LEAKS, id);
    const chat = await post("/v1/chat/completions", { model: id, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    assert.ok(chat.status >= 400 && chat.status < 500, `${id}: ${chat.text}`);
    assert.doesNotMatch(chat.text, LEAKS, id);
  }
  const status = await text("/admin/status");
  assert.equal((JSON.parse(status.text) as { models_loaded: unknown[] }).models_loaded.length, 0, "nothing was loaded");
  const compatibility = await text("/admin/models/compatibility");
  assert.doesNotMatch(compatibility.text, LEAKS);
});

test("a request's settings.draft_model may only name a file the server would serve", async () => {
  for (const draft of [secretPath, path.join(root, "models-a", "..", "outside", "secret.txt"), path.join(root, "models-a", "leak.gguf")]) {
    const load = await post("/admin/models/load", { model_id: "linked", settings: { draft_model: draft } });
    assert.equal(load.status, 400, load.text);
    assert.deepEqual([JSON.parse(load.text).error.code, JSON.parse(load.text).error.param], ["invalid_value", "settings.draft_model"]);
    assert.doesNotMatch(load.text, LEAKS);
  }
});

test("links that stay inside the folders work: model folder → other model folder, HF snapshot → its blobs", async () => {
  const models = (JSON.parse((await text("/admin/models/available")).text) as Available).data;
  for (const id of ["linked", "stories", "tiny/cached-GGUF"]) {
    const model = models.find((m) => m.id === id);
    assert.equal(model?.servable, true, `${id}: ${JSON.stringify(model)}`);
    assert.ok((model?.size_bytes ?? 0) > 1_000_000);
  }
  for (const id of ["linked", "tiny/cached-GGUF"]) {
    const chat = await post("/v1/chat/completions", { model: id, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    assert.equal(chat.status, 200, `${id}: ${chat.text}`);
  }
});
