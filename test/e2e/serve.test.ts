/** The README's start command, as a user runs it: `lmx serve` on a fresh machine with no models configured. */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import OpenAI from "openai";
import { PROJECT_ROOT } from "../helpers/models.js";
import { alive } from "../helpers/processes.js";
import { getJson, waitFor } from "../helpers/server.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

async function serve(
  extra: string[] = [],
): Promise<{ child: ChildProcess; url: string; stateDir: string; exit: Promise<number | null>; output: () => string }> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "lmx-e2e-"));
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--state-dir", stateDir, ...extra], {
    env: { ...process.env, LMX_CONFIG: "", HOME: stateDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)".*opta-lmx listening/.exec(output) ?? /^opta-lmx listening on (http:\S+)$/m.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
  });
  return { child, url, stateDir, exit, output: () => output };
}

test("a fresh start serves the generated demo model and answers a chat; SIGTERM exits 0 and stops runners", async () => {
  const { child, url, stateDir, exit, output } = await serve();
  assert.ok(existsSync(path.join(stateDir, "models", "lmx-demo-tiny-chat.gguf")), "the demo model was generated");
  const models = await getJson<{ data: Array<{ id: string; status: string }> }>(`${url}/v1/models`);
  assert.deepEqual(
    models.body.data.map((m) => [m.id, m.status]),
    [["lmx-demo", "available"]],
  );
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
  const answer = await client.chat.completions.create({ model: "lmx-demo", messages: [{ role: "user", content: "Hello!" }], max_tokens: 16 });
  assert.ok((answer.choices[0]?.message.content ?? "").length > 0);
  // checked once the server has answered, when anything it printed at start has arrived; (Fastify's own
  // "Server listening at" line is another matter)
  assert.equal(output().match(/opta-lmx listening/g)?.length, 1, `where it listens is said once: ${output()}`);
  const loaded = await getJson<{ data: Array<{ pid: number }> }>(`${url}/admin/models/loaded`);
  const runnerPid = loaded.body.data[0]?.pid ?? -1;
  assert.ok(alive(runnerPid));
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 10_000, "readiness");
  child.kill("SIGTERM");
  assert.equal(await exit, 0);
  await waitFor(() => !alive(runnerPid), 5_000, "the runner to exit");
});

test("a gateway killed with SIGKILL leaves no orphan runner holding the model", async () => {
  const { child, url, exit } = await serve();
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
  await client.chat.completions.create({ model: "lmx-demo", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
  const loaded = await getJson<{ data: Array<{ pid: number }> }>(`${url}/admin/models/loaded`);
  const runnerPid = loaded.body.data[0]?.pid ?? -1;
  child.kill("SIGKILL");
  await exit;
  await waitFor(() => !alive(runnerPid), 5_000, "the orphaned runner to exit");
});

test("at a quiet log level, one plain line says where it listens", async () => {
  const { child, url, exit, output } = await serve(["--log-level", "warn"]);
  assert.equal(output().match(/listening/g)?.length, 1, output());
  assert.match(output(), new RegExp(`^opta-lmx listening on ${url.replace(/[.]/g, "\\.")}$`, "m"));
  child.kill("SIGTERM");
  assert.equal(await exit, 0);
});
