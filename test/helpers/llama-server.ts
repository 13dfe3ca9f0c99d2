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

export const NO_LLAMA_SERVER = "no llama-server binary (npm test builds one where git, cmake and a C++ compiler exist)";
