/** Discovery of models in the HF cache, Ollama's store and LM Studio's folder, with completeness checked. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { writeTruncatedCopy } from "../../src/gguf/fixtures.js";
import { getJson, startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let root: string;
let server: TestServer;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

/** Writes a repo into the HF cache layout: blobs by hash, snapshot links, refs/main. */
function hfRepo(cache: string, repo: string, files: Record<string, Buffer | null>): string {
  const repoDir = path.join(cache, `models--${repo.replace("/", "--")}`);
  const snapshot = path.join(repoDir, "snapshots", COMMIT);
  mkdirSync(path.join(repoDir, "blobs"), { recursive: true });
  mkdirSync(path.join(repoDir, "refs"), { recursive: true });
  mkdirSync(snapshot, { recursive: true });
  writeFileSync(path.join(repoDir, "refs", "main"), COMMIT);
  for (const [name, data] of Object.entries(files)) {
    const hash = data ? createHash("sha256").update(data).digest("hex") : "f".repeat(64);
    if (data) writeFileSync(path.join(repoDir, "blobs", hash), data);
    const link = path.join(snapshot, name);
    mkdirSync(path.dirname(link), { recursive: true });
    symlinkSync(path.relative(path.dirname(link), path.join(repoDir, "blobs", hash)), link); // dangling when data is null
  }
  return snapshot;
}

interface Available {
  locations: Array<{ source: string; path: string; exists: boolean }>;
  data: Array<{
    id: string;
    source: string;
    format: string;
    type: string;
    architecture: string | null;
    parameter_count: number | null;
    local_path: string;
    complete: boolean;
    missing: string[];
    problem: string | null;
    servable: boolean;
    status: string;
  }>;
}

before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "lmx-inventory-"));
  const gguf = readFileSync((await testModel("stories260K.gguf")).path);
  const chatGguf = readFileSync((await testModel("stories260K-chatml.gguf")).path);
  const cache = path.join(root, "hf");
  hfRepo(cache, "tiny/stories-GGUF", { "stories260K.gguf": gguf, "README.md": Buffer.from("# readme") });
  hfRepo(cache, "tiny/multi-GGUF", { "stories-Q8_0.gguf": gguf, "stories-chat-Q8_0.gguf": chatGguf });
  hfRepo(cache, "tiny/split-GGUF", { "big-00001-of-00003.gguf": gguf, "big-00002-of-00003.gguf": gguf });
  hfRepo(cache, "org/sharded-safetensors", {
    "config.json": Buffer.from("{}"),
    "model.safetensors.index.json": Buffer.from(
      JSON.stringify({ weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } }),
    ),
    "model-00001-of-00002.safetensors": Buffer.from("x"),
  });
  hfRepo(cache, "someone/tiny-GGUF", { "tiny-Q4_0.gguf": chatGguf });
  hfRepo(cache, "mlx-community/tiny-4bit", {
    "config.json": Buffer.from(JSON.stringify({ quantization: { group_size: 64, bits: 4 } })),
    "model.safetensors": Buffer.from("x"),
  });
  const downloading = hfRepo(cache, "tiny/downloading-GGUF", { "stories260K.gguf": gguf });
  writeFileSync(path.join(downloading, "..", "..", "blobs", `${"a".repeat(64)}.incomplete`), "partial");
  // Ollama: a manifest whose model layer is a GGUF blob, and one whose blob is gone
  const ollama = path.join(root, "ollama");
  const digest = createHash("sha256").update(chatGguf).digest("hex");
  mkdirSync(path.join(ollama, "blobs"), { recursive: true });
  writeFileSync(path.join(ollama, "blobs", `sha256-${digest}`), chatGguf);
  for (const [model, layerDigest] of [
    ["stories", digest],
    ["gone", "b".repeat(64)],
  ] as const) {
    const dir = path.join(ollama, "manifests", "registry.ollama.ai", "library", model);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, "latest"),
      JSON.stringify({ layers: [{ mediaType: "application/vnd.ollama.image.model", digest: `sha256:${layerDigest}`, size: chatGguf.length }] }),
    );
  }
  // LM Studio: publisher/repo/file.gguf, plus a truncated file in a plain model folder
  const lmstudio = path.join(root, "lmstudio", "someone", "stories-GGUF");
  mkdirSync(lmstudio, { recursive: true });
  copyFileSync((await testModel("stories260K.gguf")).path, path.join(lmstudio, "stories260K-Q8_0.gguf"));
  const folder = path.join(root, "folder");
  mkdirSync(folder, { recursive: true });
  await writeTruncatedCopy((await testModel("stories260K.gguf")).path, path.join(folder, "cut.gguf"), 0.7);
  server = await startTestServer({
    model_dirs: [folder],
    discovery: { hf_cache: cache, ollama, lmstudio: path.join(root, "lmstudio") },
  });
});

