import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { TestContext } from "node:test";

/** promtool, or why not: CI must have it (`apt-get install prometheus`); elsewhere its checks are skipped. */
export function promtoolOrSkip(t: TestContext): boolean {
  const probe = spawnSync("promtool", ["--version"], { encoding: "utf8" });
  if (!probe.error && probe.status === 0) return true;
  if (process.env["CI"]) assert.fail("promtool is required in CI: apt-get install prometheus");
  t.skip("promtool not installed: apt-get install prometheus");
  return false;
}
