/**
 * DELETE /api/delete: removes a model's files from the Hugging Face cache (where pulls put them). Models from
 * the config, model_dirs, LM Studio or Ollama's own store are the operator's files, never deleted here.
 */
import { readdir, realpath, rm } from "node:fs/promises";
import path from "node:path";
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { ServingContext } from "./context.js";

/** Every part of a split GGUF (`-00001-of-00003.gguf`), else the one file. */
async function modelFiles(file: string): Promise<string[]> {
  const split = /^(.*)-\d{5}-of-(\d{5})\.gguf$/.exec(path.basename(file));
  if (!split) return [file];
  const dir = path.dirname(file);
  const names = await readdir(dir);
  return names.filter((n) => n.startsWith(`${split[1]}-`) && n.endsWith(`-of-${split[2]}.gguf`)).map((n) => path.join(dir, n));
}

/** The snapshot links and, when no other snapshot of the repo links them, their blobs. */
export async function deleteDownloadedModel(ctx: ServingContext, model: ModelDescriptor): Promise<void> {
  if (model.source !== "hf_cache") {
    throw new LmxError(
      "invalid_value",
      `'${model.id}' comes from ${model.source}, not from the Hugging Face cache: only pulled models are deleted through the API (remove other files yourself)`,
      { param: "model" },
    );
  }
  const links = await modelFiles(model.path);
  const snapshot = path.dirname(links[0]!);
  const snapshots = path.dirname(snapshot);
  if (path.basename(snapshots) !== "snapshots") {
    throw new LmxError("invalid_value", `'${model.id}' is not laid out as a Hugging Face cache snapshot; remove it yourself`, { param: "model" });
  }
  await ctx.scheduler.unload(model.id, ctx.config.shutdown_timeout_sec * 1000, "deleted (Ollama API)");
  const blobs = await Promise.all(links.map((link) => realpath(link).catch(() => null)));
  const otherSnapshots = (await readdir(snapshots)).map((s) => path.join(snapshots, s)).filter((s) => s !== snapshot);
  for (const [i, link] of links.entries()) {
    await rm(link, { force: true });
    const blob = blobs[i];
    if (!blob || blob === link) continue;
    const relative = path.relative(snapshot, link);
    const shared = await Promise.all(otherSnapshots.map((s) => realpath(path.join(s, relative)).catch(() => null)));
    if (!shared.includes(blob)) await rm(blob, { force: true });
  }
  // a repo left with nothing is removed whole, so it is no longer listed as an incomplete model
  if ((await readdir(snapshot)).length === 0) await rm(snapshot, { recursive: true, force: true });
  const repoDir = path.dirname(snapshots);
  if ((await readdir(snapshots)).length === 0 && path.basename(repoDir).startsWith("models--")) await rm(repoDir, { recursive: true, force: true });
  await ctx.inventory.refresh();
}
