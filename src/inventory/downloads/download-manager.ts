/**
 * Downloads of Hugging Face model repos into the shared hub cache (layout in cache-layout.ts), as jobs the
 * server can list, watch and cancel.
 *
 * One job per repo at a time: a second identical request joins the running job, a different one queues behind
 * it, and another process holding the repo's lock file makes the job fail with `download_in_progress`.
 * Every file streams into `blobs/<hash>.incomplete` while its sha256 is computed; an interrupted file resumes
 * with a Range request (the bytes already on disk are hashed first), and only a verified file is renamed into
 * `blobs/` and linked from `snapshots/<commit>/`.
 */
import { createHash, randomUUID, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, open, readdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import {
  RepoCachePaths,
  SHA256,
  acquireRepoLock,
  assertRepoId,
  assertRevision,
  globToRegExp,
  isSafeRelativePath,
  linkSnapshotFile,
  liveLockHolder,
  sizeOf,
  statfsFreeBytes,
  writeRef,
  type RepoLock,
} from "./cache-layout.js";
import { DownloadError, type DownloadErrorCode } from "./errors.js";
import { HubClient, type HubFile } from "./hub-client.js";

export { DownloadError, type DownloadErrorCode } from "./errors.js";

export type DownloadStatus = "queued" | "running" | "completed" | "failed" | "cancelled";
export type DownloadFileStatus = "pending" | "downloading" | "completed" | "failed" | "cancelled";

export interface DownloadFileRequest {
  path: string;
  /** Expected content sha256 (hex); checked in addition to the hub's LFS oid, and for non-LFS files too. */
  sha256?: string;
}

export interface DownloadRequest {
  /** "org/name". */
  repo: string;
  /** Branch, tag or commit; default "main". */
  revision?: string;
  /** Exactly these files (each must exist). */
  files?: ReadonlyArray<string | DownloadFileRequest>;
  /** fnmatch patterns as huggingface_hub's allow_patterns, e.g. `*Q4_K_M*.gguf` (`*` crosses `/`). */
  include?: readonly string[];
  /** Patterns removed from the pattern/all-files selection (explicit `files` always stay). */
  exclude?: readonly string[];
}

export interface DownloadFileSnapshot {
  path: string;
  size: number;
  downloaded: number;
  status: DownloadFileStatus;
}

export interface DownloadSnapshot {
  id: string;
  repo: string;
  revision: string;
  /** The commit the revision resolved to; null until the hub answered. */
  commit: string | null;
  status: DownloadStatus;
  files: DownloadFileSnapshot[];
  bytesTotal: number;
  bytesDone: number;
  bytesPerSec: number;
  etaSec: number | null;
  error: { code: DownloadErrorCode; message: string } | null;
  /** snapshots/<commit> of the repo; null until the commit is known. */
  localPath: string | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface DownloadManagerOptions {
  /** The hub cache root, e.g. ~/.cache/huggingface/hub (what HF_HUB_CACHE names). */
  cacheDir: string;
  /** Default https://huggingface.co. */
  hubUrl?: string;
  token?: string | null;
  /** Space to leave free on the cache volume; default 1 GiB. */
  minFreeBytes?: number;
  /** Free bytes on the volume holding `dir`; default statfs. Injectable so tests can simulate a small disk. */
  freeBytes?: (dir: string) => Promise<number>;
  /** Files downloaded at once within one job; default 2. */
  concurrency?: number;
  /** Automatic resumes of a file after a network failure; default 3. */
  retries?: number;
  /** Wait before retry n is n × this; default 1000 ms. */
  retryDelayMs?: number;
  /** A connection that delivers no bytes for this long is abandoned (and resumed if retries are left); default 60 s. */
  stallTimeoutMs?: number;
  /** Finished jobs kept for get()/list(); default 100. */
  keepFinishedJobs?: number;
  fetch?: typeof fetch;
}

export interface CleanupResult {
  removed: { repo: string; path: string; bytes: number }[];
  bytesFreed: number;
  skipped: { repo: string; path: string | null; reason: string }[];
}

interface NormalizedRequest {
  repo: string;
  revision: string;
  files: { path: string; sha256: string | null }[] | null;
  include: readonly string[] | null;
  exclude: readonly string[];
}

interface FileState {
  path: string;
  size: number;
  status: DownloadFileStatus;
  blob: BlobState;
}

interface BlobState {
  id: string;
  size: number;
  /** Every hash the content must have: explicit ones from the request and the hub's LFS oid. */
  expectedSha256: string[];
  downloaded: number;
  complete: boolean;
  files: FileState[];
}

type JobOptions = Required<Omit<DownloadManagerOptions, "hubUrl" | "token" | "fetch" | "cacheDir">>;

const RATE_WINDOW_MS = 5_000;
const RATE_SAMPLE_MS = 200;

function normalizeRequest(request: DownloadRequest): NormalizedRequest {
  assertRepoId(request.repo);
  const revision = request.revision ?? "main";
  assertRevision(revision);
  const files =
    request.files?.map((f) => {
      const entry = typeof f === "string" ? { path: f } : f;
      if (!isSafeRelativePath(entry.path)) throw new TypeError(`invalid file path ${JSON.stringify(entry.path)}`);
      const sha256 = entry.sha256?.toLowerCase() ?? null;
      if (sha256 !== null && !SHA256.test(sha256)) throw new TypeError(`invalid sha256 for ${entry.path}`);
      return { path: entry.path, sha256 };
    }) ?? null;
  for (const pattern of [...(request.include ?? []), ...(request.exclude ?? [])])
    if (typeof pattern !== "string" || pattern.length === 0) throw new TypeError("file patterns must be non-empty strings");
  return {
    repo: request.repo,
    revision,
    files: files && files.length > 0 ? files : null,
    include: request.include && request.include.length > 0 ? [...request.include] : null,
    exclude: [...(request.exclude ?? [])],
  };
}

function requestKey(r: NormalizedRequest): string {
  const files = r.files?.map((f) => `${f.path}#${f.sha256 ?? ""}`).sort() ?? null;
  return JSON.stringify([r.revision, files, r.include && [...r.include].sort(), [...r.exclude].sort()]);
}

/** Which listed files a request means; an explicit file the commit lacks, or an empty selection, is not found. */
function selectFiles(listing: readonly HubFile[], r: NormalizedRequest, commit: string): { file: HubFile; sha256: string | null }[] {
  const byPath = new Map(listing.map((f) => [f.path, f]));
  const chosen = new Map<string, { file: HubFile; sha256: string | null }>();
  for (const wanted of r.files ?? []) {
    const file = byPath.get(wanted.path);
    if (!file)
      throw new DownloadError("download_not_found", `${r.repo}@${r.revision} has no file ${wanted.path}`, {
        details: { repo: r.repo, revision: r.revision, commit, path: wanted.path },
      });
    chosen.set(file.path, { file, sha256: wanted.sha256 });
  }
  const include = r.include?.map(globToRegExp) ?? null;
  const exclude = r.exclude.map(globToRegExp);
  if (include !== null || r.files === null)
    for (const file of listing) {
      if (chosen.has(file.path)) continue;
      if (include !== null && !include.some((re) => re.test(file.path))) continue;
      if (exclude.some((re) => re.test(file.path))) continue;
      chosen.set(file.path, { file, sha256: null });
    }
  if (chosen.size === 0)
    throw new DownloadError("download_not_found", `no file of ${r.repo}@${r.revision} matches ${JSON.stringify(r.include ?? [])}`, {
      details: { repo: r.repo, revision: r.revision, commit, include: r.include, exclude: r.exclude },
    });
  return [...chosen.values()];
}

function asDownloadError(error: unknown): DownloadError {
  if (error instanceof DownloadError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DownloadError("download_failed", message, { cause: error });
}

async function hashPrefix(file: string, bytes: number, hash: Hash, signal: AbortSignal): Promise<void> {
  if (bytes === 0) return;
  for await (const chunk of createReadStream(file, { start: 0, end: bytes - 1, signal })) hash.update(chunk as Buffer);
}

/** One download; created by `DownloadManager.start`, which also starts it. */
export class DownloadJob {
  readonly id = `dl_${randomUUID().replace(/-/g, "").slice(0, 20)}`;
  readonly repo: string;
  readonly revision: string;
  /** Resolves with the final snapshot when the job completes or is cancelled; rejects with a DownloadError when it fails. */
  readonly done: Promise<DownloadSnapshot>;
  /** Settles (never rejects) when the job is over, whatever the outcome. */
  readonly settled: Promise<void>;
  /**
   * Settles (never rejects) once the listing and the free-space check passed and bytes start to flow, or when
   * the job ended before that: lets the API answer a refused download (404, 507) synchronously and accept the
   * rest (202) without waiting for gigabytes.
   */
  readonly preflight: Promise<void>;
  private resolvePreflight!: () => void;
  /** Identifies identical requests, which join this job instead of queueing another. */
  readonly key: string;

  private status: DownloadStatus = "queued";
  private commit: string | null = null;
  private files: FileState[] = [];
  private blobs: BlobState[] = [];
  private error: DownloadError | null = null;
  private readonly createdAt = new Date();
  private finishedAt: Date | null = null;
  private readonly controller = new AbortController();
  private cancelRequested = false;
  private resolveDone!: (s: DownloadSnapshot) => void;
  private rejectDone!: (e: DownloadError) => void;
  // Transfer rate: bytes fetched by this job (not those found on disk) sampled over a sliding window.
  private fetchedBytes = 0;
  private samples: [number, number][] = [];
  private transferStartedAt: number | null = null;

  constructor(
    private readonly request: NormalizedRequest,
    private readonly paths: RepoCachePaths,
    private readonly hub: HubClient,
    private readonly options: JobOptions,
    after: Promise<void> | null,
    beforeLock: () => Promise<void>,
  ) {
    this.repo = request.repo;
    this.revision = request.revision;
    this.key = requestKey(request);
    this.done = new Promise<DownloadSnapshot>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // A failed job nobody awaits must not become an unhandled rejection that takes the server down.
    this.done.catch(() => undefined);
    this.preflight = new Promise<void>((resolve) => (this.resolvePreflight = resolve));
    void this.done.then(
      () => this.resolvePreflight(),
      () => this.resolvePreflight(),
    );
    this.settled = this.done.then(
      () => undefined,
      () => undefined,
    );
    void this.run(after, beforeLock);
  }

  /** Stops the job; partial files stay as `.incomplete` for a later resume. No effect once finished. */
  cancel(): void {
    if (this.finishedAt !== null || this.cancelRequested) return;
    this.cancelRequested = true;
    this.controller.abort(new Error("download cancelled"));
  }

  get finished(): boolean {
    return this.finishedAt !== null;
  }

  snapshot(): DownloadSnapshot {
    const now = Date.now();
    const bytesTotal = this.blobs.reduce((sum, b) => sum + b.size, 0);
    const bytesDone = this.blobs.reduce((sum, b) => sum + b.downloaded, 0);
    const bytesPerSec = Math.round(this.rate(now));
    const remaining = bytesTotal - bytesDone;
    return {
      id: this.id,
      repo: this.repo,
      revision: this.revision,
      commit: this.commit,
      status: this.status,
      files: this.files.map((f) => ({ path: f.path, size: f.size, downloaded: f.blob.downloaded, status: f.status })),
      bytesTotal,
      bytesDone,
      bytesPerSec,
      etaSec: this.status === "completed" ? 0 : this.status === "running" && bytesPerSec > 0 ? Math.ceil(remaining / bytesPerSec) : null,
      error: this.error ? { code: this.error.code, message: this.error.message } : null,
      localPath: this.commit ? this.paths.snapshotDir(this.commit) : null,
      createdAt: this.createdAt.toISOString(),
      finishedAt: this.finishedAt?.toISOString() ?? null,
    };
  }

  private rate(now: number): number {
    if (this.transferStartedAt === null) return 0;
    if (this.finishedAt !== null) {
      const seconds = (this.finishedAt.getTime() - this.transferStartedAt) / 1000;
      return seconds > 0 ? this.fetchedBytes / seconds : 0;
    }
    let base: [number, number] = [this.transferStartedAt, 0];
    for (const sample of this.samples) {
      if (sample[0] <= now - RATE_WINDOW_MS) base = sample;
      else break;
    }
    const seconds = (now - base[0]) / 1000;
    return seconds > 0 ? (this.fetchedBytes - base[1]) / seconds : 0;
  }

  private noteBytes(blob: BlobState, n: number): void {
    blob.downloaded += n;
    this.fetchedBytes += n;
    const now = Date.now();
    const last = this.samples.at(-1);
    if (last === undefined || now - last[0] >= RATE_SAMPLE_MS) {
      this.samples.push([now, this.fetchedBytes]);
      // Keep one sample older than the window as its base.
      while (this.samples.length > 1 && this.samples[1]![0] <= now - RATE_WINDOW_MS) this.samples.shift();
    }
  }

  /** The job's whole life; `after` is the previous job for the same repo in this process. */
  private async run(after: Promise<void> | null, beforeLock: () => Promise<void>): Promise<void> {
    const signal = this.controller.signal;
    let lock: RepoLock | null = null;
    let failure: DownloadError | null = null;
    try {
      if (after) {
        const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        await Promise.race([after, aborted]);
      }
      signal.throwIfAborted();
      await beforeLock();
      this.status = "running";
      lock = await acquireRepoLock(this.paths.lockFile, this.repo, this.id);
      this.commit = await this.hub.resolveCommit(this.repo, this.revision, signal);
      const listing = await this.hub.listFiles(this.repo, this.commit, signal);
      this.plan(selectFiles(listing, this.request, this.commit));
      await this.measureExisting();
      await this.checkDisk();
      this.transferStartedAt = Date.now();
      this.resolvePreflight();
      await this.transferAll(signal);
      if (this.revision !== this.commit) await writeRef(this.paths.ref(this.revision), this.commit);
    } catch (error) {
      failure = asDownloadError(this.error ?? error);
    }
    // Released before `done` settles, so whoever awaits it can start the next download of the repo at once.
    await lock?.release().catch(() => undefined);
    if (this.cancelRequested) this.finish("cancelled", null);
    else if (failure) this.finish("failed", failure);
    else this.finish("completed", null);
  }

  private finish(status: "completed" | "failed" | "cancelled", error: DownloadError | null): void {
    this.status = status;
    this.error = error;
    this.finishedAt = new Date();
    for (const file of this.files) if (file.status === "downloading") file.status = status === "failed" ? "failed" : "cancelled";
    if (error) this.rejectDone(error);
    else this.resolveDone(this.snapshot());
  }

  private plan(selection: { file: HubFile; sha256: string | null }[]): void {
    const blobs = new Map<string, BlobState>();
    for (const { file, sha256 } of selection) {
      // Two paths with the same content share one blob: it is fetched once and linked twice.
      let blob = blobs.get(file.blobId);
      if (!blob) {
        blob = { id: file.blobId, size: file.size, expectedSha256: [], downloaded: 0, complete: false, files: [] };
        blobs.set(file.blobId, blob);
      }
      for (const expected of [file.sha256, sha256]) if (expected && !blob.expectedSha256.includes(expected)) blob.expectedSha256.push(expected);
      const state: FileState = { path: file.path, size: file.size, status: "pending", blob };
      this.paths.snapshotFile(this.commit!, file.path); // throws for a path that would escape the snapshot
      blob.files.push(state);
      this.files.push(state);
    }
    this.blobs = [...blobs.values()];
  }

  /** What is already here: linked files, finished blobs, and partial blobs (counted as done, resumed later). */
  private async measureExisting(): Promise<void> {
    for (const blob of this.blobs) {
      let linked = 0;
      for (const file of blob.files)
        if ((await sizeOf(this.paths.snapshotFile(this.commit!, file.path))) === file.size) {
          file.status = "completed";
          linked++;
        }
      if (linked === blob.files.length || (await sizeOf(this.paths.blob(blob.id))) === blob.size) {
        blob.complete = true;
        blob.downloaded = blob.size;
        continue;
      }
      const partial = (await sizeOf(this.paths.incomplete(blob.id))) ?? 0;
      blob.downloaded = partial <= blob.size ? partial : 0;
    }
  }

  private async checkDisk(): Promise<void> {
    const needed = this.blobs.reduce((sum, b) => sum + (b.size - b.downloaded), 0);
    if (needed === 0) return;
    const free = await this.options.freeBytes(this.paths.cacheDir);
    const usable = free - this.options.minFreeBytes;
    if (needed > usable)
      throw new DownloadError(
        "insufficient_disk",
        `${this.repo} needs ${needed} more bytes but ${this.paths.cacheDir} has ${free} bytes free` +
          (this.options.minFreeBytes > 0 ? ` and ${this.options.minFreeBytes} must stay free` : ""),
        {
          details: {
            repo: this.repo,
            neededBytes: needed,
            freeBytes: free,
            minFreeBytes: this.options.minFreeBytes,
            cacheDir: this.paths.cacheDir,
          },
        },
      );
  }

  /** Up to `concurrency` blobs at a time; the first failure stops the rest (their partials stay resumable). */
  private async transferAll(signal: AbortSignal): Promise<void> {
    const queue = [...this.blobs];
    const worker = async () => {
      for (let blob = queue.shift(); blob; blob = queue.shift()) {
        try {
          await this.transferWithRetries(blob, signal);
        } catch (error) {
          if (!this.cancelRequested && !this.error) {
            this.error = asDownloadError(error);
            for (const file of blob.files) file.status = "failed";
            this.controller.abort(this.error);
          }
          throw error;
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.max(1, this.options.concurrency) }, worker));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) throw this.error ?? failure.reason;
  }

  private async transferWithRetries(blob: BlobState, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.transfer(blob, signal);
        return;
      } catch (error) {
        const e = asDownloadError(error);
        if (signal.aborted || e.code !== "download_failed" || attempt >= this.options.retries) throw error;
        await sleep(this.options.retryDelayMs * (attempt + 1), undefined, { signal });
      }
    }
  }

  /**
   * Appends the body to the partial file. Bytes are hashed and counted only once written, so after a cut or a
   * cancel the file on disk and `bytesDone` agree (bytes still queued in the HTTP stream when it broke are
   * dropped with it and simply fetched again).
   */
  private async stream(
    body: WebReadableStream<Uint8Array>,
    incomplete: string,
    offset: number,
    blob: BlobState,
    hash: Hash,
    signal: AbortSignal,
    stall: AbortController,
    jobSignal: AbortSignal,
  ): Promise<void> {
    const file = await open(incomplete, offset === 0 ? "w" : "a");
    const timeoutMs = this.options.stallTimeoutMs;
    const timer = setTimeout(() => stall.abort(), timeoutMs);
    let inFlight: Promise<unknown> = Promise.resolve();
    const write = (buffers: Buffer[], callback: (error?: Error | null) => void) => {
      timer.refresh();
      const bytes = buffers.reduce((sum, b) => sum + b.length, 0);
      inFlight = file.writev(buffers).then(({ bytesWritten }) => {
        if (bytesWritten !== bytes) throw new Error(`short write (${bytesWritten} of ${bytes} bytes)`);
        for (const b of buffers) hash.update(b);
        this.noteBytes(blob, bytes);
        callback();
      });
      inFlight.catch((error: Error) => callback(error));
    };
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, callback) => write([chunk], callback),
      writev: (chunks, callback) =>
        write(
          chunks.map((c) => c.chunk as Buffer),
          callback,
        ),
    });
    try {
      await pipeline(Readable.fromWeb(body), sink, { signal });
    } catch (error) {
      await inFlight.catch(() => undefined);
      if (jobSignal.aborted) throw jobSignal.reason;
      const why = stall.signal.aborted ? `no data for ${timeoutMs} ms` : (error as Error).message;
      const what = `${this.repo}/${blob.files[0]!.path}`;
      throw new DownloadError("download_failed", `${what}: transfer interrupted (${why}); the partial file is kept for resume`, {
        cause: error,
        details: { path: blob.files[0]!.path, bytesOnDisk: blob.downloaded },
      });
    } finally {
      clearTimeout(timer);
      // A write still running when the pipeline was torn down finishes before the file is closed.
      await inFlight.catch(() => undefined);
      await file.close();
    }
  }

  private async link(blob: BlobState): Promise<void> {
    for (const file of blob.files) {
      await linkSnapshotFile(this.paths.snapshotFile(this.commit!, file.path), this.paths.blob(blob.id));
      file.status = "completed";
    }
  }

  /** One blob: resume or start its `.incomplete`, stream + hash, verify, move into blobs/, link. */
  private async transfer(blob: BlobState, jobSignal: AbortSignal): Promise<void> {
    const blobPath = this.paths.blob(blob.id);
    const incomplete = this.paths.incomplete(blob.id);
    if (blob.complete || (await sizeOf(blobPath)) === blob.size) {
      blob.complete = true;
      blob.downloaded = blob.size;
      return this.link(blob);
    }
    await mkdir(path.dirname(blobPath), { recursive: true });
    for (const file of blob.files) file.status = "downloading";

    let offset = (await sizeOf(incomplete)) ?? 0;
    if (offset > blob.size) {
      await rm(incomplete, { force: true });
      offset = 0;
    }
    let hash = createHash("sha256");
    // A resumed file is only as good as its first bytes: they are hashed again, not trusted.
    await hashPrefix(incomplete, offset, hash, jobSignal);
    blob.downloaded = offset;

    if (offset < blob.size) {
      const stall = new AbortController();
      const signal = AbortSignal.any([jobSignal, stall.signal]);
      const source = blob.files[0]!.path;
      let res = await this.hub.openFile(this.repo, this.commit!, source, offset, signal);
      let contentRange = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
      // 416, a 200 to a Range request, or a 206 that starts elsewhere: the server will not continue our partial
      // file, so it is discarded and fetched from the start.
      if (offset > 0 && (res.status !== 206 || Number(contentRange?.[1]) !== offset)) {
        if (res.status !== 200) {
          await res.body?.cancel().catch(() => undefined);
          res = await this.hub.openFile(this.repo, this.commit!, source, 0, signal);
          contentRange = null;
        }
        offset = 0;
        hash = createHash("sha256");
        blob.downloaded = 0;
      }
      const announced = res.status === 206 ? Number(contentRange?.[2]) : Number(res.headers.get("content-length") ?? blob.size);
      if (res.status === 416 || !res.body || announced !== blob.size) {
        await res.body?.cancel().catch(() => undefined);
        const message = `${this.repo}/${source}: the server answered HTTP ${res.status} for ${announced} bytes, the hub lists ${blob.size}`;
        throw new DownloadError("download_failed", message, {
          details: { path: source, status: res.status, announced, size: blob.size },
        });
      }
      await this.stream(res.body as WebReadableStream<Uint8Array>, incomplete, offset, blob, hash, signal, stall, jobSignal);
    } else if (blob.size === 0) {
      await writeFile(incomplete, "");
    }

    const actual = (await sizeOf(incomplete)) ?? 0;
    if (actual !== blob.size) {
      // Short: resumable. Long: the server sent something else, so the partial is worthless.
      if (actual > blob.size) await rm(incomplete, { force: true });
      throw new DownloadError("download_failed", `${this.repo}/${blob.files[0]!.path}: got ${actual} of ${blob.size} bytes`, {
        details: { path: blob.files[0]!.path, bytesOnDisk: actual, size: blob.size },
      });
    }
    const digest = hash.digest("hex");
    const wrong = blob.expectedSha256.find((expected) => expected !== digest);
    if (wrong !== undefined) {
      await rm(incomplete, { force: true });
      blob.downloaded = 0;
      for (const file of blob.files) file.status = "failed";
      throw new DownloadError("download_checksum_mismatch", `${this.repo}/${blob.files[0]!.path}: sha256 ${digest}, expected ${wrong}`, {
        details: { repo: this.repo, path: blob.files[0]!.path, expected: wrong, actual: digest },
      });
    }
    await rename(incomplete, blobPath);
    blob.complete = true;
    await this.link(blob);
  }
}

