/**
 * Talking to a Hugging Face hub (or a mirror with the same URL layout): which commit a revision is, which files
 * it has (sizes, LFS sha256), and a byte-range GET of one file.
 *
 * Listing goes through @huggingface/hub (`modelInfo` → GET /api/models/{repo}/revision/{rev}, `listFiles` →
 * GET /api/models/{repo}/tree/{commit}?recursive=true, following its Link pagination). File bytes do not: the
 * library's `downloadFileToCacheDir` (which `snapshotDownload` calls for every file, unfiltered) writes the
 * `.incomplete` with a truncating stream (no Range resume), verifies neither hash nor size, reports no progress
 * and takes no lock; `downloadFile` hands back a Blob with no way to start at an offset we choose. So `openFile`
 * is a plain fetch and the streaming, hashing and cache placement live in download-manager.ts.
 */
import { listFiles, modelInfo } from "@huggingface/hub";
import { COMMIT_SHA, SHA256, isSafeRelativePath } from "./cache-layout.js";
import { DownloadError } from "./errors.js";

export const DEFAULT_HUB_URL = "https://huggingface.co";

export interface HubClientOptions {
  hubUrl?: string;
  /** Sent as `Authorization: Bearer`; not checked for the `hf_` prefix, so mirrors with other tokens work. */
  token?: string | null;
  /** Replaces global fetch (a proxy agent, tests). */
  fetch?: typeof fetch;
  userAgent?: string;
}

export interface HubFile {
  path: string;
  size: number;
  /** The blob's name in the cache: LFS sha256 for LFS files, the git blob oid otherwise (as huggingface_hub). */
  blobId: string;
  /** Content sha256, known for LFS files only. */
  sha256: string | null;
}

/** A hub answer that is not a success, as a DownloadError (404/RepoNotFound → not found, 401/403 → unauthorized). */
export async function hubHttpError(res: Response, what: string, hadToken: boolean): Promise<DownloadError> {
  const hubCode = res.headers.get("x-error-code");
  let hubMessage = "";
  try {
    const text = (await res.text()).slice(0, 500);
    try {
      const json = JSON.parse(text) as { error?: unknown; message?: unknown };
      hubMessage = String(json.error ?? json.message ?? text);
    } catch {
      hubMessage = text;
    }
  } catch {
    // body unreadable: the status says enough
  }
  const details = { status: res.status, url: res.url, hubErrorCode: hubCode, hubMessage };
  const suffix = hubMessage ? `: ${hubMessage}` : "";
  // The hub answers 401 + RepoNotFound for private repos and unknown ones alike when no token is sent.
  if (res.status === 404 || hubCode === "RepoNotFound" || hubCode === "EntryNotFound" || hubCode === "RevisionNotFound") {
    const hint = hubCode === "RepoNotFound" && !hadToken ? " (if it is private or gated, configure a token)" : "";
    return new DownloadError("download_not_found", `${what} not found (HTTP ${res.status})${hint}${suffix}`, { details });
  }
  if (res.status === 401 || res.status === 403)
    return new DownloadError("download_unauthorized", `${what}: access denied (HTTP ${res.status})${suffix}`, { details });
  return new DownloadError("download_failed", `${what}: HTTP ${res.status}${suffix}`, { details });
}

function isAbort(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (error instanceof Error && error.name === "AbortError");
}

export class HubClient {
  readonly hubUrl: string;
  private readonly token: string | null;
  private readonly baseFetch: typeof fetch;
  private readonly userAgent: string;

