/** Remote nodes without a network: the config section, error classification and mapping, candidate order, the CLI table. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { nodeConfigSchema } from "../../src/nodes/config.js";
import { classifyConnectionError, nodeAnswerError } from "../../src/nodes/errors.js";
import { NodeRegistry } from "../../src/nodes/registry.js";
import type { NodeModel } from "../../src/nodes/node.js";
import { renderNodes, type NodeEntry } from "../../src/cli/commands/nodes.js";
import { styleFor } from "../../src/cli/format.js";

describe("config nodes:", () => {
  test("defaults: lmx kind, 10 s checks, 5 s timeout, admin_key falls back to api_key", () => {
    const c = loadConfig({ env: {}, overrides: { nodes: [{ name: "b", url: "http://10.0.0.2:1234", api_key: "k".repeat(12) }] } });
    assert.deepEqual(c.nodes[0], {
      name: "b",
      url: "http://10.0.0.2:1234",
      api_key: "k".repeat(12),
      admin_key: "k".repeat(12),
      kind: "lmx",
      health_interval_sec: 10,
      timeout_sec: 5,
      prefer: false,
    });
    assert.deepEqual(loadConfig({ env: {} }).nodes, []);
  });

  test("refused: bad names, non-http urls, unknown fields, duplicate names", () => {
    for (const bad of [
      { name: "B!", url: "http://b:1" },
      { name: "b", url: "ftp://b:1" },
      { name: "b", url: "not a url" },
      { name: "b", url: "http://b:1/?x=1" },
      { name: "b", url: "http://user:secret@b:1" },
      { name: "b", url: "http://b:1", kind: "vllm" },
      { name: "b", url: "http://b:1", apikey: "x" },
    ]) {
      assert.equal(nodeConfigSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
    assert.throws(
      () =>
        loadConfig({
          env: {},
          overrides: {
            nodes: [
              { name: "b", url: "http://b:1" },
              { name: "b", url: "http://c:1" },
            ],
          },
        }),
      (error: unknown) => error instanceof ConfigError && /used twice/.test(error.message),
    );
  });
});

describe("node errors", () => {
  test("connection failures are classified from their codes, through undici's causes", () => {
    const wrapped = (code: string) => Object.assign(new Error("fetch failed"), { cause: Object.assign(new Error(code), { code }) });
    assert.equal(classifyConnectionError(wrapped("ECONNREFUSED")).kind, "refused");
    assert.equal(classifyConnectionError(wrapped("EHOSTUNREACH")).kind, "unreachable");
    assert.equal(classifyConnectionError(Object.assign(new Error("x"), { code: "UND_ERR_CONNECT_TIMEOUT" })).kind, "timeout");
    assert.equal(classifyConnectionError(wrapped("ECONNRESET")).kind, "reset");
  });

  test("a node's answers: our codes kept, a refused key and unknown server errors are node_unavailable, others mapped by status", () => {
    const ours = nodeAnswerError("b", 429, { error: { code: "queue_full", message: "full", type: "rate_limit_error", param: null } }, "", 3);
    assert.equal(ours.code, "queue_full");
    const key = nodeAnswerError("b", 401, { error: { code: "invalid_api_key", message: "no", type: "x", param: null } }, "", 3);
    assert.equal(key.code, "node_unavailable", "our key for the node, not the client's");
    assert.equal(key.details?.["kind"], "auth");
    assert.equal(key.retryAfterSec, 3);
    const vllm = nodeAnswerError("b", 404, { error: { message: "The model `x` does not exist.", type: "NotFoundError", code: 404 } }, "", 3);
    assert.equal(vllm.code, "model_not_found");
    assert.equal(vllm.param, "model");
    const crash = nodeAnswerError("b", 500, null, "Internal Server Error", 3);
    assert.equal(crash.code, "node_unavailable");
    assert.equal(crash.details?.["kind"], "http");
  });
});

describe("candidates", () => {
  const registry = new NodeRegistry(
    ["n1", "n2", "n3", "n4"].map((name) => nodeConfigSchema.parse({ name, url: `http://127.0.0.1:9/${name}`, health_interval_sec: 3600 })),
  );
  after(() => registry.close());
  const set = (name: string, up: boolean | null, models: Array<Partial<NodeModel> & { id: string }>) => {
    const node = registry.nodes.find((n) => n.name === name)!;
    node.up = up;
    node.models = models.map((m) => ({ status: "available", ownedBy: null, running: null, waiting: null, ...m }));
  };

  test("loaded first, then the least loaded, then config order; down nodes and unavailable models are left out", () => {
    set("n1", true, [{ id: "m", status: "available" }]);
    set("n2", true, [{ id: "m", status: "loaded", running: 3, waiting: 2 }]);
    set("n3", true, [{ id: "m", status: "loaded", running: 1, waiting: 0 }]);
    set("n4", false, [{ id: "m", status: "loaded" }]);
    assert.deepEqual(
      registry.candidates("m").map((n) => n.name),
      ["n3", "n2", "n1"],
    );
    assert.deepEqual(
      registry.listing("m").map((n) => n.name),
      ["n1", "n2", "n3", "n4"],
      "a down node's last list is kept",
    );
    // what this gateway has in flight to a node counts as its load too
    registry.nodes.find((n) => n.name === "n3")!.route.active = 5;
    assert.deepEqual(
      registry.candidates("m").map((n) => n.name),
      ["n2", "n3", "n1"],
    );
    registry.nodes.find((n) => n.name === "n3")!.route.active = 0;
    set("n1", true, [{ id: "m", status: "unavailable" }]);
    assert.ok(!registry.candidates("m").some((n) => n.name === "n1"));
    assert.deepEqual(registry.candidates("other"), []);
  });

  test("a trailing /v1 and a path prefix are the same address", () => {
    const node = registry.nodes.find((n) => n.name === "n2")!;
    assert.equal(node.route.prepare("/v1/chat/completions", {}, new AbortController().signal).path, "/n2/v1/chat/completions");
    const plain = new NodeRegistry([nodeConfigSchema.parse({ name: "p", url: "http://127.0.0.1:9/v1/" })]);
    assert.equal(plain.nodes[0]!.route.prepare("/v1/embeddings", {}, new AbortController().signal).path, "/v1/embeddings");
    plain.close();
  });
});

test("lmx nodes: one row per node, why a node is down, each node's models with their load", () => {
  const nodes: NodeEntry[] = [
    {
      name: "b",
      url: "http://10.0.0.2:1234",
      kind: "lmx",
      up: true,
      checked_at: 1,
      last_up_at: 1,
      error: null,
      in_flight: 2,
      served: 40,
      load_known: true,
      models: [{ id: "qwen", status: "loaded", owned_by: "opta-lmx", running: 2, waiting: 1 }],
    },
    {
      name: "c",
      url: "http://10.0.0.3:8000/v1",
      kind: "openai",
      up: false,
      checked_at: 2,
      last_up_at: null,
      error: { kind: "refused", message: "connection refused", at: 2 },
      in_flight: 0,
      served: 0,
      load_known: false,
      models: [],
    },
  ];
  const text = renderNodes(nodes, styleFor(false), 10_000);
  assert.match(text, /^b\s+lmx\s+http:\/\/10\.0\.0\.2:1234\s+up\s+2\s+40\s+1$/m);
  assert.match(text, /^c\s+openai\s+\S+\s+down \(refused; never up\)/m);
  assert.match(text, /^c: connection refused$/m);
  assert.match(text, /^ {2}b {2}qwen {2}loaded {2}2 running · 1 waiting$/m);
  assert.match(renderNodes([], styleFor(false)), /no remote nodes configured/);
});