export class DownloadManager {
  private readonly jobs = new Map<string, DownloadJob>();
  private readonly hub: HubClient;
  private readonly jobOptions: JobOptions;
  /** Cleanups in flight per repo: a job of this process waits for them instead of failing on their lock. */
  private readonly cleanups = new Map<string, Promise<unknown>>();
  readonly cacheDir: string;

  constructor(options: DownloadManagerOptions) {
    this.cacheDir = path.resolve(options.cacheDir);
    this.hub = new HubClient({ hubUrl: options.hubUrl, token: options.token ?? null, ...(options.fetch ? { fetch: options.fetch } : {}) });
    this.jobOptions = {
      minFreeBytes: options.minFreeBytes ?? 1024 ** 3,
      freeBytes: options.freeBytes ?? statfsFreeBytes,
      concurrency: options.concurrency ?? 2,
      retries: options.retries ?? 3,
      retryDelayMs: options.retryDelayMs ?? 1000,
      stallTimeoutMs: options.stallTimeoutMs ?? 60_000,
      keepFinishedJobs: options.keepFinishedJobs ?? 100,
    };
  }

  /**
   * Starts (or joins) a download. Throws a TypeError at once for a malformed repo id, revision, path or hash;
   * everything else (hub errors, disk, locks, checksums) is reported by the job.
   */
  start(request: DownloadRequest): DownloadJob {
    const normalized = normalizeRequest(request);
    const active = [...this.jobs.values()].filter((j) => j.repo === normalized.repo && !j.finished);
    const key = requestKey(normalized);
    const same = active.find((j) => j.key === key);
    if (same) return same;
    const previous = active.at(-1)?.settled ?? null;
    const paths = new RepoCachePaths(this.cacheDir, normalized.repo);
    const job = new DownloadJob(normalized, paths, this.hub, this.jobOptions, previous, async () => {
      await this.cleanups.get(normalized.repo);
    });
    this.jobs.set(job.id, job);
    void job.settled.then(() => this.prune());
    return job;
  }

