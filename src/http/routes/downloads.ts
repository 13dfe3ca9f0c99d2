/** /admin/models/download(s): fetch models from the Hugging Face hub into the HF cache, with progress. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { DownloadError, type DownloadJob, type DownloadManager, type DownloadRequest } from "../../inventory/downloads/download-manager.js";
import { parseRequest } from "../../api/openai/schemas.js";
import type { GatewayContext } from "../context.js";

const downloadBody = z.strictObject({
  repo: z.string().min(3).max(200),
  revision: z.string().min(1).max(200).optional(),
  files: z.array(z.union([z.string().min(1), z.strictObject({ path: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/) })])).optional(),
  include: z.union([z.string().min(1), z.array(z.string().min(1))]).optional(),
  exclude: z.array(z.string().min(1)).optional(),
});

/** `org/name:Q4_K_M` means the GGUF files of that quantization, as `lmx pull` and Ollama-style ids write it. */
export function downloadRequestFor(spec: string): DownloadRequest {
  const [repo, pattern] = spec.split(":", 2) as [string, string | undefined];
  return pattern ? { repo, include: [`*${pattern}*.gguf`] } : { repo };
}

export function asLmxError(error: unknown): LmxError {
  if (error instanceof LmxError) return error;
  if (error instanceof DownloadError) return new LmxError(error.code, error.message, { details: error.details ?? {} });
  if (error instanceof TypeError) return new LmxError("invalid_value", error.message);
  return new LmxError("download_failed", (error as Error)?.message ?? String(error));
}

/** Starts (or joins) a download and waits until bytes flow, so refusals (404, 507, 403) come back as errors. */
export async function startDownload(ctx: GatewayContext, request: DownloadRequest): Promise<DownloadJob> {
  let job: DownloadJob;
  try {
    job = ctx.downloads.start(request);
  } catch (error) {
    throw asLmxError(error);
  }
  void job.settled.then(() => ctx.inventory.refresh());
  await job.preflight;
  const snapshot = job.snapshot();
  if (snapshot.status === "failed" && snapshot.error) throw asLmxError(await job.done.catch((e: unknown) => e));
  return job;
}

export function registerDownloadRoutes(admin: FastifyInstance, ctx: GatewayContext, downloads: DownloadManager): void {
  admin.post("/admin/models/download", async (request, reply) => {
    const body = parseRequest(downloadBody, request.body);
    const job = await startDownload(ctx, {
      ...downloadRequestFor(body.repo),
      ...(body.revision ? { revision: body.revision } : {}),
      ...(body.files ? { files: body.files } : {}),
      ...(body.include ? { include: Array.isArray(body.include) ? body.include : [body.include] } : {}),
      ...(body.exclude ? { exclude: body.exclude } : {}),
    });
    return reply.code(202).header("location", `/admin/models/downloads/${job.id}`).send(job.snapshot());
  });

  admin.get("/admin/models/downloads", async () => ({ object: "list", data: downloads.list().map((j) => j.snapshot()) }));

  admin.get("/admin/models/downloads/:id", async (request) => {
    const job = downloads.get((request.params as { id: string }).id);
    if (!job) throw new LmxError("not_found", "no download with that id (finished downloads are kept for a while, then forgotten)");
    return job.snapshot();
  });

  admin.delete("/admin/models/downloads/:id", async (request) => {
    const job = downloads.get((request.params as { id: string }).id);
    if (!job) throw new LmxError("not_found", "no download with that id");
    job.cancel();
    await job.settled;
    return job.snapshot();
  });

  admin.post("/admin/models/downloads/cleanup", async (request) => {
    const { repo } = parseRequest(z.strictObject({ repo: z.string().min(3).max(200).optional() }), request.body ?? {});
    const report = await downloads.cleanupIncomplete(repo, { olderThanMs: 0 });
    await ctx.inventory.refresh();
    return report;
  });
}
