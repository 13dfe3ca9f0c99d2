/**
 * Remote nodes: gateway A routes requests for a model only B has to B, through the official `openai` client,
 * streamed and not; B killed → A answers node_unavailable for that model and still serves its own; B back on
 * the same address → served again. First with both gateways in this process (loopback), then with B in its own
 * network namespace behind a veth pair, so the traffic really crosses an interface.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { stringify as toYaml } from "yaml";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { PROJECT_ROOT, testModel, type TestModel } from "../helpers/models.js";
import { getJson, showLogsOnFailure, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const KEY_B = "node-b-secret-key";
const messages = [{ role: "user" as const, content: "Tell me a story about a dog." }];

let chatModel: TestModel;
let storyModel: TestModel;

before(async () => {
  chatModel = await testModel("stories260K-chatml.gguf");
  storyModel = await testModel("stories260K.gguf");
});

interface NodeView {
  name: string;
  up: boolean | null;
  error: { kind: string; message: string } | null;
  models: Array<{ id: string; status: string }>;
}

async function nodeB(a: TestServer): Promise<NodeView | undefined> {
  const { body } = await getJson<{ data: NodeView[] }>(`${a.url}/admin/nodes`);
  return body.data.find((n) => n.name === "b");
}

async function waitForB(a: TestServer, up: boolean): Promise<void> {
  await waitFor(async () => (await nodeB(a))?.up === up, 30_000, `node b ${up ? "up" : "down"} on A`);
}

function clientOf(server: TestServer): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}

async function streamedText(client: OpenAI, model: string): Promise<string> {
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  return text;
}

async function plainAnswer(client: OpenAI, model: string) {
  return client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 }).withResponse();
}

/** The whole scenario against A, whatever B is and wherever it runs; `stopB` / `startB` kill and restart it on the same address. */
async function routingScenario(a: TestServer, direct: OpenAI, stopB: () => Promise<void>, startB: () => Promise<void>): Promise<void> {
  const client = clientOf(a);
  await waitForB(a, true);

  // /v1/models: A's own model as before, B's with where it lives, in OpenAI's list shape
  const { body: models } = await getJson<{ object: string; data: Array<Record<string, unknown>> }>(`${a.url}/v1/models`);
  assert.equal(models.object, "list");
  const remote = models.data.find((m) => m.id === "story-b");
  assert.ok(remote, "B's model is listed by A");
  assert.equal(remote["object"], "model");
  assert.equal(remote["node"], "b");
  assert.equal(remote["owned_by"], "b");
  const own = models.data.find((m) => m.id === "chat-a");
  assert.ok(own && !("node" in own), "A's own model has no node");
  const listed = await client.models.list();
  assert.ok(
    listed.data.some((m) => m.id === "story-b"),
    "the openai client reads the merged list",
  );

  // served by B through A: the same greedy answer as B gives directly, streamed and not
  const expected = (await direct.chat.completions.create({ model: "story-b", messages, max_tokens: 16, temperature: 0 })).choices[0]?.message.content;
  assert.ok(expected && expected.length > 0, "B answers directly");
  const { data, response } = await plainAnswer(client, "story-b");
  assert.equal(data.choices[0]?.message.content, expected);
  assert.equal(response.headers.get("x-lmx-node"), "b");
  assert.equal(await streamedText(client, "story-b"), expected, "streamed through A equals B's answer");
  const embedded = await client.completions.create({ model: "story-b", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
  assert.equal(embedded.choices.length, 1, "/v1/completions is relayed too");

  // A's own model is served by A
  const local = await plainAnswer(client, "chat-a");
  assert.ok((local.data.choices[0]?.message.content ?? "").length > 0);
  assert.equal(local.response.headers.get("x-lmx-node"), null);

  // B gone: a clear, classified error for its model (both before and after A noticed), A's own model unaffected
  await stopB();
  for (const stream of [false, true]) {
    await assert.rejects(
      stream ? streamedText(client, "story-b") : client.chat.completions.create({ model: "story-b", messages, max_tokens: 4 }),
      (error: unknown) => {
        assert.ok(error instanceof OpenAI.APIError, String(error));
        assert.equal(error.status, 503);
        assert.equal(error.code, "node_unavailable");
        assert.match(error.message, /node|'b'/);
        assert.ok(Number(error.headers?.get("retry-after")) >= 1, "Retry-After says when to come back");
        return true;
      },
    );
  }
  const down = await nodeB(a);
  assert.equal(down?.up, false);
  assert.ok(down?.error && ["refused", "reset", "timeout", "unreachable"].includes(down.error.kind), JSON.stringify(down?.error));
  assert.ok(((await plainAnswer(client, "chat-a")).data.choices[0]?.message.content ?? "").length > 0, "A still serves its own model");
  const { body: whileDown } = await getJson<{ data: Array<Record<string, unknown>> }>(`${a.url}/v1/models`);
  assert.equal(whileDown.data.find((m) => m.id === "story-b")?.["status"], "unavailable");

  // B back on the same address: found by the health check, served again
  await startB();
  await waitForB(a, true);
  assert.equal((await plainAnswer(client, "story-b")).data.choices[0]?.message.content, expected);

  // metrics per node
  const metrics = await (await fetch(`${a.url}/metrics`)).text();
  assert.match(metrics, /^lmx:node_up\{node="b"\} 1$/m);
  assert.match(metrics, /^lmx:node_requests_total\{node="b",outcome="answered"\} [1-9]\d*$/m);
  assert.match(metrics, /^lmx:node_requests_total\{node="b",outcome="unreachable"\} [1-9]\d*$/m);
  assert.match(metrics, /^lmx:node_failures_total\{node="b",kind="[a-z_]+"\} [1-9]\d*$/m);
}

function modelsOfB(): Array<{ id: string; path: string; parallel: number; context_size: number }> {
  // room for a long generation (the stream cut in the namespace test)
  return [{ id: "story-b", path: storyModel.path, parallel: 2, context_size: 2048 }];
}

describe("two LMX servers on this machine", { timeout: 240_000 }, () => {
  let a: TestServer | null = null;
  let b: TestServer | null = null;
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  test(
    "A serves B's model through B, answers node_unavailable while B is down, and serves it again when B is back",
    { timeout: 200_000 },
    async () => {
      const startB = async (port: number) => startTestServer({ port, demo_model: false, api_keys: [KEY_B], models: modelsOfB() });
      b = await startB(0);
      const port = Number(new URL(b.url).port);
      a = await startTestServer({
        demo_model: false,
        models: [{ id: "chat-a", path: chatModel.path, parallel: 1, context_size: 256 }],
        nodes: [{ name: "b", url: `${b.url}/v1`, api_key: KEY_B, health_interval_sec: 1, timeout_sec: 5 }],
      });
      const direct = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
      const server = a;
      await showLogsOnFailure(server, () =>
        routingScenario(
          server,
          direct,
          async () => {
            await b?.stop();
            b = null;
          },
          async () => {
            b = await startB(port);
          },
        ),
      );
    },
  );

  test(
    "the node where the model is loaded is tried first; a node that fails to connect is failed over to the next",
    { timeout: 120_000 },
    async () => {
      const b1 = await startTestServer({ demo_model: false, models: modelsOfB() });
      const b2 = await startTestServer({ demo_model: false, models: modelsOfB() });
      let front: TestServer | null = null;
      try {
        // loaded on b1 only, before A's first (and, with this interval, only) health check sees it
        const load = await getJson(`${b1.url}/admin/models/load`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model_id: "story-b" }),
        });
        assert.equal(load.status, 200);
        front = await startTestServer({
          demo_model: false,
          models: [],
          // b2 first in the config: only the loaded status puts b1 ahead
          nodes: [
            { name: "b2", url: b2.url, health_interval_sec: 3600 },
            { name: "b1", url: b1.url, health_interval_sec: 3600 },
          ],
        });
        const a = front;
        await waitFor(
          async () => (await getJson<{ data: NodeView[] }>(`${a.url}/admin/nodes`)).body.data.every((n) => n.up === true),
          30_000,
          "both nodes up",
        );
        const client = clientOf(a);
        assert.equal((await plainAnswer(client, "story-b")).response.headers.get("x-lmx-node"), "b1", "loaded beats config order");
        await b1.stop();
        // A has not checked since: the request finds b1 gone, marks it down and is served by b2
        const failedOver = await plainAnswer(client, "story-b");
        assert.equal(failedOver.response.headers.get("x-lmx-node"), "b2");
        assert.ok((failedOver.data.choices[0]?.message.content ?? "").length > 0);
        const { body } = await getJson<{ data: NodeView[] }>(`${a.url}/admin/nodes`);
        assert.equal(body.data.find((n) => n.name === "b1")?.up, false);
        assert.equal(body.data.find((n) => n.name === "b1")?.error?.kind, "refused");
        assert.equal((await plainAnswer(client, "story-b")).response.headers.get("x-lmx-node"), "b2", "a down node is skipped");
      } finally {
        await front?.stop();
        await b2.stop();
        await b1.stop().catch(() => undefined);
      }
    },
  );

  test(
    "a node that refuses our key is down with kind auth and lists nothing; a model no node listed stays model_not_found",
    { timeout: 120_000 },
    async () => {
      const keyed = await startTestServer({ demo_model: false, api_keys: [KEY_B], models: modelsOfB() });
      const wrong = await startTestServer({
        demo_model: false,
        models: [],
        nodes: [{ name: "b", url: keyed.url, api_key: "not-the-right-key", health_interval_sec: 1 }],
      });
      try {
        await waitForB(wrong, false);
        assert.equal((await nodeB(wrong))?.error?.kind, "auth");
        const { body } = await getJson<{ data: Array<{ id: string }> }>(`${wrong.url}/v1/models`);
        assert.ok(!body.data.some((m) => m.id === "story-b"), "a node never reached lists nothing");
        const res = await getJson<{ error: { code: string } }>(`${wrong.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "story-b", messages }),
        });
        assert.equal(res.status, 404, "a model no node ever listed is unknown");
        assert.equal(res.body.error.code, "model_not_found");
      } finally {
        await wrong.stop();
        await keyed.stop();
      }
    },
  );
});

/** B as its own `lmx serve` process inside a network namespace; A in this process reaches it over a veth pair. */
describe("across two network namespaces", { timeout: 240_000 }, () => {
  const suffix = String(process.pid % 100_000);
  const ns = `lmxn${suffix}`;
  const vethA = `lmxa${suffix}`;
  const vethB = `lmxb${suffix}`;
  const subnet = 1 + (process.pid % 250);
  const addrA = `10.231.${subnet}.1`;
  const addrB = `10.231.${subnet}.2`;
  const portB = 18_000 + (process.pid % 2_000);
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "lmx-netns-"));
  let child: ChildProcess | null = null;
  let a: TestServer | null = null;
  const canRun = process.getuid?.() === 0 && spawnable("ip");

  after(async () => {
    await stopChild();
    await a?.stop();
    // even after a failure: nothing of the test's network is left behind
    for (const args of [
      ["netns", "del", ns],
      ["link", "del", vethA],
    ]) {
      try {
        execFileSync("ip", args, { stdio: "ignore" });
      } catch {
        // already gone (deleting the namespace takes the veth pair with it)
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  });

  async function stopChild(): Promise<void> {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((r) => running.once("exit", r));
    running.kill("SIGKILL");
    await exited;
  }

  async function startChild(): Promise<void> {
    const config = path.join(stateDir, "b.yaml");
    writeFileSync(
      config,
      toYaml({
        host: addrB,
        port: portB,
        state_dir: path.join(stateDir, "state"),
        log_level: "warn",
        demo_model: false,
        discovery: { hf_cache: false, lmstudio: false, ollama: false },
        backends: { llama_server: false },
        api_keys: [KEY_B],
        models: modelsOfB(),
      }),
    );
    const cli = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
    const started = spawn("ip", ["netns", "exec", ns, process.execPath, cli, "serve", "--config", config], {
      env: { ...process.env, LMX_CONFIG: "", HOME: stateDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = started;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`B did not start in its namespace: ${output}`)), 60_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/opta-lmx listening/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      started.stdout!.on("data", onData);
      started.stderr!.on("data", onData);
      started.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`B exited with ${code} before listening: ${output}`));
      });
    });
  }

  test(
    "A reaches B's model over a veth pair; B killed and restarted in its namespace; a stream cut by B's death ends with node_unavailable",
    { timeout: 200_000, skip: !canRun && "needs root and iproute2 (ip netns)" },
    async () => {
      const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
      ip("netns", "add", ns);
      ip("link", "add", vethA, "type", "veth", "peer", "name", vethB);
      ip("link", "set", vethB, "netns", ns);
      ip("addr", "add", `${addrA}/30`, "dev", vethA);
      ip("link", "set", vethA, "up");
      ip("-n", ns, "addr", "add", `${addrB}/30`, "dev", vethB);
      ip("-n", ns, "link", "set", vethB, "up");
      ip("-n", ns, "link", "set", "lo", "up");
      await startChild();
      // the namespace's address is not this machine's: only the veth pair leads there
      assert.ok(
        !Object.values(os.networkInterfaces())
          .flat()
          .some((i) => i?.address === addrB),
        "B's address lives in the other namespace",
      );
      a = await startTestServer({
        demo_model: false,
        models: [{ id: "chat-a", path: chatModel.path, parallel: 1, context_size: 256 }],
        nodes: [{ name: "b", url: `http://${addrB}:${portB}`, api_key: KEY_B, health_interval_sec: 1, timeout_sec: 5 }],
      });
      const server = a;
      const direct = new OpenAI({ baseURL: `http://${addrB}:${portB}/v1`, apiKey: KEY_B, maxRetries: 0 });
      await showLogsOnFailure(server, async () => {
        await routingScenario(server, direct, stopChild, startChild);
        // B killed while its answer streams through A: the stream ends with a node_unavailable error event and [DONE]
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "story-b", messages, max_tokens: 1800, ignore_eos: true, stream: true }),
        });
        assert.equal(res.status, 200);
        const reader = res.body!.getReader();
        let text = "";
        let killed = false;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString("utf8");
          if (!killed && text.includes("data: ")) {
            killed = true;
            await stopChild();
          }
        }
        assert.match(text, /data: \{"error":\{[^\n]*"code":"node_unavailable"/);
        assert.ok(text.endsWith("data: [DONE]\n\n"), text.slice(-200));
        assert.equal((await nodeB(server))?.up, false, "the node is down until a check finds it back");
        assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^lmx:node_requests_total\{node="b",outcome="failed"\} 1$/m);
      });
      // the relayed traffic went through A's end of the pair
      const bytes = Number(execFileSync("cat", [`/sys/class/net/${vethA}/statistics/tx_bytes`], { encoding: "utf8" }).trim());
      assert.ok(bytes > 0, "bytes left through the veth interface");
    },
  );
});

