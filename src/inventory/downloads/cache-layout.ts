/**
 * The Hugging Face hub cache layout, shared with huggingface_hub, llama.cpp and LM Studio:
 *
 *   <cacheDir>/models--<org>--<name>/blobs/<sha256 or git oid>          content, named by hash
 *   <cacheDir>/models--<org>--<name>/blobs/<hash>.incomplete            a partial download
 *   <cacheDir>/models--<org>--<name>/snapshots/<commit>/<path>          relative symlink to ../../blobs/<hash>
 *   <cacheDir>/models--<org>--<name>/refs/<revision>                    the commit a branch or tag pointed to
 *
 * plus our own cross-process lock, `<cacheDir>/.locks/models--<org>--<name>.lock` (huggingface_hub keeps per-blob
 * locks in a *directory* of the same name without `.lock`, so the two never collide).
 */
import { lstat, mkdir, readFile, readlink, rename, statfs, symlink, unlink, writeFile, link, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DownloadError } from "./errors.js";

const REPO_ID = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const COMMIT_SHA = /^[0-9a-f]{40}$/;
export const SHA256 = /^[0-9a-f]{64}$/;

/** Throws a TypeError for ids that cannot be a hub model repo (and could not be a safe folder name). */
export function assertRepoId(repo: string): void {
  if (!REPO_ID.test(repo) || repo.includes("..") || repo.includes("--"))
    throw new TypeError(`invalid Hugging Face repo id ${JSON.stringify(repo)} (expected "org/name")`);
}

/** Branch, tag or commit. Slashes are allowed (`refs/pr/1`) because refs/<revision> nests like huggingface_hub. */
export function assertRevision(revision: string): void {
  if (revision.length === 0 || revision.length > 255 || /[\0\\]/.test(revision) || !isSafeRelativePath(revision))
    throw new TypeError(`invalid revision ${JSON.stringify(revision)}`);
}

export function repoFolderName(repo: string): string {
  return `models--${repo.split("/").join("--")}`;
}

/**
 * A repo path is only ever joined below a snapshot folder, so anything that could climb out (`..`, absolute,
 * drive letters, backslashes that Windows treats as separators, empty segments) is refused.
 */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.includes("\0") || p.includes("\\") || p.startsWith("/") || /^[A-Za-z]:/.test(p)) return false;
  return p.split("/").every((segment) => segment !== "" && segment !== "." && segment !== "..");
}

export class RepoCachePaths {
  readonly root: string;
  readonly lockFile: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    this.root = path.join(cacheDir, repoFolderName(repo));
    this.lockFile = path.join(cacheDir, ".locks", `${repoFolderName(repo)}.lock`);
  }

  blob(hash: string): string {
    // The hash names a file: only hex ids from a validated listing reach here, but check anyway.
    if (!COMMIT_SHA.test(hash) && !SHA256.test(hash)) throw new TypeError(`invalid blob id ${JSON.stringify(hash)}`);
    return path.join(this.root, "blobs", hash);
  }

  incomplete(hash: string): string {
    return `${this.blob(hash)}.incomplete`;
  }

  snapshotDir(commit: string): string {
    if (!COMMIT_SHA.test(commit)) throw new TypeError(`invalid commit ${JSON.stringify(commit)}`);
    return path.join(this.root, "snapshots", commit);
  }

  snapshotFile(commit: string, repoPath: string): string {
    const dir = this.snapshotDir(commit);
    const full = path.resolve(dir, repoPath);
    if (!isSafeRelativePath(repoPath) || !full.startsWith(dir + path.sep))
      throw new DownloadError("download_failed", `the hub listed an unsafe file path ${JSON.stringify(repoPath)}`, {
        details: { path: repoPath },
      });
    return full;
  }

  ref(revision: string): string {
    return path.join(this.root, "refs", ...revision.split("/"));
  }
}

/** Points snapshots/<commit>/<path> at the blob with a relative link, so the cache folder can be moved. */
export async function linkSnapshotFile(linkPath: string, blobPath: string): Promise<void> {
  await mkdir(path.dirname(linkPath), { recursive: true });
  const target = path.relative(path.dirname(linkPath), blobPath);
  try {
    if ((await readlink(linkPath)) === target) return;
  } catch {
    // missing, or a regular file: replaced below
  }
  // Link under a temporary name and rename over the old entry, so readers never see the path missing.
  const tmp = `${linkPath}.${process.pid}.${Date.now()}.tmp`;
  await symlink(target, tmp);
  await rename(tmp, linkPath);
}

