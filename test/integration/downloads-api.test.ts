/** Downloads through the admin API against a local server that speaks the Hugging Face hub's URL layout. */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { startFakeHub, type FakeHub } from "../helpers/fake-hub.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let hub: FakeHub;
let server: TestServer;
let cache: string;
let gguf: Buffer;

const json = { "content-type": "application/json" };
interface Snapshot {
  id: string;
  status: string;
  bytes_done: number;
  bytes_total: number;
  local_path: string | null;
  error: { code: string; message: string } | null;
}

before(async () => {
  gguf = readFileSync((await testModel("stories260K.gguf")).path);
  const chat = readFileSync((await testModel("stories260K-chatml.gguf")).path);
  hub = await startFakeHub({
    repos: {
      "tiny/stories-GGUF": { files: { "stories260K.gguf": gguf, "config.json": Buffer.from("{}") } },
      "tiny/quants-GGUF": { files: { "stories-Q8_0.gguf": chat, "stories-Q4_0.gguf": gguf, "stories-F16.gguf": gguf } },
      "tiny/bad-GGUF": { files: { "stories260K.gguf": { data: gguf, advertisedSha256: "0".repeat(64) } } },
    },
    faults: { "tiny/stories-GGUF": { "stories260K.gguf": { cutAfterBytes: 300_000, cutTimes: 1 } } },
  });
  cache = mkdtempSync(path.join(os.tmpdir(), "lmx-dl-cache-"));
  server = await startTestServer({
    discovery: { hf_cache: cache, lmstudio: false, ollama: false },
    downloads: { hub_url: hub.url, min_free_bytes: 0 },
  });
});

after(async () => {
  await server?.stop();
  await hub?.close();
  rmSync(cache, { recursive: true, force: true });
});

const download = (body: unknown) =>
  getJson<Snapshot & { error: { code: string; message: string } }>(`${server.url}/admin/models/download`, {
    method: "POST",
    headers: json,
    body: JSON.stringify(body),
  });

async function finished(id: string): Promise<Snapshot> {
  let last: Snapshot | null = null;
  await waitFor(
    async () => {
      last = (await getJson<Snapshot>(`${server.url}/admin/models/downloads/${id}`)).body;
      return last.status !== "queued" && last.status !== "running";
    },
    20_000,
    "the download to finish",
  );
  return last!;
}

test("a download resumes after a cut, lands in the HF cache layout, and is served", async () => {
  const started = await download({ repo: "tiny/stories-GGUF" });
  assert.equal(started.status, 202);
  assert.match(started.headers.get("location") ?? "", /^\/admin\/models\/downloads\//);
  const done = await finished(started.body.id);
  assert.equal(done.status, "completed", JSON.stringify(done.error));
  assert.equal(done.bytes_done, done.bytes_total);
  assert.ok(
    hub.requests.some((r) => r.includes("range=bytes=")),
    "the second attempt asked for the rest with a Range request",
  );
  assert.match(done.local_path ?? "", /models--tiny--stories-GGUF\/snapshots\/[0-9a-f]{40}$/);
  assert.ok(readdirSync(path.join(cache, "models--tiny--stories-GGUF", "blobs")).every((b) => !b.endsWith(".incomplete")));
  const models = await getJson<{ data: Array<{ id: string }> }>(`${server.url}/v1/models`);
  assert.ok(
    models.body.data.some((m) => m.id === "tiny/stories-GGUF"),
    "the finished download is listed at once",
  );
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ model: "tiny/stories-GGUF", prompt: "Once upon a time", max_tokens: 4 }),
  });
  assert.equal(res.status, 200);
});

test("a wrong checksum is rejected and nothing is marked complete", async () => {
  const started = await download({ repo: "tiny/bad-GGUF" });
  const done = await finished(started.body.id);
  assert.equal(done.status, "failed");
  assert.equal(done.error?.code, "download_checksum_mismatch");
  const available = await getJson<{ data: Array<{ id: string; complete: boolean }> }>(`${server.url}/admin/models/available`);
  assert.ok(!available.body.data.some((m) => m.id === "tiny/bad-GGUF" && m.complete));
});

test("unknown repos are 404; a repo that does not fit the free-space floor is 507 before any byte moves", async () => {
  const missing = await download({ repo: "tiny/nothing-here" });
  assert.deepEqual([missing.status, missing.body.error.code], [404, "download_not_found"]);
  const tight = await startTestServer({
    discovery: { hf_cache: mkdtempSync(path.join(os.tmpdir(), "lmx-dl-tight-")), lmstudio: false, ollama: false },
    downloads: { hub_url: hub.url, min_free_bytes: Number.MAX_SAFE_INTEGER },
  });
  try {
    const before = hub.requests.filter((r) => r.includes("/resolve/")).length;
    const refused = await getJson<{ error: { code: string; message: string } }>(`${tight.url}/admin/models/download`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ repo: "tiny/quants-GGUF" }),
    });
    assert.equal(refused.status, 507);
    assert.equal(refused.body.error.code, "insufficient_disk");
    assert.match(refused.body.error.message, /\d+ more bytes.*\d+ bytes free/);
    assert.equal(hub.requests.filter((r) => r.includes("/resolve/")).length, before, "no file was requested");
  } finally {
    await tight.stop();
  }
});

test("load with auto_download fetches one quantization of an unknown repo, then serves it", async () => {
  const res = await getJson<{ status: string; model_id: string }>(`${server.url}/admin/models/load`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ model_id: "tiny/quants-GGUF:Q8_0", auto_download: true }),
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.status, "loaded");
  const fetched = hub.requests.filter((r) => r.includes("/resolve/") && r.includes("quants"));
  assert.ok(
    fetched.every((r) => r.includes("Q8_0")),
    `only the Q8_0 file was fetched: ${fetched.join(", ")}`,
  );
  const chat = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ model: "tiny/quants-GGUF:Q8_0", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
  });
  assert.equal(chat.status, 200);
});

test("download progress is listed, and stale partial files can be cleaned up", async () => {
  const list = await getJson<{ data: Snapshot[] }>(`${server.url}/admin/models/downloads`);
  assert.ok(list.body.data.length >= 2);
  const cleanup = await getJson<{ removed: unknown[]; bytesFreed: number }>(`${server.url}/admin/models/downloads/cleanup`, {
    method: "POST",
    headers: json,
    body: "{}",
  });
  assert.equal(cleanup.status, 200);
  assert.ok(Array.isArray(cleanup.body.removed));
  const bad = await download({ repo: "../../etc" });
  assert.equal(bad.status, 400);
});
