import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { scanCacheDir, scanCachedRepo } from "@huggingface/hub";
import { writeTinyLlamaModel } from "../../src/gguf/fixtures.js";
import {
  DownloadError,
  DownloadManager,
  type DownloadManagerOptions,
  type DownloadSnapshot,
} from "../../src/inventory/downloads/download-manager.js";
import { sha256Hex, startFakeHub, type FakeHub, type FakeHubOptions } from "../helpers/fake-hub.js";

const REPO = "lmx-test/tiny-llama-GGUF";
const CONFIG = Buffer.from(JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama" }, null, 2));
const README = Buffer.from("# tiny\n");

let scratch: string;
let ggufF32: Buffer;
let ggufQ8: Buffer;
let ggufQ4: Buffer;
const hubs: FakeHub[] = [];

before(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "lmx-downloads-"));
  const make = async (weightType: "f32" | "q8_0" | "q4_0") => {
    const file = path.join(scratch, `tiny-${weightType}.gguf`);
    await writeTinyLlamaModel(file, { weightType });
    return readFile(file);
  };
  [ggufF32, ggufQ8, ggufQ4] = await Promise.all([make("f32"), make("q8_0"), make("q4_0")]);
});

after(async () => {
  await Promise.all(hubs.map((h) => h.close()));
  await rm(scratch, { recursive: true, force: true });
});

async function hub(options: FakeHubOptions): Promise<FakeHub> {
  const h = await startFakeHub(options);
  hubs.push(h);
  return h;
}

async function cacheDir(): Promise<string> {
  return mkdtemp(path.join(scratch, "cache-"));
}

function manager(dir: string, h: FakeHub, extra: Partial<DownloadManagerOptions> = {}): DownloadManager {
  return new DownloadManager({ cacheDir: dir, hubUrl: h.url, minFreeBytes: 0, retries: 0, retryDelayMs: 10, ...extra });
}

const repoRoot = (dir: string, repo = REPO) => path.join(dir, `models--${repo.split("/").join("--")}`);
const gitOid = (data: Buffer) => createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
const isCode = (code: string) => (e: unknown) => e instanceof DownloadError && e.code === code;

async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 2));
  }
}

test("downloads a repo into the HF cache layout that huggingface_hub tools read", async () => {
  const h = await hub({
    repos: { [REPO]: { files: { "tiny-llama-f32.gguf": ggufF32, "config.json": CONFIG, "docs/nested/README.md": README } } },
  });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const result = await m.start({ repo: REPO }).done;

  assert.equal(result.status, "completed");
  assert.equal(result.bytesTotal, ggufF32.length + CONFIG.length + README.length);
  assert.equal(result.bytesDone, result.bytesTotal);
  assert.deepEqual(
    result.files.map((f) => f.status),
    ["completed", "completed", "completed"],
  );
  const root = repoRoot(dir);
  const commit = await readFile(path.join(root, "refs", "main"), "utf8");
  assert.match(commit, /^[0-9a-f]{40}$/, "refs/main holds the bare commit");
  assert.equal(result.commit, commit);
  assert.equal(result.localPath, path.join(root, "snapshots", commit));

  // LFS file: blob named by sha256; small files: by git oid, as huggingface_hub names them.
  const sha = sha256Hex(ggufF32);
  assert.deepEqual(await readFile(path.join(root, "blobs", sha)), ggufF32);
  assert.equal(await readlink(path.join(result.localPath!, "tiny-llama-f32.gguf")), `../../blobs/${sha}`);
  assert.equal(await readlink(path.join(result.localPath!, "config.json")), `../../blobs/${gitOid(CONFIG)}`);
  assert.equal(await readlink(path.join(result.localPath!, "docs/nested/README.md")), `../../../../blobs/${gitOid(README)}`);
  assert.deepEqual(await readFile(path.join(result.localPath!, "tiny-llama-f32.gguf")), ggufF32);
  assert.deepEqual(await readFile(path.join(result.localPath!, "docs/nested/README.md")), README);
  assert.deepEqual(
    (await readdir(path.join(root, "blobs"))).filter((n) => n.endsWith(".incomplete")),
    [],
  );

  const scanned = await scanCacheDir(dir);
  assert.deepEqual(scanned.warnings, []);
  assert.equal(scanned.repos.length, 1);
  assert.deepEqual(scanned.repos[0]!.id, { name: REPO, type: "model" });
  const repo = await scanCachedRepo(root);
  assert.equal(repo.revisions.length, 1);
  assert.equal(repo.revisions[0]!.commitOid, commit);
  assert.deepEqual(repo.revisions[0]!.refs, ["main"]);
  assert.deepEqual(repo.revisions[0]!.files.map((f) => path.basename(f.path)).sort(), ["config.json", "tiny-llama-f32.gguf"]);

  // Files are fetched at the resolved commit, so a push during the download cannot mix revisions.
  assert.ok(h.requests.some((r) => r.startsWith(`GET /${REPO}/resolve/${commit}/tiny-llama-f32.gguf`)));
  assert.ok(h.requests.some((r) => r.startsWith(`GET /api/models/${REPO}/tree/${commit}?recursive=true`)));

  // Everything is cached: a second download asks only the API and transfers nothing.
  const before = h.requests.length;
  const again = await m.start({ repo: REPO }).done;
  assert.equal(again.status, "completed");
  assert.equal(again.bytesDone, again.bytesTotal);
  assert.deepEqual(
    h.requests.slice(before).filter((r) => r.includes("/resolve/") || r.includes("/__cdn/")),
    [],
  );
});

