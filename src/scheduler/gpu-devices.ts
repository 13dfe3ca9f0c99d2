/**
 * The GPUs whose memory the budget covers: index and total memory as nvidia-smi reports them. Absent nvidia-smi
 * (CPU machines, Apple Silicon, where GPU memory is the RAM the budget already covers) means no GPU budget at all.
 */
import { execFile } from "node:child_process";

export interface GpuDevice {
  index: number;
  totalBytes: number;
  /** Memory in use when the gateway looked (other processes included). */
  usedBytes: number;
}

const MIB = 1024 * 1024;

/** Parses `nvidia-smi --query-gpu=index,memory.total,memory.used --format=csv,noheader,nounits` (MiB). */
export function parseGpuQuery(output: string): GpuDevice[] {
  const devices: GpuDevice[] = [];
  for (const line of output.split("\n")) {
    const fields = line.split(",").map((f) => f.trim());
    if (fields.length < 3) continue;
    const [index, total, used] = fields.map(Number) as [number, number, number];
    if (!Number.isInteger(index) || !Number.isFinite(total) || total <= 0) continue;
    devices.push({ index, totalBytes: total * MIB, usedBytes: Number.isFinite(used) ? used * MIB : 0 });
  }
  return devices;
}

export type GpuQuery = () => Promise<string | null>;

/** Runs nvidia-smi; null when it is absent or fails (no driver, no device). */
export const nvidiaSmiGpuQuery: GpuQuery = () =>
  new Promise((resolve) => {
    execFile(
      "nvidia-smi",
      ["--query-gpu=index,memory.total,memory.used", "--format=csv,noheader,nounits"],
      { timeout: 5_000, encoding: "utf8" },
      (error, stdout) => resolve(error ? null : stdout),
    );
  });

export async function detectGpus(query: GpuQuery = nvidiaSmiGpuQuery): Promise<GpuDevice[]> {
  const output = await query();
  return output === null ? [] : parseGpuQuery(output);
}

/**
 * How a load's VRAM spreads over the GPUs: llama.cpp splits layers over every visible device in proportion to
 * its memory (split mode "layer"), so the share of each follows its total. One GPU takes it all.
 */
export function spreadOverGpus(bytes: number, gpus: readonly GpuDevice[]): number[] {
  if (gpus.length === 0 || bytes <= 0) return gpus.map(() => 0);
  const total = gpus.reduce((sum, g) => sum + g.totalBytes, 0);
  return gpus.map((g) => Math.ceil((bytes * g.totalBytes) / total));
}