/** A node of kind openai: llama.cpp's own llama-server, a real OpenAI-compatible server that knows nothing of ours. */
describe("an OpenAI-compatible node", { timeout: 120_000 }, () => {
  const binary = testLlamaServerBinary();

  test("A lists llama-server's model and relays to it, streamed and not", { timeout: 100_000, skip: !binary && NO_LLAMA_SERVER }, async () => {
    const port = await freePort();
    const child = spawn(
      binary!,
      ["-m", storyModel.path, "--alias", "story-ls", "--host", "127.0.0.1", "--port", String(port), "-c", "512", "-np", "1", "-t", "1"],
      {
        stdio: "ignore",
      },
    );
    let a: TestServer | null = null;
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.status === 200, 60_000, "llama-server ready");
      a = await startTestServer({
        demo_model: false,
        models: [],
        nodes: [{ name: "ls", url: `http://127.0.0.1:${port}/v1`, kind: "openai", health_interval_sec: 1 }],
      });
      const server = a;
      await showLogsOnFailure(server, async () => {
        await waitFor(async () => (await getJson<{ data: NodeView[] }>(`${server.url}/admin/nodes`)).body.data[0]?.up === true, 30_000, "ls up");
        const { body } = await getJson<{ data: Array<Record<string, unknown>> }>(`${server.url}/v1/models`);
        const listed = body.data.find((m) => m.id === "story-ls");
        assert.equal(listed?.["node"], "ls");
        assert.equal(listed?.["status"], "loaded", "an openai node serves what it lists");
        const client = clientOf(server);
        const direct = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
        const prompt = "Once upon a time";
        const expected = (await direct.completions.create({ model: "story-ls", prompt, max_tokens: 12, temperature: 0 })).choices[0]?.text;
        const { data, response } = await client.completions.create({ model: "story-ls", prompt, max_tokens: 12, temperature: 0 }).withResponse();
        assert.equal(data.choices[0]?.text, expected);
        assert.equal(response.headers.get("x-lmx-node"), "ls");
        const stream = await client.completions.create({ model: "story-ls", prompt, max_tokens: 12, temperature: 0, stream: true });
        let text = "";
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
        assert.equal(text, expected, "streamed through A equals llama-server's answer");
      });
    } finally {
      await a?.stop();
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function spawnable(command: string): boolean {
  try {
    execFileSync(command, ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
