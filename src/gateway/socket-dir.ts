/**
 * Runner sockets live in a private folder under the system temp folder (Unix socket paths must stay short):
 * `lmx-<gateway pid>-XXXXXX`. A gateway removes its own at shutdown and on a failed start; one killed with
 * SIGKILL cannot, so each start also removes the folders of gateways that are dead.
 */
import { lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** mkdtemp's six-character suffix after the pid: anything else under tmpdir is not provably ours. */
const OURS = /^lmx-(\d+)-[A-Za-z0-9]{6}$/;

export function createSocketDir(tmpDir = os.tmpdir()): string {
  return mkdtempSync(path.join(tmpDir, `lmx-${process.pid}-`));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists and belongs to someone else
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes socket folders whose gateway is gone: named like ours, a real folder (not a link), owned by this user,
 * and no process with that pid. A reused pid only keeps a stale folder; it never removes a live one.
 * Returns the folders removed.
 */
export function removeStaleSocketDirs(tmpDir = os.tmpdir()): string[] {
  let names: string[];
  try {
    names = readdirSync(tmpDir);
  } catch {
    return [];
  }
  const uid = typeof process.getuid === "function" ? process.getuid() : null;
  const removed: string[] = [];
  for (const name of names) {
    const match = OURS.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || alive(pid)) continue;
    const folder = path.join(tmpDir, name);
    try {
      const stat = lstatSync(folder);
      if (!stat.isDirectory() || (uid !== null && stat.uid !== uid)) continue;
      rmSync(folder, { recursive: true, force: true });
      removed.push(folder);
    } catch {
      // gone meanwhile, or not ours to remove: either way nothing to do
    }
  }
  return removed;
}
