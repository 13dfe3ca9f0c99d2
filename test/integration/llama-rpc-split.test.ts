/**
 * One model across "machines" with llama.cpp RPC: two rpc-server workers, each in its own network namespace behind
 * a veth pair (the traffic really crosses an interface), and the gateway's llama-server engine started with
 * `--rpc` so that the model's layers live on the workers. Greedy output must equal the single-machine output; a
 * killed worker is `rpc_worker_unavailable` (under a loaded model, and again before the next load), while the
 * gateway keeps serving its other models; with the worker back the model serves again.
 *
 * Needs root (ip netns) and the RPC build (`lmx engines build rpc-server`, ~/.cache/opta-lmx/llama-rpc).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { probeWorker, rpcBinaryPaths } from "../../src/engines/llama-server/rpc.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel, type TestModel } from "../helpers/models.js";
import { createNamespace, netnsSkipReason, removeNamespace, type Namespace } from "../helpers/netns.js";
import { getJson, showLogsOnFailure, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const plainBinary = testLlamaServerBinary();
const rpc = rpcBinaryPaths(process.env["LMX_TEST_RPC_DIR"] || undefined);
const rpcBuilt = existsSync(rpc.llamaServer) && existsSync(rpc.rpcServer);
const skip = !plainBinary
  ? NO_LLAMA_SERVER
  : !rpcBuilt
    ? `no RPC build at ${rpc.llamaServer} and ${rpc.rpcServer} (lmx engines build rpc-server)`
    : netnsSkipReason();
const PORT = 50052;
const json = { "content-type": "application/json" };

interface ErrorBody {
  error: { code: string; message: string };
}
interface CompletionBody {
  choices: Array<{ text: string }>;
}
interface ChatBody {
  choices: Array<{ message: { content: string } }>;
}
interface LoadedBody {
  data: Array<{ id: string; backend: string; backend_version?: string; backendVersion?: string }>;
}

function startWorker(ns: Namespace): ChildProcess {
  const worker = ns.spawn(rpc.rpcServer, ["-H", ns.address, "-p", String(PORT), "-t", "1"]);
  worker.stdout?.resume();
  worker.stderr?.resume();
  return worker;
}

async function stopWorker(worker: ChildProcess | null): Promise<void> {
  if (!worker || worker.exitCode !== null || worker.signalCode !== null) return;
  const gone = new Promise((resolve) => worker.once("exit", resolve));
  worker.kill("SIGKILL");
  await gone;
}

describe("llama.cpp RPC: one model's layers on two workers in two network namespaces", { skip, timeout: 240_000 }, () => {
  let story: TestModel;
  let chat: TestModel;
  let server: TestServer;
  const namespaces: Namespace[] = [];
  const workers: Array<ChildProcess | null> = [null, null];
  let endpoints: string[] = [];

  const complete = (model: string, prompt: string) =>
    getJson<CompletionBody & ErrorBody>(`${server.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model, prompt, max_tokens: 24, temperature: 0 }),
    });
  const chatOnce = (model: string) =>
    getJson<ChatBody & ErrorBody>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 16, temperature: 0 }),
    });

  before(async () => {
    story = await testModel("stories260K.gguf");
    chat = await testModel("stories260K-chatml.gguf");
    for (const index of [1, 2]) namespaces.push(createNamespace(index));
    endpoints = namespaces.map((ns) => `${ns.address}:${PORT}`);
    for (const [i, ns] of namespaces.entries()) workers[i] = startWorker(ns);
    await waitFor(async () => (await Promise.all(endpoints.map((e) => probeWorker(e, 500)))).every((why) => why === null), 10_000, "both workers");
    server = await startTestServer({
      backends: { llama_server: plainBinary!, llama_server_rpc: rpc.llamaServer, cpu_fallback: false },
      models: [
        { id: "local", path: story.path, context_size: 256, parallel: 1, threads: 1 },
        { id: "split", path: story.path, context_size: 256, parallel: 1, threads: 1, rpc: { workers: endpoints } },
        { id: "other", path: chat.path, context_size: 256, parallel: 1, threads: 1 },
        { id: "split2", path: chat.path, context_size: 256, parallel: 1, threads: 1, rpc: { workers: endpoints } },
      ],
    });
  });

  after(async () => {
    await server?.stop();
    for (const worker of workers) await stopWorker(worker);
    for (const ns of namespaces) removeNamespace(ns.name, ns.hostInterface);
  });

  test("greedy output across the workers equals the single-machine output; the weights crossed both interfaces", async () => {
    await showLogsOnFailure(server, async () => {
      const before = namespaces.map((ns) => ns.traffic().sent);
      const local = await complete("local", "Once upon a time");
      const split = await complete("split", "Once upon a time");
      assert.equal(local.status, 200, JSON.stringify(local.body));
      assert.equal(split.status, 200, JSON.stringify(split.body));
      assert.ok(local.body.choices[0]!.text.length > 0);
      assert.equal(split.body.choices[0]!.text, local.body.choices[0]!.text);
      // the chat layer's raw generation takes the same path
      const [chatLocal, chatSplit] = [await chatOnce("local"), await chatOnce("split")];
      assert.equal(chatSplit.status, 200, JSON.stringify(chatSplit.body));
      assert.equal(chatSplit.body.choices[0]!.message.content, chatLocal.body.choices[0]!.message.content);
      // each worker was sent a real share of the model: its layers, not a handshake
      const fileBytes = statSync(story.path).size;
      const sent = namespaces.map((ns, i) => ns.traffic().sent - before[i]!);
      for (const bytes of sent) assert.ok(bytes > fileBytes / 4, `a worker got ${bytes} bytes of a ${fileBytes}-byte model`);
      const loaded = await getJson<LoadedBody>(`${server.url}/admin/models/loaded`);
      const row = loaded.body.data.find((m) => m.id === "split");
      assert.equal(row?.backend, "llama-server");
    });
  });

  test("a second model on the same workers is refused at once (an rpc-server serves one client), not left to time out", async () => {
    await showLogsOnFailure(server, async () => {
      const second = await complete("split2", "Once upon a time");
      assert.equal(second.status, 503, JSON.stringify(second.body));
      assert.equal(second.body.error.code, "rpc_worker_unavailable");
      assert.match(second.body.error.message, /holds 'split'/);
      assert.equal((await complete("split", "Once upon a time")).status, 200, "the first model is untouched");
    });
  });

  test("a killed worker: rpc_worker_unavailable under the loaded model and before the next load; other models keep serving", async () => {
    await showLogsOnFailure(server, async () => {
      await stopWorker(workers[0]!);
      workers[0] = null;
      const during = await complete("split", "The dog");
      assert.equal(during.status, 503, JSON.stringify(during.body));
      assert.equal(during.body.error.code, "rpc_worker_unavailable");
      assert.match(during.body.error.message, /RPC worker/);

      const other = await chatOnce("other");
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.ok(other.body.choices[0]!.message.content.length > 0);
      assert.equal((await complete("local", "The cat")).status, 200);

      const reload = await complete("split", "The dog");
      assert.equal(reload.status, 503, JSON.stringify(reload.body));
      assert.equal(reload.body.error.code, "rpc_worker_unavailable");
      assert.match(reload.body.error.message, new RegExp(`${endpoints[0]!.replace(/\./g, "\\.")} \\(`), "the dead worker is named");
      assert.doesNotMatch(reload.body.error.message, new RegExp(`${endpoints[1]!.replace(/\./g, "\\.")} \\(`));
    });
  });

  test("with the worker back the model loads again (no quarantine) and answers as before", async () => {
    await showLogsOnFailure(server, async () => {
      workers[0] = startWorker(namespaces[0]!);
      await waitFor(async () => (await probeWorker(endpoints[0]!, 500)) === null, 10_000, "worker 1 back");
      const local = await complete("local", "Once upon a time");
      const split = await complete("split", "Once upon a time");
      assert.equal(split.status, 200, JSON.stringify(split.body));
      assert.equal(split.body.choices[0]!.text, local.body.choices[0]!.text);
    });
  });
});
