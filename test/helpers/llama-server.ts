/**
 * The llama-server binary the llama-server engine's tests run: LMX_TEST_LLAMA_SERVER, or the one
 * scripts/run-tests.mjs builds into the user cache. CI fails without it; elsewhere those tests are skipped.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { userCacheLlamaServerDir } from "../../src/engines/llama-server/binary.js";

export function testLlamaServerBinary(): string | null {
  const binary = process.env["LMX_TEST_LLAMA_SERVER"] || path.join(userCacheLlamaServerDir(), "bin", "llama-server");
  if (existsSync(binary)) return binary;
  if (process.env["CI"]) throw new Error(`CI needs a llama-server binary at ${binary} (scripts/run-tests.mjs builds it); it is missing`);
  return null;
}

/** The skip reason: why scripts/run-tests.mjs has no binary (its build's own failure), not a guess. */
export const NO_LLAMA_SERVER =
  process.env["LMX_TEST_LLAMA_SERVER_MISSING"] ||
  `no llama-server binary at ${path.join(userCacheLlamaServerDir(), "bin", "llama-server")} (scripts/run-tests.mjs builds it when the run includes these tests; LMX_TEST_LLAMA_SERVER names one)`;
