/**
 * What makes a tuned profile valid only here: the CPU model, the cores this process may use, the memory and
 * the accelerator. A profile found on one machine is not applied on another.
 */
import { createHash } from "node:crypto";
import os from "node:os";
import { realCoreCount } from "../util/cores.js";

export interface MachineSignature {
  /** Short and stable: the key profiles are stored under. */
  id: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  arch: string;
  gpu: string;
}

export function machineSignature(gpu: string): MachineSignature {
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown";
  const cores = realCoreCount();
  const memoryGiB = Math.round(os.totalmem() / 1024 ** 3);
  const arch = `${process.platform}-${process.arch}`;
  const text = [cpu, cores, memoryGiB, arch, gpu].join("|");
  return { id: createHash("sha256").update(text).digest("hex").slice(0, 16), cpu, cores, memoryGiB, arch, gpu };
}
