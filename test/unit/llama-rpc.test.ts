/** llama.cpp RPC (rpc.workers): the command line, the config's endpoints, the worker check and failure texts. */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { loadConfig } from "../../src/config/load.js";
import { type LmxError } from "../../src/errors/codes.js";
import { llamaServerArgs } from "../../src/engines/llama-server/args.js";
import { checkRpcWorkers, parseWorker, probeWorker, rpcFailureLine, rpcWorkerLost } from "../../src/engines/llama-server/rpc.js";
import type { ResolvedRunnerSettings } from "../../src/runner/protocol.js";
import { LlamaCppBackend } from "../../src/engines/llama-cpp/backend.js";
import { commandBackend } from "../../src/engines/openai-child/backend.js";
import { fakeModel } from "../helpers/fake-backend.js";

const settings: ResolvedRunnerSettings = {
  contextSize: 512,
  parallel: 2,
  threads: 1,
  batchSize: 512,
  gpuLayers: "auto",
  flashAttention: "auto",
  gpu: "cpu",
  threadsBatch: null,
  ubatchSize: null,
  cacheTypeK: "f16",
  cacheTypeV: "f16",
  promptCacheMb: 0,
  draftModel: null,
  draftMax: null,
  rpcWorkers: [],
};
const base = { modelPath: "/m.gguf", alias: "m", socketPath: "/s.sock", contextSize: 512 };

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
}

test("rpc.workers → --rpc a,b with every layer offloaded to them, and never --device none (it would drop them)", () => {
  const args = llamaServerArgs({ ...base, settings: { ...settings, rpcWorkers: ["10.0.0.2:50052", "[fd00::3]:50052"] } });
  assert.equal(flag(args, "--rpc"), "10.0.0.2:50052,[fd00::3]:50052");
  assert.equal(flag(args, "--gpu-layers"), "all");
  assert.equal(args.includes("--device"), false);
  const counted = llamaServerArgs({ ...base, settings: { ...settings, gpuLayers: 3, rpcWorkers: ["h:1"] } });
  assert.equal(flag(counted, "--gpu-layers"), "3", "a layer count still decides how many leave this machine");
  const plain = llamaServerArgs({ ...base, settings });
  assert.equal(plain.includes("--rpc"), false);
  assert.equal(flag(plain, "--device"), "none");
});

test("config: rpc.workers per model and in defaults, endpoints checked", () => {
  const config = loadConfig({
    env: {},
    overrides: {
      defaults: { rpc: { workers: ["10.0.0.2:50052"] } },
      models: [{ id: "big", path: "/big.gguf", rpc: { workers: ["w1.lan:50052", "[fd00::2]:50053"] } }],
    },
  });
  assert.deepEqual(config.models[0]!.rpc?.workers, ["w1.lan:50052", "[fd00::2]:50053"]);
  assert.deepEqual(config.defaults.rpc?.workers, ["10.0.0.2:50052"]);
  assert.equal(config.backends.llama_server_rpc, "auto");
  for (const bad of ["10.0.0.2", "10.0.0.2:0", "10.0.0.2:70000", "fd00::2:50052", "http://h:1"]) {
    assert.throws(() => loadConfig({ env: {}, overrides: { defaults: { rpc: { workers: [bad] } } } }), /RPC worker/, bad);
  }
});

test("parseWorker: host and port, IPv6 without brackets", () => {
  assert.deepEqual(parseWorker("10.0.0.2:50052"), { host: "10.0.0.2", port: 50052 });
  assert.deepEqual(parseWorker("[fd00::2]:1"), { host: "fd00::2", port: 1 });
});

test("the worker check connects: a listening worker passes, a closed port is rpc_worker_unavailable naming it", async () => {
  const listening = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  const up = `127.0.0.1:${(listening.address() as { port: number }).port}`;
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const down = `127.0.0.1:${(closed.address() as { port: number }).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  try {
    assert.equal(await probeWorker(up), null);
    assert.equal(await probeWorker(down), "ECONNREFUSED");
    await checkRpcWorkers("big", [up]);
    await assert.rejects(checkRpcWorkers("big", [up, down]), (error: LmxError) => {
      assert.equal(error.code, "rpc_worker_unavailable");
      assert.equal(error.status, 503);
      assert.equal(error.fault, "resource", "a dead worker is neither the backend's nor the file's fault: no quarantine, no fallthrough");
      assert.match(error.message, new RegExp(`${down} \\(ECONNREFUSED\\)`));
      assert.doesNotMatch(error.message, new RegExp(`${up} `));
      return true;
    });
  } finally {
    listening.close();
  }
});

test("llama.cpp's RPC failure lines are recognised in a dead llama-server's output; other aborts are not", () => {
  const tail = [
    "srv  update_slots: all slots are idle",
    "/src/ggml/src/ggml-rpc/ggml-rpc.cpp:566: Remote RPC server crashed or returned malformed response",
    "[New LWP 1234]",
    "#0  0x00007f in __GI___wait4",
  ];
  assert.equal(rpcFailureLine(tail), "/src/ggml/src/ggml-rpc/ggml-rpc.cpp:566: Remote RPC server crashed or returned malformed response");
  assert.match(rpcFailureLine(["ggml-rpc.cpp:547: Failed to connect to 10.0.0.2:50052"]) ?? "", /Failed to connect/);
  assert.equal(rpcFailureLine(["GGML_ASSERT(n_tokens > 0) failed", "Failed to connect"]), null);
  const error = rpcWorkerLost("big", ["a:1", "b:2"], "Remote RPC server crashed", false);
  assert.equal(error.code, "rpc_worker_unavailable");
  assert.match(error.message, /'big' stopped: an RPC worker \(a:1, b:2\) failed it/);
});

test("only the llama-server engine takes a model with rpc.workers: node-llama-cpp and the OpenAI servers would load it whole", () => {
  const split = fakeModel("big", {}, { rpcWorkers: ["10.0.0.2:50052"] });
  const whole = fakeModel("small");
  assert.equal(new LlamaCppBackend().canServe(split), false);
  assert.equal(new LlamaCppBackend().canServe(whole), true);
  const command = commandBackend({ name: "oa", command: ["/bin/server", "{model}"], formats: ["gguf"], health_path: "/health" });
  assert.equal(command.canServe({ ...split, format: "gguf" }), false);
  assert.equal(command.canServe({ ...whole, format: "gguf" }), true);
});
