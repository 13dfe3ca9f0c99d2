import os from "node:os";

/** Cores this process may really use (respects CPU affinity and cgroup limits where Node can see them). */
export function realCoreCount(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}