test("a quantization pattern fetches only the matching GGUF; explicit files with sha256 work too", async () => {
  const files = { "tiny-F32.gguf": ggufF32, "tiny-Q8_0.gguf": ggufQ8, "tiny-Q4_0.gguf": ggufQ4, "config.json": CONFIG };
  // A small page size makes listFiles follow the hub's Link pagination.
  const h = await hub({ repos: { [REPO]: { files } }, pageSize: 2 });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const result = await m.start({ repo: REPO, include: ["*Q4_0*.gguf"] }).done;
  assert.deepEqual(
    result.files.map((f) => f.path),
    ["tiny-Q4_0.gguf"],
  );
  assert.equal(result.bytesTotal, ggufQ4.length);
  assert.deepEqual(await readdir(result.localPath!), ["tiny-Q4_0.gguf"]);
  assert.deepEqual(await readdir(path.join(repoRoot(dir), "blobs")), [sha256Hex(ggufQ4)]);
  const fetched = h.requests.filter((r) => r.includes("/resolve/"));
  assert.equal(fetched.length, 1);
  assert.ok(
    h.requests.some((r) => r.includes("/tree/") && r.includes("cursor=2")),
    "listing was paged",
  );

  const explicit = await m.start({ repo: REPO, files: ["config.json", { path: "tiny-Q8_0.gguf", sha256: sha256Hex(ggufQ8).toUpperCase() }] }).done;
  assert.deepEqual(explicit.files.map((f) => f.path).sort(), ["config.json", "tiny-Q8_0.gguf"]);
  assert.deepEqual((await readdir(explicit.localPath!)).sort(), ["config.json", "tiny-Q4_0.gguf", "tiny-Q8_0.gguf"]);
});

test("a cut connection leaves a resumable .incomplete; the next attempt continues with Range", async () => {
  const cutAt = 300_000;
  const h = await hub({
    repos: { [REPO]: { files: { "model.gguf": ggufF32 } } },
    faults: { [REPO]: { "model.gguf": { cutAfterBytes: cutAt, cutTimes: 1 } } },
  });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const sha = sha256Hex(ggufF32);
  const incomplete = path.join(repoRoot(dir), "blobs", `${sha}.incomplete`);

  await assert.rejects(m.start({ repo: REPO }).done, isCode("download_failed"));
  // Bytes still queued in the client when the socket died are dropped with the stream, so the partial file
  // holds at most what was sent; the resume asks for exactly what it holds.
  const partial = (await stat(incomplete)).size;
  assert.ok(partial > 0 && partial <= cutAt, `partial ${partial}`);
  assert.ok(!existsSync(path.join(repoRoot(dir), "blobs", sha)));
  assert.ok(!existsSync(path.join(repoRoot(dir), "refs", "main")));

  const seen = h.requests.length;
  const result = await m.start({ repo: REPO }).done;
  assert.equal(result.status, "completed");
  const resumed = h.requests.slice(seen).filter((r) => r.includes("/resolve/") || r.includes("/__cdn/"));
  assert.ok(resumed.length > 0 && resumed.every((r) => r.endsWith(` range=bytes=${partial}-`)), resumed.join("\n"));
  assert.equal(sha256Hex(await readFile(path.join(result.localPath!, "model.gguf"))), sha);
  assert.ok(!existsSync(incomplete));
});

