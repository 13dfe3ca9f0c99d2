/**
 * A local stand-in for huggingface.co, serving exactly the part of the hub that downloads use:
 *
 *   GET /api/models/{repo}/revision/{rev}            model info with `sha` (what @huggingface/hub's modelInfo calls)
 *   GET /api/models/{repo}/tree/{rev}[/{dir}]        listing with oid, size and lfs {oid, size, pointerSize};
 *                                                    `recursive`, and `cursor` pagination via a Link header (listFiles)
 *   GET /{repo}/resolve/{rev}/{path}                 small files directly; LFS files 302 to /__cdn/..., like the
 *                                                    real hub's redirect to its CDN, with X-Linked-Etag/-Size
 *   GET /__cdn/{repo}/{commit}/{path}                the bytes, with Range support
 *
 * Headers follow the real hub: ETag (git oid, quoted), X-Repo-Commit, X-Linked-Etag / X-Linked-Size on LFS
 * redirects, X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound) on errors; a missing repo answers 401
 * without a token and 404 with one, as huggingface.co does. Faults make files fail in the ways real downloads do.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeHubFile {
  data: Buffer;
  /** Default: files over 1 KiB are LFS (their sha256 is advertised as the LFS oid). */
  lfs?: boolean;
  /** The LFS oid to advertise instead of the real sha256. */
  advertisedSha256?: string;
}

export interface FakeHubFaults {
  /** Destroy the connection after this many body bytes... */
  cutAfterBytes?: number;
  /** ...on this many responses (default 1), later ones are whole. */
  cutTimes?: number;
  /** Advertise a wrong LFS oid. */
  wrongSha?: boolean;
  /** The file is listed but /resolve/ answers 404 EntryNotFound. */
  status404?: boolean;
  /** Answer Range requests with 200 and the whole file, as some mirrors do. */
  ignoreRange?: boolean;
  /** Send the body in chunks of this size with `chunkDelayMs` between them. */
  chunkBytes?: number;
  chunkDelayMs?: number;
  /** Send this many bytes, then nothing more until the client goes away. */
  stallAfterBytes?: number;
}

export interface FakeHubRepo {
  revision?: string;
  /** 40 hex; default derived from the repo name. */
  commit?: string;
  files: Record<string, Buffer | FakeHubFile>;
  /** When set, every API and resolve request must carry `Authorization: Bearer <token>`. */
  token?: string;
}

export interface FakeHubOptions {
  repos: Record<string, FakeHubRepo>;
  /** Per repo, per file path. The object stays live: tests may change faults between downloads. */
  faults?: Record<string, Record<string, FakeHubFaults>>;
  /** Tree entries per page (the real hub pages at 1000). */
  pageSize?: number;
}

export interface FakeHubRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface FakeHub {
  url: string;
  /** "GET /path?query" plus " range=bytes=N-" when a Range header was sent, in arrival order. */
  requests: string[];
  entries: FakeHubRequest[];
  faults: Record<string, Record<string, FakeHubFaults>>;
  close(): Promise<void>;
}

interface ServedFile {
  path: string;
  data: Buffer;
  sha256: string;
  lfs: boolean;
  gitOid: string;
}

interface ServedRepo {
  id: string;
  revision: string;
  commit: string;
  token: string | undefined;
  files: Map<string, ServedFile>;
}

const sha1 = (data: Buffer | string) => createHash("sha1").update(data).digest("hex");
export const sha256Hex = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

function gitBlobOid(data: Buffer): string {
  return sha1(Buffer.concat([Buffer.from(`blob ${data.length}\0`), data]));
}