after(async () => {
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function available() {
  return (await getJson<Available>(`${server.url}/admin/models/available`)).body;
}

test("the HF cache: complete repos list their snapshot folder; incomplete ones name what is missing", async () => {
  const { data, locations } = await available();
  const byId = new Map(data.map((m) => [m.id, m]));
  const stories = byId.get("tiny/stories-GGUF");
  assert.ok(stories, JSON.stringify(data.map((m) => m.id)));
  assert.equal(stories.complete, true);
  assert.equal(stories.format, "gguf");
  assert.equal(stories.architecture, "llama");
  assert.ok((stories.parameter_count ?? 0) > 200_000);
  assert.match(stories.local_path, new RegExp(`models--tiny--stories-GGUF/snapshots/${COMMIT}$`));
  assert.ok(byId.get("tiny/multi-GGUF:stories-Q8_0") && byId.get("tiny/multi-GGUF:stories-chat-Q8_0"), "one entry per GGUF in a multi-file repo");
  assert.equal(byId.get("tiny/multi-GGUF:stories-chat-Q8_0")?.type, "chat", "type read from the GGUF's chat template");
  assert.equal(byId.get("tiny/multi-GGUF:stories-Q8_0")?.type, "completion");
  const split = byId.get("tiny/split-GGUF");
  assert.deepEqual(split?.missing, ["big-00003-of-00003.gguf"]);
  const sharded = byId.get("org/sharded-safetensors");
  assert.equal(sharded?.format, "safetensors");
  assert.deepEqual(sharded?.missing, ["model-00002-of-00002.safetensors"]);
  assert.equal(byId.get("mlx-community/tiny-4bit")?.format, "mlx-safetensors");
  assert.equal(byId.get("mlx-community/tiny-4bit")?.servable, false);
  const downloading = byId.get("tiny/downloading-GGUF");
  assert.equal(downloading?.complete, false);
  assert.match(downloading?.missing[0] ?? "", /\.incomplete$/);
  assert.ok(locations.some((l) => l.source === "hf_cache" && l.exists));
});

test("Ollama manifests and LM Studio folders are served from where they are; truncated files are flagged", async () => {
  const { data } = await available();
  const byId = new Map(data.map((m) => [m.id, m]));
  assert.equal(byId.get("ollama:stories:latest")?.servable, true);
  assert.equal(byId.get("ollama:gone:latest")?.complete, false);
  assert.equal(byId.get("lmstudio:stories260K-Q8_0")?.source, "lmstudio");
  const cut = byId.get("cut");
  assert.equal(cut?.complete, false);
  assert.match(cut?.problem ?? "", /truncated/);
});

test("/v1/models shows only what can be served; a servable discovered model answers", async () => {
  const list = await getJson<{ data: Array<{ id: string }> }>(`${server.url}/v1/models`);
  const ids = list.body.data.map((m) => m.id);
  assert.ok(ids.includes("tiny/stories-GGUF") && ids.includes("ollama:stories:latest"));
  for (const hidden of ["tiny/split-GGUF", "mlx-community/tiny-4bit", "cut", "tiny/downloading-GGUF"]) assert.ok(!ids.includes(hidden), hidden);
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny/stories-GGUF", prompt: "Once upon a time", max_tokens: 4 }),
  });
  assert.equal(res.status, 200);
});

test("loading an incomplete model answers 202 download_required; requests get 409; a truncated file 422", async () => {
  const load = await getJson<{ status: string; missing: string[] }>(`${server.url}/admin/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model_id: "tiny/split-GGUF" }),
  });
  assert.equal(load.status, 202);
  assert.equal(load.body.status, "download_required");
  assert.deepEqual(load.body.missing, ["big-00003-of-00003.gguf"]);
  const ask = (model: string) =>
    getJson<{ error: { code: string } }>(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, prompt: "x" }),
    });
  const incomplete = await ask("tiny/split-GGUF");
  assert.deepEqual([incomplete.status, incomplete.body.error.code], [409, "download_required"]);
  const cut = await ask("cut");
  assert.deepEqual([cut.status, cut.body.error.code], [422, "model_file_invalid"]);
  const mlx = await ask("mlx-community/tiny-4bit");
  assert.equal(mlx.body.error.code, "backend_unavailable");
  const missing = await getJson<{ error: { code: string } }>(`${server.url}/admin/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model_id: "nope/nope" }),
  });
  assert.equal(missing.status, 404);
});

test("gguf_fallback_enabled: an MLX repo no backend opens is served by a local GGUF of the same model", async () => {
  const fallback = await startTestServer({
    gguf_fallback_enabled: true,
    discovery: { hf_cache: path.join(root, "hf"), lmstudio: false, ollama: false },
  });
  try {
    const res = await fetch(`${fallback.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mlx-community/tiny-4bit", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-lmx-served-model"), "someone/tiny-GGUF", "the response says which file served it");
  } finally {
    await fallback.stop();
  }
});