test("retries resume a cut within one job; a server that ignores Range restarts the file from zero", async () => {
  const h = await hub({
    repos: { [REPO]: { files: { "model.gguf": ggufQ8 } } },
    faults: { [REPO]: { "model.gguf": { cutAfterBytes: 100_000, cutTimes: 1 } } },
  });
  const dir = await cacheDir();
  const retried = await manager(dir, h, { retries: 1 }).start({ repo: REPO }).done;
  assert.equal(retried.status, "completed");
  assert.ok(
    h.requests.some((r) => /range=bytes=[1-9]\d*-$/.test(r)),
    "the retry resumed",
  );
  assert.equal(sha256Hex(await readFile(path.join(retried.localPath!, "model.gguf"))), sha256Hex(ggufQ8));

  const dir2 = await cacheDir();
  h.faults[REPO]!["model.gguf"] = { cutAfterBytes: 100_000, cutTimes: 2 };
  await assert.rejects(manager(dir2, h).start({ repo: REPO }).done, isCode("download_failed"));
  h.faults[REPO]!["model.gguf"] = { ignoreRange: true };
  const restarted = await manager(dir2, h).start({ repo: REPO }).done;
  assert.equal(restarted.status, "completed");
  assert.equal(sha256Hex(await readFile(path.join(restarted.localPath!, "model.gguf"))), sha256Hex(ggufQ8));
});

test("a checksum mismatch leaves nothing behind: no blob, no link, no .incomplete", async () => {
  const h = await hub({
    repos: { [REPO]: { files: { "model.gguf": ggufQ4, "config.json": CONFIG } } },
    faults: { [REPO]: { "model.gguf": { wrongSha: true } } },
  });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const job = m.start({ repo: REPO, files: ["model.gguf"] });
  await assert.rejects(job.done, (e: unknown) => {
    assert.ok(e instanceof DownloadError);
    assert.equal(e.code, "download_checksum_mismatch");
    assert.equal(e.details?.["actual"], sha256Hex(ggufQ4));
    return true;
  });
  const snap = job.snapshot();
  assert.equal(snap.status, "failed");
  assert.equal(snap.error?.code, "download_checksum_mismatch");
  assert.deepEqual(await readdir(path.join(repoRoot(dir), "blobs")), []);
  assert.ok(!existsSync(path.join(snap.localPath!, "model.gguf")));

  // A non-LFS file has no hub sha256, but an explicit one is checked.
  const wrong = "0".repeat(64);
  await assert.rejects(m.start({ repo: REPO, files: [{ path: "config.json", sha256: wrong }] }).done, isCode("download_checksum_mismatch"));
  assert.deepEqual(await readdir(path.join(repoRoot(dir), "blobs")), []);
});

test("a missing repo, revision or file is download_not_found; a refused token is download_unauthorized", async () => {
  const h = await hub({
    repos: {
      [REPO]: { files: { "model.gguf": ggufQ4, "gone.gguf": ggufQ4.subarray(0, 2000) } },
      "lmx-test/private": { files: { "model.gguf": ggufQ4 }, token: "hf_secret" },
    },
    faults: { [REPO]: { "gone.gguf": { status404: true } } },
  });
  const dir = await cacheDir();
  const m = manager(dir, h);
  // Anonymous: the hub answers 401 + RepoNotFound; with a token, 404.
  await assert.rejects(m.start({ repo: "nobody/nothing" }).done, isCode("download_not_found"));
  await assert.rejects(manager(dir, h, { token: "hf_other" }).start({ repo: "nobody/nothing" }).done, isCode("download_not_found"));
  await assert.rejects(m.start({ repo: REPO, revision: "v9" }).done, isCode("download_not_found"));
  await assert.rejects(m.start({ repo: REPO, files: ["gone.gguf"] }).done, isCode("download_not_found"));
  await assert.rejects(m.start({ repo: REPO, files: ["not-listed.gguf"] }).done, isCode("download_not_found"));
  await assert.rejects(m.start({ repo: REPO, include: ["*.safetensors"] }).done, isCode("download_not_found"));

  await assert.rejects(m.start({ repo: "lmx-test/private" }).done, isCode("download_unauthorized"));
  const authed = await manager(dir, h, { token: "hf_secret" }).start({ repo: "lmx-test/private" }).done;
  assert.equal(authed.status, "completed");
  assert.ok(h.entries.some((e) => e.headers.authorization === "Bearer hf_secret" && e.path.includes("/resolve/")));
});

