/**
 * The embedded default: a tiny random-weight chat model written by our own GGUF writer the first time the
 * server starts with nothing else to serve, so a fresh install answers a chat request without any download.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { writeTinyLlamaModel } from "../gguf/fixtures.js";
import { makeDirSync } from "../util/make-dir.js";

export const DEMO_MODEL_ID = "lmx-demo";
const DEMO_FILE = "lmx-demo-tiny-chat.gguf";

export async function ensureDemoModel(stateDir: string): Promise<string> {
  const dir = path.join(stateDir, "models");
  const file = path.join(dir, DEMO_FILE);
  if (!existsSync(file)) {
    makeDirSync(dir);
    await writeTinyLlamaModel(file, { chat: true, name: "lmx-demo (random weights)" });
  }
  return file;
}
