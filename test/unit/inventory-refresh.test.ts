/** A refresh asked for while a scan runs must see what changed after that scan passed the folder. */
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { loadConfig } from "../../src/config/load.js";
import { Inventory } from "../../src/inventory/inventory.js";
import { testModel } from "../helpers/models.js";

test("a file added during a scan is listed after the refresh that follows (a finished download)", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-refresh-"));
  try {
    const model = (await testModel("stories260K.gguf")).path;
    copyFileSync(model, path.join(dir, "first.gguf"));
    const config = loadConfig({
      env: {},
      overrides: { model_dirs: [dir], state_dir: dir, demo_model: false, discovery: { hf_cache: false, lmstudio: false, ollama: false } },
    });
    const inventory = new Inventory(config, (m) => m.format === "gguf");
    // the folder walk is synchronous, so this scan has already listed the folder when refresh() returns
    const running = inventory.refresh();
    copyFileSync(model, path.join(dir, "second.gguf"));
    await inventory.refresh();
    await running;
    const ids = (await inventory.list()).map((m) => m.id).sort();
    assert.deepEqual(ids, ["first", "second"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