test("too little disk fails with insufficient_disk before any file is requested", async () => {
  const h = await hub({ repos: { [REPO]: { files: { "model.gguf": ggufF32, "config.json": CONFIG } } } });
  const dir = await cacheDir();
  const needed = ggufF32.length + CONFIG.length;
  const m = manager(dir, h, { freeBytes: async () => needed + 1000, minFreeBytes: 4096 });
  await assert.rejects(m.start({ repo: REPO }).done, (e: unknown) => {
    assert.ok(e instanceof DownloadError);
    assert.equal(e.code, "insufficient_disk");
    assert.match(e.message, new RegExp(`needs ${needed} more bytes`));
    assert.match(e.message, new RegExp(`has ${needed + 1000} bytes free`));
    assert.deepEqual({ needed: e.details?.["neededBytes"], free: e.details?.["freeBytes"] }, { needed, free: needed + 1000 });
    return true;
  });
  assert.deepEqual(
    h.requests.filter((r) => r.includes("/resolve/") || r.includes("/__cdn/")),
    [],
  );

  // Bytes already on disk (a partial file) count against what is needed.
  const partial = 200_000;
  const blobs = path.join(repoRoot(dir), "blobs");
  await mkdir(blobs, { recursive: true });
  await writeFile(path.join(blobs, `${sha256Hex(ggufF32)}.incomplete`), ggufF32.subarray(0, partial));
  const enough = manager(dir, h, { freeBytes: async () => needed - partial + 4096, minFreeBytes: 4096 });
  assert.equal((await enough.start({ repo: REPO }).done).status, "completed");
});

test("one download per repo: same-process starts join, a live foreign lock refuses, a stale one is taken over", async () => {
  const h = await hub({
    repos: { [REPO]: { files: { "model.gguf": ggufQ8 } } },
    faults: { [REPO]: { "model.gguf": { chunkBytes: 64 * 1024, chunkDelayMs: 5 } } },
  });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const a = m.start({ repo: REPO });
  const b = m.start({ repo: REPO, revision: "main" });
  assert.equal(a, b);
  // A different selection of the same repo waits for the first instead of failing on the lock.
  const c = m.start({ repo: REPO, files: ["model.gguf"] });
  assert.notEqual(c, a);
  assert.equal(c.snapshot().status, "queued");
  assert.equal((await a.done).status, "completed");
  assert.equal((await c.done).status, "completed");
  assert.deepEqual(
    m.list().map((j) => j.id),
    [a.id, c.id],
  );
  assert.equal(m.get(a.id), a);

  const lockFile = path.join(dir, ".locks", `models--${REPO.split("/").join("--")}.lock`);
  assert.ok(!existsSync(lockFile), "released after the job");

  const dir2 = await cacheDir();
  const lock2 = path.join(dir2, ".locks", path.basename(lockFile));
  await mkdir(path.dirname(lock2), { recursive: true });
  const foreign = JSON.stringify({ pid: process.ppid, hostname: os.hostname(), jobId: "other", startedAt: new Date().toISOString() });
  await writeFile(lock2, foreign);
  await assert.rejects(manager(dir2, h).start({ repo: REPO }).done, isCode("download_in_progress"));
  assert.equal(await readFile(lock2, "utf8"), foreign, "someone else's lock is left alone");

  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  await writeFile(lock2, JSON.stringify({ pid: child.pid, hostname: os.hostname(), jobId: "dead", startedAt: new Date().toISOString() }));
  const taken = await manager(dir2, h).start({ repo: REPO }).done;
  assert.equal(taken.status, "completed");
  assert.ok(!existsSync(lock2));
});

test("progress counts up while bytes stream; cancel() stops and leaves a resumable .incomplete", async () => {
  const h = await hub({
    repos: { [REPO]: { files: { "model.gguf": ggufF32 } } },
    faults: { [REPO]: { "model.gguf": { chunkBytes: 64 * 1024, chunkDelayMs: 8 } } },
  });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const job = m.start({ repo: REPO });
  const seen: DownloadSnapshot[] = [];
  let finished = false;
  void job.done.then(() => (finished = true));
  while (!finished) {
    seen.push(job.snapshot());
    await new Promise((r) => setTimeout(r, 5));
  }
  const final = await job.done;
  const done = seen.map((s) => s.bytesDone);
  assert.ok(
    done.every((v, i) => i === 0 || v >= done[i - 1]!),
    "bytesDone never decreases",
  );
  assert.ok(new Set(done.filter((v) => v > 0 && v < ggufF32.length)).size >= 3, `intermediate progress seen: ${done.join(",")}`);
  assert.ok(
    seen.some((s) => s.status === "running" && s.bytesPerSec > 0 && s.etaSec !== null),
    "rate and eta while running",
  );
  assert.equal(final.bytesDone, final.bytesTotal);
  assert.equal(final.bytesTotal, ggufF32.length);
  assert.equal(final.etaSec, 0);

  const dir2 = await cacheDir();
  h.faults[REPO]!["model.gguf"] = { stallAfterBytes: 200_000 };
  const m2 = manager(dir2, h);
  const slow = m2.start({ repo: REPO });
  await until(() => slow.snapshot().bytesDone >= 200_000);
  slow.cancel();
  const cancelled = await slow.done;
  assert.equal(cancelled.status, "cancelled");
  assert.equal(cancelled.error, null);
  const incomplete = path.join(repoRoot(dir2), "blobs", `${sha256Hex(ggufF32)}.incomplete`);
  assert.equal((await stat(incomplete)).size, 200_000);
  assert.ok(!existsSync(path.join(dir2, ".locks", `models--${REPO.split("/").join("--")}.lock`)));

  delete h.faults[REPO]!["model.gguf"];
  const seenBefore = h.requests.length;
  const resumed = await m2.start({ repo: REPO }).done;
  assert.equal(resumed.status, "completed");
  assert.ok(h.requests.slice(seenBefore).some((r) => r.endsWith("range=bytes=200000-")));
});