function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const faults = options.faults ?? {};
  const pageSize = options.pageSize ?? 1000;
  const cutsDone = new Map<string, number>();
  const repos = new Map<string, ServedRepo>();
  for (const [id, repo] of Object.entries(options.repos)) {
    const files = new Map<string, ServedFile>();
    for (const [filePath, spec] of Object.entries(repo.files)) {
      const file = Buffer.isBuffer(spec) ? { data: spec } : spec;
      files.set(filePath, {
        path: filePath,
        data: file.data,
        sha256: sha256Hex(file.data),
        lfs: file.lfs ?? file.data.length > 1024,
        gitOid: gitBlobOid(file.data),
      });
    }
    repos.set(id, { id, revision: repo.revision ?? "main", commit: repo.commit ?? sha1(`commit of ${id}`), token: repo.token, files });
  }

  const requests: string[] = [];
  const entries: FakeHubRequest[] = [];

  const advertisedSha = (repo: ServedRepo, file: ServedFile): string => {
    const spec = options.repos[repo.id]!.files[file.path]!;
    if (!Buffer.isBuffer(spec) && spec.advertisedSha256) return spec.advertisedSha256;
    if (faults[repo.id]?.[file.path]?.wrongSha) return sha256Hex(`not ${file.sha256}`);
    return file.sha256;
  };

  const sendError = (res: http.ServerResponse, status: number, hubCode: string | null, message: string) => {
    res.writeHead(status, { "content-type": "application/json", ...(hubCode ? { "x-error-code": hubCode } : {}) });
    res.end(JSON.stringify({ error: message }));
  };

  /** The repo a path after a prefix names (ids have one or two segments), with the rest of the path. */
  const findRepo = (rest: string): { repo: ServedRepo; tail: string } | null => {
    for (const repo of repos.values()) if (rest.startsWith(`${repo.id}/`)) return { repo, tail: rest.slice(repo.id.length + 1) };
    return null;
  };

  /** Auth and existence, as the hub answers them. Returns false when an error was sent. */
  const admit = (req: http.IncomingMessage, res: http.ServerResponse, found: { repo: ServedRepo } | null): found is { repo: ServedRepo } => {
    const auth = req.headers.authorization;
    if (!found) {
      // huggingface.co cannot tell "missing" from "private" to an anonymous client.
      sendError(res, auth ? 404 : 401, "RepoNotFound", "Repository not found");
      return false;
    }
    if (found.repo.token && auth !== `Bearer ${found.repo.token}`) {
      sendError(res, 401, null, "Invalid credentials in Authorization header");
      return false;
    }
    return true;
  };

  const resolveRev = (repo: ServedRepo, rev: string): string | null => (rev === repo.revision || rev === repo.commit ? repo.commit : null);

  const handleApi = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const rest = decodeURIComponent(url.pathname.slice("/api/models/".length));
    const found = findRepo(rest);
    if (!admit(req, res, found)) return;
    const { repo, tail } = found;
    const [kind, ...more] = tail.split("/");
    if (kind === "revision") {
      const rev = more.join("/");
      const commit = resolveRev(repo, rev);
      if (!commit) return sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          _id: sha1(repo.id).slice(0, 24),
          id: repo.id,
          modelId: repo.id,
          author: repo.id.split("/")[0],
          sha: commit,
          private: Boolean(repo.token),
          gated: false,
          disabled: false,
          downloads: 0,
          likes: 0,
          pipeline_tag: "text-generation",
          library_name: "gguf",
          tags: ["gguf"],
          lastModified: "2024-01-01T00:00:00.000Z",
          createdAt: "2024-01-01T00:00:00.000Z",
          siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
        }),
      );
      return;
    }
    if (kind === "tree") {
      // The revision is one segment here: listFiles sends it unencoded, and commits and "main" have no slash.
      const [rev = "", ...dirParts] = more;
      const commit = resolveRev(repo, rev);
      if (!commit) return sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
      const dir = dirParts.join("/");
      const recursive = url.searchParams.get("recursive") === "true";
      const all = listTree(repo, dir, recursive);
      const cursor = Number(url.searchParams.get("cursor") ?? 0);
      const page = all.slice(cursor, cursor + pageSize);
      const headers: http.OutgoingHttpHeaders = { "content-type": "application/json" };
      if (cursor + pageSize < all.length) {
        const next = new URL(`${url.pathname}${url.search}`, hubUrl);
        next.searchParams.set("cursor", String(cursor + pageSize));
        headers["link"] = `<${next.toString()}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(page));
      return;
    }
    sendError(res, 404, null, "Sorry, we can't find the page you are looking for.");
  };

  const listTree = (repo: ServedRepo, dir: string, recursive: boolean): unknown[] => {
    const prefix = dir ? `${dir}/` : "";
    const out: unknown[] = [];
    const dirs = new Set<string>();
    for (const file of repo.files.values()) {
      if (!file.path.startsWith(prefix)) continue;
      const below = file.path.slice(prefix.length).split("/");
      for (let depth = 1; depth < below.length; depth++) {
        if (!recursive && depth > 1) break;
        dirs.add(prefix + below.slice(0, depth).join("/"));
      }
      if (!recursive && below.length > 1) continue;
      const sha = advertisedSha(repo, file);
      out.push(
        file.lfs
          ? {
              type: "file",
              oid: gitBlobOid(lfsPointer(sha, file.data.length)),
              size: file.data.length,
              path: file.path,
              lfs: { oid: sha, size: file.data.length, pointerSize: lfsPointer(sha, file.data.length).length },
            }
          : { type: "file", oid: file.gitOid, size: file.data.length, path: file.path },
      );
    }
    for (const d of [...dirs].sort()) out.unshift({ type: "directory", oid: sha1(`tree ${d}`), size: 0, path: d });
    return out;
  };

  const handleResolve = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const rest = decodeURIComponent(url.pathname.slice(1));
    const found = findRepo(rest);
    if (!admit(req, res, found)) return;
    const { repo, tail } = found;
    const match = /^resolve\/([^/]+)\/(.+)$/.exec(tail);
    if (!match) return sendError(res, 404, null, "Not found");
    const commit = resolveRev(repo, match[1]!);
    if (!commit) return sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${match[1]}`);
    const file = repo.files.get(match[2]!);
    if (!file || faults[repo.id]?.[file.path]?.status404) return sendError(res, 404, "EntryNotFound", "Entry not found");
    const common = { "x-repo-commit": commit, etag: `"${file.lfs ? gitBlobOid(lfsPointer(file.sha256, file.data.length)) : file.gitOid}"` };
    if (file.lfs) {
      const location = `/__cdn/${repo.id}/${commit}/${file.path.split("/").map(encodeURIComponent).join("/")}`;
      res.writeHead(302, {
        ...common,
        location,
        "x-linked-etag": `"${advertisedSha(repo, file)}"`,
        "x-linked-size": String(file.data.length),
        "content-length": "0",
      });
      res.end();
      return;
    }
    void sendBytes(req, res, repo, file, common);
  };

  const handleCdn = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const rest = decodeURIComponent(url.pathname.slice("/__cdn/".length));
    const found = findRepo(rest);
    const match = found && /^([0-9a-f]{40})\/(.+)$/.exec(found.tail);
    const file = match && found.repo.files.get(match[2]!);
    if (!found || !match || !file) return sendError(res, 404, null, "NoSuchKey");
    void sendBytes(req, res, found.repo, file, { etag: `"${file.sha256}"` });
  };

  const sendBytes = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    repo: ServedRepo,
    file: ServedFile,
    headers: http.OutgoingHttpHeaders,
  ) => {
    const fault = faults[repo.id]?.[file.path] ?? {};
    const size = file.data.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range && !fault.ignoreRange) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(Number(range[2]), size - 1);
      if (start >= size) {
        res.writeHead(416, { ...headers, "content-range": `bytes */${size}` });
        res.end();
        return;
      }
      status = 206;
    }
    const body = file.data.subarray(start, end + 1);
    res.writeHead(status, {
      ...headers,
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      "content-length": String(body.length),
      ...(status === 206 ? { "content-range": `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === "HEAD") return void res.end();

    let limit = body.length;
    let cut = false;
    const cutKey = `${repo.id}/${file.path}`;
    if (fault.cutAfterBytes !== undefined && (cutsDone.get(cutKey) ?? 0) < (fault.cutTimes ?? 1) && fault.cutAfterBytes < body.length) {
      cutsDone.set(cutKey, (cutsDone.get(cutKey) ?? 0) + 1);
      limit = fault.cutAfterBytes;
      cut = true;
    }
    const stall = fault.stallAfterBytes !== undefined && fault.stallAfterBytes < limit;
    if (stall) limit = fault.stallAfterBytes!;
    const chunk = fault.chunkBytes ?? limit;
    const write = (buf: Buffer) => new Promise<void>((resolve) => (res.write(buf) ? resolve() : res.once("drain", resolve)));
    for (let offset = 0; offset < limit && !res.destroyed; offset += chunk) {
      await write(body.subarray(offset, Math.min(offset + chunk, limit)));
      if (fault.chunkDelayMs && offset + chunk < limit) await sleep(fault.chunkDelayMs);
    }
    if (res.destroyed) return;
    // Let the written bytes reach the client before the connection drops, so the partial size is exact.
    if (cut)
      await new Promise<void>((resolve) => res.write(Buffer.alloc(0), () => resolve())).then(() => sleep(20)).then(() => res.socket?.destroy());
    else if (!stall) res.end();
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://fake-hub");
    const line = `${req.method} ${url.pathname}${url.search}${req.headers.range ? ` range=${req.headers.range}` : ""}`;
    requests.push(line);
    entries.push({ method: req.method ?? "GET", path: `${url.pathname}${url.search}`, headers: req.headers });
    if (url.pathname.startsWith("/api/models/")) return handleApi(req, res, url);
    if (url.pathname.startsWith("/__cdn/")) return handleCdn(req, res, url);
    if (url.pathname.includes("/resolve/")) return handleResolve(req, res, url);
    sendError(res, 404, null, "Not found");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: hubUrl,
    requests,
    entries,
    faults,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