/** Writes refs/<revision> atomically; huggingface_hub writes the bare commit hash, no newline. */
export async function writeRef(refPath: string, commit: string): Promise<void> {
  await mkdir(path.dirname(refPath), { recursive: true });
  const tmp = `${refPath}.${process.pid}.tmp`;
  await writeFile(tmp, commit);
  await rename(tmp, refPath);
}

export async function sizeOf(p: string): Promise<number | null> {
  try {
    const s = await stat(p);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

/** Bytes an unprivileged process may still write on the volume holding `dir`. */
export async function statfsFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * huggingface_hub's `allow_patterns` semantics (fnmatch): `*` also crosses `/`, `?` is one character, `[...]`
 * a class (`[!...]` negated), a trailing `/` means "everything below". Case-sensitive.
 */
export function globToRegExp(pattern: string): RegExp {
  const p = pattern.endsWith("/") ? `${pattern}*` : pattern;
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = p.indexOf("]", i + 2);
      if (close === -1) {
        re += "\\[";
        continue;
      }
      let body = p.slice(i + 1, close);
      const negate = body.startsWith("!");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

interface LockRecord {
  pid: number;
  hostname: string;
  jobId: string;
  startedAt: string;
}

/** How long an unreadable lock file (a writer that died between create and write) counts as someone else's. */
const UNREADABLE_LOCK_GRACE_MS = 30_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readLock(file: string): Promise<{ record: LockRecord | null; raw: string; mtimeMs: number } | null> {
  try {
    const [raw, s] = await Promise.all([readFile(file, "utf8"), lstat(file)]);
    let record: LockRecord | null = null;
    try {
      const parsed = JSON.parse(raw) as Partial<LockRecord>;
      if (typeof parsed.pid === "number")
        record = {
          pid: parsed.pid,
          hostname: parsed.hostname ?? os.hostname(),
          jobId: parsed.jobId ?? "",
          startedAt: parsed.startedAt ?? "",
        };
    } catch {
      record = null;
    }
    return { record, raw, mtimeMs: s.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

function isStale(lock: { record: LockRecord | null; mtimeMs: number }): boolean {
  if (!lock.record) return Date.now() - lock.mtimeMs > UNREADABLE_LOCK_GRACE_MS;
  // A lock from another host (a shared network cache) cannot be checked, so it is never taken over.
  if (lock.record.hostname !== os.hostname()) return false;
  return !pidAlive(lock.record.pid);
}

export interface RepoLock {
  release(): Promise<void>;
}

/**
 * One download per repo across processes: the lock file is created with O_EXCL (`wx`) and holds pid, host and
 * job. A lock whose process is gone is taken over; a live one fails with `download_in_progress`.
 */
export async function acquireRepoLock(lockFile: string, repo: string, jobId: string): Promise<RepoLock> {
  await mkdir(path.dirname(lockFile), { recursive: true });
  const mine = JSON.stringify({ pid: process.pid, hostname: os.hostname(), jobId, startedAt: new Date().toISOString() });
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await writeFile(lockFile, mine, { flag: "wx" });
      return {
        release: async () => {
          const current = await readLock(lockFile).catch(() => null);
          if (current?.raw === mine) await unlink(lockFile).catch(() => undefined);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const existing = await readLock(lockFile);
    if (!existing) continue; // released meanwhile
    if (!isStale(existing))
      throw new DownloadError("download_in_progress", `${repo} is already being downloaded by process ${existing.record?.pid ?? "?"}`, {
        details: { repo, lockFile, holder: existing.record },
      });
    // Take over by renaming the stale lock aside: rename is atomic, so of two processes doing this at once only
    // one moves the file. If what was moved is not the stale lock we judged (someone took over in between),
    // it goes back (link fails rather than overwrite a newer lock) and we report the download as in progress.
    const aside = `${lockFile}.stale-${process.pid}-${Date.now()}`;
    try {
      await rename(lockFile, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    const moved = await readFile(aside, "utf8").catch(() => null);
    if (moved !== existing.raw) {
      await link(aside, lockFile).catch(() => undefined);
      await unlink(aside).catch(() => undefined);
      throw new DownloadError("download_in_progress", `${repo} is already being downloaded by another process`, {
        details: { repo, lockFile },
      });
    }
    await unlink(aside).catch(() => undefined);
  }
  throw new DownloadError("download_in_progress", `could not take the download lock for ${repo}`, { details: { repo, lockFile } });
}

/** Who holds a live lock on the repo (any process, this one included), or null when it is free or stale. */
export async function liveLockHolder(lockFile: string): Promise<{ pid: number | null; jobId: string | null } | null> {
  const existing = await readLock(lockFile);
  if (!existing || isStale(existing)) return null;
  return { pid: existing.record?.pid ?? null, jobId: existing.record?.jobId ?? null };
}
