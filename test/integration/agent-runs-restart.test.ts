/**
 * A gateway killed with SIGKILL in the middle of an agent run, then started again on the same state directory:
 * the run is terminal (failed, reason `interrupted`), its running step too, the follower of its events gets the
 * terminal event, and the database passes SQLite's integrity check.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import Database from "better-sqlite3";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { getJson, waitFor } from "../helpers/server.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-agents-restart-"));
const gateways: ChildProcess[] = [];
after(() => {
  for (const gateway of gateways) if (gateway.exitCode === null && gateway.signalCode === null) gateway.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function startGateway(configFile: string): Promise<{ process: ChildProcess; url: string }> {
  const gateway = spawn(process.execPath, [path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js"), "serve", "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  gateways.push(gateway);
  let output = "";
  gateway.stdout!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  gateway.stderr!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${output}`)), 30_000);
    const check = () => {
      const match = /"url":"(http:\/\/[^"]+)","models"/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      } else if (gateway.exitCode === null) setTimeout(check, 50);
      else reject(new Error(`gateway exited: ${output}`));
    };
    check();
  });
  return { process: gateway, url };
}

interface Run {
  id: string;
  status: string;
  reason: string | null;
  error: { code: string } | null;
  steps: Array<{ role: string; status: string }>;
}

test("kill -9 during a run, restart: the run is failed (interrupted) and the database is intact", { timeout: 180_000 }, async () => {
  const model = await testModel("stories260K-chatml.gguf");
  const configFile = path.join(dir, "config.yaml");
  writeFileSync(
    configFile,
    [
      "port: 0",
      `state_dir: ${JSON.stringify(path.join(dir, "state"))}`,
      "log_level: info",
      "demo_model: false",
      "discovery: {hf_cache: false, lmstudio: false, ollama: false}",
      "backends: {llama_server: false}",
      "models:",
      `  - {id: chat, path: ${JSON.stringify(model.path)}, parallel: 2, context_size: 2048, threads: 1}`,
      "agents:",
      "  roles:",
      "    planner: {system_prompt: You plan., sampling: {max_tokens: 1900, ignore_eos: true}}",
    ].join("\n"),
  );
  const first = await startGateway(configFile);
  const created = await getJson<Run>(`${first.url}/v1/agents/runs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ agent: "default", input: { strategy: "handoff", prompt: "Long planning chain", roles: ["planner", "reviewer"] } }),
  });
  assert.equal(created.status, 201);
  const id = created.body.id;
  await waitFor(async () => (await getJson<Run>(`${first.url}/v1/agents/runs/${id}`)).body.steps.length > 0, 60_000, "the first step to start");
  assert.equal((await getJson<Run>(`${first.url}/v1/agents/runs/${id}`)).body.status, "running");
  first.process.kill("SIGKILL");
  await new Promise((resolve) => first.process.once("exit", resolve));

  const second = await startGateway(configFile);
  const after = await getJson<Run>(`${second.url}/v1/agents/runs/${id}`);
  assert.equal(after.status, 200);
  assert.equal(after.body.status, "failed");
  assert.equal(after.body.reason, "interrupted");
  assert.equal(after.body.error?.code, "interrupted");
  assert.deepEqual(
    after.body.steps.map((s) => [s.role, s.status]),
    [["planner", "failed"]],
  );
  // a follower of the interrupted run gets its terminal event and the stream ends
  const events = await (await fetch(`${second.url}/v1/agents/runs/${id}/events`)).text();
  assert.match(events, /event: run\.failed\ndata: \{"type":"run\.failed","id":"[^"]+","status":"failed","reason":"interrupted"\}/);
  const listed = await getJson<{ data: Run[] }>(`${second.url}/v1/agents/runs?status=running`);
  assert.deepEqual(listed.body.data, []);
  second.process.kill("SIGTERM");
  await new Promise((resolve) => second.process.once("exit", resolve));

  const db = new Database(path.join(dir, "state", "lmx.db"), { readonly: true });
  try {
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
  } finally {
    db.close();
  }
});