  get(id: string): DownloadJob | undefined {
    return this.jobs.get(id);
  }

  /** Jobs in the order they were started (running, queued and recently finished). */
  list(): DownloadJob[] {
    return [...this.jobs.values()];
  }

  /** Cancels every job and waits until they have stopped. */
  async close(): Promise<void> {
    const jobs = [...this.jobs.values()];
    for (const job of jobs) job.cancel();
    await Promise.all(jobs.map((j) => j.settled));
  }

  /**
   * Deletes `blobs/*.incomplete` that nothing is writing: repos with a job in this manager or a live lock from
   * another process are skipped, and so are files modified within `olderThanMs` (default 60 s), which may belong
   * to another tool (huggingface_hub's own locks cannot be checked from here).
   */
  async cleanupIncomplete(repo?: string, options: { olderThanMs?: number } = {}): Promise<CleanupResult> {
    const olderThanMs = options.olderThanMs ?? 60_000;
    const result: CleanupResult = { removed: [], bytesFreed: 0, skipped: [] };
    let repos: string[];
    if (repo !== undefined) {
      assertRepoId(repo);
      repos = [repo];
    } else {
      const entries = await readdir(this.cacheDir, { withFileTypes: true }).catch(() => []);
      repos = entries
        .filter((e) => e.isDirectory() && e.name.startsWith("models--"))
        .map((e) => e.name.slice("models--".length).split("--").join("/"));
    }
    for (const id of repos) {
      const work = this.cleanupRepo(id, olderThanMs, result);
      this.cleanups.set(id, work);
      try {
        await work;
      } finally {
        if (this.cleanups.get(id) === work) this.cleanups.delete(id);
      }
    }
    return result;
  }