test("a stalled connection fails after stallTimeoutMs instead of hanging", async () => {
  const h = await hub({
    repos: { [REPO]: { files: { "model.gguf": ggufQ4 } } },
    faults: { [REPO]: { "model.gguf": { stallAfterBytes: 50_000 } } },
  });
  const dir = await cacheDir();
  await assert.rejects(manager(dir, h, { stallTimeoutMs: 150 }).start({ repo: REPO }).done, (e: unknown) => {
    assert.ok(e instanceof DownloadError && e.code === "download_failed");
    assert.match(e.message, /no data for 150 ms/);
    return true;
  });
  assert.ok((await stat(path.join(repoRoot(dir), "blobs", `${sha256Hex(ggufQ4)}.incomplete`))).size <= 50_000);
});

test("cleanupIncomplete removes stale partial blobs and reports the bytes freed", async () => {
  const h = await hub({ repos: { [REPO]: { files: { "model.gguf": ggufQ4 } } } });
  const dir = await cacheDir();
  const m = manager(dir, h);
  const blobs = path.join(repoRoot(dir), "blobs");
  await mkdir(blobs, { recursive: true });
  const stale = path.join(blobs, `${"a".repeat(64)}.incomplete`);
  const fresh = path.join(blobs, `${"b".repeat(64)}.incomplete`);
  await writeFile(stale, Buffer.alloc(12_345));
  await writeFile(fresh, Buffer.alloc(10));
  const old = new Date(Date.now() - 3_600_000);
  await utimes(stale, old, old);

  const result = await m.cleanupIncomplete();
  assert.deepEqual(result.removed, [{ repo: REPO, path: stale, bytes: 12_345 }]);
  assert.equal(result.bytesFreed, 12_345);
  assert.deepEqual(
    result.skipped.map((s) => [s.path, s.reason]),
    [[fresh, "modified recently"]],
  );
  assert.ok(!existsSync(stale));
  assert.ok(existsSync(fresh));

  // A repo another live process is downloading is not touched.
  const lockFile = path.join(dir, ".locks", `models--${REPO.split("/").join("--")}.lock`);
  await writeFile(lockFile, JSON.stringify({ pid: process.ppid, hostname: os.hostname() }));
  const skipped = await m.cleanupIncomplete(REPO, { olderThanMs: 0 });
  assert.deepEqual(skipped.removed, []);
  assert.match(skipped.skipped[0]!.reason, /running in process/);
  await rm(lockFile);
  const all = await m.cleanupIncomplete(REPO, { olderThanMs: 0 });
  assert.equal(all.bytesFreed, 10);
  assert.ok(!(await lstat(blobs).then(() => readdir(blobs))).length);
});

test("paths from the hub or the caller never escape the repo folder", async () => {
  const h = await hub({ repos: { [REPO]: { files: { "../../escape.gguf": ggufQ4, "ok.json": CONFIG } } } });
  const dir = await cacheDir();
  const m = manager(dir, h);
  await assert.rejects(m.start({ repo: REPO }).done, (e: unknown) => {
    assert.ok(e instanceof DownloadError && e.code === "download_failed");
    assert.match(e.message, /unsafe path/);
    return true;
  });
  assert.ok(!existsSync(path.join(dir, "escape.gguf")));
  assert.ok(!existsSync(path.join(repoRoot(dir), "escape.gguf")));
  assert.throws(() => m.start({ repo: REPO, files: ["../x"] }), TypeError);
  assert.throws(() => m.start({ repo: REPO, files: ["/etc/passwd"] }), TypeError);
  assert.throws(() => m.start({ repo: "../evil" }), TypeError);
  assert.throws(() => m.start({ repo: REPO, revision: "../../x" }), TypeError);
});
