import { readFileSync } from "node:fs";
import os from "node:os";

/**
 * Cores this process may really use: CPU affinity (availableParallelism) and, on Linux, a cgroup v2 CPU quota
 * (`cpu.max`), which containers set without changing affinity. Threads beyond this only contend.
 */
export function realCoreCount(): number {
  const visible = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  const quota = cgroupCpuLimit();
  return Math.max(1, quota === null ? visible : Math.min(visible, quota));
}

/** Whole CPUs the cgroup v2 quota allows ("max" or no file: no limit). */
export function cgroupCpuLimit(file = "/sys/fs/cgroup/cpu.max"): number | null {
  try {
    const [quota, period] = readFileSync(file, "utf8").trim().split(/\s+/);
    if (!quota || quota === "max" || !period) return null;
    const cpus = Number(quota) / Number(period);
    return Number.isFinite(cpus) && cpus > 0 ? Math.max(1, Math.ceil(cpus)) : null;
  } catch {
    return null;
  }
}