  private async cleanupRepo(repo: string, olderThanMs: number, result: CleanupResult): Promise<void> {
    const paths = new RepoCachePaths(this.cacheDir, repo);
    const blobsDir = path.join(paths.root, "blobs");
    const names = (await readdir(blobsDir).catch(() => [] as string[])).filter((n) => n.endsWith(".incomplete"));
    if (names.length === 0) return;
    if ([...this.jobs.values()].some((j) => j.repo === repo && !j.finished)) {
      result.skipped.push({ repo, path: null, reason: "a download of this repo is running" });
      return;
    }
    // Held while deleting, so another process cannot start resuming a file we are removing.
    let lock: RepoLock;
    try {
      lock = await acquireRepoLock(paths.lockFile, repo, `cleanup-${process.pid}`);
    } catch (error) {
      if (!(error instanceof DownloadError) || error.code !== "download_in_progress") throw error;
      const holder = await liveLockHolder(paths.lockFile);
      result.skipped.push({ repo, path: null, reason: `a download of this repo is running in process ${holder?.pid ?? "?"}` });
      return;
    }
    try {
      for (const name of names) {
        const file = path.join(blobsDir, name);
        const s = await lstat(file).catch(() => null);
        if (!s?.isFile()) continue;
        if (Date.now() - s.mtimeMs < olderThanMs) {
          result.skipped.push({ repo, path: file, reason: "modified recently" });
          continue;
        }
        await unlink(file);
        result.removed.push({ repo, path: file, bytes: s.size });
        result.bytesFreed += s.size;
      }
    } finally {
      await lock.release();
    }
  }

  private prune(): void {
    const finished = [...this.jobs.values()].filter((j) => j.finished);
    for (const job of finished.slice(0, Math.max(0, finished.length - this.jobOptions.keepFinishedJobs))) this.jobs.delete(job.id);
  }
}
