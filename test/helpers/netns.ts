/**
 * Network namespaces for tests whose traffic must cross a real interface: each namespace gets one end of a veth
 * pair and an address on its own /24; the host keeps the other end. Needs root and iproute2; `netnsSkipReason`
 * says why not when they are missing. Every name carries this process's pid, so a leftover from a killed run
 * never collides with the next one, and `remove` deletes what `create` made (deleting a namespace deletes its
 * veth end, and the host's end with it).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

export interface Namespace {
  name: string;
  /** The host's end of the veth pair. */
  hostInterface: string;
  hostAddress: string;
  /** The namespace's address, where its servers listen. */
  address: string;
  /** Starts a program inside the namespace (ip netns exec execs it: the child's pid is the program's). */
  spawn(program: string, args: string[]): ChildProcess;
  /** Bytes the host sent into / received from the namespace so far. */
  traffic(): { sent: number; received: number };
}

function ip(args: string[]): void {
  const result = spawnSync("ip", args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`ip ${args.join(" ")}: ${result.stderr.trim() || result.error?.message}`);
}

export function netnsSkipReason(): string | false {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const probe = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) return `iproute2's ip netns does not work here: ${probe.error?.message ?? probe.stderr.trim()}`;
  return false;
}

/** `index` (1-200) picks the subnet 10.231.<index>.0/24 and the names; one test file uses each index once. */
export function createNamespace(index: number): Namespace {
  const tag = `${process.pid % 100000}`;
  const name = `lmxt${tag}n${index}`;
  const hostInterface = `lt${tag}h${index}`;
  const inner = `lt${tag}i${index}`;
  const hostAddress = `10.231.${index}.1`;
  const address = `10.231.${index}.2`;
  removeNamespace(name, hostInterface);
  ip(["netns", "add", name]);
  try {
    ip(["link", "add", hostInterface, "type", "veth", "peer", "name", inner]);
    ip(["link", "set", inner, "netns", name]);
    ip(["addr", "add", `${hostAddress}/24`, "dev", hostInterface]);
    ip(["link", "set", hostInterface, "up"]);
    ip(["netns", "exec", name, "ip", "addr", "add", `${address}/24`, "dev", inner]);
    ip(["netns", "exec", name, "ip", "link", "set", inner, "up"]);
    ip(["netns", "exec", name, "ip", "link", "set", "lo", "up"]);
  } catch (error) {
    removeNamespace(name, hostInterface);
    throw error;
  }
  const counter = (which: string) => Number(readFileSync(`/sys/class/net/${hostInterface}/statistics/${which}`, "utf8").trim());
  return {
    name,
    hostInterface,
    hostAddress,
    address,
    spawn: (program, args) => spawn("ip", ["netns", "exec", name, program, ...args], { stdio: ["ignore", "pipe", "pipe"] }),
    traffic: () => ({ sent: counter("tx_bytes"), received: counter("rx_bytes") }),
  };
}

export function removeNamespace(name: string, hostInterface?: string): void {
  spawnSync("ip", ["netns", "delete", name]);
  if (hostInterface && existsSync(`/sys/class/net/${hostInterface}`)) spawnSync("ip", ["link", "delete", hostInterface]);
}