  constructor(options: HubClientOptions = {}) {
    this.hubUrl = (options.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.baseFetch = options.fetch ?? fetch;
    this.userAgent = options.userAgent ?? "opta-lmx";
  }

  /**
   * A fetch that adds our headers and the caller's abort signal. The library gets it as its `fetch` option
   * (it has no signal parameter of its own); with `throwOnError` a failed answer becomes a DownloadError
   * before the library turns it into a less specific HubApiError.
   */
  private fetcher(what: string, signal: AbortSignal | undefined, throwOnError: boolean): typeof fetch {
    return async (input, init) => {
      const headers = new Headers(init?.headers);
      if (this.token) headers.set("authorization", `Bearer ${this.token}`);
      headers.set("user-agent", this.userAgent);
      const signals = [init?.signal, signal].filter((s): s is AbortSignal => s != null);
      let res: Response;
      try {
        res = await this.baseFetch(input, {
          ...init,
          headers,
          ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}),
        });
      } catch (error) {
        if (isAbort(error, signal)) throw signal?.reason ?? error;
        throw new DownloadError("download_failed", `${what}: cannot reach ${this.hubUrl} (${(error as Error).message})`, {
          cause: error,
          details: { url: String(input instanceof Request ? input.url : input) },
        });
      }
      if (throwOnError && !res.ok) throw await hubHttpError(res, what, this.token !== null);
      return res;
    };
  }

  /** The commit a branch, tag or commit id points to. */
  async resolveCommit(repo: string, revision: string, signal?: AbortSignal): Promise<string> {
    const info = await modelInfo({
      name: repo,
      revision,
      hubUrl: this.hubUrl,
      additionalFields: ["sha"],
      fetch: this.fetcher(`model ${repo}@${revision}`, signal, true),
    });
    const sha = (info as { sha?: unknown }).sha;
    if (typeof sha !== "string" || !COMMIT_SHA.test(sha))
      throw new DownloadError("download_failed", `the hub returned no commit id for ${repo}@${revision}`, {
        details: { repo, revision, sha },
      });
    return sha;
  }

  /** Every file of the commit, with the hash its blob is stored under. Hub paths are checked before use. */
  async listFiles(repo: string, commit: string, signal?: AbortSignal): Promise<HubFile[]> {
    const files: HubFile[] = [];
    const entries = listFiles({
      repo,
      revision: commit,
      recursive: true,
      hubUrl: this.hubUrl,
      fetch: this.fetcher(`file list of ${repo}@${commit}`, signal, true),
    });
    for await (const entry of entries) {
      if (entry.type !== "file") continue;
      const bad = (why: string) =>
        new DownloadError("download_failed", `the hub listed ${JSON.stringify(entry.path)} in ${repo} with ${why}`, {
          details: { repo, path: entry.path },
        });
      if (typeof entry.path !== "string" || !isSafeRelativePath(entry.path)) throw bad("an unsafe path");
      const size = entry.lfs?.size ?? entry.size;
      if (!Number.isSafeInteger(size) || size < 0) throw bad("an invalid size");
      const lfsOid = entry.lfs?.oid?.toLowerCase();
      const gitOid = entry.oid?.toLowerCase();
      if (lfsOid !== undefined && !SHA256.test(lfsOid)) throw bad("an invalid LFS oid");
      const blobId = lfsOid ?? gitOid;
      if (blobId === undefined || !(SHA256.test(blobId) || COMMIT_SHA.test(blobId))) throw bad("no usable oid");
      files.push({ path: entry.path, size, blobId, sha256: lfsOid ?? null });
    }
    return files;
  }

  /**
   * GET {hub}/{repo}/resolve/{commit}/{path}, redirects followed (LFS files live on a CDN), from `offset` on.
   * Returns 200, 206 or 416 answers; anything else becomes a DownloadError.
   */
  async openFile(repo: string, commit: string, filePath: string, offset: number, signal?: AbortSignal): Promise<Response> {
    const url = `${this.hubUrl}/${repo}/resolve/${encodeURIComponent(commit)}/${filePath.split("/").map(encodeURIComponent).join("/")}`;
    const headers: Record<string, string> = {
      // Byte offsets must mean file offsets: no transparent compression.
      "accept-encoding": "identity",
    };
    if (offset > 0) headers["range"] = `bytes=${offset}-`;
    const res = await this.fetcher(`${repo}/${filePath}`, signal, false)(url, { headers, redirect: "follow" });
    if (res.ok || res.status === 416) return res;
    throw await hubHttpError(res, `${repo}/${filePath}`, this.token !== null);
  }
}
