/**
 * MCP in both directions against a real gateway: the MCP SDK's own client over Streamable HTTP at /mcp, and a
 * real MCP server published by others (`@modelcontextprotocol/server-everything`, over stdio) imported as skills,
 * including what happens when its process is killed.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const everything = createRequire(import.meta.url).resolve("@modelcontextprotocol/server-everything/dist/index.js");
const API_KEY = "mcp-test-key";
const auth = { authorization: `Bearer ${API_KEY}` };

/** The native execute's answer: `{name, ok, result, duration_ms}`, or an error body. */
interface Execution {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

async function execute(server: TestServer, name: string, args: unknown): Promise<{ status: number; body: Execution & { error?: unknown } }> {
  const res = await getJson<Execution>(`${server.url}/v1/skills/${name}/execute`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ arguments: args }),
  });
  return { status: res.status, body: res.body };
}

async function mcpClient(server: TestServer, key: string | null = API_KEY): Promise<Client> {
  const client = new Client({ name: "lmx-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(
    new URL(`${server.url}/mcp`),
    key ? { requestInit: { headers: { authorization: `Bearer ${key}` } } } : {},
  );
  await client.connect(transport);
  return client;
}

/** The pid the source reports while connected (GET /v1/skills shows it in the source's health). */
function everythingPid(server: TestServer): number | null {
  const health = server.ctx.skills.health().find((h) => h.name === "everything");
  const match = /pid (\d+)/.exec(health?.detail ?? "");
  return match ? Number(match[1]) : null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("MCP: /mcp server and imported MCP servers", { timeout: 120_000 }, () => {
  let server: TestServer;
  let stopped = false;

  before(async () => {
    server = await startTestServer({
      api_keys: [API_KEY],
      skills: {
        mcp_servers: [{ name: "everything", command: [process.execPath, everything, "stdio"], timeout_ms: 20_000 }],
        allow_in_loop: ["add", "everything.get-sum"],
      },
    });
    await waitFor(() => server.ctx.skills.get("everything.get-sum") !== undefined, 30_000, "the everything server's tools as skills");
  });
  after(async () => {
    if (!stopped) await server?.stop();
  });

  test("the SDK's client lists the skills at /mcp and calls add: the same value as the native execute", async () => {
    const client = await mcpClient(server);
    try {
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      assert.ok(names.includes("add"), `add missing from ${names.join(", ")}`);
      assert.ok(names.includes("everything.get-sum"), "imported MCP tools are served again through /mcp");
      const add = tools.find((t) => t.name === "add")!;
      assert.equal(add.inputSchema.type, "object");
      assert.ok(add.inputSchema.properties && "left" in add.inputSchema.properties);

      const result = (await client.callTool({ name: "add", arguments: { left: 2, right: 5 } })) as CallToolResult;
      assert.equal(result.isError, false);
      const native = await execute(server, "add", { left: 2, right: 5 });
      assert.equal(native.status, 200);
      assert.equal(native.body.ok, true);
      const text = result.content[0];
      assert.ok(text && text.type === "text");
      assert.deepEqual(JSON.parse(text.text), native.body.result);
      // add's result is a number: MCP wants an object, so structuredContent carries it under `result`
      assert.deepEqual(result.structuredContent, { result: native.body.result });
      assert.equal(native.body.result, 7);

      // a refused call is a tool error result naming the field; an unknown tool is a protocol error
      const bad = (await client.callTool({ name: "add", arguments: { left: "two", right: 5 } })) as CallToolResult;
      assert.equal(bad.isError, true);
      assert.match(JSON.stringify(bad.content), /invalid_value.*left/);
      await assert.rejects(client.callTool({ name: "no_such_skill", arguments: {} }), /no skill named/);
    } finally {
      await client.close();
    }
  });

  test("/mcp honours api_keys", async () => {
    await assert.rejects(mcpClient(server, null), /401|API key/i);
    await assert.rejects(mcpClient(server, "wrong-key"), /401|API key/i);
    const res = await fetch(`${server.url}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    assert.equal(res.status, 401);
  });

  test("a request in an unknown session is 404, one without a session and not initialize is 400", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth, ...headers },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
    assert.equal((await post({ "mcp-session-id": "not-a-session" })).status, 404);
    assert.equal((await post({})).status, 400);
  });

  test("a change of the skills reaches an open /mcp session as notifications/tools/list_changed", async () => {
    let announced: string[] | null = null;
    const client = new Client(
      { name: "lmx-test", version: "1.0.0" },
      { listChanged: { tools: { onChanged: (_error, tools) => (announced = (tools ?? []).map((t) => t.name)) } } },
    );
    await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers: auth } }));
    try {
      // a source of the registry's own kind, added while the session listens. The client opens its notification
      // stream just after initialize: a change before that is not seen (MCP clients list again when they
      // reconnect), so the change is repeated, each time a new skill, until one is announced.
      let added = 0;
      let lastAdded = 0;
      const addSkill = async () => {
        lastAdded = Date.now();
        const name = `extra_echo_${added++}`;
        await server.ctx.skills.addSource({
          kind: "builtin",
          name: `test-${name}`,
          health: () => ({ ok: true }),
          list: async () => [
            {
              name,
              description: "echoes its text",
              parameters: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
              timeoutMs: 1_000,
              source: "builtin",
              sourceName: `test-${name}`,
              allowInLoop: false,
              run: async (args) => args["text"],
            },
          ],
        });
      };
      await addSkill();
      const seen = () => announced?.find((name) => name.startsWith("extra_echo_"));
      await waitFor(
        async () => {
          if (seen()) return true;
          if (Date.now() - lastAdded > 500) await addSkill();
          return false;
        },
        20_000,
        "a list_changed notification",
      );
      const result = (await client.callTool({ name: seen()!, arguments: { text: "hi" } })) as CallToolResult;
      assert.deepEqual(result.content, [{ type: "text", text: '"hi"' }]);
    } finally {
      await client.close();
    }
  });

  test("an imported MCP server's tool through /v1/skills/{name}/execute and through /mcp", async () => {
    const listed = await getJson<{ data?: Array<{ name: string; source?: string }> }>(`${server.url}/v1/skills`, { headers: auth });
    assert.equal(listed.status, 200);
    assert.match(JSON.stringify(listed.body), /everything\.get-sum/);

    const native = await execute(server, "everything.get-sum", { a: 2, b: 5 });
    assert.equal(native.status, 200, JSON.stringify(native.body));
    assert.equal(native.body.ok, true);
    assert.match(String(native.body.result), /\b7\b/);

    // structuredContent is the value when the MCP tool gives one
    const structured = await execute(server, "everything.get-structured-content", { location: "New York" });
    assert.equal(structured.status, 200, JSON.stringify(structured.body));
    assert.equal(typeof structured.body.result, "object");
    assert.ok(structured.body.result !== null && "temperature" in (structured.body.result as object));

    const client = await mcpClient(server);
    try {
      const result = (await client.callTool({ name: "everything.get-sum", arguments: { a: 2, b: 5 } })) as CallToolResult;
      assert.equal(result.isError, false);
      const text = result.content[0];
      assert.ok(text && text.type === "text");
      assert.deepEqual(JSON.parse(text.text), native.body.result);
    } finally {
      await client.close();
    }
  });

  test("killing the MCP server's process: 502 on its skills, the rest works, the next call restarts it", async () => {
    // a call first, so the server is connected and its pid known
    assert.equal((await execute(server, "everything.get-sum", { a: 1, b: 1 })).status, 200);
    const pid = everythingPid(server);
    assert.ok(pid !== null, "the source reports the server's pid while connected");
    process.kill(pid, "SIGKILL");
    await waitFor(() => server.ctx.skills.health().find((h) => h.name === "everything")?.ok === false, 10_000, "the exit to be noticed");
    const health = server.ctx.skills.health().find((h) => h.name === "everything")!;
    assert.match(health.detail ?? "", /exited/);

    const down = await execute(server, "everything.get-sum", { a: 2, b: 5 });
    assert.equal(down.status, 502, JSON.stringify(down.body));
    assert.match(JSON.stringify(down.body), /mcp_server_unavailable/);
    // everything else keeps working meanwhile, and the skills stay listed
    const add = await execute(server, "add", { left: 2, right: 5 });
    assert.equal(add.status, 200);
    assert.equal(add.body.result, 7);
    assert.ok(server.ctx.skills.get("everything.get-sum"));

    const again = await execute(server, "everything.get-sum", { a: 2, b: 5 });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.match(String(again.body.result), /\b7\b/);
    const restarted = everythingPid(server);
    assert.ok(restarted !== null && restarted !== pid, "a new process answers");
    assert.equal(isAlive(pid), false);
    // and through /mcp too
    const client = await mcpClient(server);
    try {
      const result = (await client.callTool({ name: "everything.get-sum", arguments: { a: 3, b: 4 } })) as CallToolResult;
      assert.equal(result.isError, false);
    } finally {
      await client.close();
    }
  });

  test("an MCP server over Streamable HTTP: a second gateway imports this one's /mcp", async () => {
    const second = await startTestServer({
      skills: { mcp_servers: [{ name: "upstream", url: `${server.url}/mcp`, headers: auth, timeout_ms: 10_000 }] },
    });
    try {
      await waitFor(() => second.ctx.skills.get("upstream.add") !== undefined, 20_000, "the upstream gateway's skills");
      // the upstream answers {result: 7} as structuredContent: that object is the imported skill's value
      const res = await getJson<Execution>(`${second.url}/v1/skills/upstream.add/execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ arguments: { left: 2, right: 5 } }),
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.result, { result: 7 });
      assert.match(second.ctx.skills.health().find((h) => h.name === "upstream")?.detail ?? "", /connected/);
      // the upstream's own refusal comes back as the imported call's failure, not a crash
      const refused = await getJson<Execution>(`${second.url}/v1/skills/upstream.divide/execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ arguments: { left: 1, right: 0 } }),
      });
      assert.equal(refused.status, 502);
      assert.match(JSON.stringify(refused.body), /division by zero/);
    } finally {
      await second.stop();
    }
  });

  test("the gateway's stop ends the MCP server's process", async () => {
    const pid = everythingPid(server);
    assert.ok(pid !== null);
    stopped = true;
    await server.stop();
    await waitFor(() => !isAlive(pid), 10_000, "the MCP server process to end");
  });
});
