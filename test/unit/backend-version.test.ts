import assert from "node:assert/strict";
import { test } from "node:test";
import { LlamaCppBackend, nodeLlamaCppVersion } from "../../src/engines/llama-cpp/backend.js";

test("the backend version names the installed node-llama-cpp (it is part of every compatibility key)", () => {
  assert.match(nodeLlamaCppVersion(), /^\d+\.\d+\.\d+/);
  assert.equal(new LlamaCppBackend().version, `node-llama-cpp ${nodeLlamaCppVersion()}`);
  assert.equal(new LlamaCppBackend({ cpuOnly: true }).name, "llama.cpp-cpu");
});
